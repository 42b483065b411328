"""Warm invocations through the emulator's Function URL vs a bare HTTP echo
server on the same server stack (gevent StreamServer + the emulator's HTTP/1.1
server), with the same load client, in the same run; and cold starts.

    python bench/emulator.py [--duration 3] [--concurrency 1,4] [--rounds 2] [--cold 30]
                             [--parsers llhttp,hand,h11]

Each side runs in its own process; the load client is a lean geventhttpclient
loop in a third (one Locust process would hide the emulator's own cost).
Each parser (bench/parsers.py: llhttp through httptools, which the emulator
uses; the hand-written parser it had before; h11) gets its own echo server and
emulator (front ends and Runtime API), and rounds alternate parsers and sides
so drift on this shared machine hits all. Then each parser's echo server gets
the hostile inputs of issue 11, and its answers are printed side by side.
The last lines (for the first parser) are:
    warm_invoke_ratio_vs_echo: R    (emulator RPS / echo RPS at concurrency 1)
    warm_p50_added_ms: M            (emulator p50 - echo p50 at concurrency 1)
    cold_start_p50_ms: C            (client-seen latency of a cold invocation, model init delay 0)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)
ECHO_BODY = json.dumps(
    {
        "env_id": "2024/01/01/[$LATEST]" + "0" * 32,
        "request_id": "0" * 36,
        "cold": False,
        "env_invocations": 1,
        "env_age_ms": 1.0,
        "session": None,
        "cache": None,
        "probe": 1,
    }
).encode()


# -- the echo server (child process) ---------------------------------------------
def run_echo(ready_file: str, parser: str) -> None:
    import signal

    import gevent
    from parsers import install

    install(parser)
    from lambda_affinity.emulator.server import write_ready_file
    from lambda_affinity.emulator.wire import App, Response, make_server

    class Echo(App):
        def handle(self, req):
            return Response(200, [("Content-Type", "application/json")], ECHO_BODY)

    # Exactly as the emulator makes each Function URL's server.
    server = make_server(Echo(), "127.0.0.1", 0)
    server.start()
    write_ready_file(ready_file, {"url": f"http://127.0.0.1:{server.server_port}/"})
    done = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, done.set)
    done.wait()
    server.stop(timeout=1)


# -- the load client (child process) ---------------------------------------------
def run_client(url: str, concurrency: int, duration: float, warmup: float) -> None:
    import gevent
    from geventhttpclient import HTTPClient
    from geventhttpclient.url import URL

    u = URL(url)
    client = HTTPClient.from_url(u, concurrency=concurrency, network_timeout=30, connection_timeout=5)
    path = u.request_uri
    latencies: list = []
    errors = [0]
    state = {"record": False, "stop": False}

    def worker():
        while not state["stop"]:
            t0 = time.perf_counter()
            resp = client.get(path)
            resp.read()
            ok = resp.status_code == 200
            resp.release()
            if state["record"]:
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[0] += 1

    workers = [gevent.spawn(worker) for _ in range(concurrency)]
    gevent.sleep(warmup)
    state["record"] = True
    start = time.perf_counter()
    gevent.sleep(duration)
    state["record"] = False
    elapsed = time.perf_counter() - start
    state["stop"] = True
    gevent.joinall(workers, timeout=35)
    client.close()
    lat = sorted(latencies)
    print(
        json.dumps(
            {
                "rps": len(lat) / elapsed,
                "p50_ms": statistics.median(lat) * 1000 if lat else None,
                "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
                "n": len(lat),
                "errors": errors[0],
            }
        )
    )


def client(url: str, concurrency: int, duration: float, warmup: float = 0.5) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            HERE,
            "--client",
            url,
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration),
            "--warmup",
            str(warmup),
        ],
        capture_output=True,
        text=True,
        timeout=duration + warmup + 60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr}")
    return json.loads(out.stdout)


# -- the driver ---------------------------------------------------------------------
class EchoProcess:
    def __init__(self, parser: str) -> None:
        self.parser = parser

    def __enter__(self):
        self.dir = tempfile.TemporaryDirectory()
        ready = os.path.join(self.dir.name, "echo.json")
        self.proc = subprocess.Popen([sys.executable, HERE, "--echo-server", ready, "--parsers", self.parser])
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the echo server did not start")
            time.sleep(0.02)
        with open(ready) as fh:
            self.url = json.load(fh)["url"]
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


def emulator(config: dict, parser: str = "llhttp"):
    import yaml

    from lambda_affinity.emulator.process import EmulatorProcess

    class WithParser(EmulatorProcess):
        def command(self, ready_file: str) -> list:
            cmd = super().command(ready_file)  # [python, -m, lambda_affinity.cli, emulate, ...]
            return [sys.executable, HERE, "--emulate-with", parser] + cmd[3:]

    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh)
    return WithParser(config_path=path), path


# Issue 11's hostile inputs and what RFC 9112 (and AWS) make of them: each is sent
# in one write on a fresh connection, and the first status line answered is printed.
HOSTILE = {
    "POST + stray CRLF (answer at once)": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\r\n", "200"),
    "100 KB header block, one write": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", "431"),
    "chunk data without CRLF": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        "400",
    ),
    "Transfer-Encoding: xchunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "400",
    ),
    "Transfer-Encoding: gzip, chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "501",
    ),
    "NUL in a header value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "400"),
    "LF-only request": (b"GET / HTTP/1.1\nHost: x\n\n", "400"),
    "Content-Length and chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "400",
    ),
    "two Content-Lengths": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", "400"),
    "obs-fold header": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "400"),
}


def hostile(url: str) -> dict:
    """{case: first status code answered, or what happened instead}."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    out = {}
    for name, (data, _) in HOSTILE.items():
        with socket.create_connection((u.hostname, u.port), timeout=2) as sock:
            sock.sendall(data)
            try:
                first = sock.recv(65536)
                out[name] = first.split(b" ", 2)[1].decode() if first else "closed"
            except TimeoutError:
                out[name] = "no answer in 2 s"
            except ConnectionResetError:
                out[name] = "reset"
    return out


def cold_starts(n: int) -> list:
    """Client-seen latency of invocations that each need a new environment:
    keep-alive 0 retires every environment when its invocation ends."""
    import urllib.request

    emu, path = emulator({"model": {"init_delay_s": 0, "keep_alive_s": 0}, "functions": [{"name": "probe"}]})
    out = []
    try:
        with emu:
            url = emu.function_urls["probe"]
            for _ in range(n):
                t0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=30) as r:
                    reply = json.loads(r.read())
                out.append((time.perf_counter() - t0) * 1000)
                assert reply["cold"], reply
                time.sleep(0.02)  # let the retired process be reaped
    finally:
        os.unlink(path)
    return out


def main() -> int:
    p = _arguments()
    if sys.argv[1:2] == ["--emulate-with"]:  # the emulator's command line, served with another parser
        from parsers import install

        install(sys.argv[2])
        from lambda_affinity.cli import main as cli_main

        return cli_main(sys.argv[3:])
    args = p.parse_args()
    if args.echo_server:
        run_echo(args.echo_server, args.parsers)
        return 0
    if args.client:
        run_client(args.client, int(args.concurrency), args.duration, args.warmup)
        return 0

    levels = [int(c) for c in args.concurrency.split(",")]
    parsers = args.parsers.split(",")
    results, envs, answers = measure(parsers, levels, args.rounds, args.duration)
    cold = cold_starts(args.cold)
    report(parsers, levels, results, answers, envs, cold)
    return 0


def _arguments() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=3.0, help="seconds measured per run")
    p.add_argument("--concurrency", default="1,4", help="comma-separated connection counts; the first is headline")
    p.add_argument("--rounds", type=int, default=2, help="alternating echo/emulator rounds per concurrency")
    p.add_argument("--cold", type=int, default=30, help="cold invocations measured")
    p.add_argument(
        "--parsers", default="llhttp,hand,h11", help="parsers compared (bench/parsers.py); the first is the headline"
    )
    p.add_argument("--echo-server", metavar="READY", help=argparse.SUPPRESS)
    p.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=float, default=0.5, help=argparse.SUPPRESS)
    return p


def measure(parsers: list[str], levels: list[int], rounds: int, duration: float) -> tuple[dict, list, dict]:
    """(results per (parser, concurrency), the last warm runs' environments,
    the hostile inputs' answers per parser): echo and emulator rounds alternate."""
    config = {"model": {"policy": "mru", "init_delay_s": 0}, "functions": [{"name": "probe"}]}
    results = {(p, c): {"echo": [], "emulator": []} for p in parsers for c in levels}
    answers = {}
    with contextlib.ExitStack() as stack:
        sides = {}
        for parser in parsers:
            emu, path = emulator(config, parser)
            stack.callback(os.unlink, path)
            sides[parser] = (
                stack.enter_context(EchoProcess(parser)).url,
                stack.enter_context(emu).function_urls["probe"],
            )
        for c in levels:
            for _ in range(rounds):
                for parser in parsers:
                    echo_url, emu_url = sides[parser]
                    results[parser, c]["echo"].append(client(echo_url, c, duration))
                    results[parser, c]["emulator"].append(client(emu_url, c, duration))
        envs = get_json(emu.introspection_url)["environments"]
        for parser in parsers:
            answers[parser] = hostile(sides[parser][0])
    return results, envs, answers


def report(parsers: list[str], levels: list[int], results: dict, answers: dict, envs: list, cold: list) -> None:
    """The table, the parse costs, the hostile answers and the headline figures."""
    print(
        f"{'parser':>7} {'conc':>4} {'echo rps':>9} {'emu rps':>9} {'ratio':>6} {'echo p50':>9} {'emu p50':>8} "
        f"{'added':>7}  errors"
    )
    headline = None
    for c in levels:
        for parser in parsers:
            res = results[parser, c]
            e_rps = statistics.median(r["rps"] for r in res["echo"])
            m_rps = statistics.median(r["rps"] for r in res["emulator"])
            e_p50 = statistics.median(r["p50_ms"] for r in res["echo"])
            m_p50 = statistics.median(r["p50_ms"] for r in res["emulator"])
            errors = sum(r["errors"] for side in res.values() for r in side)
            print(
                f"{parser:>7} {c:>4} {e_rps:>9.0f} {m_rps:>9.0f} {m_rps / e_rps:>6.2f} {e_p50:>8.3f}ms "
                f"{m_p50:>6.3f}ms {m_p50 - e_p50:>+6.3f}  {errors}"
            )
            if headline is None:
                headline = (m_rps / e_rps, m_p50 - e_p50)
    from parsers import HOT_REQUESTS, parse_cost_us

    print("parse cost, CPU us per request (no socket, best of 3):")
    for kind, data in HOT_REQUESTS.items():
        costs = [min(parse_cost_us(p, data) for _ in range(3)) for p in parsers]
        print(f"  {kind:<16} " + "  ".join(f"{p} {c:.2f}" for p, c in zip(parsers, costs, strict=True)))
    print(f"hostile inputs, first status answered ({' / '.join(parsers)}; expected):")
    for name, (_, expected) in HOSTILE.items():
        got = " / ".join(answers[p][name] for p in parsers)
        print(f"  {name:<36} {got:<40} {expected}")
    print(f"environments used by the last warm runs: {len(envs)}")
    print(
        f"cold invocations: n={len(cold)} p50={statistics.median(cold):.1f} ms min={min(cold):.1f} max={max(cold):.1f}"
    )
    print(f"warm_invoke_ratio_vs_echo: {headline[0]:.2f}")
    print(f"warm_p50_added_ms: {headline[1]:.3f}")
    print(f"cold_start_p50_ms: {statistics.median(cold):.1f}")


def get_json(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


if __name__ == "__main__":
    sys.exit(main())
