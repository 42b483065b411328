"""A response on the wire: the Response an app returns, its HTTP/1.1 bytes,
and sending them (the other half of `wire`, which reads requests and serves
connections). Every server of the emulator writes through this."""

from __future__ import annotations

import socket
import time
from http import HTTPStatus


class Response:
    __slots__ = ("status", "headers", "body", "close")

    def __init__(self, status: int, headers: list | None = None, body: bytes = b"", close: bool = False):
        self.status = status
        self.headers = headers or []
        self.body = body
        self.close = close


class _Date:
    """The Date header, formatted once per second."""

    second = 0
    value = b""

    @classmethod
    def get(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.value = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode()
        return cls.value


_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_KEEP_ALIVE = b"Connection: keep-alive\r\n\r\n"
_CLOSE = b"Connection: close\r\n\r\n"


def encode_response(resp: Response, keep_alive: bool) -> bytes:
    body = resp.body
    status = _STATUS_LINES.get(resp.status) or b"HTTP/1.1 %d Unknown\r\n" % resp.status
    headers = "".join([f"{name}: {value}\r\n" for name, value in resp.headers]).encode("latin-1", "replace")
    return b"%sDate: %s\r\nContent-Length: %d\r\n%s%s%s" % (
        status,
        _Date.get(),
        len(body),
        headers,
        _KEEP_ALIVE if keep_alive else _CLOSE,
        body,
    )


def send_all(sock, data: bytes) -> None:
    """`sock.sendall(data)` on a gevent socket, minus gevent's per-call
    overhead (a getsockopt and a few frames) when the kernel takes it all at
    once, as it does for every reply but huge ones."""
    try:
        sent = sock._sock.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


def lingering_close(sock, seconds: float = 1.0, limit: int = 1 << 20) -> None:
    """Close after an answer sent while the client may still be sending: stop
    writing, then read and drop what comes for a moment. Closing with unread
    bytes would send a reset, and the client could lose the answer."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(seconds)
        deadline = time.monotonic() + seconds
        while limit > 0 and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return
            limit -= len(data)
    except OSError:
        pass
