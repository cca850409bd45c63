"""Capture Celery event dicts as Celery builds them, in process, before they are published.

`EventDispatcher.send` (worker task events, heartbeats) and `.publish` (task-sent from
producers) both build each event dict with an `Event` factory they accept as an argument.
The capturing dispatcher passes a factory that builds the dict with Celery's own `Event`
and hands that same dict to the sink: the captured event is exactly the one Celery sends
(same timestamp and clock, hence the same dedup key as the agent's), and Celery's own send
is unchanged. The sink only appends to a deque; normalization happens in the sender thread.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from celery.events.event import Event as celery_event

logger = logging.getLogger("sluice.sdk")

Sink = Callable[[dict[str, Any]], None]
_sink: Sink | None = None
_ATTR = "_sluice_capture"


def set_sink(sink: Sink | None) -> None:
    global _sink
    _sink = sink


def _emit(event: Any) -> None:
    sink = _sink
    if sink is not None and isinstance(event, dict):
        try:  # noqa: SIM105 (hot path: cheaper than contextlib.suppress)
            sink(event)
        except Exception:  # never into Celery
            pass


def _capturing_event(*args: Any, **kwargs: Any) -> Any:
    event = celery_event(*args, **kwargs)
    _emit(event)
    return event


def _wrap_factory(factory: Callable[..., Any]) -> Callable[..., Any]:
    def make(*args: Any, **kwargs: Any) -> Any:
        event = factory(*args, **kwargs)
        _emit(event)
        return event

    return make


def _with_factory(kwargs: dict[str, Any]) -> dict[str, Any]:
    custom = kwargs.get("Event")
    kwargs["Event"] = _capturing_event if custom is None else _wrap_factory(custom)
    return kwargs


class CapturingMixin:
    """Mixed in front of the app's EventDispatcher class."""

    _sluice_capture = True

    def send(self, type: str, *args: Any, **kwargs: Any) -> Any:
        return super().send(type, *args, **_with_factory(kwargs))  # type: ignore[misc]

    def publish(self, type: str, fields: Any, producer: Any, *args: Any, **kwargs: Any) -> Any:
        return super().publish(  # type: ignore[misc]
            type, fields, producer, *args, **_with_factory(kwargs)
        )


_classes: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def capturing_class(base: type) -> type:
    if getattr(base, _ATTR, False):
        return base
    cls = _classes.get(base)
    if cls is None:
        cls = type(base.__name__, (CapturingMixin, base), {"__module__": base.__module__})
        _classes[base] = cls
    return cls


def capture_instance(dispatcher: Any) -> None:
    """Make an existing dispatcher capture (the consumer's, or one cached by app.amqp)."""
    if dispatcher is None or getattr(dispatcher, _ATTR, False):
        return
    dispatcher.__class__ = capturing_class(type(dispatcher))


def install_on_app(app: Any) -> None:
    """Every dispatcher the app creates from now on captures; so do those it already has."""
    try:
        events = app.events
        base = events.Dispatcher
        if not getattr(base, _ATTR, False):
            events.Dispatcher = capturing_class(base)
        amqp = app.__dict__.get("amqp")
        if amqp is not None:
            capture_instance(amqp.__dict__.get("_event_dispatcher"))
    except Exception:
        logger.warning("sluice: cannot capture events of app %r", app, exc_info=True)
