"""sluice.init(): settings, errors, env fallbacks, the second call, wiring on an app."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

import sluice
from sluice.sdk import SluiceConfigError, bootstep, capture, runtime
from sluice.sdk.config import DEFAULT_ENDPOINT, resolve
from sluice.transport.testserver import CaptureServer

CONN = "0b6c3a4e-2222-4000-8000-000000000002"
ENV = ("SLUICE_API_KEY", "SLUICE_CONNECTION_ID", "SLUICE_ENDPOINT")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    rt = runtime._runtime
    if rt is not None:
        rt.transport.close(0.2)
    runtime._runtime = None
    capture.set_sink(None)
    bootstep.set_own_emitter(None)


def app() -> Celery:
    return Celery("t", broker="memory://", set_as_current=False)


def test_import_is_lazy_and_exports() -> None:
    code = (
        "import sys, sluice; assert 'celery' not in sys.modules; "
        "assert 'urllib3' not in sys.modules; "
        "from sluice import SluiceConfigError, init; "
        "import sluice.sdk; assert SluiceConfigError is sluice.sdk.SluiceConfigError; "
        "assert init is sluice.sdk.init"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sluice.init is runtime.init
    with pytest.raises(AttributeError):
        _ = sluice.nope  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "API key"),
        ({"api_key": "   "}, "API key"),
        ({"api_key": "k"}, "connection id"),
        ({"api_key": "k", "connection_id": ""}, "connection id"),
        ({"api_key": "k", "connection_id": "not-a-uuid"}, "UUID"),
        ({"api_key": "k", "connection_id": CONN, "endpoint": "ftp://x"}, "http"),
        ({"api_key": "k", "connection_id": CONN, "capture_args": "add"}, "capture_args"),
        ({"api_key": "k", "connection_id": CONN, "redact": 3}, "redact"),
        ({"api_key": "k", "connection_id": CONN, "max_arg_size": 0}, "max_arg_size"),
        ({"api_key": "k", "connection_id": CONN, "max_buffer": -1}, "max_buffer"),
    ],
)
def test_init_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SluiceConfigError, match=message):
        sluice.init(app=app(), **kwargs)
    assert runtime._runtime is None


def test_env_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_API_KEY", "sk_env")
    monkeypatch.setenv("SLUICE_CONNECTION_ID", CONN.upper())
    cfg = resolve(api_key=None, connection_id=None, endpoint=None)
    assert (cfg.api_key, cfg.connection_id, cfg.endpoint) == ("sk_env", CONN, DEFAULT_ENDPOINT)
    monkeypatch.setenv("SLUICE_ENDPOINT", "https://sluice.example.com/")
    cfg = resolve(api_key="sk_arg", connection_id=None, endpoint=None)
    assert cfg.api_key == "sk_arg" and cfg.endpoint == "https://sluice.example.com"
    assert "sk_arg" not in repr(cfg)
    monkeypatch.setenv("SLUICE_CONNECTION_ID", "nope")
    with pytest.raises(SluiceConfigError):
        resolve(api_key=None, connection_id=None, endpoint=None)


def test_init_from_env_and_second_call_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    srv = CaptureServer().start()
    monkeypatch.setenv("SLUICE_API_KEY", "sk_env_key")
    monkeypatch.setenv("SLUICE_CONNECTION_ID", CONN)
    monkeypatch.setenv("SLUICE_ENDPOINT", srv.url)
    a = app()
    sluice.init(app=a)
    first = runtime._runtime
    assert first is not None and first.config.endpoint == srv.url
    with pytest.warns(UserWarning, match="already"):
        sluice.init(app=a, api_key="other")  # ignored, even with other settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sluice.init(api_key="", connection_id="bad")  # ignored: no error either
    assert runtime._runtime is first
    assert "sk_env_key" not in caplog.text
    srv.stop()


def test_init_wires_the_app_and_captures_task_sent() -> None:
    srv = CaptureServer().start()
    a = app()

    @a.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    sluice.init(app=a, api_key="k", connection_id=CONN, endpoint=srv.url, flush_interval=0.05)
    assert a.conf.task_send_sent_event is True
    assert getattr(a.events.Dispatcher, "_sluice_capture", False)
    result = add.delay(2, 3)  # memory:// broker: published for real, no worker needed
    assert sluice.sdk.flush(5)
    sent = [e for e in srv.events() if e["kind"] == "job.sent"]
    assert [e["job_id"] for e in sent] == [result.id]
    assert sent[0]["name"] == "t.add" and sent[0]["connection_id"] == CONN
    assert "args" not in sent[0] and "kwargs" not in sent[0]  # stripped by default
    srv.stop()


def test_bootstep_flags_and_step() -> None:
    a = app()
    bootstep.install_bootstep(a)
    assert bootstep.SluiceStep in a.steps["consumer"]
    for flag in bootstep.EVENT_FLAGS:
        assert a.conf[flag] is True


def test_flags_wait_for_configuration() -> None:
    a = Celery("lazy", set_as_current=False)
    a.config_from_object({"broker_url": "memory://"})  # lazy: not loaded yet
    assert not a.configured
    bootstep.install_bootstep(a)
    assert not a.configured  # we did not force the configuration to load
    assert a.conf.worker_send_task_events is True  # applied once it loaded


def test_hooks_never_raise() -> None:
    def boom(_: object) -> None:
        raise RuntimeError("boom")

    capture.set_sink(boom)
    event = capture._capturing_event("task-started", uuid="x", hostname="h")
    assert event["type"] == "task-started"
    bootstep.set_own_emitter(boom)
    bootstep._on_revoke(None, ["x"], False)  # nothing waiting: no emit, no raise


def test_django_style_settings_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """init() in a Django settings module: the Celery app exists, its configuration is not
    loaded yet (it comes from those very settings), and the worker's celeryd_init may have
    been sent already, so the bootstep goes on the current app at once."""
    srv = CaptureServer().start()
    a = Celery("proj", set_as_current=False)
    a.config_from_object({"broker_url": "memory://"})  # stands for 'django.conf:settings'
    real_find_spec = runtime.importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return object() if name == "django" else real_find_spec(name, *args)

    monkeypatch.setattr(runtime.importlib.util, "find_spec", find_spec)
    sluice.init(app=a, api_key="k", connection_id=CONN, endpoint=srv.url)
    assert not a.configured  # init did not force the settings to load
    assert bootstep.SluiceStep in a.steps["consumer"]
    assert a.conf.task_send_sent_event is True and a.conf.worker_send_task_events is True
    srv.stop()


def test_revoke_hook_finds_requests_waiting_on_the_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery < 5.5 keeps ETA requests only on the consumer's timer: found there too."""
    from celery.worker import state as worker_state
    from kombu.asynchronous.timer import Timer

    class Req:
        id, name, eta = "job-eta", "t.report", "2030-01-01T00:00:00+00:00"

    class State:
        hostname = "w1@h"
        app = Celery("r", broker="memory://", set_as_current=False)
        consumer = type("C", (), {"timer": Timer()})()

    State.consumer.timer.call_at(9_999_999_999, lambda r: None, (Req(),))
    monkeypatch.delattr(worker_state, "scheduled_requests", raising=False)
    got: list[dict[str, Any]] = []
    bootstep.set_own_emitter(got.append)
    bootstep._on_revoke(State(), "job-eta", terminate=False)
    bootstep._on_revoke(State(), ["job-eta"], terminate=True)  # Celery announces those
    bootstep._on_revoke(State(), ["other"], terminate=False)
    assert [(e["type"], e["uuid"], e["name"], e["hostname"]) for e in got] == [
        ("task-revoked", "job-eta", "t.report", "w1@h")
    ]
    from sluice.domain.celery import normalize
    from sluice.domain.events import Event

    event = normalize(got[0], CONN)
    assert isinstance(event, Event) and event.kind == "job.revoked"
    assert event.extensions["sluice_origin"] == "sdk.revoke"
