"""Commands that run things: `serve`, `agent`, `demo`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from .common import COMMON

GRACEFUL_SHUTDOWN_S = 30
# `serve --workers N`: the master's pid, for its workers to notice when it is gone.
MASTER_PID_ENV = "SLUICE_SERVE_MASTER_PID"
PARENT_CHECK_S = 0.25


def exit_with_master(master: int) -> threading.Thread:
    """In a `--workers` process: once the master is gone (killed with -9, say), shut down as
    on SIGTERM (the listening socket is closed first, in-flight requests finish), so no
    orphan keeps serving or holds the port a restart needs."""

    def watch() -> None:
        while os.getppid() == master:
            time.sleep(PARENT_CHECK_S)
        logging.getLogger("sluice.serve").warning(
            "the serve master (pid %d) is gone: this worker shuts down", master)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACEFUL_SHUTDOWN_S + 5)
        os._exit(1)  # the graceful shutdown did not end the process

    watcher = threading.Thread(target=watch, name="sluice-master-watch", daemon=True)
    watcher.start()
    return watcher


def served_app() -> Any:
    """The app as `serve` runs it (also the factory each --workers process imports)."""
    from sluice.api.app import create_app
    from sluice.api.logs import configure_logging
    from sluice.store.db import database_url

    configure_logging(logging.DEBUG if os.environ.get("SLUICE_DEBUG") else logging.INFO)
    master = os.environ.get(MASTER_PID_ENV, "")
    if master.isdigit() and int(master) != os.getpid():  # a worker of `serve --workers N`
        exit_with_master(int(master))
    # The app's lifespan opens the pool and applies migrations before the port answers.
    return create_app(database_url=database_url())


class Stopped(Exception):
    """SIGTERM arrived: end like Ctrl-C does, through the `finally` that stops what we
    started."""


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sluice.api.http_protocol import NoDelayHTTPProtocol
    from sluice.store.db import stop_embedded

    from .common import database

    if getattr(args, "verbose", False):
        os.environ["SLUICE_DEBUG"] = "1"
    workers = max(1, args.workers)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again once its own
    # handlers are gone: with Python's default SIGTERM handler the process would die there,
    # before any exit hook, and leave the embedded PostgreSQL running.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        # Started here (if embedded), and pinned for --workers processes, which would
        # otherwise resolve it themselves.
        os.environ["SLUICE_DATABASE_URL"] = database()
        if workers > 1:
            os.environ[MASTER_PID_ENV] = str(os.getpid())
        uvicorn.run(
            served_app() if workers == 1 else "sluice.cli.server:served_app",
            factory=workers > 1,
            workers=workers if workers > 1 else None,
            host=args.host,
            port=args.port,
            http=NoDelayHTTPProtocol,  # uvicorn's, minus Nagle's ~40 ms per kept-alive request
            log_config=None,  # JSON lines from our handler instead of uvicorn's formats
            access_log=False,  # the app writes one structured line per request
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,  # in-flight batches finish first
            lifespan="on",
        )
    except (KeyboardInterrupt, Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut this short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_embedded()  # the database last: the app closed its pool at shutdown
    return 0



def _transport_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        decoded: Any = json.loads(value)
    except ValueError:
        decoded = value  # a plain string (a prefix, a master's name)
    return key.strip(), decoded


def cmd_agent(args: argparse.Namespace) -> int:
    from sluice.agent.run import redaction_rules, run_agent

    missing = [name for name, value in (("--broker / SLUICE_BROKER_URL", args.broker),
                                        ("SLUICE_API_KEY", os.environ.get("SLUICE_API_KEY")),
                                        ("SLUICE_CONNECTION_ID",
                                         os.environ.get("SLUICE_CONNECTION_ID")))
               if not value]
    if missing:
        print(f"sluice agent: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    try:  # before anything starts: a bad rule is a usage error
        redaction_rules(args.redact_key or (), args.max_arg_size)
    except ValueError as exc:
        print(f"sluice agent: {exc}", file=sys.stderr)
        return 2
    run_agent(
        args.broker,
        os.environ.get("SLUICE_ENDPOINT", "http://127.0.0.1:8000"),
        os.environ["SLUICE_API_KEY"],
        os.environ["SLUICE_CONNECTION_ID"],
        metrics_port=args.metrics_port,
        queue_interval=args.queue_interval,
        queues=args.queue or (),
        workers=args.workers,
        metrics_host=args.metrics_host,
        transport_options=dict(args.transport_options),
        capture_args=args.capture_args,
        redact_keys=args.redact_key or (),
        max_arg_size=args.max_arg_size,
        execute_commands=args.execute_commands,
        result_backend=args.result_backend,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sluice.demo.run import run_demo

    return run_demo(port=args.port, duration=args.duration, rate=args.rate,
                    workers=args.workers)


def add_commands(sub: Any) -> None:
    p = sub.add_parser("serve", parents=[COMMON],
                       help="run the API server (applies migrations at start)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (appends serialize in PostgreSQL; decoding, "
                        "validation and folding spread over CPUs)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("agent", parents=[COMMON],
                       help="collect Celery events and queue depths from a broker")
    p.add_argument("--broker", default=os.environ.get("SLUICE_BROKER_URL"),
                   help="redis://... or amqp://... (default: SLUICE_BROKER_URL)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve the agent's own counters (Prometheus text) on this port")
    p.add_argument("--queue-interval", type=float, default=5.0,
                   help="seconds between queue depth samples")
    p.add_argument("--metrics-host", default="0.0.0.0", help="address of --metrics-port")
    p.add_argument("--queue", action="append",
                   help="a queue to sample even before Celery binds it (repeatable)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes that decode and send events (default: one per core, <= 4)")
    p.add_argument("--transport-option", action="append", type=_transport_option, default=[],
                   metavar="KEY=VALUE", dest="transport_options",
                   help="one of the Celery app's broker_transport_options (repeatable): "
                        "master_name=NAME for sentinel://, global_keyprefix=PREFIX, "
                        "sentinel_kwargs={JSON}; a JSON value is decoded")
    p.add_argument("--capture-args", action="store_true",
                   help="send task arguments and results (default: stripped; the "
                        "connection must allow them too)")
    p.add_argument("--redact-key", action="append", metavar="KEY|TASK:KEY",
                   help="with --capture-args: also mask this key, in every task or in one "
                        "(repeatable; password, token, secret, card... always are)")
    p.add_argument("--max-arg-size", type=int, default=1024, metavar="N",
                   help="with --capture-args: cut each value at N characters")
    p.add_argument("--execute-commands", action="store_true",
                   help="also carry out the connection's commands (retry, revoke, controls) "
                        "on this broker; the API key needs the operate scope")
    p.add_argument("--result-backend", default=os.environ.get("SLUICE_RESULT_BACKEND_URL"),
                   metavar="URL", help="where retries find task arguments (result_extended; "
                                       "default: SLUICE_RESULT_BACKEND_URL)")
    p.set_defaults(func=cmd_agent)
    p = sub.add_parser("demo", parents=[COMMON],
                       help="embedded stack + real Celery workers + live dashboard")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--rate", type=float, default=4.0, help="tasks sent per second")
    p.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    p.set_defaults(func=cmd_demo)
