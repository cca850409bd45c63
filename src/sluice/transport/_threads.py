"""Real OS-thread primitives, even when gevent or eventlet have monkey-patched the stdlib.

The sender must run in a real thread: a greenlet doing gzip and blocking I/O bookkeeping
would stall the hub, and a patched lock waited on from another OS thread deadlocks.
"""

from __future__ import annotations

import _thread
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple


class RealThreads(NamedTuple):
    start_new_thread: Callable[..., Any]
    allocate_lock: Callable[[], Any]
    monkey_patched: bool


def _from_gevent() -> RealThreads | None:
    if "gevent" not in sys.modules:
        return None
    try:
        from gevent import monkey

        if not monkey.is_module_patched("thread") and not monkey.is_module_patched("threading"):
            return None
        start, alloc = monkey.get_original("_thread", ["start_new_thread", "allocate_lock"])
        return RealThreads(start, alloc, True)
    except Exception:
        return None


def _from_eventlet() -> RealThreads | None:
    if "eventlet" not in sys.modules:
        return None
    try:
        from eventlet import patcher

        if not patcher.is_monkey_patched("thread"):
            return None
        real = patcher.original("_thread")
        return RealThreads(real.start_new_thread, real.allocate_lock, True)
    except Exception:
        return None


def real_threads() -> RealThreads:
    """Looked up at call time: monkey-patching may happen after sluice is imported."""
    return (
        _from_gevent()
        or _from_eventlet()
        or RealThreads(_thread.start_new_thread, _thread.allocate_lock, False)
    )


class Signal:
    """A wake-up flag on a real lock: `set` never blocks, `wait` blocks only the real
    thread that calls it (the lock is held while the flag is clear)."""

    def __init__(self, allocate_lock: Callable[[], Any]) -> None:
        self._lock = allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
            self._lock.release()
        except RuntimeError:  # already set
            pass

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for `set`; consume the flag."""
        if timeout <= 0:
            return bool(self._lock.acquire(False))
        return bool(self._lock.acquire(True, min(timeout, 3600.0)))


def cooperative_sleep(seconds: float) -> None:
    """Sleep the caller; under monkey-patching this is the patched sleep, so a greenlet
    waiting on the sender (flush) lets the hub run."""
    time.sleep(seconds)
