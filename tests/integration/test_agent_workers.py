"""The agent's worker processes: each converts and sends with its own real Transport."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sluice.agent.envelope import decode_envelope
from sluice.agent.forward import ParallelForwarder, TransportSpec, TransportStats
from sluice.agent.health import Health
from sluice.domain.celery import normalize
from sluice.domain.events import Event
from tests.integration.agent_support import CaptureAPI, wait_until
from tests.unit.test_agent_envelope import ListSink


def _payloads(fixture: Path) -> list[bytes]:
    return [json.loads(line)["data"].encode() for line in fixture.read_text().splitlines()]


def _forwarder(api: CaptureAPI, workers: int) -> tuple[ParallelForwarder, Health, ListSink]:
    sink = ListSink()  # the main process's own sink: workers must not use it
    stats = TransportStats(sink.stats)
    health = Health(stats)
    spec = TransportSpec(api.endpoint, "sk_workers", "conn-w")
    return ParallelForwarder(sink, health, "conn-w", workers, spec, stats), health, sink


def test_workers_send_every_event_and_count_bad_input(fixture_pubsub_path: Path) -> None:
    payloads = _payloads(fixture_pubsub_path)
    api = CaptureAPI()
    forward, health, sink = _forwarder(api, workers=2)
    try:
        for data in payloads * 3 + [b"garbage"]:
            forward.envelope(data)
        forward.flush()
    finally:
        forward.close()  # workers flush their transports as they exit
        api.close()
    expected = [normalize(e, "conn-w") for p in payloads for e in decode_envelope(p)]
    got = api.snapshot()
    assert len(got) == 3 * len(expected)
    keys = sorted(e.dedup_key for e in expected if isinstance(e, Event)) * 3
    assert sorted(e["dedup_key"] for e in got) == sorted(keys)
    assert sink.events == [] and api.auth == {"Bearer sk_workers"}
    assert health.events_in == 3 * len(expected) and health.undecodable == 1
    # The workers' transport counters reach health (as of each batch's end).
    assert health.snapshot()["transport_submitted"] == 3 * len(expected)


def test_a_killed_worker_is_replaced(fixture_pubsub_path: Path) -> None:
    payloads = _payloads(fixture_pubsub_path)
    per_round = sum(len(decode_envelope(p)) for p in payloads)
    api = CaptureAPI()
    forward, health, _ = _forwarder(api, workers=1)
    try:
        for data in payloads:
            forward.envelope(data)
        forward.flush()
        assert wait_until(lambda: len(api.snapshot()) == per_round, 30)
        for proc in list(forward.pool._processes.values()):  # an OOM kill, say
            proc.kill()
            proc.join(5)
        for _ in range(2):
            for data in payloads:
                forward.envelope(data)
            forward.flush()
            time.sleep(0.5)
    finally:
        forward.close()
        api.close()
    # The batch in flight when the worker died may be lost (and counted); later ones arrive.
    lost = health.undecodable_by_kind.get("batch lost in a worker", 0)
    assert lost <= 1
    assert len(api.snapshot()) == (3 - lost) * per_round
