"""Carry out commands on a Celery broker with Celery's own client API: `control.revoke`,
`send_task`, the other `control` commands and `inspect`. No task code is imported: tasks
are sent by name.

The same executor runs in the server (`sluice serve`, for connections whose broker it can
reach) and in the agent (`sluice agent --execute-commands`, next to the broker). It never
raises for a command: each gets an `Outcome`, failed with a reason when the broker or a
worker said no. A broker that cannot be reached fails the rest of the batch with that
reason at once (one connection error, not one timeout per command).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Final

from celery import Celery

from sluice.domain.actions import Action
from sluice.domain.arguments import unknown_reason
from sluice.domain.commands import Control, Outcome, Spec
from sluice.domain.urls import scrub

log = logging.getLogger("sluice.executor")

TIMEOUT_S: Final = 3.0  # connecting to the broker
REPLY_TIMEOUT_S: Final = 2.0  # waiting for workers' replies to a control command
REVOKE_CHUNK: Final = 1000  # task ids per revoke broadcast
PUBLISHERS: Final = 4  # producers publishing a batch's retries at once
PUBLISH_CHUNK: Final = 50  # retries per publisher at least


class BrokerDown(Exception):
    """The broker could not be reached: the batch's remaining commands fail with it."""


class CommandFailed(Exception):
    """One command failed (a worker said no, no worker replied...): its reason."""


def _connection_errors(app: Celery) -> tuple[type[BaseException], ...]:
    with app.connection_for_write() as conn:
        errors = tuple(conn.connection_errors)
    from kombu.exceptions import OperationalError

    return (*errors, OperationalError, ConnectionError, TimeoutError)


class BrokerExecutor:
    """A Celery client on one broker (and result backend). Thread-safe for `execute` and
    `inspect` (one lock: commands of a connection run one batch at a time)."""

    def __init__(self, broker_url: str, result_backend_url: str | None = None, *,
                 timeout: float = TIMEOUT_S, reply_timeout: float = REPLY_TIMEOUT_S) -> None:
        self.broker_url = broker_url
        self.result_backend_url = result_backend_url
        self.timeout = timeout
        self.reply_timeout = reply_timeout
        self._app: Celery | None = None
        self._results: Celery | None = None
        self._errors: tuple[type[BaseException], ...] = ()
        self._lock = threading.RLock()

    # the client

    @property
    def app(self) -> Celery:
        """The client that publishes. It has no result backend: with one, every send would
        also subscribe to the task's result (a round trip per task, for nothing)."""
        if self._app is None:
            app = Celery("sluice-executor", broker=self.broker_url, set_as_current=False)
            app.conf.update(
                broker_connection_timeout=self.timeout,
                broker_connection_retry=False,
                broker_connection_max_retries=0,
                task_publish_retry=False,  # a failed publish fails its command, now
                broker_transport_options={"socket_connect_timeout": self.timeout,
                                          "socket_timeout": max(self.timeout, 5.0),
                                          "max_retries": 0},
                # the agent (if any) sees a retried task's sent event like any other
                task_send_sent_event=True,
                worker_hijack_root_logger=False,
            )
            self._errors = _connection_errors(app)
            self._app = app
        return self._app

    @property
    def results(self) -> Celery:
        """The client that reads the result backend (only asked when one is set)."""
        if self._results is None:
            app = Celery("sluice-executor-results", backend=self.result_backend_url,
                         set_as_current=False)
            app.conf.update(
                result_backend_transport_options={"socket_connect_timeout": self.timeout,
                                                  "socket_timeout": max(self.timeout, 5.0)},
                redis_socket_connect_timeout=self.timeout,
                redis_socket_timeout=max(self.timeout, 5.0))
            self._results = app
        return self._results

    def close(self) -> None:
        with self._lock:
            for app in (self._app, self._results):
                if app is not None:
                    try:
                        app.close()
                    except Exception:  # closing is best effort
                        log.debug("closing the executor's Celery app failed", exc_info=True)
            self._app = self._results = None

    def _reason(self, exc: BaseException) -> str:
        """An error as a reason: never the broker's password."""
        text = f"{type(exc).__name__}: {exc}"[:500]
        return scrub(text, self.broker_url, self.result_backend_url)

    @contextmanager
    def _broker(self) -> Iterator[None]:
        """Turn the broker's connection errors into BrokerDown."""
        try:
            yield
        except self._errors as exc:
            raise BrokerDown(f"broker unreachable: {self._reason(exc)}") from exc

    def _check_broker(self) -> None:
        with self._broker(), self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                   timeout=self.timeout)

    # commands

    def execute(self, specs: Sequence[Spec]) -> list[Outcome]:
        """Carry out the commands; one outcome each, in their order."""
        outcomes: dict[str, Outcome] = {}
        with self._lock:
            try:
                self.app  # noqa: B018 (build the client: bad URLs fail every command below)
                self._check_broker()
                revokes = [s for s in specs if s.action == Action.REVOKE]
                retries = [s for s in specs if s.action == Action.RETRY]
                for group in _revoke_groups(revokes):
                    outcomes.update(self._revoke(group))
                if retries:
                    outcomes.update(self._retry(retries))
                for spec in specs:
                    if spec.command_id not in outcomes:
                        outcomes[spec.command_id] = self._control(spec)
            except BrokerDown as exc:
                reason = str(exc)
                log.warning("commands failed: %s", reason)
                for spec in specs:
                    outcomes.setdefault(spec.command_id,
                                        Outcome(command_id=spec.command_id, ok=False,
                                                reason=reason))
            except Exception as exc:  # a URL Celery cannot use, a client bug: say so
                reason = f"the executor failed: {self._reason(exc)}"
                log.exception("commands failed")
                for spec in specs:
                    outcomes.setdefault(spec.command_id, Outcome(
                        command_id=spec.command_id, ok=False, reason=reason))
        return [outcomes[s.command_id] for s in specs]

    def _revoke(self, specs: list[Spec]) -> dict[str, Outcome]:
        params = specs[0].params
        ids = [s.job_id for s in specs if s.job_id]
        with self._broker():
            for start in range(0, len(ids), REVOKE_CHUNK):
                self.app.control.revoke(ids[start:start + REVOKE_CHUNK],
                                        terminate=bool(params.get("terminate")),
                                        signal=str(params.get("signal") or "SIGTERM"))
        return {s.command_id: Outcome(command_id=s.command_id, ok=True) for s in specs}

    def resend_revokes(self, hostname: str, specs: Sequence[Spec]) -> None:
        """Send revokes again to one worker (it came online and forgot them). Raises
        BrokerDown."""
        with self._lock:
            self.app  # noqa: B018
            for group in _revoke_groups(list(specs)):
                params = group[0].params
                ids = [s.job_id for s in group if s.job_id]
                with self._broker():
                    for start in range(0, len(ids), REVOKE_CHUNK):
                        self.app.control.revoke(
                            ids[start:start + REVOKE_CHUNK], destination=[hostname],
                            terminate=bool(params.get("terminate")),
                            signal=str(params.get("signal") or "SIGTERM"))

    def _metas(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The result backend's records of these tasks (with result_extended they hold the
        name, args, kwargs and queue). One round trip on key-value backends."""
        if not self.result_backend_url or not job_ids:
            return {}
        backend = self.results.backend
        found: dict[str, dict[str, Any]] = {}
        mget = getattr(backend, "mget", None)
        key_for = getattr(backend, "get_key_for_task", None)
        try:
            if mget is not None and key_for is not None:
                values = mget([key_for(job_id) for job_id in job_ids])
                for job_id, value in zip(job_ids, values, strict=True):
                    if value:
                        meta = backend.decode_result(value)
                        if isinstance(meta, dict):
                            found[job_id] = meta
            else:
                for job_id in job_ids:
                    meta = backend.get_task_meta(job_id)
                    if isinstance(meta, dict):
                        found[job_id] = meta
        except Exception as exc:
            log.warning("result backend unreadable: %s", self._reason(exc))
        return found

    def _retry(self, specs: list[Spec]) -> dict[str, Outcome]:
        """Publish the retries: a few producers (connections) at once, since a publish is
        mostly a wait for the broker's answer."""
        metas = self._metas([s.job_id for s in specs if s.job_id])

        def send(part: list[Spec]) -> dict[str, Outcome]:
            with self._broker(), self.app.producer_or_acquire() as producer:
                return {s.command_id: self._send_again(s, metas.get(s.job_id or ""), producer)
                        for s in part}

        step = max(PUBLISH_CHUNK, -(-len(specs) // PUBLISHERS))
        parts = [specs[i:i + step] for i in range(0, len(specs), step)]
        if len(parts) == 1:
            return send(parts[0])
        outcomes: dict[str, Outcome] = {}
        with ThreadPoolExecutor(len(parts), thread_name_prefix="sluice-publish") as pool:
            for done in pool.map(send, parts):  # a BrokerDown in any part is raised here
                outcomes.update(done)
        return outcomes

    def _send_again(self, spec: Spec, meta: dict[str, Any] | None, producer: Any) -> Outcome:
        meta = meta or {}
        name = spec.task_name or meta.get("name")
        if meta.get("args") is not None or meta.get("kwargs") is not None:
            args, kwargs = list(meta.get("args") or ()), dict(meta.get("kwargs") or {})
        elif spec.args is not None or spec.kwargs is not None:
            args, kwargs = list(spec.args or ()), dict(spec.kwargs or {})
        else:
            why = spec.args_unknown or "the job's arguments were not captured"
            if self.result_backend_url:
                why += " and the result backend has no extended record of it"
            else:
                why += " and the connection has no result backend"
            return Outcome(command_id=spec.command_id, ok=False, reason=unknown_reason(why))
        if not name:
            return Outcome(command_id=spec.command_id, ok=False,
                           reason="cannot retry: the job's task name is unknown")
        queue = spec.queue or meta.get("queue")
        options: dict[str, Any] = {"queue": queue} if queue else {}
        if spec.routing_key:
            options["routing_key"] = spec.routing_key
        if spec.exchange:
            options["exchange"] = spec.exchange
        headers = {k: v for k, v in (meta.get("stamps") or {}).items()
                   if isinstance(k, str)} if isinstance(meta.get("stamps"), dict) else {}
        try:
            self.app.send_task(name, args=args, kwargs=kwargs, task_id=spec.new_job_id,
                               producer=producer, headers=headers or None, **options)
        except self._errors:
            raise
        except Exception as exc:  # e.g. arguments the serializer refuses
            return Outcome(command_id=spec.command_id, ok=False,
                           reason=f"cannot retry: {self._reason(exc)}")
        return Outcome(command_id=spec.command_id, ok=True, new_job_id=spec.new_job_id)

    def _control(self, spec: Spec) -> Outcome:
        try:
            with self._broker():
                result = self._run_control(spec)
        except CommandFailed as exc:
            return Outcome(command_id=spec.command_id, ok=False, reason=str(exc))
        new_job_id = spec.new_job_id if spec.action == Control.SEND_TASK else None
        return Outcome(command_id=spec.command_id, ok=True, result=result,
                       new_job_id=new_job_id)

    def _replies(self, call: Callable[..., Any], spec: Spec, *args: Any, **kwargs: Any
                 ) -> dict[str, Any]:
        """Broadcast a control command and gather the workers' replies ({hostname: reply});
        CommandFailed when none replied or one answered an error."""
        destination = [spec.hostname] if spec.hostname else None
        replies = call(*args, destination=destination, reply=True,
                       timeout=self.reply_timeout, **kwargs) or []
        merged: dict[str, Any] = {}
        for reply in replies:
            if isinstance(reply, dict):
                merged.update(reply)
        if not merged:
            who = spec.hostname or "any worker"
            raise CommandFailed(f"no reply from {who} within {self.reply_timeout:g}s")
        errors = {h: r["error"] for h, r in merged.items()
                  if isinstance(r, dict) and r.get("error")}
        if errors:
            raise CommandFailed("; ".join(f"{h}: {e}" for h, e in sorted(errors.items()))[:500])
        return merged

    def _run_control(self, spec: Spec) -> Any:
        control = self.app.control
        p = spec.params
        match spec.action:
            case Control.POOL_GROW:
                return self._replies(control.pool_grow, spec, int(p.get("n", 1)))
            case Control.POOL_SHRINK:
                return self._replies(control.pool_shrink, spec, int(p.get("n", 1)))
            case Control.AUTOSCALE:
                return self._replies(control.autoscale, spec, int(p["max"]), int(p["min"]))
            case Control.ADD_CONSUMER:
                return self._replies(control.add_consumer, spec, spec.queue)
            case Control.CANCEL_CONSUMER:
                return self._replies(control.cancel_consumer, spec, spec.queue)
            case Control.RATE_LIMIT:
                return self._replies(control.rate_limit, spec, spec.task_name,
                                     p.get("rate_limit"))
            case Control.TIME_LIMIT:
                return self._replies(control.time_limit, spec, spec.task_name,
                                     soft=p.get("soft"), hard=p.get("hard"))
            case Control.ENABLE_EVENTS:
                return self._replies(control.enable_events, spec)
            case Control.SHUTDOWN:
                # a worker shutting down does not reply: the broadcast is the outcome
                control.shutdown(destination=[spec.hostname] if spec.hostname else None)
                return None
            case Control.PURGE_QUEUE:
                with self.app.connection_for_write() as conn:
                    purged = conn.default_channel.queue_purge(spec.queue)
                return {"purged": int(purged or 0)}
            case Control.SEND_TASK:
                options = {k: p[k] for k in ("queue", "routing_key", "countdown", "eta",
                                             "expires", "priority", "headers") if k in p}
                self.app.send_task(spec.task_name, args=list(p.get("args") or ()),
                                   kwargs=dict(p.get("kwargs") or {}),
                                   task_id=spec.new_job_id, **options)
                return None
        raise CommandFailed(f"unknown action {spec.action!r}")

    # reads

    def inspect(self, hostname: str, what: str) -> Any:
        """Celery's `inspect().<what>()` of one worker: its reply, None if it gave none.
        Raises BrokerDown."""
        with self._lock, self._broker():
            inspector = self.app.control.inspect(destination=[hostname],
                                                 timeout=self.reply_timeout)
            call = getattr(inspector, what)
            # registered tasks with their limits, as Flower shows them
            replies = (call("rate_limit", "time_limit", "soft_time_limit")
                       if what == "registered" else call()) or {}
        return replies.get(hostname)


def _revoke_groups(specs: list[Spec]) -> list[list[Spec]]:
    """Revokes sharing terminate and signal: one broadcast (a list of ids) each."""
    groups: dict[tuple[bool, str], list[Spec]] = defaultdict(list)
    for s in specs:
        groups[(bool(s.params.get("terminate")), str(s.params.get("signal") or "SIGTERM"))
               ].append(s)
    return list(groups.values())
