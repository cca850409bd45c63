"""The agent's run loop: pick the broker readers, run them on threads, report health."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Final

from sluice.domain.privacy import DEFAULT_MAX_SIZE, Rules, parse_rule, rules_from

from .backoff import Backoff
from .capture import Capture
from .forward import Forwarder, ParallelForwarder, TransportSpec, TransportStats
from .health import Health, serve_metrics
from .queues import RedisQueueSampler
from .rabbitmq_reader import KnownQueues, RabbitEventReader, RabbitQueueSampler
from .redis_conn import TransportOptions, describe
from .redis_reader import RedisEventReader
from .setup_watch import SetupWatch
from .sink import Sink

log = logging.getLogger("sluice.agent")

REDIS_SCHEMES: Final = frozenset({"redis", "rediss", "redis+socket", "unix", "socket",
                                  "sentinel"})
AMQP_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp"})
AGENT_MAX_BUFFER: Final = 100_000
AGENT_BATCH_SIZE: Final = 1_000
SETUP_CHECK_S: Final = 15.0  # how often the agent looks at what it saw of the Celery setup


def broker_kind(broker_url: str) -> str:
    scheme = broker_url.split("://", 1)[0].lower()
    if scheme in REDIS_SCHEMES:
        return "redis"
    if scheme in AMQP_SCHEMES:
        return "amqp"
    raise ValueError(f"unsupported broker {scheme!r}: use redis://, rediss://, sentinel:// or amqp://")


class Agent:
    """The collecting half of the agent, sending to any sink (the Transport in production)."""

    def __init__(self, broker_url: str, sink: Sink, connection_id: str | None, *,
                 queue_interval: float = 5.0, stop: threading.Event | None = None,
                 queues: Sequence[str] = (), max_backoff: float = 30.0,
                 workers: int | None = None, transport_spec: TransportSpec | None = None,
                 transport_options: TransportOptions | None = None,
                 capture: Capture | None = None) -> None:
        self.kind = broker_kind(broker_url)
        self.stop = stop or threading.Event()
        self.stats = TransportStats(sink.stats)
        self.health = Health(self.stats)
        self.watch = SetupWatch()
        capture = capture or Capture()
        if workers is None:
            workers = default_workers()
        # Worker processes (each with its own Transport, built from `transport_spec`) on
        # Redis only: there the raw reader batches messages for them; on AMQP kombu hands
        # over one decoded message at a time, on the reader's thread.
        forward = Forwarder(sink, self.health, connection_id, capture, self.watch)
        if workers > 0 and self.kind == "redis" and transport_spec is not None:
            forward = ParallelForwarder(sink, self.health, connection_id, workers,
                                        transport_spec, self.stats, capture, self.watch)
        self.forward = forward
        self.reader: RedisEventReader | RabbitEventReader
        self.sampler: RedisQueueSampler | RabbitQueueSampler
        if self.kind == "redis":
            self.reader = RedisEventReader(
                broker_url, forward, self.health, self.stop, Backoff(maximum=max_backoff),
                transport_options)
            self.sampler = RedisQueueSampler(
                broker_url, sink, self.health, self.stop, connection_id, queue_interval,
                Backoff(maximum=max_backoff), transport_options)
        else:
            known = KnownQueues(queues)
            self.reader = RabbitEventReader(broker_url, forward, self.health, self.stop,
                                            known, Backoff(maximum=max_backoff))
            self.sampler = RabbitQueueSampler(broker_url, sink, self.health, self.stop,
                                              connection_id, known, queue_interval,
                                              Backoff(maximum=max_backoff))
        self.threads = [
            threading.Thread(target=self.reader.run, name="sluice-agent-events", daemon=True),
            threading.Thread(target=self.sampler.run, name="sluice-agent-queues", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def wait_connected(self, timeout: float) -> bool:
        return self.reader.connected.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        self.forward.close()


def default_workers() -> int:
    """Normalizing processes: one per core, at most 4 (they do the CPU work; the main
    process mostly waits on sockets); none on a single core, where they would only add
    copying."""
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(4, cores)


def run_agent(
    broker_url: str,
    endpoint: str,
    api_key: str,
    connection_id: str,
    *,
    metrics_port: int | None = None,
    queue_interval: float = 5.0,
    stop_event: threading.Event | None = None,
    log_interval: float = 60.0,
    metrics_host: str = "0.0.0.0",
    queues: Sequence[str] = (),
    workers: int | None = None,
    transport_options: TransportOptions | None = None,
    capture_args: bool = False,
    redact_keys: Sequence[str] = (),
    max_arg_size: int = DEFAULT_MAX_SIZE,
    execute_commands: bool = False,
    result_backend: str | None = None,
) -> None:
    """Collect from `broker_url` and send to the Sluice API at `endpoint` until `stop_event`
    is set (or SIGTERM/SIGINT when called without one from the main thread). Broker and
    API outages are waited out, never fatal; only an unsupported broker URL raises.

    `workers` normalizing processes (default: one per core, at most 4; 0 = none) are
    started with multiprocessing's spawn: a script calling this must do so under
    `if __name__ == "__main__":`, as with any multiprocessing code. `queues` names AMQP
    queues to sample before any task-sent event names them. `transport_options`: the
    Celery app's broker_transport_options that say where things are on a Redis broker
    (master_name and sentinel_kwargs for Sentinel, global_keyprefix).

    Task arguments and results are stripped unless `capture_args`; captured, the keys
    named like a secret are masked (the SDK's defaults plus `redact_keys`: `KEY` for every
    task, `TASK:KEY` for one) and each value is cut at `max_arg_size` characters. A
    ValueError names an unusable rule.


    `execute_commands`: also carry out the connection's commands on this broker
    (`agent.commands`; the API key needs `operate`), finding retries' arguments in
    `result_backend` if given."""
    from sluice.transport import Transport

    broker_kind(broker_url)  # fail fast on a URL we cannot read, before any thread starts
    capture = Capture(capture_args, redaction_rules(redact_keys, max_arg_size))
    # A larger buffer than the SDK's: the agent is a dedicated process, and at 20,000
    # events/s the default 10,000 would overflow within a one-second API hiccup.
    spec = TransportSpec(endpoint, api_key, connection_id, max_buffer=AGENT_MAX_BUFFER,
                         batch_size=AGENT_BATCH_SIZE)
    transport = Transport(endpoint, api_key, connection_id, max_buffer=AGENT_MAX_BUFFER,
                          batch_size=AGENT_BATCH_SIZE)
    stop = stop_event or threading.Event()
    agent = Agent(broker_url, transport, connection_id, queue_interval=queue_interval,
                  stop=stop, queues=queues, workers=workers, transport_spec=spec,
                  transport_options=transport_options, capture=capture)
    try:  # a busy metrics port is a configuration error: fail before collecting
        server = serve_metrics(agent.health, metrics_port, metrics_host) \
            if metrics_port is not None else None
    except OSError:
        agent.forward.close()
        raise
    restore = _install_signal_handlers(stop) if stop_event is None else None
    transport.start()
    log.info("sluice agent: %s broker %s -> %s (connection %s)%s; task arguments and "
             "results %s", agent.kind, describe(broker_url), endpoint, connection_id,
             f", metrics on :{server.server_address[1]}" if server else "",
             "captured" if capture_args else "stripped (--capture-args to keep them)")
    agent.start()
    commands: threading.Thread | None = None
    if execute_commands:
        from .commands import CommandLoop

        loop = CommandLoop(endpoint, api_key, broker_url, result_backend_url=result_backend,
                           stop=stop)
        commands = threading.Thread(target=loop.run, name="sluice-agent-commands",
                                    daemon=True)
        commands.start()
    try:
        next_line = time.monotonic() + log_interval
        while not stop.wait(min(SETUP_CHECK_S, log_interval)):
            agent.watch.check()
            if time.monotonic() >= next_line:
                agent.health.log_line()
                next_line += log_interval
    except KeyboardInterrupt:
        stop.set()
    finally:
        agent.close()
        if commands is not None:
            commands.join(10)
        transport.close(5.0)
        agent.health.log_line()
        if server is not None:
            server.shutdown()
            server.server_close()
        if restore is not None:
            restore()
        log.info("sluice agent stopped")


def redaction_rules(rules: Sequence[str], max_arg_size: int = DEFAULT_MAX_SIZE
                    ) -> Rules:
    """The SDK's default rules plus `KEY` (every task) and `TASK:KEY` (one task) entries."""
    keys: list[str] = []
    per_task: dict[str, list[str]] = {}
    for text in rules:
        task, key = parse_rule(text)
        if task is None:
            keys.append(key)
        else:
            per_task.setdefault(task, []).append(key)
    return rules_from(keys, per_task, max_arg_size)


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None] | None:
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
