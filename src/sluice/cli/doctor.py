"""`sluice doctor`: each connection's setup findings, as `GET /api/connection/health` gives
them, read from the database like the other admin commands. Exit status 1 when a finding
is a warning or an error."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any, Final

from .common import fail, migrated_db, print_json

_SPAN_RE: Final = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_S: Final = 86400


def _span(value: str) -> float:
    m = _SPAN_RE.match(value)
    if m is None:
        raise argparse.ArgumentTypeError(f"{value!r}: use a duration like 15m, 1h")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if not 60 <= seconds <= _MAX_S:
        raise argparse.ArgumentTypeError("must be between 1m and 24h")
    return float(seconds)


def _print_report(name: str, report: Any) -> None:
    minutes = report.window_s / 60
    print(f"connection {report.connection_id} ({name}): {report.status}, "
          f"{report.events} events in the last {minutes:g} min"
          + (" (the newest of them)" if report.capped else ""))
    if not report.findings:
        print("  no finding")
    for f in report.findings:
        print(f"  {f.severity.upper():8} {f.code}: {f.message}")
        print(f"  {'':8} fix: {f.setting}")
        print(f"  {'':8} evidence: {json.dumps(f.evidence, default=str)}")


def cmd_doctor(args: argparse.Namespace) -> int:
    from sluice.service import connection_health
    from sluice.store import connections

    with migrated_db() as conn:
        if args.connection is not None:
            found = connections.get_connection(conn, args.connection)
            if found is None:
                return fail(f"no connection {args.connection}")
            targets = [found]
        else:
            targets = connections.list_connections(conn)
        reports = [(c.name, connection_health.report(
            conn, c.id, window_s=args.window, silence_s=args.silence)) for c in targets]
    if args.json:
        if args.connection is not None:
            print_json(reports[0][1])
        else:
            print_json([r for _, r in reports])
    else:
        if not reports:
            print("no connection yet: sluice connections create NAME")
        for name, report in reports:
            _print_report(name, report)
    return 1 if any(r.status != "ok" for _, r in reports) else 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check each connection's Celery setup from what its "
                                      "events show (missing settings, silence, clock skew)")
    p.add_argument("--connection", default=None, metavar="ID",
                   help="only this connection (default: every one)")
    p.add_argument("--json", action="store_true",
                   help="print the report (a list of them without --connection)")
    p.add_argument("--window", type=_span, default=900.0, metavar="SPAN",
                   help="recent traffic to look at (default: 15m)")
    p.add_argument("--silence", type=_span, default=600.0, metavar="SPAN",
                   help="no event for this long is a finding (default: 10m)")
    p.set_defaults(func=cmd_doctor)
