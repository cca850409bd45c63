"""Celery events from Redis pub/sub: PSUBSCRIBE, decode, forward; reconnect forever."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Final

import redis

from .backoff import Backoff
from .forward import Forwarder
from .health import Health
from .redis_conn import TransportOptions, connect, db_of, describe, keyprefix, pool_connection
from .resp import FrameReader, ParseError, ServerError

log = logging.getLogger("sluice.agent")

# A silent connection is pinged after this long, and declared dead if still silent later.
IDLE_PING_S: Final = 10.0
DEAD_AFTER_S: Final = 30.0
PING: Final = b"*1\r\n$4\r\nPING\r\n"


def event_patterns(db: int, exchange: str = "celeryev", keyprefix: str = "") -> list[str]:
    """kombu publishes on `/{db}.celeryev/<routing key>` (fanout_prefix on, the default),
    `celeryev/<routing key>` (fanout_prefix off), or without `/<routing key>` when
    fanout_patterns is off, each after the global_keyprefix if one is set. These four
    patterns match disjoint channel sets, so no message is delivered twice (a channel
    matching two patterns would be)."""
    prefixed = f"{keyprefix}/{db}.{exchange}"
    bare = keyprefix + exchange
    return [prefixed + "/*", prefixed, bare + "/*", bare]


class RedisEventReader:
    def __init__(self, broker_url: str, forward: Forwarder, health: Health,
                 stop: threading.Event, backoff: Backoff | None = None,
                 options: TransportOptions | None = None) -> None:
        self.broker_url = broker_url
        self.options = options or {}
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
            except Exception as exc:  # never exit: any failure is a reason to reconnect
                self.connected.clear()
                delay = self.backoff.after_failure(
                    exc, f"redis events {where}",
                    (redis.RedisError, OSError, ServerError, ParseError))
                self.health.count_reconnect()
                self.stop.wait(delay)
        self.connected.clear()

    def _session(self, where: str) -> None:
        client = connect(self.broker_url, options=self.options)
        # redis-py opens the connection (TLS, AUTH, SELECT); then the socket is read raw.
        conn = pool_connection(client, "PSUBSCRIBE")
        try:
            sock = conn._sock  # redis-py has no public accessor
            if sock is None:
                raise redis.ConnectionError("no socket after connect")
            patterns = event_patterns(db_of(client), keyprefix=keyprefix(self.options))
            sock.sendall(b"".join(conn.pack_command("PSUBSCRIBE", *patterns)))
            sock.settimeout(1.0)  # wake every second to check `stop` and liveness
            self._pump(FrameReader(sock), sock, len(patterns), where, patterns)
        finally:
            self.connected.clear()
            conn.disconnect()
            client.close()

    def _pump(self, reader: FrameReader, sock: socket.socket, expected: int, where: str,
              patterns: list[str]) -> None:
        envelope, flush, stop = self.forward.envelope, self.forward.flush, self.stop
        last_heard = time.monotonic()
        pinged = False
        while not stop.is_set():
            try:
                frames = reader.read()
            except TimeoutError:
                silent = time.monotonic() - last_heard
                if silent > DEAD_AFTER_S:
                    raise redis.ConnectionError(
                        f"no reply from the broker for {silent:.0f}s") from None
                if silent > IDLE_PING_S and not pinged and self.connected.is_set():
                    sock.sendall(PING)
                    pinged = True
                continue
            last_heard = time.monotonic()
            pinged = False
            for frame in frames:
                # [b"pmessage", pattern, channel, data]; pongs are only signs of life.
                if len(frame) == 4 and frame[0] == b"pmessage":
                    data = frame[3]
                    if isinstance(data, bytes):
                        envelope(data)
                elif frame and frame[0] == b"psubscribe":
                    expected -= 1
                    if expected == 0:
                        self.backoff.reset()
                        self.connected.set()
                        log.info("redis events %s: subscribed to %s", where,
                                 " ".join(patterns))
            flush()  # the socket is drained for now: hand over what was read
