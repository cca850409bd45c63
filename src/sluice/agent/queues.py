"""Queue depths from Redis: discover work queues from kombu's binding tables, LLEN them."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from typing import Final

import redis

from sluice.domain.dedup import dedup_key
from sluice.domain.events import QUEUE_SAMPLED, SOURCE_AGENT, Event

from .backoff import Backoff
from .health import Health
from .redis_conn import TransportOptions, connect, describe, keyprefix
from .sink import Sink

log = logging.getLogger("sluice.agent")

BINDING_PREFIX: Final = "_kombu.binding."  # one set per exchange; `_kombu.binding_*` differ
SEP: Final = "\x06\x16"  # kombu's separator in binding members and priority list names
# kombu names priority lists `<queue>\x06\x16<n>`; its steps are configurable within 0..9
# (0 is the bare list), so all of 1..9 are read: an absent list has LLEN 0.
PRIORITIES: Final = range(1, 10)
EVENT_EXCHANGE: Final = "celeryev"
DISCOVER_MAX_S: Final = 30.0  # a new queue shows up within this long (or 6 intervals)


def is_work_queue(name: str) -> bool:
    """Celery's event receivers and remote-control mailboxes are not work queues."""
    return bool(name) and not name.startswith(EVENT_EXCHANGE) and not name.endswith(".pidbox")


def queue_of_member(member: bytes | str) -> str:
    """A binding member is `routing_key SEP pattern SEP queue`."""
    text = member.decode("utf-8", "replace") if isinstance(member, bytes) else member
    return text.rsplit(SEP, 1)[-1]


def discover_queues(client: redis.Redis, prefix: str = "") -> list[str]:
    """Work queues bound on the broker now: SCAN the binding sets, read their members.
    `prefix`: kombu's global_keyprefix, before every key (the names it binds are bare)."""
    queues: set[str] = set()
    for key in client.scan_iter(match=prefix + BINDING_PREFIX + "*", count=1000):
        exchange = (key.decode("utf-8", "replace") if isinstance(key, bytes) else key)[
            len(prefix + BINDING_PREFIX):]
        if not is_work_queue(exchange):
            continue
        queues.update(q for q in map(queue_of_member, client.smembers(key)) if is_work_queue(q))
    return sorted(queues)


def queue_depths(client: redis.Redis, queues: Iterable[str], prefix: str = ""
                 ) -> dict[str, int]:
    """Depth = LLEN of the queue plus its priority lists, in one round trip. A plain
    pipeline (no MULTI/EXEC), so the read-only ACL suffices."""
    names = list(queues)
    pipe = client.pipeline(transaction=False)
    for queue in names:
        pipe.llen(prefix + queue)
        for n in PRIORITIES:
            pipe.llen(f"{prefix}{queue}{SEP}{n}")
    lengths = pipe.execute()
    width = 1 + len(PRIORITIES)
    return {q: sum(lengths[i * width:(i + 1) * width]) for i, q in enumerate(names)}


def sampled_event(queue: str, depth: int, host: str, timestamp: float,
                  connection_id: str | None, consumers: int | None = None,
                  broker: str = "redis") -> Event:
    return Event(
        kind=QUEUE_SAMPLED,
        timestamp=timestamp,
        dedup_key=dedup_key(QUEUE_SAMPLED, queue, host, None, timestamp),
        connection_id=connection_id,
        source=SOURCE_AGENT,
        hostname=host,
        queue=queue,
        depth=depth,
        consumers=consumers,
        extensions={"source": "agent", "broker": broker},
    )


class RedisQueueSampler:
    """Every `interval` seconds: sample the queues' depths; rediscover the queues every 6
    intervals (30 s at most), so new ones appear without a restart."""

    def __init__(self, broker_url: str, sink: Sink, health: Health, stop: threading.Event,
                 connection_id: str | None, interval: float = 5.0,
                 backoff: Backoff | None = None, options: TransportOptions | None = None
                 ) -> None:
        self.broker_url = broker_url
        self.options = options or {}
        self.prefix = keyprefix(self.options)
        self.sink = sink
        self.health = health
        self.stop = stop
        self.connection_id = connection_id
        self.interval = interval
        self.backoff = backoff or Backoff()
        self.host = socket.gethostname()
        self.queues: list[str] = []
        self.discover_at = 0.0

    def sample_once(self, client: redis.Redis) -> dict[str, int]:
        # SCAN walks the whole keyspace (results, locks...): rediscover every few samples,
        # not every one, to keep the load on the broker small. LLEN is cheap every time.
        if time.monotonic() >= self.discover_at:
            self.queues = discover_queues(client, self.prefix)
            self.discover_at = time.monotonic() + min(DISCOVER_MAX_S, 6 * self.interval)
        depths = queue_depths(client, self.queues, self.prefix)
        now = time.time()
        for queue, depth in depths.items():
            self.sink.submit(sampled_event(queue, depth, self.host, now, self.connection_id))
            self.health.queue_samples += 1
        return depths

    def run(self) -> None:
        where = describe(self.broker_url)
        client: redis.Redis | None = None
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if client is None:
                    client = connect(self.broker_url, options=self.options)
                self.sample_once(client)
                self.backoff.reset()
                wait = self.interval - (time.monotonic() - started)
            except Exception as exc:  # never exit: any failure is a reason to reconnect
                wait = self.backoff.after_failure(exc, f"redis queues {where}",
                                                  (redis.RedisError, OSError))
                if client is not None:
                    client.close()
                client = None
                self.discover_at = 0.0  # a restarted broker may hold other queues
                self.health.count_reconnect()
            self.stop.wait(max(wait, 0.0))
        if client is not None:
            client.close()
