"""Poison events over a real `uvicorn` server: events at and beyond every bound (numbers by
column type, lengths, nesting depth, NUL, lone surrogates), mixed into batches with good
events. Never a 5xx; each bad event is rejected by its index; every good event is stored."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.domain import validate as v
from sluice.service import ingest
from sluice.store import connections
from tests.conftest import new_database
from tests.integration.api_support import new_connection
from tests.integration.reads_support import serve

NOW = time.time()
# Placeholders for values json.dumps cannot write: replaced in the encoded body.
_DEEP = "\x01deep:"
_RAW_NUMBER = "\x01number:"


def _deep(levels: int) -> str:
    """Extensions nested `levels` deep in all (the extensions object is level 1)."""
    return f"{_DEEP}{levels}"


# (kind, fields every event of it needs)
BASES: dict[str, dict[str, Any]] = {
    "job.sent": {"job_id": "j", "name": "app.add", "queue": "q"},
    "job.succeeded": {"job_id": "j", "hostname": "w@h", "runtime": 0.5},
    "worker.heartbeat": {"hostname": "w@h", "active": 1, "pid": 10, "processed": 3},
    "queue.sampled": {"queue": "q", "depth": 1, "consumers": 1},
    "source.dropped": {"hostname": "w@h", "count": 1},
}

# field -> (kind it is checked on, values at the bound (good), values beyond it (bad))
I4, I8 = v.INT4_MAX, v.INT8_MAX
BOUNDS: dict[str, tuple[str, list[Any], list[Any]]] = {
    "retries": ("job.sent", [0, I4], [-1, I4 + 1, I8 + 1, 2**70]),
    "active": ("worker.heartbeat", [0, I4], [-1, I4 + 1, I8]),
    "pid": ("worker.heartbeat", [1, I4], [I4 + 1, 2**40]),
    "processed": ("worker.heartbeat", [I4 + 1, I8], [I8 + 1, -5]),
    "consumers": ("queue.sampled", [0, I4], [I4 + 1, I8]),
    "depth": ("queue.sampled", [0, I8], [I8 + 1, -1]),
    "count": ("source.dropped", [0, I8], [I8 + 1]),
    "clock": ("job.sent", [0, I8], [I8 + 1, -1]),
    "runtime": ("job.succeeded", [0.0, v.MAX_RUNTIME_S],
                [-0.5, v.MAX_RUNTIME_S * 1.01, 1e308, f"{_RAW_NUMBER}NaN",
                 f"{_RAW_NUMBER}1e400"]),
    "freq": ("worker.heartbeat", [2.0, 1e300], [f"{_RAW_NUMBER}Infinity"]),
    "utcoffset": ("worker.heartbeat", [-12.0, 14.0], [f"{_RAW_NUMBER}-Infinity"]),
    "loadavg": ("worker.heartbeat", [[0.1, 0.2, 1e300]], [[1.0, 2.0, 3.0, 4.0]]),
    "timestamp": ("job.sent", [v.MIN_TIMESTAMP, NOW + v.MAX_FUTURE_SKEW_S - 3600],
                  [v.MIN_TIMESTAMP - 1, NOW + 2 * v.MAX_FUTURE_SKEW_S, 1e300]),
    "job_id": ("job.sent", ["x" * v.MAX_ID_LEN, "\U0001f600" * v.MAX_ID_LEN],
               ["x" * (v.MAX_ID_LEN + 1), "a\x00b", "\ud800"]),
    "hostname": ("worker.heartbeat", ["h" * v.MAX_ID_LEN, "w\u00e9@h"],
                 ["h" * (v.MAX_ID_LEN + 1), "w\x00"]),
    "queue": ("queue.sampled", ["\U0001f600" * v.MAX_ID_LEN], ["q\x00", "\udfff"]),
    "name": ("job.sent", ["n" * v.MAX_NAME_LEN, "\U0001f600" * (v.MAX_NAME_BYTES // 4)],
             ["n" * (v.MAX_NAME_LEN + 1), "\U0001f600" * (v.MAX_NAME_BYTES // 4 + 1),
              "a\x00", "x\ud83d"]),
    "args": ("job.sent", ["a" * v.MAX_TEXT_LEN], ["a" * (v.MAX_TEXT_LEN + 1), "(\x00)"]),
    "exception": ("job.succeeded", ["E" * 1000], ["E\x00", "\udc00"]),
    "extensions": ("job.sent",
                   [{"k": "v", "n": 2**63 - 1}, _deep(v.MAX_EXTENSIONS_DEPTH),
                    {"u": "\U0001f600"}],
                   [_deep(v.MAX_EXTENSIONS_DEPTH + 1), _deep(329), _deep(1200), _deep(5000),
                    {"k": "a\x00"}, {"a\x00": 1}, {"k": "\ud800"},
                    {"k": "x" * (v.MAX_EXTENSIONS_BYTES + 1)}]),
}


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    event = {"kind": kind, "timestamp": NOW - 60, **BASES[kind], **fields}
    event["dedup_key"] = f"bounds-{uuid.uuid4().hex}"
    if "job_id" in BASES[kind] and "job_id" not in fields:
        event["job_id"] = f"j-{uuid.uuid4().hex[:8]}"
    return event


def _encode(events: list[dict[str, Any]]) -> bytes:
    """JSON as a hostile client may send it: lone surrogates escaped (json.dumps does so),
    NaN/Infinity tokens, nesting deeper than any JSON encoder writes."""
    text = json.dumps({"events": events})
    while '"\\u0001deep:' in text:
        head, _, tail = text.partition('"\\u0001deep:')
        digits, _, rest = tail.partition('"')
        levels = int(digits)
        text = head + '{"a":' + "[" * (levels - 1) + "]" * (levels - 1) + "}" + rest
    while '"\\u0001number:' in text:
        head, _, tail = text.partition('"\\u0001number:')
        token, _, rest = tail.partition('"')
        text = head + token + rest
    return text.encode()


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[dict[str, Any], bool]]:
    """A batch of (event, good?) pairs: good events at bounds, bad ones beyond them."""
    out = []
    for _ in range(draw(st.integers(1, 8))):
        field = draw(st.sampled_from(sorted(BOUNDS)))
        kind, good, bad = BOUNDS[field]
        is_good = draw(st.booleans())
        value = draw(st.sampled_from(good if is_good else bad))
        out.append((_event(kind, **{field: value}), is_good))
    return out


@pytest.fixture(scope="module")
def server(pg_server: str) -> Iterator[tuple[str, str, str]]:
    """A uvicorn server on a database of this module's own: (base URL, key, database)."""
    with new_database(pg_server) as url:
        _, key, _ = new_connection(url)
        with serve(url) as api:
            yield api, key, url


def _stored(url: str, keys: list[str]) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {k for (k,) in conn.execute(
            "SELECT dedup_key FROM events WHERE dedup_key = ANY(%s)", (keys,))}


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=batches())
def test_never_5xx_and_every_good_event_stored(server: tuple[str, str, str],
                                               batch: list[tuple[dict[str, Any], bool]]
                                               ) -> None:
    api, key, url = server
    events = [e for e, _ in batch]
    r = httpx.post(api + "/api/ingest", content=_encode(events), timeout=60,
                   headers={"Authorization": f"Bearer {key}",
                            "Content-Type": "application/json"})
    assert r.status_code == 202, (r.status_code, r.text[:500])
    rejected = {item["index"]: item for item in r.json()["rejected"]}
    for i, (event, good) in enumerate(batch):
        if good:
            assert i not in rejected, (event.keys(), rejected[i])
        else:
            assert i in rejected, {k: str(x)[:80] for k, x in event.items()}
            assert rejected[i]["reason"]
    good_keys = [e["dedup_key"] for e, good in batch if good]
    assert _stored(url, good_keys) == set(good_keys)


def _post(api: str, key: str, body: bytes, ctype: str) -> httpx.Response:
    return httpx.post(api + "/api/ingest", content=body, timeout=60,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": ctype})


def test_every_bound_is_exercised_in_json_and_msgpack(server: tuple[str, str, str]) -> None:
    """Each good value, and each bad one, beside a good event, in both body formats, in one
    batch per format (the property test above samples; this walks the whole table)."""
    api, key, url = server
    for packed in (False, True):
        batch: list[tuple[dict[str, Any], bool]] = []
        for field, (kind, good, bad) in BOUNDS.items():
            for value, is_good in [(x, True) for x in good] + [(x, False) for x in bad]:
                if packed and isinstance(value, str) and value.startswith("\x01"):
                    continue  # JSON tokens; depth comes as MessagePack below
                if packed and isinstance(value, int) and not -(2**63) <= value < 2**64:
                    continue  # integers MessagePack has no room for
                batch += [(_event(kind, **{field: value}), is_good), (_event("job.sent"), True)]
        events = [e for e, _ in batch]
        r = (_post(api, key, _msgpack(events), "application/msgpack") if packed
             else _post(api, key, _encode(events), "application/json"))
        assert r.status_code == 202, r.text[:300]
        rejected = [item["index"] for item in r.json()["rejected"]]
        assert rejected == [i for i, (_, good) in enumerate(batch) if not good], r.json()
        keys = [e["dedup_key"] for e, good in batch if good]
        assert _stored(url, keys) == set(keys)
    # MessagePack nested far past any decoder's recursion, beside good events
    goods = [_event("job.sent") for _ in range(4)]
    levels = (v.MAX_EXTENSIONS_DEPTH + 1, 329, 5000)
    body = b"\x97" + b"".join(msgspec.msgpack.encode(g) + _msgpack_event_with_depth(n)
                              for g, n in zip(goods, levels, strict=False))
    r = _post(api, key, b"\x81\xa6events" + body + msgspec.msgpack.encode(goods[-1]),
              "application/msgpack")
    assert r.status_code == 202 and [i["index"] for i in r.json()["rejected"]] == [1, 3, 5]
    keys = [g["dedup_key"] for g in goods]
    assert _stored(url, keys) == set(keys)


def _lone(x: Any) -> bool:
    return isinstance(x, str) and any(0xd800 <= ord(c) <= 0xdfff for c in x)


def _msgpack(events: list[dict[str, Any]]) -> bytes:
    """MessagePack; a lone surrogate becomes its (invalid) UTF-8 bytes, as a buggy encoder
    writes them."""
    lone: list[bytes] = []

    def fix(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: fix(y) for k, y in x.items()}
        if _lone(x):
            lone.append(x.encode("utf-8", "surrogatepass"))
            return lone[-1]
        return x

    body = msgspec.msgpack.encode({"events": [fix(e) for e in events]})
    for raw in lone:  # the bin header msgspec wrote -> a str header over the same bytes
        body = body.replace(msgspec.msgpack.encode(raw), bytes([0xa0 | len(raw)]) + raw)
    return body


def _msgpack_event_with_depth(levels: int) -> bytes:
    head = {k: x for k, x in _event("job.sent").items()}
    body = msgspec.msgpack.encode(head)
    # one more key: extensions = {"a": [[...]]}, `levels` deep in all
    count = body[0] & 0x0f
    nested = b"\x81\xa1a" + b"\x91" * (levels - 2) + b"\x90"
    return bytes([0x80 | (count + 1)]) + body[1:] + b"\xaaextensions" + nested


def test_an_event_that_fails_in_storage_is_rejected_alone(db: psycopg.Connection) -> None:
    """Past the validator (a bound it would lack): the conductor splits the batch, rejects
    that event by index, stores the rest, and never fails the batch."""
    from sluice.domain.events import Event
    from sluice.domain.validate import with_dedup_key

    cid = connections.create_connection(db, "a")
    good = [with_dedup_key(Event(kind="worker.heartbeat", timestamp=NOW - i,
                                 hostname=f"w{i}@h", active=i)) for i in range(6)]
    poison = with_dedup_key(Event(kind="worker.heartbeat", timestamp=NOW, hostname="p@h",
                                  active=2**31))  # the int4 column cannot hold it
    batch: list[Event] = [*good[:4], poison, *good[4:]]
    result = ingest.append(db, cid, batch)
    assert [r.index for r in result.rejected] == [4]
    assert "out of range" in result.rejected[0].reason
    assert result.accepted == 6
    hosts = {h for (h,) in db.execute("SELECT hostname FROM workers WHERE connection_id = %s",
                                      (cid,))}
    assert hosts == {f"w{i}@h" for i in range(6)}
