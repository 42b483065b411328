"""A minimal HTTP/1.1 server on gevent's StreamServer.

Every front end (Invoke API, Function URLs, introspection) and every
environment's Runtime API speaks through this. It is small on purpose: on
this hot path gevent.pywsgi's request machinery costs ~300 us more per invoke
than a bare parser (design.md section 10). It does keep-alive, pipelining,
`Expect: 100-continue`, Content-Length and chunked bodies, with every buffer
bounded: request line and header lines, header count, body size.
"""
from __future__ import annotations

import re
import socket
import time
from http import HTTPStatus
from urllib.parse import unquote

from gevent.server import StreamServer

MAX_LINE = 16384
MAX_HEAD = 65536          # request line and headers together
MAX_HEADERS = 100
# Bytes of an oversized body read and thrown away so the client sees our
# answer rather than a reset; beyond it the connection is simply closed.
DRAIN_LIMIT = 32 * 1024 * 1024


class BadRequest(Exception):
    """The bytes on the wire are not HTTP we accept: answer 400 and close."""


class Request:
    __slots__ = ("method", "target", "path", "query", "version", "headers", "header_list", "body",
                 "keep_alive", "peer", "length", "chunked", "expect_continue")

    def __init__(self, method, target, version, header_list, peer):
        self.method = method
        self.target = target
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.version = version
        self.header_list = header_list
        headers: dict[str, str] = {}
        for name, value in header_list:
            key = name.lower()
            # Repeated headers are comma-joined, as RFC 9110 and Function URLs do.
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        self.headers = headers
        self.peer = peer
        self.body = b""
        conn = headers.get("connection", "").lower()
        self.keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.expect_continue = headers.get("expect", "").lower() == "100-continue"
        if self.chunked:
            self.length = None
        else:
            raw = headers.get("content-length", "0")
            if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is True, int("²") fails
                raise BadRequest(f"bad Content-Length {raw!r}")
            self.length = int(raw)

    def unquoted_path(self) -> str:
        return unquote(self.path)


class Response:
    __slots__ = ("status", "headers", "body", "close")

    def __init__(self, status: int, headers: list | None = None, body: bytes = b"", close: bool = False):
        self.status = status
        self.headers = headers or []
        self.body = body
        self.close = close


class App:
    """What a server serves. `max_body`: bodies above it go to `too_large`;
    `idle_timeout_s`: a client that sends nothing for that long (between
    requests or inside one) is disconnected, so slow or stalled clients
    cannot hold connection slots forever. An invocation in flight is not
    idle time: the socket is not read while the handler runs."""

    max_body = 6 * 1024 * 1024
    idle_timeout_s = 120.0

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def too_large(self, req: Request) -> Response:
        return Response(413, [("Content-Type", "text/plain")], b"Request Entity Too Large")


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
        status, _Date.get(), len(body), headers, _KEEP_ALIVE if keep_alive else _CLOSE, body)


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


class Reader:
    """Buffered reads from a socket, parsing heads with one search per request
    (cheaper than a readline per header through socket.makefile)."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf = self.buf + data if self.buf else data
        return True

    def pending(self) -> bool:
        """Is (part of) another request already here (pipelining)?"""
        return bool(self.buf)

    def has_head(self) -> bool:
        """Is a whole request head already buffered?"""
        buf = self.buf
        if buf.startswith(b"\r\n"):
            self.buf = buf = buf.lstrip(b"\r\n")
        return b"\r\n\r\n" in buf

    def head(self) -> bytes | None:
        """The next request's head without its final CRLF CRLF; None on a clean end."""
        while True:
            buf = self.buf
            if buf.startswith(b"\r\n"):  # tolerated between pipelined requests
                self.buf = buf = buf.lstrip(b"\r\n")
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                self.buf = buf[i + 4:]
                return buf[:i]
            if len(buf) > MAX_HEAD:
                raise BadRequest("request head too large")
            if not self._fill():
                if self.buf:
                    raise BadRequest("connection closed inside the headers")
                return None

    def exact(self, n: int) -> bytes:
        if len(self.buf) >= n:
            data, self.buf = self.buf[:n], self.buf[n:]
            return data
        parts, have = [self.buf], len(self.buf)
        self.buf = b""
        while have < n:
            chunk = self.sock.recv(min(n - have, 1 << 20))
            if not chunk:
                raise BadRequest("connection closed inside the body")
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > MAX_LINE:
                raise BadRequest("line too long")
            if not self._fill():
                raise BadRequest("connection closed inside a chunked body")

    def discard(self, n: int) -> None:
        while n > 0:
            if not self.buf and not self._fill():
                return
            take = min(n, len(self.buf))
            self.buf = self.buf[take:]
            n -= take


def parse_head(head: bytes, peer) -> Request:
    lines = head.decode("latin-1").split("\r\n")  # one decode for the whole head
    if len(lines) > MAX_HEADERS + 1:
        raise BadRequest("too many headers")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line")
    header_list = []
    for raw in lines[1:]:
        name, sep, value = raw.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header line")
        header_list.append((name, value.strip()))
    return Request(parts[0], parts[1], parts[2], header_list, peer)


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


def _read_chunked(reader: Reader, limit: int) -> bytes | None:
    """The chunked body, or None once it exceeds `limit` (the rest is discarded)."""
    parts, total, over = [], 0, False
    while True:
        field = reader.line().split(b";", 1)[0].strip()
        # int(_, 16) would also take "-1a", "+1a" and "0x1a": a negative size
        # would slip past every limit below
        if not _CHUNK_SIZE.fullmatch(field):
            raise BadRequest("malformed chunk size")
        size = int(field, 16)
        if size == 0:
            while reader.line():  # trailers, up to the empty line
                pass
            return None if over else b"".join(parts)
        total += size
        if total > DRAIN_LIMIT:
            raise BadRequest("chunked body far over the limit")
        if total > limit:  # over: drain without holding, the answer is 413 anyway
            over = True
            parts = []
            reader.discard(size)
        else:
            parts.append(reader.exact(size))
        reader.exact(2)  # the CRLF after the chunk


def connection_handler(app: App):
    """A StreamServer handler serving `app` on each connection until it closes."""

    def handle(sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a Unix socket)
        sock.settimeout(app.idle_timeout_s)  # a timed-out read is an OSError: the connection closes
        reader = Reader(sock)
        peer = address[0] if isinstance(address, tuple) and address else "127.0.0.1"
        held: list = []
        try:
            while True:
                try:
                    head = reader.head()
                    if head is None:
                        return
                    req = parse_head(head, peer)
                    resp = _read_body_and_handle(app, req, sock, reader)
                except BadRequest as exc:
                    held.append(encode_response(Response(400, [("Content-Type", "text/plain")], str(exc).encode()), False))
                    send_all(sock, b"".join(held))
                    return
                keep = req.keep_alive and not resp.close
                held.append(encode_response(resp, keep))
                if not flush(sock, held, keep, reader):
                    return
        except (OSError, ConnectionError):
            return
        finally:
            sock.close()

    return handle


def flush(sock, held: list, keep: bool, reader: "Reader") -> bool:
    """Send the answers held for a connection; False when it is to close.
    With the next request already here (a pipelining client), hold on and
    answer both in one write: one send and one wake-up fewer."""
    if keep and reader.pending():
        return True
    send_all(sock, held[0] if len(held) == 1 else b"".join(held))
    held.clear()
    return keep


def _read_body_and_handle(app: App, req: Request, sock, reader: Reader) -> Response:
    limit = app.max_body
    if req.length is not None and req.length > limit:
        resp = app.too_large(req)
        if req.expect_continue or req.length > DRAIN_LIMIT:
            resp.close = True  # the client has not sent the body, or it is too big to swallow
        else:
            reader.discard(req.length)
        return resp
    if req.expect_continue:
        send_all(sock, b"HTTP/1.1 100 Continue\r\n\r\n")
    if req.chunked:
        body = _read_chunked(reader, limit)
        if body is None:
            return app.too_large(req)
        req.body = body
    elif req.length:
        req.body = reader.exact(req.length)
    return app.handle(req)


def make_server(app: App, host: str, port: int, spawn="default") -> StreamServer:
    server = StreamServer((host, port), connection_handler(app), spawn=spawn)
    server.init_socket()
    return server
