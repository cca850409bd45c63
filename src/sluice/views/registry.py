"""The read models, in one list: what ingest projects into, what `sluice replay` rebuilds
and what retention expires. Each folder of this package that declares a `MODEL` is one:
adding a read model touches its own folder only (plus its migration and controller)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

import psycopg

from sluice.domain.events import Event

from .model import Context, ReadModel


def _discover() -> tuple[ReadModel, ...]:
    """The MODEL of every sub-package, by name: every append projects in this one order
    (and so takes the models' locks in one order)."""
    found = []
    here = importlib.import_module(__package__)
    for info in sorted(pkgutil.iter_modules(here.__path__), key=lambda i: i.name):
        if info.ispkg:
            model = getattr(importlib.import_module(f"{__package__}.{info.name}"), "MODEL", None)
            if isinstance(model, ReadModel):
                found.append(model)
    return tuple(found)


READ_MODELS: tuple[ReadModel, ...] = _discover()


def named(names: Sequence[str] | None) -> tuple[ReadModel, ...]:
    """The read models of these names (all when None); KeyError names an unknown one."""
    if names is None:
        return READ_MODELS
    by_name = {m.name: m for m in READ_MODELS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown read model(s) {', '.join(unknown)}; "
                       f"known: {', '.join(by_name)}")
    return tuple(by_name[n] for n in names)


def project(conn: psycopg.Connection, connection_id: str, events: Sequence[Event],
            ctx: Context, models: Sequence[ReadModel] | None = None) -> set[int]:
    """Fold new events into the read models (the caller's transaction). Returns the indexes
    of the events left out (`ctx.wait` False: their jobs are held by another append), to
    project later."""
    left: set[int] = set()
    arrivals = ctx.received_at
    for model in READ_MODELS if models is None else models:
        picked = [i for i, e in enumerate(events) if model.folds(e)]
        if not picked:
            continue
        mine = [events[i] for i in picked]
        own = ctx if arrivals is None else Context(
            [arrivals[i] for i in picked], ctx.wait, ctx.exclusive)
        held = model.project(conn, connection_id, mine, own)
        if held:
            left.update(i for i in picked if events[i].job_id in held)
    return left
