"""What the commands share: options, the database they work on, JSON output, failures,
progress."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import psycopg

_ENC = msgspec.json.Encoder()

# Options every sub-command also takes after its name (`sluice serve --data-dir D`); SUPPRESS
# keeps an absent one from overriding the same option given before the command.
COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                    help="debug logging, and the embedded PostgreSQL's own output")
COMMON.add_argument("--data-dir", default=argparse.SUPPRESS, metavar="DIR",
                    help="data directory (default: SLUICE_DATA_DIR, else the user's data dir)")


def database() -> str:
    """The database's URL, starting the embedded one if that is it; says on stderr which
    database it is (stdout stays for the command's output, JSON included)."""
    from sluice.store.db import database_url, describe_database

    url = database_url()
    print(f"sluice: database: {describe_database()}", file=sys.stderr, flush=True)
    return url


@contextmanager
def migrated_db() -> Iterator[psycopg.Connection]:
    """A migrated database (first use of a fresh embedded data dir works too)."""
    import psycopg

    from sluice.store import partitions
    from sluice.store.migrations import migrate

    with psycopg.connect(database(), autocommit=True) as conn:
        migrate(conn)
        partitions.ensure_window(conn)
        yield conn


def print_json(value: Any) -> None:
    print(_ENC.encode(value).decode())


def fail(message: str) -> int:
    print(f"sluice: {message}", file=sys.stderr)
    return 2


def progress_bar() -> Callable[[int, int], None]:
    """Draws `[####....] done/total events (rate events/s, time left)` on stderr."""
    started = time.perf_counter()
    last_draw = [0.0]

    def draw(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last_draw[0] < 0.2 and done < total:
            return
        last_draw[0] = now
        width = 30
        filled = width if total == 0 else int(width * min(done, total) / total)
        rate = done / max(now - started, 1e-9)
        left = (total - done) / rate if rate > 0 and total > done else 0.0
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} events "
            f"({rate:,.0f} events/s, {left:,.0f} s left)"
        )
        sys.stderr.flush()

    return draw
