"""Server-side commands: `serve`, `connections`, `keys`, `purge`.

Wired into `sluice.cli` with `add_server_commands(subparsers)`; each sub-command sets
`func=handler` where `handler(args: argparse.Namespace) -> int` is the exit status.
Runnable alone too: `python -m sluice.cli_server serve --port 8000`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
import psycopg

from sluice.store import connections, keys, partitions, retention
from sluice.store.db import database_url
from sluice.store.migrations import migrate

_ENC = msgspec.json.Encoder()
GRACEFUL_SHUTDOWN_S = 30


@contextmanager
def _db() -> Iterator[psycopg.Connection]:
    """A migrated database (first use of a fresh embedded data dir works too)."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        migrate(conn)
        yield conn


def _print_json(value: Any) -> None:
    print(_ENC.encode(value).decode())


def _fail(message: str) -> int:
    print(f"sluice: {message}", file=sys.stderr)
    return 2


# serve ---------------------------------------------------------------------------------------

def served_app() -> Any:
    """The app as `serve` runs it (also the factory each --workers process imports)."""
    from sluice.api.app import create_app
    from sluice.api.logs import configure_logging

    configure_logging(logging.DEBUG if os.environ.get("SLUICE_DEBUG") else logging.INFO)
    # The app's lifespan opens the pool and applies migrations before the port answers.
    return create_app(database_url=database_url())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sluice.api.http_protocol import NoDelayHTTPProtocol

    if getattr(args, "verbose", False):
        os.environ["SLUICE_DEBUG"] = "1"
    workers = max(1, args.workers)
    if workers > 1:
        # Worker processes resolve the database themselves: pin it (embedded included) once.
        os.environ["SLUICE_DATABASE_URL"] = database_url()
    uvicorn.run(
        served_app() if workers == 1 else "sluice.cli_server:served_app",
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


# connections ---------------------------------------------------------------------------------

def _limit(value: str) -> int | None:
    if value.lower() in ("none", "off", "unlimited"):
        return None
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0 (or 'none')")
    return number


def _hours(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def cmd_connections_create(args: argparse.Namespace) -> int:
    with _db() as conn, conn.transaction():
        cid = connections.create_connection(
            conn, args.name, daily_limit=args.daily_limit, retention_hours=args.retention_hours)
        key = keys.create_key(conn, cid, args.scope, name="first key")
    if args.json:
        _print_json({"connection_id": cid, "api_key": key.api_key})
    else:
        print(f"connection_id: {cid}")
        print(f"api_key:       {key.api_key}")
        print("(the key is shown only this once; store it now)", file=sys.stderr)
    return 0


def cmd_connections_list(args: argparse.Namespace) -> int:
    with _db() as conn:
        items = connections.list_connections(conn)
    if args.json:
        _print_json(items)
        return 0
    print(f"{'ID':36}  {'NAME':20}  {'DAILY LIMIT':>11}  {'TODAY':>9}  {'RETENTION':>9}  KEYS")
    for c in items:
        limit = "-" if c.daily_limit is None else str(c.daily_limit)
        print(f"{c.id:36}  {c.name[:20]:20}  {limit:>11}  {c.accepted_today:>9}  "
              f"{c.retention_hours:>8}h  {c.active_keys}")
    return 0


def cmd_connections_set(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.daily_limit is not msgspec.UNSET:
        changes["daily_limit"] = args.daily_limit
    if args.retention_hours is not None:
        changes["retention_hours"] = args.retention_hours
    if not changes:
        return _fail("nothing to change: give --daily-limit and/or --retention-hours")
    with _db() as conn:
        if not connections.set_limits(conn, args.connection_id, **changes):
            return _fail(f"no connection {args.connection_id}")
    print("updated")
    return 0


# keys ----------------------------------------------------------------------------------------

def cmd_keys_create(args: argparse.Namespace) -> int:
    with _db() as conn:
        if connections.get_connection(conn, args.connection) is None:
            return _fail(f"no connection {args.connection}")
        key = keys.create_key(conn, args.connection, args.scope, name=args.name)
    if args.json:
        _print_json({"key_id": key.id, "connection_id": args.connection, "api_key": key.api_key,
                     "scopes": key.scopes})
    else:
        print(f"key_id:  {key.id}")
        print(f"scopes:  {','.join(key.scopes)}")
        print(f"api_key: {key.api_key}")
        print("(the key is shown only this once; store it now)", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    with _db() as conn:
        if connections.get_connection(conn, args.connection) is None:
            return _fail(f"no connection {args.connection}")
        items = keys.list_keys(conn, args.connection)
    if args.json:
        _print_json(items)
        return 0
    print(f"{'KEY ID':20}  {'PREFIX':16}  {'SCOPES':28}  {'CREATED':20}  STATUS")
    for k in items:
        status = "revoked" if k.revoked_at else "active"
        print(f"{k.id:20}  {k.prefix + '...':16}  {','.join(k.scopes):28}  "
              f"{k.created_at:%Y-%m-%d %H:%M:%S}   {status}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with _db() as conn:
        if not keys.revoke(conn, args.key_id):
            return _fail(f"no key {args.key_id}")
    print(f"revoked {args.key_id}")
    return 0


# purge ---------------------------------------------------------------------------------------

def cmd_purge(args: argparse.Namespace) -> int:
    with _db() as conn:
        partitions.ensure_window(conn)
        result = retention.purge(conn, dt.datetime.now(dt.UTC))
    if args.json:
        _print_json(result)
    else:
        print(f"dropped partitions: {', '.join(result.dropped_partitions) or '-'}")
        print(f"deleted rows: events {result.events}, jobs {result.jobs}, "
              f"job transitions {result.job_transitions}, rollups {result.rollups}, "
              f"queue samples {result.queue_samples}, queues {result.queues}, "
              f"workers {result.workers}")
    return 0


# wiring --------------------------------------------------------------------------------------

def add_server_commands(sub: Any) -> None:
    """Add serve, connections, keys and purge to an argparse sub-parsers object."""
    p = sub.add_parser("serve", help="run the API server (applies migrations at start)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (appends serialize in PostgreSQL; decoding, "
                        "validation and folding spread over CPUs)")
    p.set_defaults(func=cmd_serve)

    conns = sub.add_parser("connections", help="create and list connections")
    csub = conns.add_subparsers(dest="connections_command", required=True)
    p = csub.add_parser("create", help="create a connection and print its first API key")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help='print {"connection_id", "api_key"}')
    p.add_argument("--daily-limit", type=_limit, default=None, metavar="N",
                   help="accepted events per UTC day (default: unlimited)")
    p.add_argument("--retention-hours", type=_hours,
                   default=connections.DEFAULT_RETENTION_HOURS, metavar="H",
                   help="keep events and read models this long (default: 168 = 7 days)")
    p.add_argument("--scope", action="append", choices=keys.SCOPES,
                   help="scope of the first key (repeatable; default: all)")
    p.set_defaults(func=cmd_connections_create)
    p = csub.add_parser("list", help="list connections with quota, usage today and retention")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connections_list)
    p = csub.add_parser("set", help="change a connection's daily limit or retention")
    p.add_argument("connection_id")
    p.add_argument("--daily-limit", type=_limit, default=msgspec.UNSET, metavar="N|none")
    p.add_argument("--retention-hours", type=_hours, default=None, metavar="H")
    p.set_defaults(func=cmd_connections_set)

    keyp = sub.add_parser("keys", help="create, list and revoke API keys")
    ksub = keyp.add_subparsers(dest="keys_command", required=True)
    p = ksub.add_parser("create", help="mint an API key (shown once)")
    p.add_argument("--connection", required=True, metavar="ID")
    p.add_argument("--scope", action="append", choices=keys.SCOPES,
                   help="repeatable; default: all scopes")
    p.add_argument("--name", default=None, help="a label for listings")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_create)
    p = ksub.add_parser("list", help="list a connection's keys (prefixes only)")
    p.add_argument("--connection", required=True, metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_list)
    p = ksub.add_parser("revoke", help="revoke a key at once")
    p.add_argument("key_id")
    p.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("purge", help="remove data older than each connection's retention")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_purge)


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (until/besides `sluice.cli`): python -m sluice.cli_server ..."""
    parser = argparse.ArgumentParser(prog="sluice")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_server_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
