"""The other HTTP/1.1 request parsers bench/emulator.py holds against llhttp
(httptools, what wire.py uses): the hand-written parser wire.py had before it
(kept here verbatim in substance, for the comparison only) and h11. Each is a
`Reader` with wire.Reader's interface (`request`, `pending`, `has_head`), so
the server stack around it is the same; `install(name)` swaps it in.
"""

from __future__ import annotations

import re

import h11

from lambda_affinity.emulator import runtime_api, wire
from lambda_affinity.emulator.wire import MAX_HEAD, MAX_HEADERS, MAX_LINE, BadRequest, Request

_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HandReader:
    """wire.py's reader before llhttp: one search per head, split by hand."""

    __slots__ = ("sock", "peer", "max_body", "buf")

    def __init__(self, sock, app, peer: str = "127.0.0.1") -> None:
        self.sock, self.peer, self.max_body, self.buf = sock, peer, app.max_body, b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf = self.buf + data if self.buf else data
        return True

    def pending(self) -> bool:
        return bool(self.buf)

    def has_head(self) -> bool:
        if self.buf.startswith(b"\r\n"):
            self.buf = self.buf.lstrip(b"\r\n")
        return b"\r\n\r\n" in self.buf

    def _head(self) -> bytes | None:
        while True:
            buf = self.buf
            if buf.startswith(b"\r\n"):
                self.buf = buf = buf.lstrip(b"\r\n")
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                self.buf = buf[i + 4 :]
                return buf[:i]
            if len(buf) > MAX_HEAD:
                raise BadRequest("request head too large")
            if not self._fill():
                if self.buf:
                    raise BadRequest("connection closed inside the headers")
                return None

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise BadRequest("connection closed inside the body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2 :]
                return line
            if len(self.buf) > MAX_LINE or not self._fill():
                raise BadRequest("bad chunked body")

    def request(self) -> Request | None:
        head = self._head()
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
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
        try:
            req = Request(parts[0], parts[1], parts[2], header_list, self.peer)
        except ValueError:  # "²" or "2,3": it checked isascii() and isdigit() on the joined value
            raise BadRequest("bad Content-Length") from None
        if req.length is not None and req.length > self.max_body:
            req.too_large = True
            req.keep_alive = False
            return req
        if req.expect_continue:
            wire.send_all(self.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        if req.chunked:
            body = []
            while True:
                field = self._line().split(b";", 1)[0].strip()
                if not _CHUNK_SIZE.fullmatch(field):
                    raise BadRequest("malformed chunk size")
                size = int(field, 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body.append(self._exact(size))
                self._exact(2)
            req.body = b"".join(body)
        elif req.length:
            req.body = self._exact(req.length)
        return req


class H11Reader:
    """h11's state machine; our answers go out as wire.py writes them, so h11
    is told of each (a Response and EndOfMessage) before the next cycle, as a
    server built on h11 would send them through it."""

    __slots__ = ("sock", "peer", "max_body", "conn")

    def __init__(self, sock, app, peer: str = "127.0.0.1") -> None:
        self.sock, self.peer, self.max_body = sock, peer, app.max_body
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    def pending(self) -> bool:
        return bool(self.conn.trailing_data[0])

    def has_head(self) -> bool:
        return b"\r\n\r\n" in self.conn.trailing_data[0]

    def _event(self):
        conn = self.conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise BadRequest(str(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(self.sock.recv(65536))

    def request(self) -> Request | None:
        conn = self.conn
        if conn.our_state is h11.SEND_RESPONSE:
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        event = self._event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        req = Request(
            event.method.decode(),
            event.target.decode("latin-1"),
            "HTTP/" + event.http_version.decode(),
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers.raw_items()],
            self.peer,
        )
        parts = []
        while True:
            event = self._event()
            if isinstance(event, h11.Data):
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise BadRequest("connection closed inside a request")
        req.body = b"".join(parts)
        return req


READERS = {"llhttp": wire.Reader, "hand": HandReader, "h11": H11Reader}

# What the parsers see on the hot path: a load client's request to a Function URL,
# and the built-in runtime client's result pipelined with its next /next.
HOT_REQUESTS = {
    "function_url": b"GET /?session=u1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: python/gevent-http-client\r\n"
    b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n",
    "runtime_result": b"POST /2018-06-01/runtime/invocation/8c1f0d6e-3c2a-4e8a-9b0e-3f1b5d7a2c11/response HTTP/1.1\r\n"
    b"Host: runtime\r\nContent-Type: application/json\r\nContent-Length: 230\r\n\r\n"
    + b"x" * 230
    + b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n",
}


class _Replay:
    """A socket whose every recv returns the same bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, _n: int) -> bytes:
        return self.data


class _Limits:
    max_body = 6 * 1024 * 1024


def parse_cost_us(name: str, data: bytes, seconds: float = 0.3) -> float:
    """CPU microseconds per request for parser `name` on `data` (no socket, no app)."""
    import time

    reader = READERS[name](_Replay(data), _Limits())
    per_recv = data.count(b" HTTP/1.1\r\n")
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            for _ in range(per_recv):
                reader.request()
        done += 200 * per_recv
    return (time.perf_counter() - start) / done * 1e6


def install(name: str) -> None:
    """Serve with parser `name` in this process (before any server starts)."""
    reader = READERS[name]
    wire.Reader = reader
    runtime_api.Reader = reader
