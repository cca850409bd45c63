"""`sluice` command line: serve | agent | demo | migrate | replay | purge | connections | keys.

Each command module adds its sub-commands (`add_commands`); each sets `func=handler`, where
`handler(args) -> int` is the exit status. Server dependencies load only in the commands
that use them. `--data-dir` and `--verbose` are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from . import admin, data, server

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
    return int(args.func(args))

