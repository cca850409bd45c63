"""Synthetic, realistic Celery event traffic (as Celery emits it) for benchmarks.

Per task: task-sent, -received, -started, then -succeeded (or -failed 5% of the time);
3% retry once first (task-retried, a new task-sent/-received/-started with retries=1).
Tasks overlap in time, so a batch holds pieces of many jobs, as live traffic does.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

NAMES = [f"shop.tasks.{n}" for n in ("add", "charge_card", "send_email", "sync_inventory",
                                      "generate_report", "resize_image", "notify", "reindex")]
QUEUES = ["default", "emails", "reports"]
WORKERS = [f"w{i}@host{i}" for i in range(1, 5)]


def _attempt(u: str, name: str, queue: str, t: float, retries: int, worker: str,
             clock: list[int], producer: str) -> list[dict[str, Any]]:
    clock[0] += 1
    base = {"uuid": u, "utcoffset": 0, "pid": 100}
    sent = {**base, "type": "task-sent", "name": name, "args": "(1, 2)", "kwargs": "{}",
            "retries": retries, "eta": None, "expires": None, "queue": queue,
            "routing_key": queue, "exchange": "", "parent_id": None, "root_id": u,
            "hostname": producer, "clock": clock[0], "timestamp": t}
    common = {**base, "hostname": worker}
    received = {**common, "type": "task-received", "name": name, "args": "(1, 2)",
                "kwargs": "{}", "retries": retries, "eta": None, "expires": None,
                "parent_id": None, "root_id": u, "clock": clock[0] + 1, "timestamp": t + 0.002}
    started = {**common, "type": "task-started", "clock": clock[0] + 2, "timestamp": t + 0.004}
    clock[0] += 3
    return [sent, received, started]


def tasks(n: int, seed: int = 7, start: float | None = None) -> list[list[dict[str, Any]]]:
    """n tasks, each the list of its Celery event dicts in emission order."""
    rnd = random.Random(seed)
    t0 = start if start is not None else time.time() - 600
    clock = [0]
    out = []
    for i in range(n):
        u = str(uuid.UUID(int=rnd.getrandbits(128)))
        name, queue = rnd.choice(NAMES), rnd.choice(QUEUES)
        worker = rnd.choice(WORKERS)
        t = t0 + i * 0.001
        events = _attempt(u, name, queue, t, 0, worker, clock, "web1@app")
        roll = rnd.random()
        if roll < 0.03:
            events.append({"type": "task-retried", "uuid": u, "hostname": worker,
                           "exception": "ConnectionError('upstream down')",
                           "traceback": "Traceback (most recent call last):\n  ...",
                           "clock": clock[0], "timestamp": t + 0.01, "utcoffset": 0, "pid": 100})
            events += _attempt(u, name, queue, t + 0.02, 1, worker, clock, f"gen{i}@{worker}")
            t += 0.02
        end = {"uuid": u, "hostname": worker, "clock": clock[0], "timestamp": t + 0.009,
               "utcoffset": 0, "pid": 100}
        if rnd.random() < 0.05:
            end |= {"type": "task-failed", "exception": "ValueError('bad input')",
                    "traceback": "Traceback (most recent call last):\n  File ...\nValueError"}
        else:
            end |= {"type": "task-succeeded", "result": "3", "runtime": 0.005}
        events.append(end)
        clock[0] += 1
        out.append(events)
    return out


def interleave(per_task: list[list[dict[str, Any]]], in_flight: int = 50,
               seed: int = 11) -> list[dict[str, Any]]:
    """One stream in which about `in_flight` tasks progress at the same time."""
    rnd = random.Random(seed)
    stream: list[dict[str, Any]] = []
    active: list[list[dict[str, Any]]] = []
    pending = iter(per_task)
    exhausted = False
    while active or not exhausted:
        while not exhausted and len(active) < in_flight:
            nxt = next(pending, None)
            if nxt is None:
                exhausted = True
            else:
                active.append(list(nxt))
        if not active:
            break
        k = rnd.randrange(len(active))
        stream.append(active[k].pop(0))
        if not active[k]:
            active.pop(k)
    return stream


def stream(n_tasks: int, seed: int = 7) -> list[dict[str, Any]]:
    return interleave(tasks(n_tasks, seed))
