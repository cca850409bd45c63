"""Agent parts without a broker: RESP parsing, patterns, queue names, health, backoff."""

from __future__ import annotations

import fnmatch
import logging
import urllib.request
from pathlib import Path

import pytest

from sluice.agent.backoff import Backoff
from sluice.agent.health import Health, serve_metrics
from sluice.agent.queues import is_work_queue, queue_of_member, sampled_event
from sluice.agent.rabbitmq_reader import KnownQueues
from sluice.agent.redis_conn import describe, redis_url
from sluice.agent.redis_reader import event_patterns
from sluice.agent.resp import ParseError, ServerError, parse_frames
from sluice.agent.run import broker_kind
from sluice.domain.dedup import dedup_key
from sluice.domain.events import QUEUE_SAMPLED
from tests.conftest import FIXTURES


def _bulk(*items: bytes) -> bytes:
    out = b"*%d\r\n" % len(items)
    for item in items:
        out += b"$%d\r\n%s\r\n" % (len(item), item)
    return out


def test_resp_frames_split_anywhere_reassemble() -> None:
    stream = b"*3\r\n$10\r\npsubscribe\r\n$13\r\n/0.celeryev/*\r\n:1\r\n"
    stream += _bulk(b"pmessage", b"/0.celeryev/*", b"/0.celeryev/task.sent", b"x\r\ny" * 50)
    stream += _bulk(b"pong", b"")
    whole: list[list[bytes | int | None]] = []
    assert parse_frames(stream, whole) == len(stream)
    assert whole[0] == [b"psubscribe", b"/0.celeryev/*", 1]
    assert whole[1][3] == b"x\r\ny" * 50
    assert whole[2] == [b"pong", b""]
    for cut in range(len(stream)):
        frames: list[list[bytes | int | None]] = []
        used = parse_frames(stream[:cut], frames)
        parse_frames(stream[used:], frames)
        assert frames == whole, cut


def test_resp_error_reply_raises() -> None:
    with pytest.raises(ServerError, match="NOPERM"):
        parse_frames(b"-NOPERM this user has no permissions\r\n", [])
    with pytest.raises(ParseError):
        parse_frames(b"%2\r\n", [])


def test_event_patterns_catch_every_kombu_channel_form_exactly_once() -> None:
    patterns = event_patterns(0)
    channels = ["/0.celeryev/task.sent", "/0.celeryev/worker.heartbeat", "/0.celeryev",
                "celeryev/task.multi", "celeryev"]
    for channel in channels:  # Redis glob semantics match fnmatchcase for these patterns
        assert sum(fnmatch.fnmatchcase(channel, p) for p in patterns) == 1, channel
    for other in ["/1.celeryev/task.sent", "/10.celeryev/x", "/0.celery.pidbox", "celery"]:
        assert not any(fnmatch.fnmatchcase(other, p) for p in patterns), other


def test_queue_names_from_kombu_bindings() -> None:
    assert queue_of_member(b"default\x06\x16\x06\x16default") == "default"
    assert queue_of_member("emails\x06\x16\x06\x16emails") == "emails"
    assert is_work_queue("default")
    assert not is_work_queue("celeryev.4f1c")
    assert not is_work_queue("celery.pidbox") and not is_work_queue("reply.celery.pidbox")
    assert not is_work_queue("")


def test_queue_sampled_event_carries_its_dedup_key() -> None:
    event = sampled_event("default", 4, "agent-host", 1_800_000_000.5, "conn")
    assert event.kind == QUEUE_SAMPLED and event.depth == 4 and event.consumers is None
    assert event.dedup_key == dedup_key(QUEUE_SAMPLED, "default", "agent-host", None,
                                        1_800_000_000.5)


def test_known_queues_learn_from_task_sent() -> None:
    known = KnownQueues(["extra"])
    known.learn([{"type": "task-sent", "queue": "emails"}, {"type": "task-received"},
                 {"queue": "celeryev.x"}, {"queue": 3}])
    assert known.names() == ["celery", "emails", "extra"]


def test_broker_urls() -> None:
    assert broker_kind("redis://h:6379/0") == "redis"
    assert broker_kind("rediss://h/0") == "redis"
    assert broker_kind("amqp://guest:guest@h//") == "amqp"
    assert broker_kind("pyamqp://h//") == "amqp"
    with pytest.raises(ValueError, match="sqs"):
        broker_kind("sqs://")
    assert redis_url("redis+socket:///tmp/r.sock") == "unix:///tmp/r.sock"
    assert describe("redis://user:secret@h:6379/0") == "redis://***@h:6379/0"


def test_backoff_grows_with_jitter_to_a_cap_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    delays = [backoff.next_delay() for _ in range(8)]
    caps = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_health_counters_prometheus_text_and_http_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = Health(lambda: {"sent": 7, "dropped": 1, "buffered": 2})
    health.events_in = 10
    health.count_undecodable("junk")
    health.observe(0.0)  # lag: now - timestamp
    text = health.prometheus_text()
    assert "sluice_agent_events_in_total 10" in text
    assert "sluice_agent_sent_total 7" in text and "sluice_agent_dropped_total 1" in text
    assert "sluice_agent_undecodable_total 1" in text
    assert "# TYPE sluice_agent_lag_seconds gauge" in text
    assert "sluice_agent_transport_buffered 2" in text
    server = serve_metrics(health, 0, "127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "sluice_agent_events_in_total 10" in resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    with caplog.at_level(logging.INFO, logger="sluice.agent"):
        health.log_line()
    assert "events_in=10" in caplog.text and "sent=7" in caplog.text


def test_fixture_paths_exist() -> None:
    assert Path(FIXTURES / "celery-5.7-events.jsonl").exists()



def test_event_patterns_follow_the_global_keyprefix() -> None:
    # kombu prefixes PUBLISH's channel with global_keyprefix, before its fanout prefix
    patterns = event_patterns(3, keyprefix="acme:")
    for channel in ("acme:/3.celeryev/task.succeeded", "acme:celeryev/worker.heartbeat"):
        assert sum(fnmatch.fnmatchcase(channel, p) for p in patterns) == 1, channel
    assert not any(fnmatch.fnmatchcase("/3.celeryev/task.sent", p) for p in patterns)


def test_sentinel_urls_are_redis_brokers_and_logged_without_passwords() -> None:
    url = "sentinel://:s3cret@10.0.0.1:26379/2;sentinel://:s3cret@10.0.0.2:26379/2"
    assert broker_kind(url) == "redis"
    assert "s3cret" not in describe(url) and "10.0.0.2:26379" in describe(url)


def test_sentinel_without_master_name_is_a_clear_error() -> None:
    from sluice.agent.redis_conn import connect

    with pytest.raises(ValueError, match="master_name"):
        connect("sentinel://127.0.0.1:26379/0")


def test_agent_transport_options_from_the_command_line() -> None:
    from sluice.cli import build_parser

    args = build_parser().parse_args([
        "agent", "--transport-option", "master_name=mymaster",
        "--transport-option", "global_keyprefix=acme:",
        "--transport-option", 'sentinel_kwargs={"password": "p"}'])
    assert dict(args.transport_options) == {"master_name": "mymaster",
                                            "global_keyprefix": "acme:",
                                            "sentinel_kwargs": {"password": "p"}}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["agent", "--transport-option", "novalue"])
