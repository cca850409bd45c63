"""The consumer bootstep installed in every worker, and the revoke-command hook."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import bootsteps

from . import capture

logger = logging.getLogger("sluice.sdk")

EVENT_FLAGS = ("worker_send_task_events", "task_send_sent_event", "task_track_started")

# Called with a Celery-like event dict the SDK made itself (not one Celery sent).
Emit = Callable[[dict[str, Any]], None]
_emit_own: Emit | None = None


def set_own_emitter(emit: Emit | None) -> None:
    global _emit_own
    _emit_own = emit


def when_configured(app: Any, apply: Callable[[Any], None]) -> None:
    """Run `apply(app)` now if the app's configuration is loaded, else once it is: reading
    `app.conf` early would load it (with Django, from settings still being imported)."""
    if getattr(app, "configured", True):
        apply(app)
        return

    def on_configure(sender: Any = None, **kwargs: Any) -> None:
        try:
            apply(app)
        except Exception:
            logger.warning("sluice: cannot configure the app", exc_info=True)

    app.on_after_configure.connect(on_configure, weak=False)


def enable_event_flags(app: Any) -> None:
    when_configured(app, _enable_event_flags)


def enable_sent_events(app: Any) -> None:
    when_configured(app, _enable_sent_events)


def _enable_sent_events(app: Any) -> None:
    app.conf.task_send_sent_event = True


def _enable_event_flags(app: Any) -> None:
    conf = app.conf
    was_tracking = bool(conf.task_track_started)
    for flag in EVENT_FLAGS:
        conf[flag] = True
    if not was_tracking:
        # Tasks bound before this point copied the old default; give them the new one.
        for task in list(app.tasks.values()) if app.finalized else []:
            if not getattr(task, "track_started", False):
                type(task).track_started = True


class SluiceStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Makes the consumer's event dispatcher capture every event it sends."""

    name = "sluice.sdk.bootstep.SluiceStep"
    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        try:
            enable_event_flags(c.app)
            capture.install_on_app(c.app)
            install_revoke_hook()
        except Exception:
            logger.warning("sluice: cannot prepare the worker", exc_info=True)

    def start(self, c: Any) -> None:
        try:
            dispatcher = getattr(c, "event_dispatcher", None)
            if dispatcher is None:
                return
            capture.capture_instance(dispatcher)
            groups = dispatcher.groups
            if groups and "task" not in groups:
                groups.add("task")  # what `celery control enable_events` does
        except Exception:
            logger.warning("sluice: cannot capture worker events", exc_info=True)


def install_bootstep(app: Any) -> None:
    try:
        enable_event_flags(app)
        app.steps["consumer"].add(SluiceStep)
    except Exception:
        logger.warning("sluice: cannot install the worker bootstep", exc_info=True)


# -- revoke: a task revoked while it waits for its ETA sends no Celery event -------------


def _timer_requests(consumer: Any) -> list[Any]:
    """Requests waiting on the consumer's timer for their ETA (Celery < 5.5 keeps them
    nowhere else)."""
    out = []
    try:
        for item in list(consumer.timer.queue):
            entry = item[-1] if isinstance(item, tuple) else item
            for arg in getattr(entry, "args", None) or ():
                if hasattr(arg, "id") and hasattr(arg, "eta"):
                    out.append(arg)
    except Exception:
        pass
    return out


def _waiting_ids(state: Any, task_ids: set[str]) -> list[tuple[str, str | None]]:
    from celery.worker import state as worker_state

    active = {r.id for r in list(worker_state.active_requests)}
    waiting = [
        *list(getattr(worker_state, "scheduled_requests", ())),  # Celery 5.5+
        *list(worker_state.reserved_requests),
        *_timer_requests(getattr(state, "consumer", None)),
    ]
    found: dict[str, str | None] = {}
    for request in waiting:
        rid = getattr(request, "id", None)
        if rid in task_ids and rid not in active:
            found[rid] = getattr(request, "name", None)
    return list(found.items())


def _on_revoke(state: Any, task_id: Any, terminate: bool) -> None:
    emit = _emit_own
    if emit is None or terminate:
        return  # terminate=True: Celery announces waiting requests itself
    ids = {task_id} if isinstance(task_id, str) else {str(t) for t in task_id or ()}
    hostname = getattr(state, "hostname", None)
    app = getattr(state, "app", None)
    for rid, name in _waiting_ids(state, ids):
        clock = app.clock.forward() if app is not None else None
        emit({
            "type": "task-revoked",
            "uuid": rid,
            "name": name,
            "hostname": hostname,
            "timestamp": time.time(),
            "clock": clock,
            "terminated": False,
            "expired": False,
            "signum": None,
            "sluice_origin": "sdk.revoke",  # Celery sends nothing until the ETA
        })


def install_revoke_hook() -> None:
    from celery.worker.control import Panel

    original = Panel.data.get("revoke")
    if original is None or getattr(original, "_sluice_hook", False):
        return

    def revoke(state: Any, task_id: Any, terminate: bool = False, signal: Any = None,
               **kwargs: Any) -> Any:
        result = original(state, task_id, terminate=terminate, signal=signal, **kwargs)
        try:
            _on_revoke(state, task_id, terminate)
        except Exception:
            logger.debug("sluice: revoke hook failed", exc_info=True)
        return result

    revoke._sluice_hook = True  # type: ignore[attr-defined]
    revoke.__doc__ = original.__doc__
    Panel.data["revoke"] = revoke
