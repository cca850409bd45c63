"""Transport against a real local HTTP server: batching, gzip, retries, drops, fork."""

from __future__ import annotations

import gzip
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

import msgspec
import pytest

from sluice.domain.dedup import dedup_key
from sluice.domain.events import EVENT_ENCODER, SOURCE_DROPPED, Event
from sluice.transport import Transport
from sluice.transport.testserver import CaptureServer, Reply

CONN = "0b6c3a4e-1111-4000-8000-000000000001"
KEY = "sk_live_SECRETKEY123"


def ev(i: int, **kw: object) -> Event:
    return Event(kind="job.sent", timestamp=1_795_546_900.0 + i, job_id=f"job-{i}",
                 dedup_key=f"key-{i:08d}", connection_id=CONN, **kw)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    srv = CaptureServer().start()
    yield srv
    srv.stop()


def make(url: str, **kw: object) -> Transport:
    opts: dict[str, object] = {"flush_interval": 0.05, "timeout": 2.0, "max_backoff": 2.0}
    opts.update(kw)
    return Transport(url, KEY, CONN, **opts)  # type: ignore[arg-type]


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def job_ids(srv: CaptureServer) -> list[str]:
    return [e["job_id"] for e in srv.events() if e["kind"] != SOURCE_DROPPED]


def wait_for(pred: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_gzip_body_shape_and_headers(server: CaptureServer) -> None:
    t = make(server.url)
    t.start()
    events = [ev(i) for i in range(3)]
    for e in events:
        t.submit(e)
    assert t.flush(5)
    t.close()
    (req,) = server.requests
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Content-Encoding"] == "gzip"
    body = msgspec.json.decode(gzip.decompress(req.raw))
    assert body == {"events": [msgspec.json.decode(EVENT_ENCODER.encode(e)) for e in events]}
    assert t.stats()["sent"] == 3 and t.stats()["buffered"] == 0


def test_batches_by_size(server: CaptureServer) -> None:
    t = make(server.url, batch_size=10, flush_interval=10.0)
    t.start()
    for i in range(25):
        t.submit(ev(i))
    assert t.flush(5)
    t.close()
    assert [len(r.body["events"]) for r in server.requests] == [10, 10, 5]
    assert job_ids(server) == [f"job-{i}" for i in range(25)]


def test_batches_by_interval(server: CaptureServer) -> None:
    t = make(server.url, flush_interval=0.1)
    t.start()
    t.submit(ev(1))
    assert wait_for(lambda: len(server.requests) == 1, 2.0)
    t.close()


def test_large_events_split_under_5_mib(server: CaptureServer) -> None:
    t = make(server.url)
    t.start()
    big = "x" * 200_000
    for i in range(40):  # ~8 MB decompressed
        t.submit(ev(i, traceback=big))
    assert t.flush(10)
    t.close()
    assert len(server.requests) >= 2
    for req in server.requests:
        assert len(gzip.decompress(req.raw)) <= 5 * 1024 * 1024
    assert len(job_ids(server)) == 40


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(server: CaptureServer, status: int) -> None:
    server.script = [Reply(status, retry_after="0.6")]
    t = make(server.url)
    t.start()
    t.submit(ev(1))
    assert t.flush(5)
    t.close()
    first, second = server.requests
    assert second.at - first.at >= 0.55
    assert first.raw == second.raw  # the same batch, resent
    stats = t.stats()
    assert stats["failed_attempts"] == 1 and stats["sent"] == 1


def test_5xx_retries_with_growing_backoff(server: CaptureServer) -> None:
    server.script = [Reply(502), Reply(503), Reply(504)]
    t = make(server.url, max_backoff=10.0)
    t.start()
    t.submit(ev(1))
    assert wait_for(lambda: len(server.requests) == 4, 6.0)  # no flush: it shortens backoff
    assert wait_for(lambda: t.stats()["sent"] == 1)
    t.close()
    times = [r.at for r in server.requests]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # base 0.5 s, doubling, jitter in [ceiling/2, ceiling]
    assert 0.24 <= gaps[0] <= 0.6 and 0.49 <= gaps[1] <= 1.1 and 0.99 <= gaps[2] <= 2.1
    assert len({r.raw for r in server.requests}) == 1
    assert t.stats()["failed_attempts"] == 3 and t.stats()["sent"] == 1


def test_backoff_is_capped(server: CaptureServer) -> None:
    server.script = [Reply(502)] * 4
    t = make(server.url, max_backoff=0.2)
    t.start()
    t.submit(ev(1))
    assert wait_for(lambda: t.stats()["sent"] == 1, 3.0)
    t.close()
    times = [r.at for r in server.requests]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.45


def test_timeouts_are_retried(server: CaptureServer) -> None:
    server.script = [Reply(202, delay=1.0)]
    t = make(server.url, timeout=0.3, max_backoff=0.3)
    t.start()
    t.submit(ev(1))
    assert t.flush(5)
    t.close()
    assert t.stats()["failed_attempts"] >= 1
    assert len(server.requests) >= 2 and job_ids(server) == ["job-1"]


def test_connection_refused_keeps_events_buffered() -> None:
    t = make(closed_port_url(), max_backoff=0.1)
    t.start()
    t.submit(ev(1))
    assert not t.flush(0.5)
    assert t.stats()["failed_attempts"] >= 1 and t.stats()["buffered"] == 1
    t.close(0.2)


@pytest.mark.parametrize("status", [400, 401, 403, 413, 415, 422])
def test_4xx_drops_batch_logs_once_and_reports(
    server: CaptureServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server.script = [Reply(status), Reply(status)]
    t = make(server.url, batch_size=2)
    t.start()
    with caplog.at_level(logging.DEBUG, logger="sluice.transport"):
        for i in range(4):
            t.submit(ev(i, args="(1, 'secret-arg')"))
        assert t.flush(5)
        t.submit(ev(99))
        assert t.flush(5)
        assert wait_for(lambda: any(e["kind"] == SOURCE_DROPPED for e in server.events()))
    t.close()
    assert len(server.requests) >= 3  # two refused batches, not retried; then success
    stats = t.stats()
    assert stats["dropped"] == 4 and stats["sent"] == 1
    refused = [r for r in caplog.records if str(status) in r.getMessage()]
    assert len(refused) == 1
    text = caplog.text
    assert KEY not in text and "secret-arg" not in text
    (report,) = [e for e in server.events() if e["kind"] == SOURCE_DROPPED]
    assert report["count"] == 4


def test_drop_oldest_counts_and_reports(server: CaptureServer) -> None:
    t = make(server.url, max_buffer=5)
    for i in range(12):
        t.submit(ev(i))
    stats = t.stats()
    assert stats["dropped"] == 7 and stats["buffered"] == 5 and stats["submitted"] == 12
    t.start()
    assert t.flush(5)
    assert wait_for(lambda: any(e["kind"] == SOURCE_DROPPED for e in server.events()))
    t.close()
    assert job_ids(server) == [f"job-{i}" for i in range(7, 12)]  # the newest survive
    (report,) = [e for e in server.events() if e["kind"] == SOURCE_DROPPED]
    host = socket.gethostname()
    assert report["count"] == 7 and report["hostname"] == host
    assert report["connection_id"] == CONN
    assert report["dedup_key"] == dedup_key(
        SOURCE_DROPPED, host, host, report["clock"], report["timestamp"]
    )
    # a second report only for new drops
    assert t.stats()["dropped"] == 7


def test_flush_deadline(server: CaptureServer) -> None:
    server.default = Reply(503, retry_after="10")
    t = make(server.url)
    t.start()
    t.submit(ev(1))
    start = time.monotonic()
    assert t.flush(0.5) is False
    assert 0.45 <= time.monotonic() - start < 1.0
    t.close(0.1)


def test_flush_cuts_backoff_short(server: CaptureServer) -> None:
    server.script = [Reply(502)]
    t = make(server.url, max_backoff=30.0)
    t.start()
    t.submit(ev(1))
    assert wait_for(lambda: len(server.requests) == 1)
    t._attempt = 10  # the next backoff would be long
    start = time.monotonic()
    assert t.flush(3)
    assert time.monotonic() - start < 2.0
    t.close()


def test_rejected_items_are_counted(server: CaptureServer) -> None:
    server.script = [Reply(202, body=b'{"accepted":1,"duplicates":1,"rejected":'
                                     b'[{"index":2,"reason":"bad"}]}')]
    t = make(server.url)
    t.start()
    for i in range(3):
        t.submit(ev(i))
    assert t.flush(5)
    t.close()
    stats = t.stats()
    assert stats["rejected"] == 1 and stats["sent"] == 2 and stats["duplicates"] == 1


def test_submit_never_raises_and_bad_items_are_counted(server: CaptureServer) -> None:
    def bad_prepare(item: object) -> Event | None:
        raise RuntimeError("boom")

    t = Transport(server.url, KEY, CONN, flush_interval=0.05, prepare=bad_prepare)
    t.start()
    t.submit(None)  # type: ignore[arg-type]
    t.submit_raw({"type": "task-sent"})
    t.submit(ev(1))
    assert t.flush(5)
    t.close()
    stats = t.stats()
    assert stats["invalid"] == 2 and stats["dropped"] == 2 and stats["sent"] == 1


def test_prepare_runs_in_sender(server: CaptureServer) -> None:
    seen: list[str] = []

    def prepare(item: object) -> Event | None:
        seen.append(threading.current_thread().name)
        return ev(int(str(item)))

    t = Transport(server.url, KEY, CONN, flush_interval=0.05, prepare=prepare)
    t.start()
    t.submit_raw("5")
    assert t.flush(5)
    t.close()
    assert job_ids(server) == ["job-5"] and seen and seen[0] != "MainThread"


def test_start_is_idempotent_and_close_stops(server: CaptureServer) -> None:
    before = len(os.listdir("/proc/self/task"))
    t = make(server.url)
    t.start()
    t.start()
    assert len(os.listdir("/proc/self/task")) == before + 1
    t.close()
    assert wait_for(lambda: len(os.listdir("/proc/self/task")) == before, 2.0)


def test_fork_child_gets_fresh_state_and_sends(server: CaptureServer) -> None:
    t = make(server.url, flush_interval=10.0)
    t.start()
    for i in range(3):
        t.submit(ev(i))
    t._lock.acquire()  # fork while another thread holds the lock
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            t.submit(ev(100))
            stats = t.stats()
            ok = t.flush(5) and stats["submitted"] == 1 and t.stats()["sent"] == 1
            code = 0 if ok else 2
        finally:
            os._exit(code)
    t._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert t.flush(5)
    t.close()
    ids = [e["job_id"] for r in server.requests for e in r.body["events"]]
    assert sorted(ids) == ["job-0", "job-1", "job-100", "job-2"]  # nothing sent twice


def test_memory_bound_with_api_down() -> None:
    t = make(closed_port_url(), max_buffer=10_000, max_backoff=0.5)
    t.start()

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    for i in range(20_000):  # warm up to the full buffer
        t.submit(ev(i))
    base = rss_mb()
    for i in range(1_000_000):
        t.submit(ev(i, name="shop.tasks.add", hostname="w1@host"))
    grown = rss_mb() - base
    stats = t.stats()
    t.close(0.1)
    assert stats["buffered"] <= 10_000 + 500
    assert stats["dropped"] >= 1_010_000 - 10_500
    assert grown < 30, f"RSS grew by {grown:.1f} MB"


def _fails_on(*poison: str) -> object:
    """A responder that answers 500 to any batch holding one of these job ids (as a server
    failing on an event's content would), else 202."""

    def respond(received: object) -> Reply:
        body = getattr(received, "body", None)
        events = body.get("events", []) if isinstance(body, dict) else []
        if any(e.get("job_id") in poison for e in events):
            return Reply(500, body=b'{"error":"internal","detail":"internal server error"}')
        return Reply(202)

    return respond


def test_a_500_splits_the_batch_to_isolate_the_poison_event(
        server: CaptureServer, caplog: pytest.LogCaptureFixture) -> None:
    server.responder = _fails_on("job-37")  # type: ignore[assignment]
    t = make(server.url, batch_size=100, max_backoff=0.2)
    t.start()
    with caplog.at_level(logging.DEBUG, logger="sluice.transport"):
        for i in range(100):
            t.submit(ev(i, args="(1, 'secret-arg')"))
        assert t.flush(10)
        t.submit(ev(100))  # later events are not held up
        assert t.flush(10)
        assert wait_for(lambda: any(e["kind"] == SOURCE_DROPPED for e in server.events()))
    t.close()
    assert sorted(job_ids(server)) == sorted(f"job-{i}" for i in range(101) if i != 37)
    stats = t.stats()
    assert stats["poisoned"] == 1 and stats["dropped"] == 1 and stats["sent"] == 100
    # halving: about two requests per level, plus the poison event's one retry
    assert len(server.requests) < 30
    alone = [r for r in server.requests if len(r.body["events"]) == 1
             and r.body["events"][0].get("job_id") == "job-37"]
    assert len(alone) == 2  # tried alone twice, then dropped
    (line,) = [r for r in caplog.records if "poison" in r.getMessage()]
    assert "job-37" in line.getMessage() and "secret-arg" not in caplog.text
    (report,) = [e for e in server.events() if e["kind"] == SOURCE_DROPPED]
    assert report["count"] == 1


def test_every_poison_event_is_isolated_and_the_rest_delivered(server: CaptureServer) -> None:
    poison = {f"job-{i}" for i in (0, 1, 17, 63, 64, 199)}
    server.responder = _fails_on(*poison)  # type: ignore[assignment]
    t = make(server.url, batch_size=200, max_backoff=0.05)
    t.start()
    for i in range(200):
        t.submit(ev(i))
    assert t.flush(20)
    t.close()
    assert set(job_ids(server)) == {f"job-{i}" for i in range(200)} - poison
    assert t.stats()["poisoned"] == len(poison) and t.stats()["sent"] == 200 - len(poison)


@pytest.mark.parametrize("reply", [Reply(503, retry_after="0.2"), Reply(503), Reply(502),
                                   Reply(504), Reply(202, delay=1.0)])
def test_unavailable_is_retried_whole_never_split_or_dropped(
        server: CaptureServer, reply: Reply) -> None:
    server.script = [reply] * 3
    t = make(server.url, batch_size=50, timeout=0.3, max_backoff=0.2)
    t.start()
    for i in range(50):
        t.submit(ev(i))
    assert t.flush(15)
    t.close()
    sizes = [len(r.body["events"]) for r in server.requests if r.body]
    assert sizes == [50] * len(sizes) and len(sizes) >= 4  # the same whole batch each time
    assert sorted(job_ids(server)) == sorted(f"job-{i}" for i in range(50))
    stats = t.stats()
    assert stats["dropped"] == 0 and stats["poisoned"] == 0 and stats["sent"] == 50


def test_refused_connections_are_retried_whole_until_the_server_is_back() -> None:
    url = closed_port_url()
    t = make(url, batch_size=20, max_backoff=0.1)
    t.start()
    for i in range(20):
        t.submit(ev(i))
    assert not t.flush(0.5)
    assert t.stats()["failed_attempts"] >= 2 and t.stats()["buffered"] == 20
    srv = CaptureServer().start(port=int(url.rsplit(":", 1)[1]))
    try:
        assert t.flush(5)
        t.close()
        assert sorted(job_ids(srv)) == sorted(f"job-{i}" for i in range(20))
        assert [len(r.body["events"]) for r in srv.requests] == [20]
        assert t.stats()["dropped"] == 0 and t.stats()["poisoned"] == 0
    finally:
        srv.stop()
