"""Stress and fault suite for the emulator: does it answer every call?

    python bench/stress.py [--quick] [--burst 500] [--connections 5000] [--slow 200] [--json]

Phases, each against a fresh `lambda-affinity emulate` process on 127.0.0.1
(bounded in count and time; nothing leaves this machine):
  burst-invoke   N simultaneous cold invocations on the Invoke API (init 1 s,
                 so all N overlap and each needs its own environment)
  burst-url      the same through a Function URL
  keepalive      C connections kept open: each makes a request, all stay
                 connected, then each makes a second request on the same socket
  slowloris      S connections dribbling a request head a byte at a time while
                 normal clients call: the normal calls must still be answered
  hostile        malformed and hostile requests (nested JSON, stray CRLF,
                 oversized heads, bad chunking, bad codings, NUL and bare LF,
                 CR/LF in a copied header): each must get a 4xx at once
Each phase prints answered / dropped / 5xx / other counts and the emulator's
peak memory (its process tree's RSS, sampled). The goal is 0 dropped and 0
unexpected 5xx everywhere. `--quick` is the small form CI runs
(tests/e2e/test_stress.py). The last line is `stress_dropped_total: N`.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from lambda_affinity.emulator.machine import raise_fd_limit  # noqa: E402
from lambda_affinity.emulator.process import EmulatorProcess  # noqa: E402

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
CALL_TIMEOUT_S = 30.0


@dataclass
class PhaseResult:
    phase: str
    sent: int = 0
    answered: int = 0  # a 2xx, or the 4xx a hostile request should get
    dropped: int = 0  # no answer at all: reset, closed, or timed out (CALL_TIMEOUT_S)
    server_errors: int = 0  # an unexpected 5xx
    other: dict = field(default_factory=dict)  # "status NNN" -> count, for anything else
    peak_rss_mb: float = 0.0
    seconds: float = 0.0

    def count(self, outcome: str) -> None:
        if outcome == "ok":
            self.answered += 1
        elif outcome == "dropped":
            self.dropped += 1
        elif outcome.startswith("5"):
            self.server_errors += 1
            self.other[outcome] = self.other.get(outcome, 0) + 1
        else:
            self.other[outcome] = self.other.get(outcome, 0) + 1


# -- a raw HTTP/1.1 exchange ----------------------------------------------------------
class Connection:
    """One client socket; `request` sends raw bytes and reads one response."""

    def __init__(self, host: str, port: int, timeout: float | None = None) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout or CALL_TIMEOUT_S)
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def read_response(self) -> tuple[int, bytes]:
        """(status, body); raises OSError/ConnectionError when the server closes first."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed before a response head")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(self.buf) < length:
            if not self._fill():
                raise ConnectionError("closed inside a response body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def request(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        return self.read_response()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def post(path: str, host: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def outcome_of(call) -> str:
    """'ok' for a 2xx with a JSON body, 'dropped' for no answer, else 'NNN'."""
    try:
        status, body = call()
    except (OSError, ConnectionError, ValueError, IndexError):
        return "dropped"
    if 200 <= status < 300:
        try:
            json.loads(body)
        except ValueError:
            return "bad body"
        return "ok"
    return str(status)


# -- the emulator under test ---------------------------------------------------------
class Target:
    def __init__(self, model: dict) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="lambda-affinity-stress-")
        path = os.path.join(self.dir.name, "emulator.yaml")
        with open(path, "w") as fh:
            json.dump({"model": model, "functions": [{"name": "probe", "url": {"auth_type": "NONE"}}]}, fh)
        self.emulator = EmulatorProcess(path)
        self.peak_rss = 0

    def __enter__(self) -> Target:
        self.emulator.start()
        api, url = urlsplit(self.emulator.endpoint), urlsplit(self.emulator.function_urls["probe"])
        self.api = (api.hostname, api.port)
        self.url = (url.hostname, url.port)
        self._sampler = gevent.spawn(self._sample)
        return self

    def _sample(self) -> None:
        root = psutil.Process(self.emulator.proc.pid)
        while True:
            try:
                procs = [root] + root.children(recursive=True)
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak_rss = max(self.peak_rss, rss)
            except psutil.Error:
                return
            gevent.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self._sampler.kill()
        self.emulator.stop()
        self.dir.cleanup()


# -- phases --------------------------------------------------------------------------
def burst(phase: str, n: int) -> PhaseResult:
    res = PhaseResult(phase)
    model = {"init_delay_s": 1.0, "max_environments": n + 50, "account_concurrency": max(1000, n + 50)}
    with Target(model) as t:
        started = time.monotonic()
        host, port = t.api if phase == "burst-invoke" else t.url
        path = INVOKE_PATH.format(name="probe") if phase == "burst-invoke" else "/"

        def one(i: int) -> None:
            def call():
                conn = Connection(host, port)
                try:
                    return conn.request(post(path, f"{host}:{port}", json.dumps({"session": f"s{i}"}).encode()))
                finally:
                    conn.close()

            res.count(outcome_of(call))

        pool = Pool(n)
        for i in range(n):
            res.sent += 1
            pool.spawn(one, i)
        pool.join(timeout=CALL_TIMEOUT_S + 30)
        res.dropped += len(pool)  # still waiting after the bound: no answer
        pool.kill()
        res.seconds = time.monotonic() - started
        res.peak_rss_mb = t.peak_rss / 2**20
    return res


def keepalive(n: int) -> PhaseResult:
    res = PhaseResult("keepalive")
    if raise_fd_limit() < n + 256:  # this client holds n sockets; the emulator raises its own limit
        raise SystemExit(f"keepalive: {n} connections need {n + 256} open files; the hard limit allows fewer")
    with Target({"init_delay_s": 0.0}) as t:
        started = time.monotonic()
        host, port = t.url
        conns: list = []
        opening = Pool(200)

        def open_one() -> None:
            try:
                conns.append(Connection(host, port))
            except OSError:
                res.sent += 1  # a connection refused or never accepted is a dropped call
                res.count("dropped")

        for _ in range(n):
            opening.spawn(open_one)
        opening.join(timeout=60)
        for round_ in (1, 2):  # both rounds on the same sockets: the first leaves them all idle and open
            pool = Pool(50)  # calls in flight at once: under every limit

            def call(conn: Connection, i: int = round_) -> None:
                res.sent += 1
                res.count(outcome_of(lambda: conn.request(get(f"/?session=c{id(conn)}-{i}", f"{host}:{port}"))))

            for conn in conns:
                pool.spawn(call, conn)
            pool.join(timeout=120)
        for conn in conns:
            conn.close()
        res.seconds = time.monotonic() - started
        res.peak_rss_mb = t.peak_rss / 2**20
    return res


def slowloris(n: int, seconds: float) -> PhaseResult:
    """n connections send a request head a byte every 0.2 s for `seconds`;
    meanwhile normal clients call in a loop. Counted: the normal calls."""
    res = PhaseResult("slowloris")
    with Target({"init_delay_s": 0.0}) as t:
        started = time.monotonic()
        host, port = t.url
        stop = time.monotonic() + seconds
        head = get("/?session=slow", f"{host}:{port}")

        def dribble() -> None:
            try:
                sock = socket.create_connection((host, port), timeout=5)
            except OSError:
                return
            try:
                for byte in head[:-2]:  # never finishes the head
                    if time.monotonic() > stop:
                        break
                    sock.sendall(bytes([byte]))
                    gevent.sleep(0.2)
            except OSError:
                pass  # closed by the server: that is allowed
            finally:
                sock.close()

        def normal(k: int) -> None:
            while time.monotonic() < stop:
                res.sent += 1
                res.count(outcome_of(lambda: _one_shot(host, port, get(f"/?session=n{k}", f"{host}:{port}"))))
                gevent.sleep(0.05)

        slow = [gevent.spawn(dribble) for _ in range(n)]
        fast = [gevent.spawn(normal, k) for k in range(10)]
        gevent.joinall(fast + slow, timeout=seconds + CALL_TIMEOUT_S)
        res.seconds = time.monotonic() - started
        res.peak_rss_mb = t.peak_rss / 2**20
    return res


def _one_shot(host: str, port: int, raw: bytes) -> tuple[int, bytes]:
    conn = Connection(host, port, timeout=10)
    try:
        return conn.request(raw)
    finally:
        conn.close()


def hostile_cases(api: str, url: str) -> list:
    """(name, which port, raw bytes, acceptable statuses). 'api' is the Invoke
    API, 'url' the Function URL. Every case must get one of its statuses."""
    inv = INVOKE_PATH.format(name="probe")
    nested = b"[" * 1000 + b"]" * 1000
    big_head = "X-Filler: " + "a" * 100_000 + "\r\n"
    return [
        ("nested JSON payload", "api", post(inv, api, nested), {400}),
        ("stray CRLF after a body", "api", post(inv, api, b"{}") + b"\r\n", {200}),
        ("100 KB head in one write", "api", post(inv, api, b"{}", big_head), {431, 400}),
        (
            "chunk data without CRLF",
            "api",
            f"POST {inv} HTTP/1.1\r\nHost: {api}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}XX0\r\n\r\n".encode(),
            {400},
        ),
        (
            "Transfer-Encoding: xchunked",
            "api",
            f"POST {inv} HTTP/1.1\r\nHost: {api}\r\nTransfer-Encoding: xchunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n".encode(),
            {400, 501},
        ),
        (
            "Transfer-Encoding: gzip, chunked",
            "api",
            f"POST {inv} HTTP/1.1\r\nHost: {api}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".encode(),
            {400, 501},
        ),
        ("NUL in a header", "api", post(inv, api, b"{}", "X-Bad: a\x00b\r\n"), {400}),
        (
            "bare LF line ends",
            "api",
            f"POST {inv} HTTP/1.1\nHost: {api}\nContent-Length: 2\n\n{{}}".encode(),
            {400, 200},
        ),
        (
            "CR/LF in X-Amz-Client-Context",
            "api",
            post(inv, api, b"{}", "X-Amz-Client-Context: e30=\rX-Injected: 1\r\n"),
            {400},
        ),
    ]


def hostile() -> PhaseResult:
    res = PhaseResult("hostile")
    with Target({"init_delay_s": 0.0}) as t:
        started = time.monotonic()
        api, url = f"{t.api[0]}:{t.api[1]}", f"{t.url[0]}:{t.url[1]}"
        for name, which, raw, statuses in hostile_cases(api, url):
            host, port = t.api if which == "api" else t.url
            res.sent += 1
            try:
                status, _ = _one_shot(host, port, raw)
            except (OSError, ConnectionError, ValueError, IndexError):
                res.count("dropped")
                res.other[f"dropped: {name}"] = 1
                continue
            if status in statuses:
                res.answered += 1
            elif status >= 500:
                res.server_errors += 1
                res.other[f"{status}: {name}"] = 1
            else:  # answered, but not as it should be
                res.other[f"{status}: {name}"] = 1
        res.seconds = time.monotonic() - started
        res.peak_rss_mb = t.peak_rss / 2**20
    return res


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small form CI runs")
    ap.add_argument("--burst", type=int, default=None, help="simultaneous cold calls (default 500; quick 100)")
    ap.add_argument("--connections", type=int, default=None, help="kept-alive connections (default 5000; quick 1200)")
    ap.add_argument("--slow", type=int, default=None, help="slowloris connections (default 200; quick 50)")
    ap.add_argument("--slow-seconds", type=float, default=None, help="slowloris duration (default 10; quick 3)")
    ap.add_argument("--phases", default="burst-invoke,burst-url,keepalive,slowloris,hostile")
    ap.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    args = ap.parse_args(argv)
    quick = args.quick
    global CALL_TIMEOUT_S
    if quick:  # a call that hangs fails the suite; no need to wait long for it
        CALL_TIMEOUT_S = 10.0
    n_burst = args.burst or (100 if quick else 500)
    n_conn = args.connections or (1200 if quick else 5000)
    n_slow = args.slow or (50 if quick else 200)
    slow_s = args.slow_seconds or (3.0 if quick else 10.0)
    runners = {
        "burst-invoke": lambda: burst("burst-invoke", n_burst),
        "burst-url": lambda: burst("burst-url", n_burst),
        "keepalive": lambda: keepalive(n_conn),
        "slowloris": lambda: slowloris(n_slow, slow_s),
        "hostile": hostile,
    }
    results = [runners[name]() for name in args.phases.split(",")]
    if args.json:
        print(json.dumps([asdict(r) for r in results]))
    else:
        print(f"{'phase':14} {'sent':>6} {'answered':>8} {'dropped':>7} {'5xx':>5} {'peak MB':>8} {'s':>6}  other")
        for r in results:
            print(
                f"{r.phase:14} {r.sent:6d} {r.answered:8d} {r.dropped:7d} {r.server_errors:5d} "
                f"{r.peak_rss_mb:8.0f} {r.seconds:6.1f}  {r.other or ''}"
            )
    print(f"stress_dropped_total: {sum(r.dropped for r in results)}")
    print(f"stress_unexpected_5xx_total: {sum(r.server_errors for r in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
