"""The pure parts of commands: complete captured arguments, URL redaction, the events'
dedup keys (one outcome per command), signal and rate checks."""

from __future__ import annotations

import uuid

from celery.utils.saferepr import saferepr
from hypothesis import given
from hypothesis import strategies as st

from sluice.domain import commands as cmd
from sluice.domain.arguments import INCOMPLETE, NOT_CAPTURED, captured
from sluice.domain.urls import check_url, redact_url, scrub
from sluice.domain.validate import check_event
from sluice.sdk.privacy import Privacy


def _values(text: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    return st.recursive(
        st.none() | st.booleans() | st.integers(-10**6, 10**6) | text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12)


plain = st.text(alphabet="abcXYZ019 _-.,:", max_size=20)


@given(st.lists(_values(plain), max_size=4), st.dictionaries(plain, _values(plain),
                                                            max_size=4))
def test_complete_reprs_give_the_arguments_back(args: list[object],
                                                kwargs: dict[str, object]) -> None:
    args_repr, kwargs_repr = saferepr(tuple(args), 1024), saferepr(kwargs, 1024)
    found = captured(args_repr, kwargs_repr)
    if len(args_repr) < 1000 and len(kwargs_repr) < 1000 and "..." not in args_repr + \
            kwargs_repr:
        assert found == (args, kwargs)
    else:
        assert found == INCOMPLETE


@given(st.lists(_values(st.text(max_size=30)), max_size=6),
       st.dictionaries(st.text(max_size=8), _values(st.text(max_size=30)), max_size=6))
def test_captured_arguments_are_exact_or_refused(args: list[object],
                                                 kwargs: dict[str, object]) -> None:
    """Whatever Celery's repr did to them (cut, unescaped newlines): never wrong ones."""
    found = captured(saferepr(tuple(args), 1024), saferepr(kwargs, 1024))
    assert found == INCOMPLETE or found == (args, kwargs)


def test_cut_masked_and_missing_arguments_are_refused() -> None:
    assert captured(None, None) == NOT_CAPTURED
    assert captured(saferepr(("x" * 3000,), 1024), "{}") == INCOMPLETE  # Celery's cut
    assert captured(saferepr((list(range(500)),), 1024), "{}") == INCOMPLETE
    masked = Privacy(True, None, 4096).scrub("t", "kwargs", "{'password': 'hunter2'}")
    assert captured("()", masked) == INCOMPLETE
    capped = Privacy(True, None, 20).scrub("t", "args", repr(("a" * 50,)))
    assert captured(capped, "{}") == INCOMPLETE
    assert captured("(1, 2)", None) == ([1, 2], {})
    assert captured("(Decimal('1'),)", "{}") == INCOMPLETE  # not a literal


def test_urls_lose_their_secrets() -> None:
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("amqp://user:p%40ss@h:5672//") == "amqp://user:***@h:5672//"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"
    assert redact_url("sentinel://:a@h1:26379;sentinel://:b@h2:26379") == \
        "sentinel://:***@h1:26379;sentinel://:***@h2:26379"
    assert "s3" not in (redact_url("sqs://k:v@/?token=s3") or "")
    assert redact_url(None) is None
    url = "redis://:topsecret@h:1/0"
    assert "topsecret" not in scrub(f"Error connecting to {url}: refused (topsecret)", url)
    assert check_url("redis://h") is None
    for bad in ("", "h:6379", "redis://h x", "redis://\x00", "x" * 3000):
        assert check_url(bad) is not None


def test_a_command_has_one_outcome_key_and_valid_events() -> None:
    cid = str(uuid.uuid4())
    ok = cmd.finished(cmd.Outcome(command_id=cid, ok=True), at=1.7e9)
    failed = cmd.finished(cmd.Outcome(command_id=cid, ok=False, reason="no"), at=1.7e9)
    assert ok.kind != failed.kind and ok.dedup_key == failed.dedup_key
    events = [cmd.requested(cid, "revoke", by="key:k", at=1.7e9, job_id="j",
                            params={"terminate": True}),
              cmd.running(cid, claimed_by="agent@h", claim=1, at=1.7e9), ok,
              cmd.resent("w@h", [cid], at=1.7e9, answers="worker.online-abc")]
    for e in events:
        assert check_event(e, 1.7e9, from_server=True) is None, e
        assert check_event(e, 1.7e9) is not None  # never from a source
    assert cmd.new_job_id(cid) == cmd.new_job_id(cid) != cmd.new_job_id(str(uuid.uuid4()))


def test_signals_and_rates() -> None:
    assert cmd.check_signal("term") == "SIGTERM" and cmd.check_signal("SIGKILL") == "SIGKILL"
    assert cmd.check_signal("SIGSEGV") is None
    assert cmd.check_rate("10/m") and cmd.check_rate("5") and not cmd.check_rate("fast")
