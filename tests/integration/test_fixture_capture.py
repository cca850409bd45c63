"""tests/fixtures/capture.py records, from a real worker, the traffic the committed fixtures
hold: the same event types, each with the same fields, and envelopes the agent decodes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import celery
import pytest

from sluice.agent.envelope import decode_body
from tests.conftest import FIXTURES


def _shape(path: Path) -> tuple[Counter[str], set[tuple[str, tuple[str, ...]]]]:
    events: list[dict[str, Any]] = [json.loads(line) for line in path.open()]
    task_types = Counter(e["type"] for e in events if e["type"].startswith("task-"))
    fields = {(e["type"], tuple(sorted(e))) for e in events}
    return task_types, fields


@pytest.mark.slow
def test_capture_script_records_what_the_fixtures_hold(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(FIXTURES / "capture.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    stem = "celery-" + ".".join(celery.__version__.split(".")[:2])
    fresh = tmp_path / f"{stem}-events.jsonl"
    assert _shape(fresh) == _shape(FIXTURES / "celery-5.7-events.jsonl")
    kinds = {e["type"] for e in map(json.loads, fresh.open())}
    assert {"worker-online", "worker-heartbeat", "worker-offline"} <= kinds
    text = fresh.read_text()
    assert "/srv/shop/tasks.py" in text and str(FIXTURES) not in text

    decoded = []
    for line in (tmp_path / f"{stem}-redis-pubsub.jsonl").open():
        message = json.loads(line)
        assert "celeryev" in message["channel"]
        envelope = json.loads(message["data"])
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        decoded.extend(decode_body(body, envelope["content-type"]))
    assert [json.dumps(e, sort_keys=True) for e in decoded] == text.splitlines()
