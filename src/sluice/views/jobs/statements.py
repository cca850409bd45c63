"""The job list's statements, assembled from reader.sql: its {filters}, {limit}, {window},
{newest}, {state} and {text} slots take only that file's static fragments, State literals
and parameter names (never user text), so each filter set gets a statement, and a plan, of
its own. `names` are the `f_*` fragments a filter set uses, in order."""

from __future__ import annotations

from collections.abc import Sequence

from sluice.domain.states import State
from sluice.store.sqlfiles import queries

from .._sql import with_filters

Q = queries(__package__, "reader.sql")
TEXT_FILTERS = ("f_name", "f_q")
_STATE_FILTERS = ("f_state", "f_states")
_STATE_LITERALS = {s.value: f"'{s.value}'" for s in State}
_LIMIT = "%(limit)s"
_WINDOW = "%(window)s"


def _merged(states: Sequence[str], names: Sequence[str]) -> bool:
    """Per-state ranges merged, unless a worker or id filter has its own index (or the states
    asked for are none of Sluice's: the plain statement finds nothing)."""
    return not {"f_worker", "f_id"} & set(names) and (
        not states or bool(set(states) & _STATE_LITERALS.keys()))


def _plain(names: Sequence[str], limit: str) -> str:
    """The newest `limit` jobs under the filters, by whichever index the planner picks."""
    return with_filters(Q["list_jobs"], Q, names).replace("{limit}", limit)


def _newest(states: Sequence[str], names: Sequence[str], limit: str) -> str:
    """The newest `limit` jobs under the (non-text) filters: per-state ranges merged, or the
    plain statement where a worker or id filter has its own index."""
    if not _merged(states, names):
        return _plain(names, limit)
    others = " ".join(Q[n] for n in names if n not in _STATE_FILTERS)
    wanted = sorted(set(states) & _STATE_LITERALS.keys()) if states else list(_STATE_LITERALS)
    branch = Q["newest_branch"].replace("{filters}", others).replace("{limit}", limit)
    branches = " UNION ALL ".join(branch.replace("{state}", _STATE_LITERALS[s]) for s in wanted)
    return Q["list_jobs_merged"].replace("{newest}", branches).replace("{limit}", limit)


def _with_window(statement: str, states: Sequence[str], names: Sequence[str]) -> str:
    """A text statement with its window: the newest jobs under the other filters."""
    plain = [n for n in names if n not in TEXT_FILTERS]
    text = " ".join(Q[n] for n in names if n in TEXT_FILTERS)
    return (statement.replace("{window}", _newest(states, plain, _WINDOW))
            .replace("{text}", text))


def has_text(names: Sequence[str]) -> bool:
    """Whether a substring filter is among them."""
    return any(n in TEXT_FILTERS for n in names)


def first(states: Sequence[str], names: Sequence[str]) -> str:
    """The statement a list runs first: the text filters within the window of newest jobs,
    or without them the newest jobs, per-state ranges merged where that suits."""
    if has_text(names):
        return _with_window(Q["list_jobs_recent_text"], states, names)
    return _newest(states, names, _LIMIT)


def scan_text(states: Sequence[str], names: Sequence[str]) -> str:
    """The text filters over one bounded window, with the window's oldest key (no trigram
    indexes)."""
    return _with_window(Q["list_jobs_scan_text"], states, names)


def plain(names: Sequence[str]) -> str:
    """The newest `limit` jobs under all the filters, by whichever index the planner picks
    (the trigram-indexed text filters choose their own)."""
    return _plain(names, _LIMIT)


def facets(names: Sequence[str]) -> str:
    """Capped job counts per state under the filters."""
    return with_filters(Q["job_facets"], Q, names)
