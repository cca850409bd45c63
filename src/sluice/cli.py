"""`sluice` command line: serve | agent | demo | migrate | replay | connections | keys | purge."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from sluice.cli_server import add_server_commands
from sluice.store.db import database_url


def _progress_bar(stream: object = sys.stderr) -> object:
    started = time.perf_counter()
    last_draw = [0.0]

    def draw(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last_draw[0] < 0.2 and done < total:
            return
        last_draw[0] = now
        width = 30
        filled = width if total == 0 else int(width * done / total)
        rate = done / max(now - started, 1e-9)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} events "
            f"({rate:,.0f} events/s)"
        )
        sys.stderr.flush()

    return draw


def cmd_migrate(args: argparse.Namespace) -> int:
    import psycopg

    from sluice.store import partitions
    from sluice.store.migrations import migrate

    with psycopg.connect(database_url(), autocommit=True) as conn:
        applied = migrate(conn)
        partitions.ensure_window(conn)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import psycopg

    from sluice.projections.replay import replay
    from sluice.store import partitions
    from sluice.store.migrations import migrate

    with psycopg.connect(database_url(), autocommit=True) as conn:
        migrate(conn)
        partitions.ensure_window(conn)
        stats = replay(conn, progress=_progress_bar())  # type: ignore[arg-type]
    sys.stderr.write("\n")
    print(
        f"replayed {stats.events} events in {stats.batches} batches, "
        f"{stats.seconds:.2f} s, {stats.events_per_s:,.0f} events/s"
    )
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    import os

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
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sluice.demo.run import run_demo

    return run_demo(port=args.port, duration=args.duration, rate=args.rate,
                    workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("replay", help="rebuild all read models from the event log")
    p.set_defaults(func=cmd_replay)
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
    p.set_defaults(func=cmd_agent)
    p = sub.add_parser("demo", help="embedded stack + real Celery workers + live dashboard")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--rate", type=float, default=4.0, help="tasks sent per second")
    p.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    p.set_defaults(func=cmd_demo)
    add_server_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
