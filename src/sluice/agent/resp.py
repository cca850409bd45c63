"""A minimal RESP2 reader for a subscribed Redis connection.

redis-py's pub/sub reader costs tens of microseconds per message (a poll, a retry wrapper
and a dict per message); parsing the socket's bytes directly costs a few. After PSUBSCRIBE
a connection only carries arrays of bulk strings and integers (messages, confirmations,
pongs) or an error, so this reader handles exactly those.
"""

from __future__ import annotations

import socket
from typing import Final

_CRLF: Final = b"\r\n"
_RECV_BYTES: Final = 1 << 20

Frame = list[bytes | int | None]


class ServerError(Exception):
    """An error reply, e.g. NOPERM when the ACL forbids the subscription."""


class ParseError(Exception):
    pass


def parse_frames(data: bytes, frames: list[Frame]) -> int:
    """Append every complete frame in `data` to `frames`; return the bytes consumed."""
    n = len(data)
    pos = 0
    find = data.find
    while pos < n:
        kind = data[pos]
        end = find(_CRLF, pos)
        if end < 0:
            break
        if kind == 42 or kind == 62:  # '*' array, or '>' push should RESP3 be on
            count = int(data[pos + 1:end])
            p = end + 2
            items: Frame = []
            for _ in range(count):
                e = find(_CRLF, p)
                if e < 0:
                    return pos
                t = data[p]
                if t == 36:  # '$' bulk string
                    length = int(data[p + 1:e])
                    if length < 0:
                        items.append(None)
                        p = e + 2
                        continue
                    stop = e + 2 + length
                    if stop + 2 > n:
                        return pos
                    items.append(data[e + 2:stop])
                    p = stop + 2
                elif t == 58:  # ':' integer
                    items.append(int(data[p + 1:e]))
                    p = e + 2
                else:
                    raise ParseError(f"unexpected RESP type {chr(t)!r} in an array")
            frames.append(items)
            pos = p
        elif kind == 45:  # '-' error
            raise ServerError(data[pos + 1:end].decode("utf-8", "replace"))
        elif kind == 43:  # '+' simple string: nothing we wait for
            pos = end + 2
        else:
            raise ParseError(f"unexpected RESP type {chr(kind)!r}")
    return pos


class FrameReader:
    """Reads frames from a socket, keeping any incomplete tail for the next read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tail = b""

    def read(self) -> list[Frame]:
        """Block (up to the socket's timeout) for data; return the complete frames.
        Raises ConnectionError when the server closed the connection."""
        chunk = self.sock.recv(_RECV_BYTES)
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data = self.tail + chunk if self.tail else chunk
        frames: list[Frame] = []
        used = parse_frames(data, frames)
        self.tail = data[used:]
        return frames
