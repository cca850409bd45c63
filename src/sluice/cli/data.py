"""Data commands: `migrate`, `replay` (rebuild read models), `purge` (retention)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from .common import COMMON, database, fail, migrated_db, print_json, progress_bar


def cmd_migrate(args: argparse.Namespace) -> int:
    import psycopg

    from sluice.store import partitions
    from sluice.store.migrations import migrate

    with psycopg.connect(database(), autocommit=True) as conn:
        applied = migrate(conn)
        partitions.ensure_window(conn)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from sluice.service.rebuild import RebuildBusy, rebuild
    from sluice.views import registry

    try:
        registry.named(args.view or None)
    except KeyError as exc:
        return fail(str(exc.args[0]))
    with migrated_db() as conn:
        try:
            stats = rebuild(conn, args.view or None, progress=progress_bar())
        except RebuildBusy as exc:
            return fail(str(exc))
    sys.stderr.write("\n")
    print(f"rebuilt {', '.join(stats.models)}: replayed {stats.events} events in "
          f"{stats.pages} pages, {stats.seconds:.2f} s, {stats.events_per_s:,.0f} events/s"
          + (" (resumed)" if stats.resumed else ""))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from sluice.service import retention

    with migrated_db() as conn:
        if args.system_older_than_days is not None:
            before = dt.datetime.now(dt.UTC) - dt.timedelta(days=args.system_older_than_days)
            gone = retention.purge_system(conn, before, args.connection)
            if args.json:
                print_json({"system_events": gone})
            else:
                print(f"deleted system events: {gone}")
            return 0
        result = retention.purge(conn, dt.datetime.now(dt.UTC))
    if args.json:
        print_json(result)
    else:
        print(f"dropped partitions: {', '.join(result.dropped_partitions) or '-'}")
        rows = ", ".join(f"{table} {n}" for table, n in result.rows.items())
        print(f"deleted rows: events {result.events}, {rows}")
    return 0


def _days(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def add_commands(sub: Any) -> None:
    p = sub.add_parser("migrate", parents=[COMMON], help="apply database migrations")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("replay", parents=[COMMON],
                       help="rebuild read models from the event log (ingest goes on)")
    p.add_argument("--view", action="append", metavar="NAME",
                   help="only this read model (repeatable; default: all)")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("purge", parents=[COMMON],
                       help="remove traffic older than each connection's retention; "
                                     "with --system-older-than-days, the system stream's")
    p.add_argument("--json", action="store_true")
    p.add_argument("--system-older-than-days", type=_days, default=None, metavar="DAYS",
                   help="delete commands, alerts and audit older than this (kept otherwise)")
    p.add_argument("--connection", default=None, metavar="ID",
                   help="with --system-older-than-days: only this connection's")
    p.set_defaults(func=cmd_purge)
