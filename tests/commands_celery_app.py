"""The Celery app the command tests run real workers on. Workers import it as
`commands_celery_app` (cwd tests/), the test process as `tests.commands_celery_app`: tasks
carry explicit names so both agree. Broker from SLUICE_TEST_BROKER_URL; results in the
same Redis with result_extended (the arguments a retry needs); queue names prefixed by
SLUICE_TEST_QUEUE_PREFIX so tests sharing a broker do not consume each other's tasks."""

from __future__ import annotations

import os
import time

import kombu.pools
import redis
from celery import Celery

app = Celery("commands_celery_app")
BROKER = os.environ.get("SLUICE_TEST_BROKER_URL", "redis://127.0.0.1:6379/0")


def configure(broker_url: str, prefix: str, visibility_timeout: float = 3600) -> None:
    """(Re)point the app (the test process points it at each test's broker)."""
    global BROKER
    BROKER = broker_url
    kombu.pools.reset()
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.__dict__.pop("amqp", None)
    app._backend_cache = None  # the result backend on the previous broker
    app._local.__dict__.pop("backend", None)
    app.conf.update(
        broker_url=broker_url,
        result_backend=broker_url,
        result_extended=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        task_default_queue=prefix + "default",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # a killed worker's reserved (ETA) messages come back this soon (swept every second)
        broker_transport_options={"visibility_timeout": visibility_timeout,
                                  "unacked_restore_interval": 1,
                                  "unacked_restore_throttle": 1},
    )


configure(BROKER, os.environ.get("SLUICE_TEST_QUEUE_PREFIX", ""),
          float(os.environ.get("SLUICE_TEST_VISIBILITY_TIMEOUT", "3600")))


@app.task(name="cmdapp.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="cmdapp.flaky")
def flaky(key: str, value: int) -> int:
    """Fails the first time it runs for `key`, succeeds after."""
    runs = redis.Redis.from_url(BROKER).incr(key)
    if runs == 1:
        raise ValueError(f"first run of {key} fails")
    return value


@app.task(name="cmdapp.fail")
def fail(text: str) -> None:
    raise ValueError("always fails")


@app.task(name="cmdapp.mark")
def mark(key: str) -> None:
    """Leaves a trace that it ran."""
    redis.Redis.from_url(BROKER).incr(key)


@app.task(name="cmdapp.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
