"""The case the issue saw: events naming a connection that is not the key's are rejected by
a real server; the sender counts them and logs the server's reason, once."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from sluice.domain.events import Event
from sluice.transport import Transport
from tests.integration.api_support import new_connection
from tests.integration.reads_support import serve


def test_a_connection_id_that_is_not_the_keys_is_logged_once(
        fresh_db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    _cid, key, _ = new_connection(fresh_db_url, "mine")
    elsewhere = str(uuid.uuid4())
    with serve(fresh_db_url) as base:
        sender = Transport(base, key, elsewhere, flush_interval=0.05)
        with caplog.at_level(logging.INFO, logger="sluice.transport"):
            sender.start()
            for round_ in range(3):
                for i in range(4):
                    sender.submit(Event(kind="job.sent", timestamp=time.time(),
                                        job_id=f"job-{round_}-{i}", connection_id=elsewhere))
                assert sender.flush(10)
            sender.close()
    assert sender.stats()["rejected"] == 12
    lines = [r.getMessage() for r in caplog.records
             if "rejected" in r.getMessage() and r.levelno >= logging.ERROR]
    assert len(lines) == 1, lines
    assert "connection_id does not match the API key's connection" in lines[0]
    assert "'connection_id'" in lines[0]
