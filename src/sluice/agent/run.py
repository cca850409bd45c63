"""The agent's run loop: pick the broker readers, run them on threads, report health."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Final

from .backoff import Backoff
from .forward import Forwarder, ParallelForwarder, TransportSpec, TransportStats
from .health import Health, serve_metrics
from .queues import RedisQueueSampler
from .rabbitmq_reader import KnownQueues, RabbitEventReader, RabbitQueueSampler
from .redis_conn import describe
from .redis_reader import RedisEventReader
from .sink import Sink

log = logging.getLogger("sluice.agent")

REDIS_SCHEMES: Final = frozenset({"redis", "rediss", "redis+socket", "unix", "socket"})
AMQP_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp"})
AGENT_MAX_BUFFER: Final = 100_000
AGENT_BATCH_SIZE: Final = 1_000


def broker_kind(broker_url: str) -> str:
    scheme = broker_url.split("://", 1)[0].lower()
    if scheme in REDIS_SCHEMES:
        return "redis"
    if scheme in AMQP_SCHEMES:
        return "amqp"
    raise ValueError(f"unsupported broker {scheme!r}: use redis://, rediss:// or amqp://")


class Agent:
    """The collecting half of the agent, sending to any sink (the Transport in production)."""

    def __init__(self, broker_url: str, sink: Sink, connection_id: str | None, *,
                 queue_interval: float = 5.0, stop: threading.Event | None = None,
                 queues: Sequence[str] = (), max_backoff: float = 30.0,
                 workers: int | None = None, transport_spec: TransportSpec | None = None
                 ) -> None:
        self.kind = broker_kind(broker_url)
        self.stop = stop or threading.Event()
        self.stats = TransportStats(sink.stats)
        self.health = Health(self.stats)
        if workers is None:
            workers = default_workers()
        # Worker processes (each with its own Transport, built from `transport_spec`) on
        # Redis only: there the raw reader batches messages for them; on AMQP kombu hands
        # over one decoded message at a time, on the reader's thread.
        forward = Forwarder(sink, self.health, connection_id)
        if workers > 0 and self.kind == "redis" and transport_spec is not None:
            forward = ParallelForwarder(sink, self.health, connection_id, workers,
                                        transport_spec, self.stats)
        self.forward = forward
        self.reader: RedisEventReader | RabbitEventReader
        self.sampler: RedisQueueSampler | RabbitQueueSampler
        if self.kind == "redis":
            self.reader = RedisEventReader(
                broker_url, forward, self.health, self.stop, Backoff(maximum=max_backoff))
            self.sampler = RedisQueueSampler(
                broker_url, sink, self.health, self.stop, connection_id, queue_interval,
                Backoff(maximum=max_backoff))
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
    execute_commands: bool = False,
    result_backend: str | None = None,
) -> None:
    """Collect from `broker_url` and send to the Sluice API at `endpoint` until `stop_event`
    is set (or SIGTERM/SIGINT when called without one from the main thread). Broker and
    API outages are waited out, never fatal; only an unsupported broker URL raises.

    `workers` normalizing processes (default: one per core, at most 4; 0 = none) are
    started with multiprocessing's spawn: a script calling this must do so under
    `if __name__ == "__main__":`, as with any multiprocessing code. `queues` names AMQP
    queues to sample before any task-sent event names them. `execute_commands`: also carry
    out the connection's commands on this broker (`agent.commands`; the API key needs
    `operate`), finding retries' arguments in `result_backend` if given."""
    from sluice.transport import Transport

    broker_kind(broker_url)  # fail fast on a URL we cannot read, before any thread starts
    # A larger buffer than the SDK's: the agent is a dedicated process, and at 20,000
    # events/s the default 10,000 would overflow within a one-second API hiccup.
    spec = TransportSpec(endpoint, api_key, connection_id, max_buffer=AGENT_MAX_BUFFER,
                         batch_size=AGENT_BATCH_SIZE)
    transport = Transport(endpoint, api_key, connection_id, max_buffer=AGENT_MAX_BUFFER,
                          batch_size=AGENT_BATCH_SIZE)
    stop = stop_event or threading.Event()
    agent = Agent(broker_url, transport, connection_id, queue_interval=queue_interval,
                  stop=stop, queues=queues, workers=workers, transport_spec=spec)
    try:  # a busy metrics port is a configuration error: fail before collecting
        server = serve_metrics(agent.health, metrics_port, metrics_host) \
            if metrics_port is not None else None
    except OSError:
        agent.forward.close()
        raise
    restore = _install_signal_handlers(stop) if stop_event is None else None
    transport.start()
    log.info("sluice agent: %s broker %s -> %s (connection %s)%s", agent.kind,
             describe(broker_url), endpoint, connection_id,
             f", metrics on :{server.server_address[1]}" if server else "")
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
        while not stop.wait(log_interval):
            agent.health.log_line()
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
