"""The HTTP protocol `sluice serve` runs under uvicorn: uvicorn's own, with Nagle's algorithm
off on every TCP connection.

asyncio turns Nagle off only on sockets whose protocol number is TCP's, and uvicorn binds the
socket it shares between `--workers` processes with protocol 0, so their connections kept
Nagle on. A response goes out as two writes (head, then body): on a kept-alive connection
the body then waited for the client's delayed ACK, ~40 ms per request, four times the work
of ingesting a batch of 500 events.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send small writes at once on this transport's TCP socket (a no-op for others)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """What uvicorn's `--http auto` picks (httptools if installed, else h11), Nagle off."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        no_delay(transport)
        super().connection_made(transport)
