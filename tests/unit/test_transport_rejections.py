"""A rejected event is not silent: the server's reason is logged once per distinct reason
(a few lines a minute at most), and every key of `sluice.stats()` is documented."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import msgspec
import pytest

from sluice.api.body import MISMATCH
from sluice.domain.events import Event
from sluice.transport import Transport
from sluice.transport._wire import RejectedItem
from sluice.transport.rejections import RejectionLog
from sluice.transport.testserver import CaptureServer, Received, Reply

CONN = "0b6c3a4e-1111-4000-8000-000000000001"
README = Path(__file__).resolve().parents[2] / "README.md"


def _event(i: int) -> Event:
    return Event(kind="job.sent", timestamp=1_795_546_900.0 + i, job_id=f"job-{i}",
                 dedup_key=f"key-{i:08d}", connection_id=CONN)


def _reject_all(reasons: list[tuple[str, str | None]]) -> object:
    """A server that rejects every event, the i-th of a batch with reasons[i % len]."""
    def respond(received: Received) -> Reply:
        events = received.body["events"] if isinstance(received.body, dict) else []
        rejected = [{"index": i, "reason": reasons[i % len(reasons)][0],
                     **({"field": reasons[i % len(reasons)][1]}
                        if reasons[i % len(reasons)][1] else {})}
                    for i in range(len(events))]
        return Reply(202, body=msgspec.json.encode(
            {"accepted": 0, "duplicates": 0, "rejected": rejected}))
    return respond


def _records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "sluice.transport" and "rejected" in r.getMessage()]


def test_each_reason_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    server = CaptureServer(responder=_reject_all(  # type: ignore[arg-type]
        [(MISMATCH, "connection_id"), ("timestamp must be a number", "timestamp")])).start()
    t = Transport(server.url, "sk_live_x", CONN, flush_interval=0.05, batch_size=4)
    try:
        with caplog.at_level(logging.INFO, logger="sluice.transport"):
            t.start()
            for batch in range(3):
                for i in range(4):
                    t.submit(_event(batch * 4 + i))
                assert t.flush(5)
    finally:
        t.close()
        server.stop()
    assert t.stats()["rejected"] == 12
    lines = _records(caplog)
    assert len(lines) == 2, lines
    assert any(MISMATCH in line and "'connection_id'" in line for line in lines)
    assert any("timestamp must be a number" in line for line in lines)
    assert all("sluice.stats()" in line for line in lines)


def test_the_log_is_rate_limited_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RejectionLog(logging.getLogger("sluice.transport"), max_reasons=8, per_window=3,
                       window_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="sluice.transport"):
        log.note([RejectedItem(i, f"reason {i}") for i in range(10)])
        assert len(_records(caplog)) == 3  # the window's allowance
        log.note([RejectedItem(0, "reason 0")])
        assert len(_records(caplog)) == 3  # seen: never again
        now[0] = 61.0
        log.note([RejectedItem(i, f"reason {i}") for i in range(10)])
        lines = _records(caplog)
        assert len(lines) == 6  # held back ones are logged when they recur later
        assert "7 other rejected events were not logged" in lines[3]
        for window in range(2, 12):
            now[0] = 61.0 * window
            log.note([RejectedItem(i, f"reason {i}") for i in range(100, 200)])
    assert len(log._seen) == 8  # memory stays bounded whatever the reasons


def test_a_bad_answer_never_breaks_the_sender() -> None:
    log = RejectionLog(logging.getLogger("sluice.transport"))
    log.note([object()])  # type: ignore[list-item]


def test_every_stats_key_is_documented() -> None:
    keys = Transport("http://127.0.0.1:9", "k", CONN).stats()
    text = README.read_text()
    section = text[text.index("sluice.stats()"):]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    assert set(keys) <= documented, sorted(set(keys) - documented)
