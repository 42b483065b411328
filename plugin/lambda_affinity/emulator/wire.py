"""A minimal HTTP/1.1 server on gevent's StreamServer.

Every front end (Invoke API, Function URLs, introspection) and every
environment's Runtime API speaks through this. It is small on purpose: on
this hot path gevent.pywsgi's request machinery costs ~300 us more per invoke
than a bare server (docs/emulator.md, "Performance"). Parsing is llhttp's (httptools);
this module does keep-alive, pipelining, `Expect: 100-continue`,
Content-Length and chunked bodies, with every buffer bounded: request target,
head, header count, body size. Malformed input gets a precise 4xx and the
connection is closed.
"""

from __future__ import annotations

import socket
from collections import deque
from urllib.parse import unquote

import httptools
from gevent.server import StreamServer

from ..core import limits
from ..errors import LambdaAffinityError
from .response import Response, encode_response, lingering_close, send_all

MAX_LINE = 16384  # the request target
MAX_HEAD = 65536  # request line and headers together (431 beyond)
MAX_HEADERS = 100
# Bytes of an oversized body read and thrown away so the client sees our
# answer rather than a reset; beyond it the connection is simply closed.
DRAIN_LIMIT = 32 * 1024 * 1024


class BadRequest(LambdaAffinityError):
    """The bytes on the wire are not HTTP we accept: answer `status` and close,
    as the stream can no longer be trusted."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Request:
    __slots__ = (
        "method",
        "target",
        "path",
        "query",
        "version",
        "headers",
        "header_list",
        "body",
        "keep_alive",
        "peer",
        "length",
        "chunked",
        "expect_continue",
        "too_large",
    )

    def __init__(
        self, method: str, target: str, version: str, header_list: list, peer: str, keep_alive: bool | None = None
    ) -> None:
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
        self.too_large = False  # the body went over the app's limit (and was not kept)
        conn = headers.get("connection", "").lower()
        if keep_alive is None:
            keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        self.keep_alive = keep_alive
        te = headers.get("transfer-encoding")
        self.chunked = te is not None
        if te is not None:
            codings = [c.strip().lower() for c in te.split(",")]
            if codings[-1] != "chunked" or codings.count("chunked") > 1:
                # RFC 9112 6.3: the body's length cannot be known, 400 and close
                raise BadRequest(f"Transfer-Encoding {te!r} does not end in one chunked coding")
            if len(codings) > 1:  # RFC 9112 6.1: a coding we do not implement is 501
                raise BadRequest(f"unsupported Transfer-Encoding {te!r}: only chunked is implemented", 501)
        self.expect_continue = headers.get("expect", "").lower() == "100-continue"
        self.length = None if self.chunked else int(headers.get("content-length", "0"))

    def unquoted_path(self) -> str:
        return unquote(self.path)


class App:
    """What a server serves. `max_body`: bodies above it go to `too_large`;
    `idle_timeout_s`: a client that sends nothing for that long (between
    requests or inside one) is disconnected, so slow or stalled clients
    cannot hold connection slots forever. An invocation in flight is not
    idle time: the socket is not read while the handler runs."""

    max_body = limits.MAX_PAYLOAD
    idle_timeout_s = 120.0

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def too_large(self, req: Request) -> Response:
        return Response(413, [("Content-Type", "text/plain")], b"Request Entity Too Large")


class _Stop(Exception):
    """Raised from a parser callback: parse nothing more on this connection.
    httptools wraps it in HttpParserCallbackError (as `__context__`)."""


class Reader:
    """Requests from one connection, parsed by llhttp (through httptools: the
    parser Node.js and uvicorn use, fuzzed upstream; bench/emulator.py holds
    it against a hand parser and h11). llhttp is push-style: each recv is fed
    whole, so pipelined requests complete together and queue in `ready`.

    Limits hold however the bytes arrive: the request line and headers
    (`MAX_HEAD`, counted from the parsed fields, and from raw bytes for a
    field still incomplete), `MAX_HEADERS`, the same two for a chunked body's
    trailers (httptools buffers an unfinished trailer as it does a header),
    the app's body limit (413 via `App.too_large`, the body drained up to
    `DRAIN_LIMIT`, else closed).
    """

    __slots__ = (
        "sock",
        "peer",
        "max_body",
        "parser",
        "ready",
        "cur",
        "url",
        "header_list",
        "head_size",
        "head_raw",
        "in_message",
        "parts",
        "body_size",
        "error",
        "stopped",
        "in_trailer",
        "trailer_raw",
        "trailer_size",
        "trailers",
    )

    def __init__(self, sock, app: App, peer: str = "127.0.0.1") -> None:
        self.sock = sock
        self.peer = peer
        self.max_body = app.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.ready: deque = deque()  # whole requests not yet taken
        self.cur: Request | None = None  # head complete, body on its way
        self.url = b""
        self.header_list: list = []
        self.head_size = 0
        self.head_raw = 0  # bytes fed since this head began
        self.in_message = False
        self.parts: list = []
        self.body_size = 0
        self.error: BadRequest | None = None  # to raise once the requests before it are answered
        self.stopped = False
        # After a chunk header with no data yet (the last chunk's, before its
        # trailers): raw bytes fed since, and the trailer fields parsed.
        self.in_trailer = False
        self.trailer_raw = 0
        self.trailer_size = 0
        self.trailers = 0

    # -- what servers call ----------------------------------------------------------
    def request(self) -> Request | None:
        """The next whole request (`too_large` set when its body was refused);
        None when the client closed cleanly between requests."""
        ready = self.ready
        while not ready:
            if self.error is not None:
                raise self.error
            if self.stopped:
                return None  # nothing more is parsed here (the last answer closes the connection)
            cur = self.cur
            if cur is not None and cur.expect_continue:
                cur.expect_continue = False
                send_all(self.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            data = self.sock.recv(65536)
            if not data:
                if self.in_message:
                    raise BadRequest("connection closed inside a request")
                return None
            self._feed(data)
        return ready.popleft()

    def pending(self) -> bool:
        """Is (part of) another request already here (pipelining)? Stray CRLFs
        between requests do not count: RFC 9112 2.2 lets a server ignore them."""
        return bool(self.ready) or self.in_message or self.error is not None

    def has_head(self) -> bool:
        """Is a whole request head already here?"""
        return bool(self.ready) or self.cur is not None

    def _feed(self, data: bytes) -> None:
        if self.stopped:
            return
        if self.in_message and self.cur is None:
            self.head_raw += len(data)
        if self.in_trailer:
            self.trailer_raw += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # A callback stopped the parser (`_fail` has set `error` when
            # there is one), or failed itself: a bug, answered as 400.
            self.stopped = True
            if not isinstance(exc.__context__, _Stop) and self.error is None:
                self.error = BadRequest(f"malformed request: {exc}")
        except httptools.HttpParserUpgrade:
            # An Upgrade or CONNECT: answered as plain HTTP/1.1, then closed, as
            # the bytes after it are not HTTP to us.
            self.stopped = True
            if self.ready:
                self.ready[-1].keep_alive = False
            else:
                self.error = BadRequest("protocol upgrades are not supported", 501)
        except httptools.HttpParserError as exc:  # llhttp's own: the bytes are not HTTP
            self.stopped = True
            self.error = BadRequest(f"malformed request: {exc}")
        else:
            # Raw bytes bound what httptools buffers of a field not yet
            # complete (a callback sees it only whole). Not raised: the
            # requests already parsed are answered first.
            if self.in_message and self.cur is None and self.head_raw > MAX_HEAD + len(data):
                self._stop(BadRequest("request head too large", 431))
            elif self.in_trailer and self.cur is not None and self.trailer_raw > MAX_HEAD + len(data):
                self._stop(BadRequest("trailer section too large", 431))

    def _stop(self, error: BadRequest) -> None:
        self.error = error
        self.stopped = True

    def _fail(self, error: BadRequest):
        """From a callback: stop the parser, to answer `error`."""
        self._stop(error)
        raise _Stop

    # -- llhttp's callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        self.in_message = True
        self.url = b""
        self.header_list = []
        self.head_size = 0
        self.head_raw = 0
        self.in_trailer = False
        self.trailer_size = 0
        self.trailers = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if len(self.url) > MAX_LINE:
            self._fail(BadRequest(f"request target over {MAX_LINE} bytes", 414))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.cur is not None:  # a trailer after a chunked body: not kept, but bounded
            self.trailer_size += len(name) + len(value) + 4
            self.trailers += 1
            if self.trailer_size > MAX_HEAD:
                self._fail(BadRequest("trailer section too large", 431))
            if self.trailers > MAX_HEADERS:
                self._fail(BadRequest(f"more than {MAX_HEADERS} trailer fields", 431))
            return
        self.head_size += len(name) + len(value) + 4
        if self.head_size > MAX_HEAD:
            self._fail(BadRequest("request head too large", 431))
        if len(self.header_list) >= MAX_HEADERS:
            self._fail(BadRequest(f"more than {MAX_HEADERS} header fields", 431))
        self.header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._fail(BadRequest(f"HTTP/{version} is not supported", 505))
        try:
            req = Request(
                parser.get_method().decode("latin-1"),
                self.url.decode("latin-1"),
                "HTTP/" + version,
                self.header_list,
                self.peer,
                parser.should_keep_alive(),
            )
        except BadRequest as exc:
            self._fail(exc)
        self.cur = req
        self.parts = []
        self.body_size = 0
        # Too big to take: answer at once, and close when the client has
        # not sent the body (it waits for 100 Continue) or it is too big to drain.
        if req.length is not None and req.length > self.max_body and (req.expect_continue or req.length > DRAIN_LIMIT):
            req.too_large = True
            req.keep_alive = False
            self._done(req)
            raise _Stop

    def on_chunk_header(self) -> None:
        # Until data follows, bytes may be the last chunk's trailers.
        self.in_trailer = True
        self.trailer_raw = 0

    def on_body(self, data: bytes) -> None:
        self.in_trailer = False
        self.body_size += len(data)
        if self.body_size > self.max_body:
            req = self.cur
            assert req is not None  # httptools calls on_body only after on_headers_complete set it
            req.too_large = True
            self.parts = []  # drained, not held: the answer is 413 anyway
            if self.body_size > DRAIN_LIMIT:
                req.keep_alive = False
                self._done(req)
                raise _Stop
        else:
            self.parts.append(data)

    def on_message_complete(self) -> None:
        req = self.cur
        assert req is not None  # httptools calls this only after on_headers_complete set it
        parts = self.parts
        if not req.too_large and parts:
            req.body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._done(req)

    def _done(self, req: Request) -> None:
        req.expect_continue = False
        self.ready.append(req)
        self.cur = None
        self.parts = []
        self.in_message = False
        self.in_trailer = False


def connection_handler(app: App):
    """A StreamServer handler serving `app` on each connection until it closes."""

    def handle(sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a Unix socket)
        sock.settimeout(app.idle_timeout_s)  # a timed-out read is an OSError: the connection closes
        peer = address[0] if isinstance(address, tuple) and address else "127.0.0.1"
        reader = Reader(sock, app, peer)
        held: list = []
        try:
            while True:
                try:
                    got = read_and_handle(app, reader)
                except BadRequest as exc:
                    held.append(bad_request(exc))
                    send_all(sock, b"".join(held))
                    lingering_close(sock)
                    return
                if got is None:
                    return
                req, resp = got
                keep = req.keep_alive and not resp.close
                held.append(encode_response(resp, keep))
                if not flush(sock, held, keep, reader):
                    if req.too_large:
                        lingering_close(sock)
                    return
        except (OSError, ConnectionError):
            return
        finally:
            sock.close()

    return handle


def bad_request(exc: BadRequest) -> bytes:
    """The answer to a request we refuse to parse; the connection closes after it."""
    return encode_response(Response(exc.status, [("Content-Type", "text/plain")], str(exc).encode()), False)


def flush(sock, held: list, keep: bool, reader: Reader) -> bool:
    """Send the answers held for a connection; False when it is to close.
    With the next request already here (a pipelining client), hold on and
    answer both in one write: one send and one wake-up fewer."""
    if keep and reader.pending():
        return True
    send_all(sock, held[0] if len(held) == 1 else b"".join(held))
    held.clear()
    return keep


def read_and_handle(app: App, reader: Reader) -> tuple[Request, Response] | None:
    """The next request and the app's answer; None on a clean end."""
    req = reader.request()
    if req is None:
        return None
    return req, answer(app, req)


def answer(app: App, req: Request) -> Response:
    if not req.too_large:
        return app.handle(req)
    resp = app.too_large(req)
    if not req.keep_alive:
        resp.close = True
    return resp


def make_server(app: App, host: str, port: int) -> StreamServer:
    """A server of `app` with a greenlet per connection and no cap on connections
    but the process's fds: an idle kept-alive connection holds no slot in any
    pool, only its fd and its waiting greenlet (a few KB)."""
    server = StreamServer((host, port), connection_handler(app))
    server.init_socket()
    return server
