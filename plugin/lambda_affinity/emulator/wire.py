"""A minimal HTTP/1.1 server on gevent's StreamServer.

Every front end (Invoke API, Function URLs, introspection) and every
environment's Runtime API speaks through this. It is small on purpose: on
this hot path gevent.pywsgi's request machinery costs ~300 us more per invoke
than a bare parser (design.md section 10). It does keep-alive, pipelining,
`Expect: 100-continue`, Content-Length and chunked bodies, with every buffer
bounded: request line and header lines, header count, body size.
"""
from __future__ import annotations

import socket
import time
from http import HTTPStatus
from urllib.parse import unquote

from gevent.server import StreamServer

MAX_LINE = 16384
MAX_HEADERS = 100
# Bytes of an oversized body read and thrown away so the client sees our
# answer rather than a reset; beyond it the connection is simply closed.
DRAIN_LIMIT = 32 * 1024 * 1024

_REASONS = {s.value: s.phrase for s in HTTPStatus}


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
            if not raw.isdigit():
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
    """What a server serves. `max_body`: bodies above it go to `too_large`."""

    max_body = 6 * 1024 * 1024

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


def encode_response(resp: Response, keep_alive: bool) -> bytes:
    body = resp.body
    out = [b"HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: %d\r\n" % (
        resp.status, _REASONS.get(resp.status, "Unknown").encode(), _Date.get(), len(body))]
    for name, value in resp.headers:
        out.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    out.append(b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n")
    out.append(body)
    return b"".join(out)


def _read_line(rfile) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise BadRequest("header line too long")
    return line


def read_head(rfile, peer) -> Request | None:
    """Parse a request line and headers; None on a clean end of stream."""
    line = _read_line(rfile)
    while line in (b"\r\n", b"\n"):  # tolerated between pipelined requests
        line = _read_line(rfile)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line")
    header_list = []
    while True:
        line = _read_line(rfile)
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise BadRequest("connection closed inside the headers")
        if len(header_list) >= MAX_HEADERS:
            raise BadRequest("too many headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header line")
        header_list.append((name, value.strip()))
    return Request(parts[0], parts[1], parts[2], header_list, peer)


def _read_chunked(rfile, limit: int) -> bytes | None:
    """The chunked body, or None once it exceeds `limit` (the rest is discarded)."""
    parts, total, over = [], 0, False
    while True:
        size_line = _read_line(rfile)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("malformed chunk size") from None
        if size == 0:
            while _read_line(rfile) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return None if over else b"".join(parts)
        total += size
        if total > DRAIN_LIMIT:
            raise BadRequest("chunked body far over the limit")
        data = rfile.read(size)
        if len(data) != size:
            raise BadRequest("connection closed inside the body")
        _read_line(rfile)
        if total > limit:
            over = True
            parts = []
        else:
            parts.append(data)


def _discard(rfile, n: int) -> None:
    while n > 0:
        chunk = rfile.read(min(n, 65536))
        if not chunk:
            return
        n -= len(chunk)


def connection_handler(app: App):
    """A StreamServer handler serving `app` on each connection until it closes."""

    def handle(sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        rfile = sock.makefile("rb")
        peer = address[0] if isinstance(address, tuple) else "127.0.0.1"
        try:
            while True:
                try:
                    req = read_head(rfile, peer)
                    if req is None:
                        return
                    resp = _read_body_and_handle(app, req, sock, rfile)
                except BadRequest as exc:
                    sock.sendall(encode_response(Response(400, [("Content-Type", "text/plain")], str(exc).encode()), False))
                    return
                keep = req.keep_alive and not resp.close
                sock.sendall(encode_response(resp, keep))
                if not keep:
                    return
        except (OSError, ConnectionError):
            return
        finally:
            rfile.close()
            sock.close()

    return handle


def _read_body_and_handle(app: App, req: Request, sock, rfile) -> Response:
    limit = app.max_body
    if req.length is not None and req.length > limit:
        resp = app.too_large(req)
        if req.expect_continue or req.length > DRAIN_LIMIT:
            resp.close = True  # the client has not sent the body, or it is too big to swallow
        else:
            _discard(rfile, req.length)
        return resp
    if req.expect_continue:
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if req.chunked:
        body = _read_chunked(rfile, limit)
        if body is None:
            return app.too_large(req)
        req.body = body
    elif req.length:
        body = rfile.read(req.length)
        if len(body) != req.length:
            raise BadRequest("connection closed inside the body")
        req.body = body
    return app.handle(req)


def make_server(app: App, host: str, port: int, spawn="default") -> StreamServer:
    server = StreamServer((host, port), connection_handler(app), spawn=spawn)
    server.init_socket()
    return server
