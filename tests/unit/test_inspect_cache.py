"""The inspect cache: many viewers of one worker within its lifetime cost one broadcast,
even when they ask at once; another worker or question, or a later ask, costs its own."""

from __future__ import annotations

import threading
import time
from typing import Any

from sluice.service.brokers import Clients, InspectCache
from sluice.store.connections import Broker


class Counting:
    """Stands in for a broker client: counts inspect calls, each slow like a broadcast."""

    calls = 0

    def __init__(self, broker_url: str, backend: str | None) -> None:
        self.lock = threading.Lock()

    def inspect(self, hostname: str, what: str) -> Any:
        with self.lock:
            Counting.calls += 1
        time.sleep(0.2)
        return {"hostname": hostname, "what": what}

    def close(self) -> None:
        pass


def test_one_broadcast_for_many_viewers() -> None:
    clock = [100.0]
    cache = InspectCache(Clients(Counting), ttl_s=5.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    broker = Broker("redis://h/0", None)
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda: answers.append(
        cache.get("c1", broker, "w@h", "stats"))) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counting.calls == 1 and len(answers) == 10
    assert all(a[0] == {"hostname": "w@h", "what": "stats"} for a in answers)
    cache.get("c1", broker, "w@h", "registered")
    cache.get("c1", broker, "other@h", "stats")
    assert Counting.calls == 3
    clock[0] += 6  # expired
    cache.get("c1", broker, "w@h", "stats")
    assert Counting.calls == 4
