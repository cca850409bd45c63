"""End to end on the real API: real Celery traffic read from Redis by the agent gives
exactly the jobs and workers that the same events ingested directly (as the SDK sends
them) give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis

from sluice.domain.celery import normalize
from tests.integration.agent_support import agent_thread, private_redis, wait_until
from tests.integration.api_support import auth, new_connection
from tests.integration.reads_support import serve

pytestmark = pytest.mark.timeout(120)


def _get(base: str, key: str, path: str) -> Any:
    response = httpx.get(base + path, headers=auth(key), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _publish(client: redis.Redis, fixture: Path) -> None:
    for line in fixture.read_text().splitlines():
        message = json.loads(line)
        client.publish(message["channel"], message["data"])


def test_agent_path_equals_direct_ingest(fresh_db_url: str, fixture_pubsub_path: Path,
                                         fixture_events_path: Path) -> None:
    agent_cid, agent_key, _ = new_connection(fresh_db_url, "via-agent")
    direct_cid, direct_key, _ = new_connection(fresh_db_url, "direct")
    raws = [json.loads(line) for line in fixture_events_path.read_text().splitlines()]
    with serve(fresh_db_url) as base, private_redis() as server:
        direct = [msgspec.to_builtins(normalize(raw, direct_cid)) for raw in raws]
        answer = httpx.post(base + "/api/ingest", json={"events": direct},
                            headers=auth(direct_key), timeout=30)
        assert answer.status_code == 202 and answer.json()["accepted"] == len(raws)
        expected = _get(base, direct_key, "/api/jobs?limit=200")["items"]
        assert len(expected) == 13

        admin = server.client()
        admin.sadd("_kombu.binding.default", "default\x06\x16\x06\x16default")
        admin.rpush("default", "m1", "m2", "m3")
        with agent_thread(server.url, base, agent_key, agent_cid, queue_interval=0.3):
            assert wait_until(lambda: admin.execute_command("PUBSUB", "NUMPAT") == 4, 15)
            _publish(admin, fixture_pubsub_path)

            def jobs() -> list[dict[str, Any]]:
                return list(_get(base, agent_key, "/api/jobs?limit=200")["items"])

            assert wait_until(lambda: sorted(jobs(), key=lambda j: j["id"])
                              == sorted(expected, key=lambda j: j["id"]), 20), jobs()
            assert wait_until(lambda: any(
                q["name"] == "default" and q["depth"] == 3
                for q in _get(base, agent_key, "/api/queues")["items"]), 15)
        def workers(key: str) -> list[dict[str, Any]]:  # minus what depends on receipt time
            return [{k: v for k, v in w.items() if k not in ("heartbeat_age", "heartbeat_expires")}
                    for w in _get(base, key, "/api/workers")["items"]]

        assert workers(agent_key) == workers(direct_key)
        assert {j["state"] for j in expected} >= {"completed", "failed", "cancelled"}
