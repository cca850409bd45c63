"""The Celery app the agent's integration tests run real workers on (the fixture scenario).

Workers import it as `agent_celery_app` (cwd tests/), the test process as
`tests.agent_celery_app`: tasks carry explicit names so both agree. Broker from
SLUICE_TEST_BROKER_URL; queue names prefixed by SLUICE_TEST_QUEUE_PREFIX, so tests sharing
a broker do not consume each other's tasks.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import kombu.pools
from celery import Celery, Task
from celery.exceptions import Reject

app = Celery("agent_celery_app")


def configure(broker_url: str, prefix: str = "",
              transport_options: dict[str, Any] | None = None) -> None:
    """(Re)point the app: tests in one process use several brokers."""
    kombu.pools.reset()  # kombu's global producer pools, keyed by broker URL
    if app._pool is not None:  # drop connections to the previous broker
        app._pool.force_close_all()
        app._pool = None
    # The cached AMQP helper holds producers and a task-sent dispatcher whose celeryev
    # exchange type depends on the broker (fanout on Redis, topic on AMQP): rebuild it.
    app.__dict__.pop("amqp", None)
    app.conf.update(
        broker_url=broker_url,
        # a worker started without -E (SLUICE_TEST_TASK_EVENTS=0) sends heartbeats only
        worker_send_task_events=os.environ.get("SLUICE_TEST_TASK_EVENTS", "1") == "1",
        task_send_sent_event=True,
        task_track_started=True,
        task_default_queue=prefix + "default",
        task_routes={"agent_celery_app.send_email": {"queue": prefix + "emails"}},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_backend=None,
        broker_transport_options=transport_options or {},
    )


configure(os.environ.get("SLUICE_TEST_BROKER_URL", "redis://127.0.0.1:6379/0"),
          os.environ.get("SLUICE_TEST_QUEUE_PREFIX", ""),
          json.loads(os.environ.get("SLUICE_TEST_TRANSPORT_OPTIONS") or "{}"))


@app.task(name="agent_celery_app.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="agent_celery_app.charge_card")
def charge_card(card: int, amount: float) -> None:
    raise ValueError(f"card {card} declined for {amount}")


@app.task(name="agent_celery_app.sync_inventory", bind=True, max_retries=3)
def sync_inventory(self: Task, sku: str) -> str:
    if self.request.retries < 2:
        raise self.retry(exc=ConnectionError("inventory service unreachable"), countdown=0.2)
    return sku


@app.task(name="agent_celery_app.send_email")
def send_email(to: str, subject: str) -> str:
    return to


@app.task(name="agent_celery_app.generate_report")
def generate_report(seconds: float) -> str:
    time.sleep(seconds)
    return "report"


@app.task(name="agent_celery_app.bad_message", acks_late=True)  # Reject needs acks_late
def bad_message() -> None:
    raise Reject("malformed", requeue=False)


def run_scenario() -> dict[str, Any]:
    """Sends the fixture scenario; returns {label: AsyncResult} for the assertions."""
    results: dict[str, Any] = {
        "add": add.delay(2, 3),
        "add_countdown": add.apply_async((4, 5), countdown=1),
        "charge_card": charge_card.delay(1001, 49.99),
        "sync_inventory": sync_inventory.delay("SKU-42"),
        "send_email": send_email.delay("a@example.com", "hi"),
        "bad_message": bad_message.delay(),
    }
    for i in range(5):
        results[f"add_{i}"] = add.delay(i, i)
    return results
