"""The privacy rules the SDK and the agent share (sluice.domain.privacy): arguments stripped
unless captured; captured ones masked at any depth by key name (defaults, per-task rules),
capped, and marked when either happened; the agent applies them as the SDK does."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from sluice.agent.capture import Capture
from sluice.agent.forward import convert
from sluice.agent.run import redaction_rules
from sluice.domain.celery import normalize
from sluice.domain.events import Event
from sluice.domain.privacy import (
    MARKS_KEY,
    MASK,
    TRUNCATED,
    Rules,
    mask,
    parse_rule,
    protect,
    rules_from,
    strip,
)
from sluice.sdk.config import SdkConfig, resolve
from sluice.sdk.errors import SluiceConfigError
from sluice.sdk.runtime import Processor

CONN = "0b6c3a4e-3333-4000-8000-000000000003"


def received(kwargs: str, args: str = "()", name: str = "shop.pay") -> dict[str, Any]:
    return {"type": "task-received", "uuid": "j-1", "name": name, "args": args,
            "kwargs": kwargs, "hostname": "w1@h", "clock": 3, "timestamp": 1795546906.1}


def event(kwargs: str, args: str = "()", name: str = "shop.pay") -> Event:
    e = normalize(received(kwargs, args, name), CONN)
    assert isinstance(e, Event)
    return e


def nest(depth: int, leaf: dict[str, Any]) -> Any:
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 3 == 0 else ({"level": value} if i % 3 == 1 else (value,))
    return value


def test_default_keys_are_masked_at_any_depth() -> None:
    secret = {"password": "p1", "auth_token": "t1", "CreditCard": "4111", "card_cvv": "123",
              "api-key": "k1", "user": "ann"}
    for depth in (0, 5, 40, 120):
        out = mask(nest(depth, secret))
        text = repr(out)
        for leaked in ("p1", "t1", "4111", "123", "k1"):
            assert leaked not in text, (depth, leaked)
        if depth <= 40:  # walked: the harmless key survives
            assert "'user': 'ann'" in text
    assert mask({"tags": {"password=x"}}) == {"tags": {f"password={MASK!r}"}}
    # a repr that is not a literal: a sensitive key's whole value goes, nested or quoted
    text = ("{'user': <User ann>, 'password': {'a': 'p1', 'b': [1, ('t1',)]}, "
            "'token': \"it's\", 'pin': <Pin '4111'>, 'n': 1}")
    assert rules_from(["pin"]) and mask(text, ["password", "token", "pin"]) == (
        f"{{'user': <User ann>, 'password': {MASK!r}, 'token': {MASK!r}, 'pin': {MASK!r}, "
        "'n': 1}")
    assert mask("f(x == 'token', token=abc)") == f"f(x == 'token', token={MASK!r})"


def test_per_task_rules_and_extra_keys() -> None:
    rules = rules_from(["email"], {"billing.charge": ["iban"]})
    e = event("{'iban': 'DE00', 'email': 'a@b', 'card': '4111', 'note': 'hi'}",
              name="billing.charge")
    other = event("{'iban': 'DE00', 'email': 'a@b'}", name="shop.ship")
    kept = protect(e, rules)
    assert kept.kwargs == (f"{{'iban': {MASK!r}, 'email': {MASK!r}, 'card': {MASK!r}, "
                           "'note': 'hi'}")
    assert protect(other, rules).kwargs == f"{{'iban': 'DE00', 'email': {MASK!r}}}"
    with pytest.raises(ValueError):
        rules_from("password")
    with pytest.raises(ValueError):
        rules_from([""])
    assert parse_rule("card") == (None, "card")
    assert parse_rule("billing.charge:iban") == ("billing.charge", "iban")
    with pytest.raises(ValueError):
        parse_rule(":iban")


def test_captured_values_are_marked_when_redacted_or_truncated() -> None:
    rules = Rules(max_size=40)
    plain = protect(event("{'n': 1}", "(1, 2)"), rules)
    assert plain.kwargs == "{'n': 1}" and plain.args == "(1, 2)"
    assert MARKS_KEY not in plain.extensions  # untouched: not marked
    both = protect(event("{'token': 'abc', 'blob': '" + "x" * 200 + "'}"), rules)
    assert both.kwargs is not None and both.kwargs.endswith(TRUNCATED)
    assert len(both.kwargs) == 40 and "abc" not in both.kwargs
    assert both.extensions[MARKS_KEY] == {"kwargs": ["redacted", "truncated"]}
    # a marked value is never taken for the original: it does not even parse back
    with pytest.raises((SyntaxError, ValueError)):
        ast.literal_eval(both.kwargs)
    bare = strip(both)
    assert (bare.args, bare.kwargs, bare.result) == (None, None, None)
    assert MARKS_KEY not in bare.extensions


def test_sdk_redact_keys_setting() -> None:
    base = {"api_key": "k", "connection_id": CONN, "endpoint": "http://x"}
    config = resolve(**base, capture_args=True, redact_keys={"*": ["email"],
                                                             "shop.pay": ["iban"]})
    out = Processor(config)(received("{'email': 'a@b', 'iban': 'DE00', 'x': 1}"))
    assert out is not None and out.kwargs == f"{{'email': {MASK!r}, 'iban': {MASK!r}, 'x': 1}}"
    assert out.source == "sdk"
    for bad in ("email", [1], {"shop.pay": "iban"}):
        with pytest.raises(SluiceConfigError):
            resolve(**base, redact_keys=bad)


def test_the_agent_strips_unless_told_to_capture_and_then_scrubs_like_the_sdk() -> None:
    raws = [received("{'password': 'hunter2', 'n': 1}", "('ann',)"),
            {"type": "task-succeeded", "uuid": "j-1", "result": "{'token': 'z', 'ok': 1}",
             "runtime": 0.1, "hostname": "w1@h", "clock": 4, "timestamp": 1795546906.2}]
    stripped: list[Event] = []
    convert(raws, CONN, stripped, [])
    assert all(e.args is None and e.kwargs is None and e.result is None for e in stripped)
    assert all(e.source == "agent" for e in stripped)

    rules = redaction_rules(["shop.pay:n"], 1024)
    captured: list[Event] = []
    convert(raws, CONN, captured, [], Capture(True, rules))
    sdk = Processor(SdkConfig(api_key="k", connection_id=CONN, endpoint="http://x",
                              capture_args=True, rules=rules))
    from_sdk = [sdk(raw) for raw in raws]
    for a, s in zip(captured, from_sdk, strict=True):
        assert s is not None
        assert (a.args, a.kwargs, a.result, a.extensions, a.dedup_key) == (
            s.args, s.kwargs, s.result, s.extensions, s.dedup_key)
    assert captured[0].kwargs == f"{{'password': {MASK!r}, 'n': {MASK!r}}}"
    assert captured[1].result == f"{{'token': {MASK!r}, 'ok': 1}}"
    with pytest.raises(ValueError):
        redaction_rules(["a:"], 1024)
