"""`init()`: one SDK runtime per process (re-armed in forked children by the transport)."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import socket
import threading
import warnings
from typing import Any, Final

from sluice.domain.celery import normalize
from sluice.domain.events import SOURCE_SDK, Event
from sluice.domain.privacy import strip
from sluice.transport import Transport

from . import bootstep, capture
from .config import SdkConfig, resolve
from .privacy import Privacy

logger = logging.getLogger("sluice.sdk")

_NAME_CACHE: Final = 10_000
_lock = threading.Lock()
_runtime: Runtime | None = None


class Processor:
    """Celery event dict -> unified Event; runs in the sender thread (the `prepare` hook)."""

    def __init__(self, config: SdkConfig) -> None:
        self._connection_id = config.connection_id
        self._privacy = Privacy(config.capture_args, config.redact,
                                rules=config.privacy_rules())
        self._strip_all = config.capture_args is False
        self._by_name = not isinstance(config.capture_args, bool)
        self._names: dict[str, str] = {}  # job id -> task name, for capture_args lists

    def __call__(self, raw: Any) -> Event | None:
        if not isinstance(raw, dict):
            return None
        event = normalize(raw, self._connection_id, source=SOURCE_SDK)
        if not isinstance(event, Event):
            return None
        if self._strip_all:  # the common case, kept cheap
            return strip(event)
        name: Any = event.name
        if self._by_name:
            name = self._task_name(event.job_id, name)
        return self._privacy.event(event, name if isinstance(name, str) else None)

    def _task_name(self, uuid: Any, name: Any) -> Any:
        if not isinstance(uuid, str):
            return name
        if isinstance(name, str):
            if len(self._names) >= _NAME_CACHE:
                self._names.pop(next(iter(self._names)))  # oldest first (dict order)
            self._names[uuid] = name
            return name
        return self._names.get(uuid)


class Runtime:
    def __init__(self, config: SdkConfig) -> None:
        self.config = config
        self.transport = Transport(
            config.endpoint,
            config.api_key,
            config.connection_id,
            max_buffer=config.max_buffer,
            batch_size=config.batch_size,
            flush_interval=config.flush_interval,
            timeout=config.timeout,
            hostname=socket.gethostname(),
            prepare=Processor(config),
        )
        self.submit = self.transport.submit_raw

    def flush(self, timeout: float) -> bool:
        return self.transport.flush(timeout)


def _on_celeryd_init(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    try:
        app = getattr(instance, "app", None)
        if app is not None:
            bootstep.install_bootstep(app)
            capture.install_on_app(app)
    except Exception:
        logger.warning("sluice: cannot install in this worker", exc_info=True)


def _on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    rt = _runtime
    if rt is not None:  # after the consumer stopped: worker-offline is in the buffer
        with contextlib.suppress(Exception):
            rt.flush(rt.config.shutdown_timeout)


def _on_process_shutdown(sender: Any = None, **kwargs: Any) -> None:
    rt = _runtime
    if rt is not None:  # a prefork child: what it published (retries, chains) must go out
        with contextlib.suppress(Exception):
            rt.flush(min(2.0, rt.config.shutdown_timeout))


def _at_exit() -> None:
    rt = _runtime
    if rt is not None:
        with contextlib.suppress(Exception):
            rt.transport.close(min(2.0, rt.config.shutdown_timeout))


def _install_producer(app: Any) -> None:
    """task-sent events of this process: Celery only builds them with the flag on."""
    try:
        bootstep.enable_sent_events(app)
        capture.install_on_app(app)
    except Exception:
        logger.warning("sluice: cannot capture task-sent events", exc_info=True)


def _wire(app: Any, runtime: Runtime) -> None:
    from celery import signals
    from celery._state import _get_active_apps, connect_on_app_finalize

    capture.set_sink(runtime.submit)
    bootstep.set_own_emitter(runtime.submit)
    signals.celeryd_init.connect(_on_celeryd_init, weak=False)
    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False)
    signals.worker_process_shutdown.connect(_on_process_shutdown, weak=False)
    apps = [app] if app is not None else list(_get_active_apps())
    for each in apps:
        _install_producer(each)
    if app is None:
        connect_on_app_finalize(_install_producer)
    if importlib.util.find_spec("django") is not None:
        # Django loads settings (and so init()) lazily, possibly after celeryd_init was sent.
        from celery import current_app

        bootstep.install_bootstep(app if app is not None else current_app)
    atexit.register(_at_exit)


def init(
    *,
    api_key: str | None = None,
    connection_id: str | None = None,
    endpoint: str | None = None,
    capture_args: bool | list[str] | tuple[str, ...] | frozenset[str] = False,
    redact: Any = None,
    redact_keys: Any = None,
    max_arg_size: int = 1024,
    app: Any = None,
    max_buffer: int = 10_000,
    batch_size: int = 500,
    flush_interval: float = 1.0,
    timeout: float = 5.0,
    shutdown_timeout: float = 5.0,
) -> None:
    """Send this process's Celery events to Sluice. Settings fall back to SLUICE_API_KEY,
    SLUICE_CONNECTION_ID, SLUICE_ENDPOINT. Raises SluiceConfigError (only) on bad settings;
    a second call warns and is ignored.

    Arguments and results leave the process only with `capture_args` (True, or a list of
    task names); then keys named like a secret are masked at any depth (the defaults in
    `sluice.domain.privacy.DEFAULT_KEYS`, plus `redact_keys`: a list for every task, or
    {task name or "*": [key, ...]}), `redact(task, field, value)` may rewrite them, and
    each is cut at `max_arg_size` characters."""
    global _runtime
    with _lock:
        if _runtime is not None:
            warnings.warn("sluice.init() was already called; ignored", stacklevel=2)
            logger.warning("sluice: init() was already called; this call is ignored")
            return
        config = resolve(
            api_key=api_key,
            connection_id=connection_id,
            endpoint=endpoint,
            capture_args=capture_args,
            redact=redact,
            redact_keys=redact_keys,
            max_arg_size=max_arg_size,
            max_buffer=max_buffer,
            batch_size=batch_size,
            flush_interval=flush_interval,
            timeout=timeout,
            shutdown_timeout=shutdown_timeout,
        )
        try:
            runtime = Runtime(config)
            runtime.transport.start()
            _wire(app, runtime)
        except Exception:  # never break the app that imports us
            logger.warning("sluice: init failed; events will not be sent", exc_info=True)
            return
        _runtime = runtime


def stats() -> dict[str, int]:
    """This process's counters (empty before init): submitted, sent, duplicates, rejected,
    dropped (dropped_overflow and invalid among them), buffered, failed_attempts, batches;
    the README's "The SDK's counters" says what each counts. The server's reason for a
    rejection is logged once per distinct reason (logger `sluice.transport`)."""
    rt = _runtime
    return rt.transport.stats() if rt is not None else {}


def flush(timeout: float = 5.0) -> bool:
    rt = _runtime
    return rt.flush(timeout) if rt is not None else True
