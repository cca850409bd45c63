"""Never a 500 on any input: random bytes, random JSON and near-valid events."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from sluice.api.app import create_app
from tests.integration.api_support import auth, new_connection

ALLOWED = {202, 400, 413, 415, 422}
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=4),
    max_leaves=20,
)
FIELDS = ["kind", "timestamp", "job_id", "hostname", "queue", "clock", "retries", "runtime",
          "loadavg", "depth", "extensions", "dedup_key", "connection_id", "name", "args",
          "framework", "count", "utcoffset"]
KINDS = ["job.sent", "job.failed", "worker.heartbeat", "queue.sampled", "source.dropped", "x"]
near_events = st.fixed_dictionaries(
    {"kind": st.sampled_from(KINDS),
     "timestamp": st.one_of(st.floats(), st.just(time.time()), st.integers())},
    optional={f: json_values | st.text() for f in FIELDS[2:]},
)


@pytest.fixture
def fuzz_client(fresh_db_url: str) -> Iterator[tuple[Any, str]]:
    _, key, _ = new_connection(fresh_db_url)
    app = create_app(database_url=fresh_db_url, include_reads=False, maintenance_interval_s=None)
    with TestClient(app) as c:
        yield c, key


def _check(r: Any) -> None:
    assert r.status_code in ALLOWED, (r.status_code, r.text)
    body = r.json()
    if r.status_code != 202:
        assert isinstance(body["error"], str) and isinstance(body["detail"], str)


@FUZZ
@given(body=st.binary(max_size=300),
       ctype=st.sampled_from(["application/json", "application/msgpack", "text/plain", ""]),
       encoding=st.sampled_from(["", "gzip", "identity", "br"]))
def test_random_bytes(fuzz_client: tuple[Any, str], body: bytes, ctype: str,
                      encoding: str) -> None:
    client, key = fuzz_client
    headers = auth(key, **{"Content-Type": ctype, "Content-Encoding": encoding})
    _check(client.post("/api/ingest", content=body, headers=headers))


@FUZZ
@given(payload=st.one_of(json_values, st.fixed_dictionaries({"events": json_values}),
                         st.fixed_dictionaries({"events": st.lists(near_events, max_size=5)})),
       packed=st.booleans(), zipped=st.booleans())
def test_random_json_and_near_valid_events(fuzz_client: tuple[Any, str], payload: Any,
                                           packed: bool, zipped: bool) -> None:
    client, key = fuzz_client
    try:
        body = msgspec.msgpack.encode(payload) if packed else json.dumps(payload).encode()
    except (ValueError, OverflowError):
        return  # NaN/huge ints some encoders refuse: not a request anyone can send
    headers = auth(key, **{"Content-Type": "application/msgpack" if packed
                           else "application/json"})
    if zipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    _check(client.post("/api/ingest", content=body, headers=headers))


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats() | st.text(max_size=10) | st.binary(max_size=10)
    | st.builds(msgspec.msgpack.Ext, st.integers(0, 127), st.binary(max_size=4)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=5) | st.integers(-5, 5) | st.binary(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@FUZZ
@given(events=st.lists(st.fixed_dictionaries(
    {"kind": st.sampled_from(KINDS), "timestamp": st.just(time.time())},
    optional={"job_id": msgpack_values, "hostname": st.just("w@h"), "queue": st.just("q"),
              "depth": msgpack_values, "extensions": msgpack_values,
              "name": msgpack_values}), max_size=4))
def test_msgpack_only_values(fuzz_client: tuple[Any, str], events: list[Any]) -> None:
    client, key = fuzz_client
    body = msgspec.msgpack.encode({"events": events})
    headers = auth(key, **{"Content-Type": "application/msgpack"})
    _check(client.post("/api/ingest", content=body, headers=headers))
