"""Schemathesis over every operation of `/schema/openapi.json`, against a real uvicorn server
with data in it: valid and invalid requests (NUL characters, huge numbers, odd strings), never
a server error."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from sluice.store import keys
from tests.conftest import new_database
from tests.integration.api_support import job_events, new_connection
from tests.integration.reads_support import serve


@schemathesis.serializer("application/msgpack")
def _msgpack(ctx: Any, value: Any) -> bytes:
    try:
        return msgspec.msgpack.encode(value)
    except (TypeError, OverflowError, UnicodeEncodeError):  # no MessagePack form: as JSON
        return json.dumps(value).encode()


EXAMPLES = 40  # per operation and generation mode
STREAM = "/api/events/stream"


def _call(case: Case, base: str, headers: dict[str, str]) -> int:
    """The status of the case's request (a stream: as soon as it opens, then closed)."""
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=base, headers=headers)
    kwargs.pop("timeout", None)
    with requests.request(**kwargs, stream=True, timeout=30) as response:
        if case.path != STREAM or response.status_code >= 300:
            _ = response.content
        return response.status_code


@pytest.mark.slow
def test_no_operation_answers_a_server_error(pg_server: str) -> None:
    with new_database(pg_server) as url, serve(url) as api:
        cid, key, _ = new_connection(url)
        with psycopg.connect(url, autocommit=True) as conn:
            admin = keys.create_key(conn, cid, ["ingest", "read", "operate", "admin"])
        headers = {"Authorization": f"Bearer {admin.api_key}"}
        seed = job_events(60, ts=time.time() - 120)
        r = httpx.post(api + "/api/ingest", json={"events": seed}, headers=headers, timeout=30)
        assert r.status_code == 202, r.text
        schema = schemathesis.openapi.from_url(api + "/schema/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/api/ingest", "/api/jobs", STREAM}
        failures: list[str] = []
        for operation in operations:
            # the coverage phase: boundary and invalid values of every parameter, in turn
            for case in schema.iter_coverage_cases(operation,
                                                   generation_modes=list(GenerationMode),
                                                   generation_config=schema.config.generation):
                status = _call(case, api, headers)
                if status >= 500:
                    failures.append(f"{status} {case.as_curl_command(headers=headers)}")
            for mode in GenerationMode:

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def check(case: Case) -> None:
                    status = _call(case, api, headers)
                    if status >= 500:
                        failures.append(f"{status} {case.as_curl_command(headers=headers)}")

                try:
                    check()
                except Unsatisfiable:  # nothing of this operation can be made invalid
                    assert mode is GenerationMode.NEGATIVE, operation.label
        assert not failures, "\n".join(failures[:20])
        assert key  # the connection's first key stays valid after all of it
