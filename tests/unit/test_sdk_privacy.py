"""What leaves the process: arguments stripped by default, masked and capped when captured;
dedup keys identical to the domain normalizer's (so SDK and agent agree)."""

from __future__ import annotations

import json
from typing import Any

from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.domain.privacy import MARKS_KEY
from sluice.sdk.config import SdkConfig
from sluice.sdk.privacy import MASK, TRUNCATED, Privacy, mask
from sluice.sdk.runtime import Processor
from tests.conftest import FIXTURES

FIXTURE = FIXTURES / "celery-5.7-events.jsonl"
CONN = "0b6c3a4e-3333-4000-8000-000000000003"


def fixture_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def processor(**kw: Any) -> Processor:
    return Processor(SdkConfig(api_key="k", connection_id=CONN, endpoint="http://x", **kw))


def received(uuid: str, name: str, args: str, kwargs: str) -> dict[str, Any]:
    return {"type": "task-received", "uuid": uuid, "name": name, "args": args,
            "kwargs": kwargs, "hostname": "w1@h", "clock": 3, "timestamp": 1795546906.1}


def succeeded(uuid: str, result: str) -> dict[str, Any]:
    return {"type": "task-succeeded", "uuid": uuid, "result": result, "runtime": 0.1,
            "hostname": "w1@h", "clock": 4, "timestamp": 1795546906.2}


def test_dedup_keys_match_the_normalizer_on_real_traffic() -> None:
    proc = processor(capture_args=True)
    for raw in fixture_events():
        ours, theirs = proc(raw), normalize(raw, CONN)
        assert isinstance(ours, Event) and isinstance(theirs, Event)
        assert ours.dedup_key == theirs.dedup_key and ours.kind == theirs.kind


def test_arguments_and_results_stripped_by_default() -> None:
    proc = processor()
    for raw in fixture_events():
        event = proc(raw)
        assert event is not None
        assert event.args is None and event.kwargs is None and event.result is None


def test_raw_dict_is_never_mutated() -> None:
    raw = received("u1", "t.login", "('ann',)", "{'password': 'hunter2'}")
    copy = dict(raw)
    processor(capture_args=True)(raw)
    processor()(raw)
    assert raw == copy


def test_sensitive_keys_masked_even_when_captured() -> None:
    proc = processor(capture_args=True)
    event = proc(received(
        "u1", "t.login", "('ann', {'Authorization': 'Bearer abc'})",
        "{'password': 'hunter2', 'api_key': 'k-1', 'nested': {'client_secret': 's', 'n': 1},"
        " 'auth_token': 'tok', 'email': 'a@b.c'}",
    ))
    assert event is not None and event.kwargs is not None and event.args is not None
    for secret in ("hunter2", "k-1", "'s'", "'tok'", "Bearer abc"):
        assert secret not in event.kwargs + event.args
    assert "'email': 'a@b.c'" in event.kwargs and "'n': 1" in event.kwargs
    result = proc(succeeded("u1", "{'token': 'zzz', 'ok': True}"))
    assert result is not None and result.result == f"{{'token': {MASK!r}, 'ok': True}}"


def test_sensitive_keys_masked_in_non_literal_reprs() -> None:
    proc = processor(capture_args=True)
    event = proc(received("u2", "t.x", "(<User ann>,)",
                          "{'user': <User ann>, 'password': 'p@ss', \"token\": \"t\"}"))
    assert event is not None and event.kwargs is not None
    assert "p@ss" not in event.kwargs and '"t"' not in event.kwargs
    assert "<User ann>" in event.kwargs
    assert mask("login(password=abc123, user=x)") == f"login(password={MASK!r}, user=x)"


def test_capture_list_selects_tasks_including_results_by_job_id() -> None:
    proc = processor(capture_args=frozenset({"t.login"}))
    a = proc(received("u1", "t.login", "('ann',)", "{}"))
    b = proc(received("u2", "t.other", "('bob',)", "{}"))
    assert a is not None and a.args == "('ann',)"
    assert b is not None and b.args is None
    ra, rb = proc(succeeded("u1", "'ok'")), proc(succeeded("u2", "'ok'"))
    assert ra is not None and ra.result == "'ok'"
    assert rb is not None and rb.result is None


def test_redaction_hook_and_size_cap() -> None:
    calls: list[tuple[str, str]] = []

    def redact(task: str, field: str, value: Any) -> Any:
        calls.append((task, field))
        if field == "kwargs":
            return {**value, "iban": "****", "password": "leaked?"}
        return value

    proc = processor(capture_args=True, redact=redact, max_arg_size=80)
    event = proc(received("u1", "t.pay", "(" + "9" * 100 + ",)",
                          "{'card': '4111', 'iban': 'DE00'}"))
    assert event is not None and event.kwargs is not None and event.args is not None
    assert "4111" not in event.kwargs and f"'card': {MASK!r}" in event.kwargs  # a default key
    assert "DE00" not in event.kwargs and "'iban': '****'" in event.kwargs  # the hook's
    assert "leaked?" not in event.kwargs  # masked again after the hook
    assert len(event.args) == 80 and event.args.endswith(TRUNCATED)
    assert event.extensions[MARKS_KEY] == {"args": ["truncated"], "kwargs": ["redacted"]}
    assert ("t.pay", "args") in calls and ("t.pay", "kwargs") in calls


def test_failing_redaction_hook_never_leaks() -> None:
    def redact(task: str, field: str, value: Any) -> Any:
        raise RuntimeError("oops")

    event = processor(capture_args=True, redact=redact)(
        received("u1", "t.pay", "('4111',)", "{}")
    )
    assert event is not None and event.args == "[redaction failed]"


def test_privacy_captures() -> None:
    assert Privacy(True, None, 100).captures(None)
    assert not Privacy(False, None, 100).captures("a")
    assert Privacy(frozenset({"a"}), None, 100).captures("a")
    assert not Privacy(frozenset({"a"}), None, 100).captures(None)


def test_bad_input_gives_none_not_an_exception() -> None:
    proc = processor()
    assert proc(None) is None
    assert proc({"type": "task-started"}) is None  # no uuid, no timestamp: rejected
    assert proc({"type": "task-started", "uuid": object(), "timestamp": 1.0}) is None
