"""The command executor: a tracked processor (`service.processors`) that carries out each
`command.requested` once, on the connection's broker, and appends its outcome.

Exactly once in the log: the page that holds a request is one transaction (the command's
row locked, the broker acted on, the outcome appended, the position moved), and one runner
per database holds the processor. A crash between acting and committing re-runs the page:
a revoke again (harmless), a retry published again under the same task id (derived from the
command id), which Sluice folds into the same job.

Connections without a broker are left to an agent executor (`sluice agent
--execute-commands`, which claims through the API). A tick picks up what waited too long
(a broker set after the request) and closes bulk actions whose last jobs two executors
finished at once.

Revokes are re-sent to a worker that comes online (Celery keeps revokes in memory only),
as long as the revoked job has not ended and has not expired; once on `worker.online` and
once more on that worker's next heartbeat, when its control channel is surely listening.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Final

import msgspec
import psycopg

from sluice.agent.executor import BrokerDown
from sluice.domain import commands as cmd
from sluice.domain.commands import Spec
from sluice.domain.events import COMMAND_REQUESTED, WORKER_HEARTBEAT, WORKER_ONLINE, Event
from sluice.log.event_log import StoredEvent
from sluice.store import connections

from . import commands
from .brokers import Clients
from .processors import Processor

log = logging.getLogger(__name__)
NAME: Final = "commands"
STALE_S: Final = 30.0  # a request still waiting this long is picked up by the tick
RESEND_HORIZON_S: Final = 7 * 86400.0  # revokes older than this are not re-sent
FOLLOW_UP_S: Final = 60.0  # a heartbeat this soon after online gets the revokes again
MAX_RESEND: Final = 10_000


def _expired(expires: str | None, now: float) -> bool:
    if not expires:
        return False
    try:
        at = dt.datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        return False
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.timestamp() < now


class CommandExecutor(Processor):
    name = NAME
    kinds = (COMMAND_REQUESTED, WORKER_ONLINE, WORKER_HEARTBEAT)
    page_size = 1000
    interval_s = 10.0

    def __init__(self, clients: Clients | None = None, *, stale_s: float = STALE_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.clients = clients or Clients()
        self.stale_s = stale_s
        self.clock = clock
        # hostname -> until when its next heartbeat gets the revokes again
        self._follow_up: dict[tuple[str, str], float] = {}

    def close(self) -> None:
        self.clients.close()

    # the log

    def handle(self, conn: psycopg.Connection, connection_id: str,
               events: list[StoredEvent]) -> list[Event]:
        ids = [e.event.extensions["command_id"] for e in events
               if e.event.kind == COMMAND_REQUESTED and "total" not in e.event.extensions
               and isinstance(e.event.extensions.get("command_id"), str)]
        out = self.execute(conn, connection_id, ids) if ids else []
        online = self._came_online(connection_id, events)
        if online:
            out += self._resend(conn, connection_id, online)
        return out

    def execute(self, conn: psycopg.Connection, connection_id: str, ids: Sequence[str], *,
                skip_locked: bool = False) -> list[Event]:
        """Carry out these commands (those still requested) if the server can reach the
        connection's broker; their outcome events."""
        broker = connections.broker_of(conn, connection_id)
        if broker is None or not broker.broker_url:
            return []  # an agent executor's
        specs = commands.lock_requested(conn, connection_id, ids, skip_locked=skip_locked)
        if not specs:
            return []
        outcomes = self.clients.get(connection_id, broker).execute(specs)
        return commands.outcome_events(conn, connection_id, specs, outcomes, self.clock())

    # revokes again

    def _came_online(self, connection_id: str, events: list[StoredEvent]
                     ) -> dict[str, str]:
        """{hostname: the key of the event that calls for its revokes again}."""
        now = self.clock()
        hosts: dict[str, str] = {}
        for stored in events:
            e = stored.event
            if not e.hostname:
                continue
            key = (connection_id, e.hostname)
            if e.kind == WORKER_ONLINE:
                hosts[e.hostname] = e.dedup_key or f"p{stored.position}"
                self._follow_up[key] = now + FOLLOW_UP_S
            elif e.kind == WORKER_HEARTBEAT and self._follow_up.get(key, 0.0) > now:
                del self._follow_up[key]
                hosts[e.hostname] = e.dedup_key or f"p{stored.position}"
        if len(self._follow_up) > 10_000:
            self._follow_up = {k: v for k, v in self._follow_up.items() if v > now}
        return hosts

    def _resend(self, conn: psycopg.Connection, connection_id: str, hosts: dict[str, str]
                ) -> list[Event]:
        broker = connections.broker_of(conn, connection_id)
        if broker is None or not broker.broker_url:
            return []
        now = self.clock()
        rows = conn.execute(commands.Q["active_revokes"], {
            "connection_id": connection_id, "horizon_s": RESEND_HORIZON_S,
            "limit": MAX_RESEND}).fetchall()
        specs = [Spec(command_id=command_id, action="revoke", job_id=job_id,
                      params=msgspec.json.decode(params) if params else {})
                 for command_id, job_id, params, expires in rows
                 if not _expired(expires, now)]
        if not specs:
            return []
        client = self.clients.get(connection_id, broker)
        out = []
        for hostname, answers in sorted(hosts.items()):
            try:
                client.resend_revokes(hostname, specs)
            except BrokerDown as exc:
                log.warning("revokes not re-sent to %s: %s", hostname, exc)
                continue
            out.append(cmd.resent(hostname, [s.command_id for s in specs], at=now,
                                  answers=answers))
        return out

    # the clock

    def tick(self, conn: psycopg.Connection, now: float) -> list[tuple[str, Event]]:
        out: list[tuple[str, Event]] = []
        waiting: dict[str, list[str]] = defaultdict(list)
        for connection_id, command_id in conn.execute(
                commands.Q["stale_requested"], {"age_s": self.stale_s, "limit": 1000}):
            waiting[connection_id].append(command_id)
        for connection_id, ids in waiting.items():
            out += [(connection_id, e)
                    for e in self.execute(conn, connection_id, ids, skip_locked=True)]
        for connection_id, bulk_id, total, failed in conn.execute(
                commands.Q["open_bulks"], {"age_s": self.stale_s}):
            out.append((connection_id, cmd.finished(
                cmd.Outcome(command_id=bulk_id, ok=failed == 0,
                            reason=cmd.bulk_reason(failed, total)), at=now)))
        return out
