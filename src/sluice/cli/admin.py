"""Account commands: `connections` and `keys`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import msgspec

from ..domain.accounts import DEFAULT_RETENTION_HOURS, SCOPES
from .common import COMMON, fail, migrated_db, print_json

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


FIRST_KEY_SCOPES = ("ingest", "read")  # what the SDK, the agent and the dashboard need
DEFAULT_ENDPOINT = "http://127.0.0.1:8000"


def first_key_scopes(args: argparse.Namespace) -> list[str]:
    """ingest and read, unless --scope says otherwise; --admin gives every scope."""
    if args.admin:
        return list(SCOPES)
    return list(dict.fromkeys(args.scope)) if args.scope else list(FIRST_KEY_SCOPES)


def _url(value: str) -> str | None:
    """A broker / result backend URL; 'none' or '' clears it. Errors never echo it."""
    from ..domain.urls import check_url

    if value.strip().lower() in ("", "none"):
        return None
    reason = check_url(value)
    if reason is not None:
        raise argparse.ArgumentTypeError(reason)
    return value


def cmd_connections_create(args: argparse.Namespace) -> int:
    from sluice.store import connections, keys

    scopes = first_key_scopes(args)
    try:
        with migrated_db() as conn, conn.transaction():
            cid = connections.create_connection(
                conn, args.name, daily_limit=args.daily_limit,
                retention_hours=args.retention_hours, broker_url=args.broker,
                result_backend_url=args.result_backend)
            key = keys.create_key(conn, cid, scopes, name="first key")
    except connections.NameTaken as exc:
        return fail(f"a connection named {exc.name!r} exists already (id {exc.existing_id}); "
                    "choose another name, or mint a key for it with "
                    f"`sluice keys create --connection {exc.existing_id} --scope ingest "
                    "--scope read`")
    if args.json:
        print_json({"connection_id": cid, "api_key": key.api_key})
        return 0
    endpoint = args.endpoint.rstrip("/")
    print(f"# Sluice connection {args.name!r}; first key's scopes: {', '.join(key.scopes)}")
    print("# For your workers and producers (sluice.init()) and `sluice agent`:")
    print(f"export SLUICE_API_KEY={key.api_key}")
    print(f"export SLUICE_CONNECTION_ID={cid}")
    print(f"export SLUICE_ENDPOINT={endpoint}")
    print(f"# Dashboard: {endpoint}/#key={key.api_key}")
    print("(the key is shown only this once; store it now)", file=sys.stderr)
    return 0


def cmd_connections_list(args: argparse.Namespace) -> int:
    from sluice.store import connections

    with migrated_db() as conn:
        items = connections.list_connections(conn)
    if args.json:
        print_json(items)
        return 0
    print(f"{'ID':36}  {'NAME':20}  {'DAILY LIMIT':>11}  {'TODAY':>9}  {'RETENTION':>9}  KEYS")
    for c in items:
        limit = "-" if c.daily_limit is None else str(c.daily_limit)
        print(f"{c.id:36}  {c.name[:20]:20}  {limit:>11}  {c.accepted_today:>9}  "
              f"{c.retention_hours:>8}h  {c.active_keys}")
    return 0


def cmd_connections_set(args: argparse.Namespace) -> int:
    from sluice.store import connections

    changes: dict[str, Any] = {}
    if args.daily_limit is not msgspec.UNSET:
        changes["daily_limit"] = args.daily_limit
    if args.retention_hours is not None:
        changes["retention_hours"] = args.retention_hours
    broker = {k: v for k, v in (("broker_url", args.broker),
                                ("result_backend_url", args.result_backend))
              if v is not msgspec.UNSET}
    if not changes and not broker and args.capture_args is None:
        return fail("nothing to change: give --daily-limit, --retention-hours, --broker, "
                    "--result-backend or --capture-args")
    with migrated_db() as conn:
        if not connections.set_limits(conn, args.connection_id, **changes) or (
                broker and not connections.set_broker(conn, args.connection_id, **broker)):
            return fail(f"no connection {args.connection_id}")
        if args.capture_args is not None:
            connections.set_capture_args(conn, args.connection_id, args.capture_args == "on")
    print("updated")
    return 0


# keys ----------------------------------------------------------------------------------------

def cmd_keys_create(args: argparse.Namespace) -> int:
    from sluice.store import connections, keys

    with migrated_db() as conn:
        if connections.get_connection(conn, args.connection) is None:
            return fail(f"no connection {args.connection}")
        key = keys.create_key(conn, args.connection, args.scope, name=args.name)
    if args.json:
        print_json({"key_id": key.id, "connection_id": args.connection, "api_key": key.api_key,
                     "scopes": key.scopes})
    else:
        print(f"key_id:  {key.id}")
        print(f"scopes:  {','.join(key.scopes)}")
        print(f"api_key: {key.api_key}")
        print("(the key is shown only this once; store it now)", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from sluice.store import connections, keys

    with migrated_db() as conn:
        if connections.get_connection(conn, args.connection) is None:
            return fail(f"no connection {args.connection}")
        items = keys.list_keys(conn, args.connection)
    if args.json:
        print_json(items)
        return 0
    print(f"{'KEY ID':20}  {'PREFIX':16}  {'SCOPES':28}  {'CREATED':20}  STATUS")
    for k in items:
        status = "revoked" if k.revoked_at else "active"
        print(f"{k.id:20}  {k.prefix + '...':16}  {','.join(k.scopes):28}  "
              f"{k.created_at:%Y-%m-%d %H:%M:%S}   {status}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from sluice.store import keys

    with migrated_db() as conn:
        if not keys.revoke(conn, args.key_id):
            return fail(f"no key {args.key_id}")
    print(f"revoked {args.key_id}")
    return 0


# wiring --------------------------------------------------------------------------------------

def _broker_options(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--broker", type=_url, default=default, metavar="URL",
                   help="the Celery broker commands act on (a secret: never shown back; "
                        "'none' clears it)")
    p.add_argument("--result-backend", type=_url, default=default, metavar="URL",
                   help="the Celery result backend, where retries find task arguments "
                        "(result_extended)")


def add_commands(sub: Any) -> None:
    conns = sub.add_parser("connections", help="create and list connections")
    csub = conns.add_subparsers(dest="connections_command", required=True)
    p = csub.add_parser("create", parents=[COMMON],
                        help="create a connection and print its first API key")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help='print {"connection_id", "api_key"}')
    p.add_argument("--daily-limit", type=_limit, default=None, metavar="N",
                   help="accepted events per UTC day (default: unlimited)")
    p.add_argument("--retention-hours", type=_hours,
                   default=DEFAULT_RETENTION_HOURS, metavar="H",
                   help="keep events and read models this long (default: 168 = 7 days)")
    p.add_argument("--scope", action="append", choices=SCOPES,
                   help="scope of the first key (repeatable; default: ingest and read)")
    p.add_argument("--admin", action="store_true",
                   help="give the first key every scope, admin included")
    p.add_argument("--endpoint", default=os.environ.get("SLUICE_ENDPOINT", DEFAULT_ENDPOINT),
                   metavar="URL", help="the server's base URL, for the printed settings and "
                                       "dashboard link (default: SLUICE_ENDPOINT, else "
                                       f"{DEFAULT_ENDPOINT})")
    _broker_options(p, None)
    p.set_defaults(func=cmd_connections_create)
    p = csub.add_parser("list", parents=[COMMON],
                        help="list connections with quota, usage today and retention")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connections_list)
    p = csub.add_parser("set", parents=[COMMON],
                        help="change a connection's daily limit or retention")
    p.add_argument("connection_id")
    p.add_argument("--daily-limit", type=_limit, default=msgspec.UNSET, metavar="N|none")
    p.add_argument("--retention-hours", type=_hours, default=None, metavar="H")
    p.add_argument("--capture-args", choices=("on", "off"), default=None,
                   help="keep task arguments and results that the SDK or agent send "
                        "(default: off, they are dropped before the log)")
    _broker_options(p, msgspec.UNSET)
    p.set_defaults(func=cmd_connections_set)

    keyp = sub.add_parser("keys", help="create, list and revoke API keys")
    ksub = keyp.add_subparsers(dest="keys_command", required=True)
    p = ksub.add_parser("create", parents=[COMMON], help="mint an API key (shown once)")
    p.add_argument("--connection", required=True, metavar="ID")
    p.add_argument("--scope", action="append", choices=SCOPES,
                   help="repeatable; default: all scopes")
    p.add_argument("--name", default=None, help="a label for listings")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_create)
    p = ksub.add_parser("list", parents=[COMMON], help="list a connection's keys (prefixes only)")
    p.add_argument("--connection", required=True, metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_list)
    p = ksub.add_parser("revoke", parents=[COMMON], help="revoke a key at once")
    p.add_argument("key_id")
    p.set_defaults(func=cmd_keys_revoke)
