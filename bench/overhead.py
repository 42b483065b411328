"""What tracking costs a load generator: FunctionUrlUser (parse + record every
reply) against a plain FastHttpUser, same local target, same run.

The target is a light HTTP/1.1 server in its own process (gevent
StreamServer, keep-alive, no framework) that answers every request with a
probe-shaped reply from one of 8 environments, so the tracker does its real
work. Each round runs one headless Locust process per variant, alternating
plain/tracked so machine noise falls on both alike; 30 users without think
time keep Locust's one core busy, so its RPS is what its CPU allows.

Inside each Locust process the bench counts requests, CPU seconds and wall
seconds from "all users spawned" to the stop. The 2 cores here are shared
with other work, so wall-clock RPS swings ~30 % run to run; requests per
CPU-second (the RPS of a saturated core) is the stable figure and gives R.
The wall-clock ratio is printed too, and the CPU that parsing and recording
alone take per reply. (FunctionUrlUser fires its own request event instead of
using catch_response, which saves more than tracking costs: see users.py.)

Usage: python bench/overhead.py [--rounds 5] [--seconds 6] [--users 30]
Last lines: tracking_overhead_ratio: R  (tracked RPS / plain RPS per CPU-second, goal >= 0.95)
            tracker_bytes_per_user: B   (tracemalloc, 100 replies from 8 environments each)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc

LOCUSTFILE = """
import json
import os
import time

from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

from lambda_affinity.locust_plugin.users import FunctionUrlUser

_start = {}


@events.spawning_complete.add_listener
def _measure_from(**_kw):
    # steady state only: after every user is up, before the stop
    _start.update(cpu=time.process_time(), wall=time.perf_counter(),
                  n=_env["env"].stats.total.num_requests, failures=_env["env"].stats.total.num_failures)


@events.test_stopping.add_listener
def _measure_to(environment, **_kw):
    total = environment.stats.total
    with open(os.environ["OVERHEAD_RESULT"], "w") as fh:
        json.dump({"requests": total.num_requests - _start["n"], "failures": total.num_failures,
                   "cpu_s": time.process_time() - _start["cpu"], "wall_s": time.perf_counter() - _start["wall"]}, fh)


_env = {}


@events.init.add_listener
def _keep(environment, **_kw):
    _env["env"] = environment


class Plain(FastHttpUser):
    wait_time = constant(0)

    @task
    def probe(self):
        self.client.get("", name="probe", headers={"x-affinity-session": "s"})


class Tracked(FunctionUrlUser):
    wait_time = constant(0)
"""

ENVIRONMENTS = 8


def serve(port_file: str) -> None:
    """The target: every request gets a probe-shaped reply."""
    from gevent.server import StreamServer

    envs = [f"2020/03/27/[$LATEST]{random.getrandbits(128):032x}" for _ in range(ENVIRONMENTS)]
    replies = []
    for env in envs:
        for hit in (True, False):
            body = json.dumps(
                {
                    "env_id": env,
                    "request_id": "00000000-0000-0000-0000-000000000000",
                    "cold": False,
                    "env_invocations": 42,
                    "env_age_ms": 1234.5,
                    "session": "s",
                    "cache": {"hit": hit, "entries": 10, "age_ms": 100.0 if hit else None},
                    "probe": 1,
                }
            ).encode()
            replies.append(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )

    def handle(sock, _addr):
        buf = b""
        n = 0
        while True:
            try:
                data = sock.recv(65536)
            except OSError:  # Locust closing its connections at the end of a round
                return
            if not data:
                return
            buf += data
            # GET requests, no body: one reply per header block
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                n += 1
                try:
                    sock.sendall(replies[(n * 7 + n // 3) % len(replies)])
                except OSError:
                    return

    server = StreamServer(("127.0.0.1", 0), handle, backlog=1024)
    server.start()
    with open(port_file + ".tmp", "w") as fh:
        fh.write(str(server.server_port))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


def _pin(cpu: int):
    """Locust on one core, the target on the other: fewer migrations, steadier figures."""

    def pin():
        if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})

    return pin


def start_target() -> tuple[subprocess.Popen, int]:
    port_file = tempfile.mktemp(prefix="overhead-port-")
    proc = subprocess.Popen([sys.executable, __file__, "--serve", port_file], preexec_fn=_pin(1))
    deadline = time.time() + 15
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise SystemExit("bench target did not start")
        time.sleep(0.05)
    with open(port_file) as fh:
        port = int(fh.read())
    os.unlink(port_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    return proc, port


def run_round(locustfile: str, user_class: str, port: int, users: int, seconds: int) -> dict:
    """One headless Locust process; returns requests, CPU seconds and wall
    seconds measured inside it between all-users-spawned and the stop."""
    result = tempfile.mktemp(prefix="overhead-result-")
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                locustfile,
                user_class,
                "--headless",
                "-u",
                str(users),
                "-r",
                str(users),
                "-t",
                f"{seconds}s",
                "--host",
                f"http://127.0.0.1:{port}/",
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            env={**os.environ, "OVERHEAD_RESULT": result},
            preexec_fn=_pin(0),
        )
        if out.returncode != 0:
            raise SystemExit(f"locust {user_class} exited {out.returncode}:\n{out.stderr[-3000:]}")
        with open(result) as fh:
            measured = json.load(fh)
    finally:
        if os.path.exists(result):
            os.unlink(result)
    if measured["failures"]:
        raise SystemExit(f"{user_class}: {measured['failures']} failures")
    return measured


def tracker_bytes_per_user(users: int = 2000, replies: int = 100) -> float:
    from lambda_affinity.core.tracker import Tracker

    envs = [f"2020/03/27/[$LATEST]{i:032x}" for i in range(ENVIRONMENTS)]
    tracker = Tracker()
    for env in envs:  # the shared interning table is per run, not per user
        tracker.record("warmup", env)
    rng = random.Random(1)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for u in range(users):
        label = f"u{u + 1}"
        for i in range(replies):
            tracker.record(label, envs[rng.randrange(ENVIRONMENTS)], i == 0, rng.random() < 0.7)
    tracker.take_changed()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / users


def tracking_us_per_reply(n: int = 100_000) -> float:
    """CPU the tracking itself adds per reply: parse the probe reply, record it."""
    from lambda_affinity.core.reply import parse_reply
    from lambda_affinity.core.tracker import Tracker

    body = json.dumps(
        {
            "env_id": "2020/03/27/[$LATEST]" + "a" * 32,
            "request_id": "00000000-0000-0000-0000-000000000000",
            "cold": False,
            "env_invocations": 42,
            "env_age_ms": 1234.5,
            "session": "s",
            "cache": {"hit": True, "entries": 10, "age_ms": 100.0},
            "probe": 1,
        }
    ).encode()
    tracker = Tracker()
    started = time.process_time()
    for _ in range(n):
        obs = parse_reply(body)
        tracker.record("u1", obs.env_id, obs.cold, obs.cache_hit)
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--users", type=int, default=30, help="enough for Locust to saturate its core")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with tempfile.NamedTemporaryFile("w", suffix="_overhead_locustfile.py", delete=False) as fh:
        fh.write(LOCUSTFILE)
    target, port = start_target()
    totals = {cls: {"requests": 0, "cpu_s": 0.0, "wall_s": 0.0} for cls in ("Plain", "Tracked")}
    try:
        for r in range(args.rounds):
            # alternate which goes first, so drift in machine load hits both
            order = ("Plain", "Tracked") if r % 2 == 0 else ("Tracked", "Plain")
            for cls in order:
                m = run_round(fh.name, cls, port, args.users, args.seconds)
                for k in totals[cls]:
                    totals[cls][k] += m[k]
                print(
                    f"round {r + 1} {cls:<8} {m['requests'] / m['wall_s']:7.0f} req/s wall, "
                    f"{m['requests'] / m['cpu_s']:7.0f} req per CPU-second "
                    f"({m['cpu_s'] / m['wall_s']:.0%} of a core)",
                    flush=True,
                )
    finally:
        target.kill()
        target.wait()
        os.unlink(fh.name)
    plain, tracked = totals["Plain"], totals["Tracked"]
    wall_ratio = (tracked["requests"] / tracked["wall_s"]) / (plain["requests"] / plain["wall_s"])
    print(f"tracking_cpu_us_per_reply: {tracking_us_per_reply():.1f} (parse + record, in-process)")
    print(
        f"plain: {plain['requests'] / plain['cpu_s']:.0f} req per CPU-second, "
        f"tracked: {tracked['requests'] / tracked['cpu_s']:.0f}; wall-clock RPS ratio {wall_ratio:.3f}"
    )
    # The 2 cores are shared, so wall RPS moves with whatever else runs; a
    # CPU-bound Locust's RPS is requests per CPU-second of its one core.
    cpu_ratio = (tracked["requests"] / tracked["cpu_s"]) / (plain["requests"] / plain["cpu_s"])
    print(f"tracking_overhead_ratio: {cpu_ratio:.3f}")
    print(f"tracker_bytes_per_user: {tracker_bytes_per_user():.0f}")


if __name__ == "__main__":
    main()
