# kombu ships type hints for only part of its API; its untyped calls are fine here.
# mypy: disable-error-code="no-untyped-call"
"""Celery events and queue depths from an AMQP broker (RabbitMQ), through kombu.

Events: a private exclusive auto-delete queue bound to the `celeryev` topic exchange with
`#`, as Celery's own EventReceiver does. Depths: passive queue_declare, which reads
message_count and consumer_count without creating anything.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any, Final

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.message import Message
from kombu.messaging import Consumer

from .backoff import Backoff
from .envelope import Undecodable, decode_body
from .forward import Forwarder
from .health import Health
from .queues import EVENT_EXCHANGE, is_work_queue, sampled_event
from .redis_conn import describe
from .sink import Sink

log = logging.getLogger("sluice.agent")

HEARTBEAT_S: Final = 30
DEFAULT_QUEUE: Final = "celery"
MAX_QUEUED_EVENTS: Final = 1_000_000


class KnownQueues:
    """Queue names learned from `task-sent` events (AMQP has no listing without the
    management plugin), plus the default and any named up front. Shared by two threads."""

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self._names = {DEFAULT_QUEUE, *initial}
        self._lock = threading.Lock()

    def learn(self, raws: list[dict[str, Any]]) -> None:
        for raw in raws:
            name = raw.get("queue")
            if isinstance(name, str) and name not in self._names and is_work_queue(name):
                with self._lock:
                    self._names.add(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._names)


def event_exchange() -> Exchange:
    # Declared exactly as Celery declares it (topic, durable), so redeclaring is a no-op.
    return Exchange(EVENT_EXCHANGE, type="topic")


class RabbitEventReader:
    def __init__(self, broker_url: str, forward: Forwarder, health: Health,
                 stop: threading.Event, known: KnownQueues,
                 backoff: Backoff | None = None) -> None:
        self.broker_url = broker_url
        self.forward = forward
        self.health = health
        self.stop = stop
        self.known = known
        self.backoff = backoff or Backoff()
        self.connected = threading.Event()
        self.queue_name = ""

    def on_message(self, message: Message) -> None:
        """kombu's raw-message callback: the body is decoded here, not by kombu, so a bad
        message is counted instead of raising inside the consumer."""
        try:
            raws = decode_body(message.body, message.content_type or "application/json")
        except Undecodable as bad:
            self.health.count_undecodable(bad.kind, bad.detail)
            return
        self.known.learn(raws)
        self.forward.events(raws)

    def run(self) -> None:
        where = describe(self.broker_url)
        while not self.stop.is_set():
            conn = Connection(self.broker_url, heartbeat=HEARTBEAT_S, connect_timeout=5)
            try:
                self._session(conn, where)
            except Exception as exc:  # never exit: any failure is a reason to reconnect
                self.connected.clear()
                delay = self.backoff.after_failure(
                    exc, f"amqp events {where}", (*conn.connection_errors, *conn.channel_errors))
                self.health.count_reconnect()
                self.stop.wait(delay)
            finally:
                conn.release()
        self.connected.clear()

    def _session(self, conn: Connection, where: str) -> None:
        conn.connect()
        # A new name per session: the broker may still hold a half-dead session's queue.
        self.queue_name = f"sluice.agent.{socket.gethostname()}.{uuid.uuid4().hex[:8]}"
        # Bounded: should the agent stall, the broker drops the oldest events rather than
        # letting a monitoring queue grow without limit on the production broker.
        queue = Queue(self.queue_name, event_exchange(), routing_key="#", exclusive=True,
                      auto_delete=True, durable=False,
                      queue_arguments={"x-max-length": MAX_QUEUED_EVENTS})
        # no_ack: the queue is private and transient; acking would only cost throughput.
        with Consumer(conn.default_channel, [queue], on_message=self.on_message, no_ack=True):
            self.backoff.reset()
            self.connected.set()
            log.info("amqp events %s: consuming celeryev through %s", where, self.queue_name)
            last_beat = time.monotonic()
            while not self.stop.is_set():
                with contextlib.suppress(TimeoutError):  # socket.timeout: idle second
                    conn.drain_events(timeout=1.0)
                if time.monotonic() - last_beat > HEARTBEAT_S / 4:
                    conn.heartbeat_check()
                    last_beat = time.monotonic()
        self.connected.clear()


def amqp_depths(conn: Connection, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """{queue: (messages, consumers)} for the queues that exist. A passive declare of a
    missing queue closes the channel (404), so a fresh one is opened after each miss."""
    out: dict[str, tuple[int, int]] = {}
    channel = conn.channel()
    try:
        for name in names:
            try:
                ok = channel.queue_declare(queue=name, passive=True)
            except conn.channel_errors:
                channel.close()
                channel = conn.channel()
                continue
            out[name] = (int(ok.message_count), int(ok.consumer_count))
    finally:
        channel.close()
    return out


class RabbitQueueSampler:
    def __init__(self, broker_url: str, sink: Sink, health: Health, stop: threading.Event,
                 connection_id: str | None, known: KnownQueues, interval: float = 5.0,
                 backoff: Backoff | None = None) -> None:
        self.broker_url = broker_url
        self.sink = sink
        self.health = health
        self.stop = stop
        self.connection_id = connection_id
        self.known = known
        self.interval = interval
        self.backoff = backoff or Backoff()
        self.host = socket.gethostname()
        probe = Connection(broker_url)  # lazy: opens nothing, only names the error types
        self.errors: tuple[type[BaseException], ...] = (
            *probe.connection_errors, *probe.channel_errors, OSError)

    def sample_once(self, conn: Connection) -> dict[str, tuple[int, int]]:
        depths = amqp_depths(conn, self.known.names())
        now = time.time()
        for name, (depth, consumers) in depths.items():
            self.sink.submit(sampled_event(name, depth, self.host, now, self.connection_id,
                                           consumers=consumers, broker="amqp"))
            self.health.queue_samples += 1
        return depths

    def run(self) -> None:
        where = describe(self.broker_url)
        conn: Connection | None = None
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = Connection(self.broker_url, connect_timeout=5)
                    conn.connect()
                self.sample_once(conn)
                self.backoff.reset()
                wait = self.interval - (time.monotonic() - started)
            except Exception as exc:  # never exit: any failure is a reason to reconnect
                wait = self.backoff.after_failure(exc, f"amqp queues {where}", self.errors)
                if conn is not None:
                    conn.release()
                conn = None
                self.health.count_reconnect()
            self.stop.wait(max(wait, 0.0))
        if conn is not None:
            conn.release()
