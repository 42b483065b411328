"""Lambda's Runtime API (2018-06-01), served to one environment on its own port.

The runtime client in the environment long-polls `/next` for an event and
posts the result (or the error) back. Replies carry AWS's headers, including a
`Content-Type` on `/next` (awslambdaric 4.2.2 crashes without one).

Hot path: a runtime connection waiting on `/next` is *parked* on its sandbox.
The greenlet that runs the next invocation answers that `/next` itself and
serves the connection until the invocation has its result, so a warm
invocation costs no hop through a queue, no wake-up of another greenlet and
no switch back: one greenlet takes the client's request, hands the event to
the runtime, reads its result and answers the client (docs/emulator.md, "How it
is built" and "Performance").
"""

from __future__ import annotations

import json

from gevent import Greenlet, getcurrent

from ..core import limits
from .invocation import Result, function_error
from .response import _Date
from .wire import (
    App,
    BadRequest,
    Reader,
    Request,
    Response,
    answer,
    bad_request,
    encode_response,
    flush,
    lingering_close,
    read_and_handle,
    send_all,
)

PREFIX = "/2018-06-01/runtime"
NEXT = PREFIX + "/invocation/next"
INVOCATION = PREFIX + "/invocation/"
INIT_ERROR = PREFIX + "/init/error"
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"

_JSON = ("Content-Type", "application/json")
MAX_RESPONSE = limits.MAX_RESPONSE  # 6291556; a request may have up to limits.MAX_PAYLOAD
_RESPONSE_TOO_LARGE = json.dumps(
    {
        "errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
).encode()
_ACCEPTED = b'{"status":"OK"}'
WAIT_NEXT = object()  # RuntimeAPI.handle's answer to GET /next: the connection decides how to wait
PARKED = object()  # Sandbox.want_next's answer: the connection is lent to the next invocation
GONE = Response(410, [_JSON], b'{"errorType":"Runtime.Shutdown","errorMessage":"environment stopped"}', close=True)


def _error(status: int, error_type: str, message: str) -> Response:
    return Response(status, [_JSON], json.dumps({"errorType": error_type, "errorMessage": message}).encode())


def encode_next(inv, keep_alive: bool = True) -> bytes:
    """The answer to `/next` on the wire: the event, and its context in AWS's
    headers. Built in one go (it is on every invocation's path); the same
    bytes as `encode_response` would give."""
    cc = inv.client_context
    head = (
        f"\r\nContent-Length: {len(inv.payload)}\r\n"
        f"Content-Type: application/json\r\n"
        f"Lambda-Runtime-Aws-Request-Id: {inv.request_id}\r\n"
        f"Lambda-Runtime-Deadline-Ms: {inv.deadline_ms}\r\n"
        f"Lambda-Runtime-Invoked-Function-Arn: {inv.function_arn}\r\n"
        f"Lambda-Runtime-Trace-Id: {inv.trace_id}\r\n"
        + (f"Lambda-Runtime-Client-Context: {cc}\r\n" if cc else "")
        + ("Connection: keep-alive\r\n\r\n" if keep_alive else "Connection: close\r\n\r\n")
    )
    return b"".join((b"HTTP/1.1 200 OK\r\nDate: ", _Date.get(), head.encode("latin-1", "replace"), inv.payload))


class RuntimeAPI(App):
    max_body = MAX_RESPONSE

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox

    def handle(self, req: Request):
        path = req.path
        if req.method == "GET" and path == NEXT:
            return WAIT_NEXT
        if req.method == "POST" and path.startswith(INVOCATION):
            request_id, _, what = path[len(INVOCATION) :].partition("/")
            if what == "response":
                return self._complete(request_id, Result.ok(req.body))
            if what == "error":
                error = function_error(_error_document(req.body), req.headers.get(ERROR_TYPE_HEADER))
                return self._complete(request_id, error)
        if req.method == "POST" and path == INIT_ERROR:
            if self.sandbox.init_failed(_error_document(req.body), req.headers.get(ERROR_TYPE_HEADER)):
                return Response(202, [_JSON], _ACCEPTED)
            return _error(403, "Runtime.InvalidStateTransition", "State transition from Ready to InitError failed")
        return _error(404, "Runtime.NotFound", f"no such Runtime API resource: {req.method} {path}")

    def too_large(self, req: Request) -> Response:
        path = req.path
        if path.startswith(INVOCATION) and path.endswith("/response"):
            request_id = path[len(INVOCATION) :].partition("/")[0]
            # AWS's message names its limit, not the response's size
            self.sandbox.complete(request_id, function_error(_RESPONSE_TOO_LARGE, "Function.ResponseSizeTooLarge"))
        return _error(413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).")

    def _complete(self, request_id: str, result: Result) -> Response:
        if self.sandbox.complete(request_id, result):
            return Response(202, [_JSON], _ACCEPTED)
        return _error(400, "InvalidRequestID", f"Invalid request ID: {request_id!r} is not the invocation in progress")


class _Wake(Exception):
    """Thrown into an invocation's greenlet reading a runtime connection:
    the invocation got its result some other way (another connection, the
    process ended, the emulator is stopping)."""


class RuntimeConnection:
    """One runtime client's connection to the Runtime API.

    Served by a greenlet of its own (`serve`) except while it is lent: from
    the moment it waits on `/next` with no event to give (parked on the
    sandbox) until the invocation that took it (`run_invocation`) is done
    with it. Whoever holds it writes `held` (answers not yet sent, kept to
    go out with the next one) before anything else, so answers stay in
    request order.
    """

    __slots__ = ("sandbox", "app", "sock", "reader", "peer", "held", "closed", "pending", "owner", "inv", "_resume")

    def __init__(self, sandbox, app: RuntimeAPI, sock, peer: str = "127.0.0.1") -> None:
        from gevent.event import Event

        self.sandbox = sandbox
        self.app = app
        self.sock = sock
        self.reader = Reader(sock, app, peer)
        self.peer = peer
        self.held: list = []
        self.closed = False
        self.pending: Request | None = None  # a `/next` the borrower read and left to us
        self.owner: Greenlet | None = None  # the greenlet serving an invocation on it, while lent
        self.inv = None  # that invocation
        self._resume = Event()

    # -- the connection's own greenlet ------------------------------------------
    def serve(self) -> None:
        sock, reader, held, app = self.sock, self.reader, self.held, self.app
        try:
            while True:
                req = self.pending
                try:
                    if req is not None:
                        self.pending = None
                        resp = WAIT_NEXT
                    else:
                        got = read_and_handle(app, reader)
                        if got is None:
                            return
                        req, resp = got
                except BadRequest as exc:
                    self._bad_request(exc)
                    return
                if resp is WAIT_NEXT:
                    resp = self.sandbox.want_next(self, req.keep_alive)
                    if resp is PARKED:
                        self._resume.wait()  # lent until handed back
                        self._resume.clear()
                        if self.closed:
                            return
                        continue
                    if not isinstance(resp, Response):  # an invocation that was queued for us
                        held.append(encode_next(resp, req.keep_alive))
                        resp = None
                if isinstance(resp, Response):
                    keep = req.keep_alive and not resp.close
                    held.append(encode_response(resp, keep))
                else:  # None: the queued invocation's event is held already
                    keep = req.keep_alive
                if not flush(sock, held, keep, reader):
                    return
        except (OSError, ConnectionError):
            return
        finally:
            self.closed = True
            sock.close()
            self.sandbox.connection_closed(self)

    # -- lent to an invocation ----------------------------------------------------
    def run_invocation(self, inv) -> None:
        """Answer the parked `/next` with `inv`, then serve this connection in
        the calling greenlet until `inv` has its result (set by `complete`
        through the Runtime API). Returns early, leaving the result to come
        another way, when the connection ends or cannot go on."""
        sock, reader, held, app, result = self.sock, self.reader, self.held, self.app, inv.result
        self.owner = getcurrent()
        self.inv = inv
        mid_request = False
        try:
            held.append(encode_next(inv))
            send_all(sock, held[0] if len(held) == 1 else b"".join(held))
            held.clear()
            while True:
                # Waiting here is resumable (the parser keeps a half-read
                # request); from a whole request to its answer it is not.
                req = reader.request()
                if req is None:
                    self._abandon()
                    return
                mid_request = True
                resp = answer(app, req)
                mid_request = False
                if resp is WAIT_NEXT:
                    # The runtime asks for its next event (pipelined after its
                    # result, or too early): park again, or leave it to `serve`.
                    if self.sandbox.want_next(self, req.keep_alive, park_only=True) is not PARKED:
                        self.pending = req
                        self._hand_back()
                    return
                keep = req.keep_alive and not resp.close
                held.append(encode_response(resp, keep))
                if not keep:
                    send_all(sock, b"".join(held))
                    held.clear()
                    self._abandon()
                    return
                if result.ready():
                    if reader.has_head():
                        continue  # usually the pipelined /next: it keeps the 202 to go with its answer
                    send_all(sock, held[0] if len(held) == 1 else b"".join(held))
                    held.clear()
                    self._hand_back()
                    return
                if not reader.pending():
                    send_all(sock, held[0] if len(held) == 1 else b"".join(held))
                    held.clear()
        except _Wake:
            if mid_request:
                self._abandon()  # a request half read: the stream is lost
            else:
                self._hand_back()
        except BadRequest as exc:
            self._bad_request(exc)
            self._abandon()
        except (OSError, ConnectionError):
            self._abandon()
        except BaseException:
            # The function's timeout (the environment is killed) or the
            # invoking greenlet killed: this connection has no future.
            self._abandon()
            raise
        finally:
            self.owner = None
            self.inv = None

    def wake(self, inv) -> None:
        """`inv`'s result was set by someone other than the greenlet serving it
        here: interrupt that greenlet's wait on the runtime."""
        owner = self.owner
        if owner is not None and self.inv is inv and owner is not getcurrent():
            owner.parent.loop.run_callback(self._throw_wake, owner, inv)

    def _throw_wake(self, owner: Greenlet, inv) -> None:
        current = self.owner
        if current is not None and current is owner and self.inv is inv:  # still waiting here for inv
            current.throw(_Wake())

    def answer_parked(self, resp: Response) -> None:
        """Answer the parked `/next` (with GONE: the environment ends) and hand
        the connection back."""
        self.held.append(encode_response(resp, not resp.close))
        try:
            send_all(self.sock, b"".join(self.held))
        except OSError:
            resp = GONE
        self.held.clear()
        if resp.close:
            self._abandon()
        else:
            self._hand_back()

    # -- internals ----------------------------------------------------------------
    def _hand_back(self) -> None:
        self._resume.set()

    def _abandon(self) -> None:
        self.closed = True
        self._resume.set()

    def _bad_request(self, exc: BadRequest) -> None:
        self.held.append(bad_request(exc))
        try:
            send_all(self.sock, b"".join(self.held))
        except OSError:
            pass
        self.held.clear()
        # as the front ends do: a runtime still sending reads the answer, not a reset
        lingering_close(self.sock)


def connection_handler(sandbox, app: RuntimeAPI):
    """A StreamServer handler serving the Runtime API on each connection."""

    def handle(sock, address):
        peer = address[0] if isinstance(address, tuple) and address else "127.0.0.1"
        RuntimeConnection(sandbox, app, sock, peer).serve()

    return handle


def _error_document(body: bytes) -> bytes:
    """The runtime's error JSON as sent, or a wrapper when it sent something else."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            return body
    except ValueError:
        pass
    return json.dumps({"errorMessage": body.decode("utf-8", "replace")[:4096], "errorType": "Runtime.Unknown"}).encode()
