"""Celery events from Redis pub/sub: PSUBSCRIBE, decode, forward; reconnect forever."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

import redis

from .backoff import Backoff
from .forward import Forwarder
from .health import Health
from .redis_conn import connect, db_of, describe

log = logging.getLogger("sluice.agent")

# A silent connection is pinged after this long, and declared dead if still silent later.
IDLE_PING_S: Final = 10.0
DEAD_AFTER_S: Final = 30.0


def event_patterns(db: int, exchange: str = "celeryev") -> list[str]:
    """kombu publishes on `/{db}.celeryev/<routing key>` (fanout_prefix on, the default),
    `celeryev/<routing key>` (fanout_prefix off), or without `/<routing key>` when
    fanout_patterns is off. These four patterns match disjoint channel sets, so no
    message is delivered twice (a channel matching two patterns would be)."""
    prefixed = f"/{db}.{exchange}"
    return [prefixed + "/*", prefixed, exchange + "/*", exchange]


class RedisEventReader:
    def __init__(self, broker_url: str, forward: Forwarder, health: Health,
                 stop: threading.Event, backoff: Backoff | None = None) -> None:
        self.broker_url = broker_url
        self.forward = forward
        self.health = health
        self.stop = stop
        self.backoff = backoff or Backoff()
        self.connected = threading.Event()  # set while subscribed; tests wait on it

    def run(self) -> None:
        """Until `stop` is set: subscribe and forward; on any broker error, back off."""
        where = describe(self.broker_url)
        while not self.stop.is_set():
            try:
                self._session(where)
            except (redis.RedisError, OSError) as exc:
                self.connected.clear()
                delay = self.backoff.next_delay()
                self.health.count_reconnect()
                log.warning("redis events %s: %s: %s; reconnect attempt %d in %.1fs", where,
                            type(exc).__name__, exc, self.backoff.attempt, delay)
                self.stop.wait(delay)
        self.connected.clear()

    def _session(self, where: str) -> None:
        client = connect(self.broker_url, socket_timeout=None)
        pubsub = client.pubsub()
        try:
            patterns = event_patterns(db_of(client))
            pubsub.psubscribe(*patterns)
            self._wait_subscribed(pubsub, len(patterns))
            self.backoff.reset()
            self.connected.set()
            log.info("redis events %s: subscribed to %s", where, " ".join(patterns))
            self._pump(pubsub)
        finally:
            self.connected.clear()
            pubsub.close()
            client.close()

    def _wait_subscribed(self, pubsub: redis.client.PubSub, count: int) -> None:
        deadline = time.monotonic() + 10.0
        while count:
            if time.monotonic() > deadline:
                raise redis.TimeoutError("no psubscribe confirmation")
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            if message["type"] == "psubscribe":
                count -= 1
            elif message["type"] == "pmessage":
                self.forward.envelope(message["data"])

    def _pump(self, pubsub: redis.client.PubSub) -> None:
        envelope, stop = self.forward.envelope, self.stop
        parse = pubsub.parse_response
        last_heard = time.monotonic()
        pinged = False
        while not stop.is_set():
            # parse_response, not get_message: skips building a dict per message (hot path).
            response = parse(block=False, timeout=1.0)
            if response is None:
                silent = time.monotonic() - last_heard
                if silent > DEAD_AFTER_S:
                    raise redis.ConnectionError(f"no reply from the broker for {silent:.0f}s")
                if silent > IDLE_PING_S and not pinged:
                    pubsub.ping()
                    pinged = True
                continue
            last_heard = time.monotonic()
            pinged = False
            # [b"pmessage", pattern, channel, data]; pongs and confirmations are skipped.
            if len(response) == 4 and response[0] == b"pmessage":
                envelope(response[3])
