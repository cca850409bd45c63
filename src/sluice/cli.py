"""`sluice` command line: serve | agent | demo | migrate | replay | connections | keys | purge."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("replay", help="rebuild all read models from the event log")
    p.set_defaults(func=cmd_replay)
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
