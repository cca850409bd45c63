"""Celery clients of the connections' brokers, one per connection, made again when the
connection's broker settings change; and a short cache of `inspect` answers, so that many
viewers of a worker cost one broadcast."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from sluice.agent.executor import BrokerExecutor
from sluice.store.connections import Broker

INSPECT_TTL_S: Final = 5.0


class Clients:
    """BrokerExecutors by connection. Thread-safe."""

    def __init__(self, factory: Callable[[str, str | None], BrokerExecutor] = BrokerExecutor
                 ) -> None:
        self._factory = factory
        self._clients: dict[str, tuple[tuple[str, str | None], BrokerExecutor]] = {}
        self._lock = threading.Lock()

    def get(self, connection_id: str, broker: Broker) -> BrokerExecutor:
        assert broker.broker_url, "no broker"
        urls = (broker.broker_url, broker.result_backend_url)
        with self._lock:
            found = self._clients.get(connection_id)
            if found is not None and found[0] == urls:
                return found[1]
            client = self._factory(*urls)
            self._clients[connection_id] = (urls, client)
        if found is not None:
            found[1].close()
        return client

    def close(self) -> None:
        with self._lock:
            clients = [c for _, c in self._clients.values()]
            self._clients.clear()
        for client in clients:
            client.close()


class InspectCache:
    """`inspect` answers kept INSPECT_TTL_S seconds; concurrent askers of the same answer wait
    for the one broadcast in flight instead of sending their own."""

    def __init__(self, clients: Clients, ttl_s: float = INSPECT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clients = clients
        self.ttl_s = ttl_s
        self.clock = clock
        self._answers: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._inflight: dict[tuple[str, str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self.broadcasts = 0  # how many inspect broadcasts were sent (tests read it)

    def get(self, connection_id: str, broker: Broker, hostname: str, what: str
            ) -> tuple[Any, float]:
        """(the worker's answer, its age in seconds)."""
        key = (connection_id, hostname, what)
        with self._lock:
            lock = self._inflight.setdefault(key, threading.Lock())
        with lock:
            now = self.clock()
            cached = self._answers.get(key)
            if cached is not None and now - cached[0] < self.ttl_s:
                return cached[1], now - cached[0]
            answer = self.clients.get(connection_id, broker).inspect(hostname, what)
            self.broadcasts += 1
            with self._lock:
                self._answers[key] = (self.clock(), answer)
                if len(self._answers) > 10_000:  # bounded: drop the stale ones
                    cutoff = self.clock() - self.ttl_s
                    self._answers = {k: v for k, v in self._answers.items() if v[0] >= cutoff}
            return answer, 0.0
