"""`sluice demo` runs the whole stack on embedded services and the dashboard shows it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, key: str | None = None) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
        return json.loads(body) if resp.headers.get_content_type() == "application/json" \
            else body.decode()


@pytest.mark.slow
def test_demo_runs_real_workers_into_a_live_dashboard(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice.cli", "demo", "--port", str(port), "--duration", "45",
         "--rate", "8"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        creds = tmp_path / "demo" / "demo-credentials.json"
        started = time.monotonic()
        deadline = started + 120
        first_data: float | None = None
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
            if not creds.exists():
                continue
            key = json.loads(creds.read_text())["api_key"]
            try:
                facets = _get(f"{base}/api/jobs?facets=true&limit=1", key)["facets"]
                workers = _get(f"{base}/api/workers", key)["items"]
                queues = _get(f"{base}/api/queues", key)["items"]
            except OSError:
                continue
            seen = {"facets": facets, "workers": workers, "queues": queues}
            if first_data is None and facets.get("completed", 0) >= 1:
                first_data = time.monotonic()
            if (facets.get("completed", 0) >= 20 and facets.get("failed", 0) >= 1
                    and len([w for w in workers if w["status"] == "online"]) == 2
                    and any(q["depth"] is not None for q in queues)):
                break
        else:
            pytest.fail(f"demo never showed completed+failed jobs, 2 workers, queue depths: {seen}")
        assert first_data is not None and first_data - started <= 30, \
            f"live data only after {first_data and first_data - started:.0f} s"
        assert "<title>Sign in" in _get(f"{base}/")  # no session: the sign-in page
        with httpx.Client(base_url=base, timeout=10) as browser:
            assert browser.post("/api/session", json={"key": key}).status_code == 201
            page = browser.get("/").text
            assert "<title>Sluice</title>" in page and "/static/app.js" in page
            assert "new EventSource(" in browser.get("/static/js/live.js").text
    finally:
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert f"Dashboard: {base}/login#token=lt_" in out  # a one-time link, not the key
