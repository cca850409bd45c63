"""`sluice agent --execute-commands`: the command executor next to the broker, for servers
that cannot reach it. It claims commands over the API (`POST /api/commands/claim`, a key
with `operate`), carries them out with the same executor as the server
(`agent.executor`), and reports the outcomes (`POST /api/commands/results`). A claim the
agent never reports (it died) is handed out again after the server's lease; the broker side
is idempotent where it can be (revoke; a retry's task id is derived from its command).
Without the flag the agent never asks for commands: it stays read-only.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Final

import msgspec
import urllib3

from sluice.domain.commands import Outcome, Spec

from .backoff import Backoff
from .executor import BrokerExecutor

log = logging.getLogger("sluice.agent.commands")

POLL_S: Final = 1.0  # between claims when there was nothing to do
CLAIM_LIMIT: Final = 500


class _Claimed(msgspec.Struct):
    items: list[Spec]


class _Report(msgspec.Struct):
    results: list[Outcome]


_DECODE: Final = msgspec.json.Decoder(_Claimed)


class CommandLoop:
    """Claim, execute, report, until `stop` is set. Never raises: an API or broker outage
    is waited out (the broker's shows as failed commands, with the reason)."""

    def __init__(self, endpoint: str, api_key: str, broker_url: str, *,
                 result_backend_url: str | None = None, stop: threading.Event | None = None,
                 name: str | None = None, poll_s: float = POLL_S, timeout: float = 30.0
                 ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.stop = stop or threading.Event()
        self.name = name or f"agent@{socket.gethostname()}"
        self.poll_s = poll_s
        self.executor = BrokerExecutor(broker_url, result_backend_url)
        self._headers = {"Authorization": f"Bearer {api_key}",
                         "Content-Type": "application/json"}
        self._http = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False,
                                         timeout=urllib3.Timeout(connect=5.0, read=timeout))
        self._backoff = Backoff(maximum=30.0)
        self.executed = 0  # commands carried out and reported

    def __repr__(self) -> str:  # never the key, never the broker's password
        return f"CommandLoop({self.endpoint!r}, name={self.name!r})"

    def _post(self, path: str, body: bytes) -> bytes:
        response = self._http.request("POST", self.endpoint + path, body=body,
                                      headers=self._headers)
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {response.data[:200]!r}")
        return bytes(response.data)

    def round(self) -> int:
        """One claim, its execution and its report: how many commands it carried out."""
        claimed = _DECODE.decode(self._post("/api/commands/claim", msgspec.json.encode(
            {"executor": self.name, "limit": CLAIM_LIMIT}))).items
        if not claimed:
            return 0
        outcomes = self.executor.execute(claimed)
        self._post("/api/commands/results", msgspec.json.encode(_Report(outcomes)))
        self.executed += len(outcomes)
        return len(outcomes)

    def run(self) -> None:
        log.info("executing commands as %s", self.name)
        try:
            while not self.stop.is_set():
                try:
                    done = self.round()
                    self._backoff.reset()
                except Exception as exc:
                    delay = self._backoff.next_delay()
                    log.warning("command executor: %s; again in %.1fs",
                                str(exc)[:300], delay)
                    self.stop.wait(delay)
                    continue
                if done < CLAIM_LIMIT:
                    self.stop.wait(self.poll_s)
        finally:
            self.executor.close()
            self._http.clear()
