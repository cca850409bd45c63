"""`sluice serve` sends small writes at once on every connection, including through the socket
uvicorn shares between `--workers` processes (where asyncio leaves Nagle's algorithm on)."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from sluice.api.http_protocol import NoDelayHTTPProtocol
from sluice.cli import server as cli_server


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def shared_socket_server() -> Iterator[tuple[uvicorn.Server, int]]:
    """Our protocol under uvicorn, serving on a socket bound as for `--workers` > 1."""
    config = uvicorn.Config(_ok, host="127.0.0.1", port=0, http=NoDelayHTTPProtocol,
                            lifespan="off", log_config=None)
    # Bound with protocol 0, as uvicorn binds its shared socket in the releases that made
    # this matter (later ones pass TCP's number): asyncio then leaves Nagle on, and only
    # our protocol turns it off.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.set_inheritable(True)
    assert sock.proto == 0  # why asyncio does not turn Nagle off on its connections itself
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield server, sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_kept_alive_connections_have_nagle_off(
        shared_socket_server: tuple[uvicorn.Server, int]) -> None:
    server, port = shared_socket_server
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for _ in range(2):  # the same kept-alive connection
            client.request("GET", "/")
            response = client.getresponse()
            assert (response.status, response.read()) == (200, b"ok")
        connections = list(server.server_state.connections)
        assert len(connections) == 1
        sock = connections[0].transport.get_extra_info("socket")  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_runs_uvicorn_with_the_no_delay_protocol(
        monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setenv("SLUICE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    args = argparse.Namespace(workers=workers, host="127.0.0.1", port=0, verbose=False)
    monkeypatch.setattr(cli_server, "served_app", lambda: "app")
    assert cli_server.cmd_serve(args) == 0
    assert seen["http"] is NoDelayHTTPProtocol
