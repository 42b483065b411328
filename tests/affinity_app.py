"""A real HTTP server on 127.0.0.1 that answers as an app under the handler wrapper does.

A test peer for the plugin's header path (not a mock of a client): three
"execution environments" take turns, five requests each, and every reply
but a static asset's carries the wrapper's `x-affinity-*` headers
(core/headers.py describes the contract). The session key comes from
`x-affinity-session` (or another header), or from a cookie, as the wrapper's
AFFINITY_SESSION_FROM says; `/login` sets the cookie `sid`. Every request is
logged (route, session, environment, cold, hit) so a test compares the
plugin's figures with what the server did.
"""

from __future__ import annotations

import http.cookies
import itertools
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

ENVS = 3
TURN = 5  # requests an environment serves before the next one takes over


class Served(NamedTuple):
    route: str
    session: str | None
    env: str
    cold: bool
    hit: bool | None


def drain_body(req: BaseHTTPRequestHandler) -> None:
    """Read the request's body, as an HTTP/1.1 server must before the next request on the connection:
    Locust 2.46's FastHttpUser with geventhttpclient 2.4 (what Python 3.10 gets) sends a GET as
    `Transfer-Encoding: chunked` with an empty body, whose `0` line BaseHTTPRequestHandler, which reads
    no body by itself, would take for the next request (the client then fails to parse the replies)."""
    if "chunked" in (req.headers.get("Transfer-Encoding") or "").lower():
        while True:
            size = int(req.rfile.readline(1024).split(b";")[0], 16)
            req.rfile.read(size)  # the chunk (ours are GETs: empty), then its CRLF or the trailers' end
            if size == 0:
                while req.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return
            req.rfile.readline(1024)
    req.rfile.read(int(req.headers.get("Content-Length") or 0))


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # a client that closed its connection (Locust stopping its users) is not an error of the server
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class AffinityApp:
    def __init__(self, session_from: str = "header:x-affinity-session") -> None:
        self.kind, _, self.name = session_from.partition(":")
        self.lock = threading.Lock()
        self.log: list[Served] = []
        self.count = 0
        self.calls: dict[str, int] = {}  # env -> calls
        self.seen: dict[str, set] = {}  # env -> sessions
        self.born: dict[str, float] = {}
        self.sids = itertools.count(1)
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Head and body in one write (flushed after each request), as servers usually send them: an older
            # geventhttpclient (2.4, with Locust 2.42.6) misreads a keep-alive reply whose body comes apart.
            wbufsize = 64 * 1024

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                drain_body(self)
                app.handle(self)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> AffinityApp:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def session_of(self, req: BaseHTTPRequestHandler) -> str | None:
        if self.kind == "cookie":
            jar = http.cookies.SimpleCookie(req.headers.get("Cookie") or "")
            morsel = jar.get(self.name)
            return morsel.value if morsel is not None else None
        return req.headers.get(self.name)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        route = req.path.split("?")[0]
        body = b'{"ok": true}'
        headers = {"Content-Type": "application/json"}
        if route == "/login":
            headers["Set-Cookie"] = f"sid=s{next(self.sids)}; Path=/"
        if route != "/static.css":
            session = self.session_of(req)
            with self.lock:
                env = f"2026/12/03/[$LATEST]env{(self.count // TURN) % ENVS}"
                self.count += 1
                calls = self.calls[env] = self.calls.get(env, 0) + 1
                cold = calls == 1
                if cold:
                    self.born[env] = time.monotonic()
                seen = self.seen.setdefault(env, set())
                hit = None if not session else session in seen
                if session:
                    seen.add(session)
                self.log.append(Served(route, session, env, cold, hit))
            headers.update(
                {
                    "x-affinity-env": env,
                    "x-affinity-cold": "1" if cold else "0",
                    "x-affinity-env-invocations": str(calls),
                    "x-affinity-init-age-ms": f"{(time.monotonic() - self.born[env]) * 1000:.0f}",
                }
            )
            if hit is not None:
                headers["x-affinity-session-hit"] = "1" if hit else "0"
        req.send_response(200)
        for k, v in headers.items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)
