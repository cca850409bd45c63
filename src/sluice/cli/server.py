"""Commands that run things: `serve`, `agent`, `demo`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

GRACEFUL_SHUTDOWN_S = 30


def served_app() -> Any:
    """The app as `serve` runs it (also the factory each --workers process imports)."""
    from sluice.api.app import create_app
    from sluice.api.logs import configure_logging
    from sluice.store.db import database_url

    configure_logging(logging.DEBUG if os.environ.get("SLUICE_DEBUG") else logging.INFO)
    # The app's lifespan opens the pool and applies migrations before the port answers.
    return create_app(database_url=database_url())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sluice.api.http_protocol import NoDelayHTTPProtocol
    from sluice.store.db import database_url

    if getattr(args, "verbose", False):
        os.environ["SLUICE_DEBUG"] = "1"
    workers = max(1, args.workers)
    if workers > 1:
        # Worker processes resolve the database themselves: pin it (embedded included) once.
        os.environ["SLUICE_DATABASE_URL"] = database_url()
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
    return 0




def cmd_agent(args: argparse.Namespace) -> int:
    from sluice.agent.run import run_agent

    missing = [name for name, value in (("--broker / SLUICE_BROKER_URL", args.broker),
                                        ("SLUICE_API_KEY", os.environ.get("SLUICE_API_KEY")),
                                        ("SLUICE_CONNECTION_ID",
                                         os.environ.get("SLUICE_CONNECTION_ID")))
               if not value]
    if missing:
        print(f"sluice agent: missing {', '.join(missing)}", file=sys.stderr)
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
        execute_commands=args.execute_commands,
        result_backend=args.result_backend,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sluice.demo.run import run_demo

    return run_demo(port=args.port, duration=args.duration, rate=args.rate,
                    workers=args.workers)


def add_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the API server (applies migrations at start)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (appends serialize in PostgreSQL; decoding, "
                        "validation and folding spread over CPUs)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("agent", help="collect Celery events and queue depths from a broker")
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
    p.add_argument("--execute-commands", action="store_true",
                   help="also carry out the connection's commands (retry, revoke, controls) "
                        "on this broker; the API key needs the operate scope")
    p.add_argument("--result-backend", default=os.environ.get("SLUICE_RESULT_BACKEND_URL"),
                   metavar="URL", help="where retries find task arguments (result_extended; "
                                       "default: SLUICE_RESULT_BACKEND_URL)")
    p.set_defaults(func=cmd_agent)
    p = sub.add_parser("demo", help="embedded stack + real Celery workers + live dashboard")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--rate", type=float, default=4.0, help="tasks sent per second")
    p.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    p.set_defaults(func=cmd_demo)
