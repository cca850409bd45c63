"""The demo's Celery app: a small shop whose tasks succeed, fail, retry and get revoked.

Workers run it with `celery -A sluice.demo.tasks worker`; SLUICE_* variables turn the SDK on.
"""

from __future__ import annotations

import os
import random
import time

from celery import Celery
from celery.exceptions import Reject

app = Celery("shop", broker=os.environ.get("SLUICE_DEMO_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_default_queue="default",
    task_routes={"sluice.demo.tasks.send_email": {"queue": "emails"},
                 "sluice.demo.tasks.generate_report": {"queue": "reports"}},
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
)

if os.environ.get("SLUICE_API_KEY"):
    import sluice

    sluice.init(app=app)


@app.task
def add(x: int, y: int) -> int:
    time.sleep(random.uniform(0.01, 0.2))
    return x + y


@app.task
def charge_card(order: int, amount: float) -> str:
    time.sleep(random.uniform(0.05, 0.3))
    if order % 5 == 0:
        raise ValueError(f"card declined for order {order}")
    return f"charged {amount:.2f} for order {order}"


@app.task(bind=True, max_retries=3, default_retry_delay=1)
def sync_inventory(self, sku: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    time.sleep(random.uniform(0.05, 0.2))
    if self.request.retries < 2 and random.random() < 0.7:
        raise self.retry(exc=ConnectionError("inventory service unavailable"))
    return {"sku": sku, "synced": True}


@app.task
def send_email(to: str) -> str:
    time.sleep(random.uniform(0.05, 0.4))
    return f"sent to {to}"


@app.task
def generate_report(days: int) -> str:
    time.sleep(min(days, 8))
    return f"report over {days} days"


@app.task
def bad_message() -> None:
    raise Reject("malformed payload", requeue=False)
