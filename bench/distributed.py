"""What aggregating per-user rows costs a distributed run: a Locust master
with 4 workers of 2 500 users each (10 000 users) against a light local
target, all real processes on this machine.

The target (gevent StreamServer, keep-alive, no framework) answers every
request with a probe-shaped reply from one of 5 000 environment ids: 70 % of
a user's calls land on its "home" environment (from its session key), the
rest anywhere, with cold starts and cache hits as a probe would report them.

Inside the master the bench's locustfile measures, from the test's start to
the end of the run: the CPU the plugin spends folding worker payloads in
(`Aggregator.cpu_s`, CPU of the thread that runs it), plus what decoding our
part of each report costs (msgpack, timed on a copy, as Locust decodes the
whole message), over the master's total process CPU, all threads (less the
bench's own listener); and the msgpack
size of our part of every periodic worker report (every 3 s). It also checks
that the master's totals match Locust's own request count, and its users the
number Locust spawned (users Locust stopped mid-run are kept apart).

Usage: python bench/distributed.py [--seconds 45] [--workers 4] [--users 10000] [--wait 5 15]
Last lines: report_bytes_per_worker_interval: N  (mean over every worker report, 3 s apart)
            master_aggregation_cpu_share: S      (goal <= 0.05)
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
import zlib

import psutil

ENVIRONMENTS = 5000
HOME_SHARE = 0.7

LOCUSTFILE = """
import json
import os
import time

import msgpack
from locust import between, events
from locust.runners import MasterRunner

from lambda_affinity import locust_plugin
from lambda_affinity.locust_plugin.roles import REPORT_KEY
from lambda_affinity.locust_plugin.users import FunctionUrlUser


class Probe(FunctionUrlUser):
    wait_time = between(float(os.environ["BENCH_WAIT_MIN"]), float(os.environ["BENCH_WAIT_MAX"]))


M = {"reports": 0, "with_rows": 0, "bytes": 0, "max_bytes": 0, "rows": 0, "decode_cpu": 0.0, "own_cpu": 0.0,
     "start_cpu": None, "finish_cpu": 0.0, "spawned": 0}
_env = {}
_finish = locust_plugin.AffinityPlugin.finish


def _timed_finish(plugin):
    # the end-of-run summary and outputs: reported apart from aggregation
    started = time.process_time()
    try:
        return _finish(plugin)
    finally:
        M["finish_cpu"] += time.process_time() - started


locust_plugin.AffinityPlugin.finish = _timed_finish


@events.init.add_listener
def _keep(environment, **_kw):
    _env["env"] = environment


@events.test_start.add_listener
def _start(environment, **_kw):
    if isinstance(environment.runner, MasterRunner):
        M["start_cpu"] = time.process_time()


@events.spawning_complete.add_listener
def _spawned(user_count, **_kw):
    # on the master: every user of the ramp-up is running (again after a rebalancing)
    M["spawned"] = max(M["spawned"], user_count)


@events.worker_report.add_listener
def _report(client_id, data, **_kw):
    started = time.thread_time()  # this thread's CPU, like Aggregator.cpu_s
    M["reports"] += 1
    payload = data.get(REPORT_KEY)
    if payload is not None:
        packed = msgpack.packb(payload)
        t = time.thread_time()
        msgpack.unpackb(packed)
        M["decode_cpu"] += time.thread_time() - t
        M["with_rows"] += 1
        M["bytes"] += len(packed)
        M["max_bytes"] = max(M["max_bytes"], len(packed))
        M["rows"] += len(msgpack.unpackb(payload["cols"])[0])  # the labels column
    M["own_cpu"] += time.thread_time() - started


@events.quit.add_listener
def _done(**_kw):
    env = _env["env"]
    if not isinstance(env.runner, MasterRunner) or M["start_cpu"] is None:
        return
    plugin = locust_plugin.plugin_for(env)
    agg = plugin.master.aggregator
    report = plugin.report
    doc = report.doc if report is not None else {}
    probe = sum(e.num_requests for e in env.stats.entries.values() if e.name.startswith("probe"))
    with open(os.environ["BENCH_RESULT"], "w") as fh:
        json.dump({**M, "total_cpu": time.process_time() - M["start_cpu"], "aggregation_cpu": agg.cpu_s,
                   "messages": agg.messages, "dropped": agg.dropped, "users": doc.get("users"),
                   "requests": doc.get("requests"),
                   "restarted_users": doc.get("restarted_users", 0),
                   "invalid": doc.get("invalid"), "environments": doc.get("environments"),
                   "locust_probe_requests": probe, "problems": report.warnings if report is not None else []}, fh)
"""


def serve(fd: int) -> None:
    """The target, on the listening socket inherited as `fd`: a probe-shaped
    reply per request, the environment chosen from the caller's session key."""
    from gevent import socket as gsocket
    from gevent.server import StreamServer

    rng = random.Random(1)
    envs = [f"2020/03/27/[$LATEST]{rng.getrandbits(128):032x}" for _ in range(ENVIRONMENTS)]
    served = [0] * ENVIRONMENTS
    cached: set = set()
    template = (
        '{"env_id": "%s", "request_id": "00000000-0000-0000-0000-%012d", "cold": %s, '
        '"env_invocations": %d, "env_age_ms": 1234.5, "session": "%s", '
        '"cache": {"hit": %s, "entries": 10, "age_ms": %s}, "probe": 1}'
    )

    def reply(session: str) -> bytes:
        home = zlib.crc32(session.encode()) % ENVIRONMENTS
        e = home if rng.random() < HOME_SHARE else rng.randrange(ENVIRONMENTS)
        served[e] += 1
        hit = (session, e) in cached
        cached.add((session, e))
        body = (
            template
            % (
                envs[e],
                served[e],
                "true" if served[e] == 1 else "false",
                served[e],
                session,
                "true" if hit else "false",
                "100.0" if hit else "null",
            )
        ).encode()
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def handle(sock, _addr):
        session = "-"
        try:
            # request heads line by line (GET, no body); the blank line ends one
            for line in sock.makefile("rb"):
                if line.startswith(b"x-affinity-session:"):
                    session = line[19:].strip().decode()
                elif line == b"\r\n":
                    sock.sendall(reply(session))
        except OSError:  # Locust closing its connections at the end
            return

    StreamServer(gsocket.socket(fileno=fd), handle).serve_forever()  # gevent's socket: cooperative I/O


def start_target() -> tuple[subprocess.Popen, int]:
    """The target in its own process, on a socket bound and listening here:
    connections wait in its backlog until the target accepts them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-fd", str(listener.fileno())], pass_fds=[listener.fileno()]
    )
    port = listener.getsockname()[1]
    listener.close()
    return proc, port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def heartbeat_misses(logdir: str) -> int:
    """How often Locust's master marked a worker missing (no heartbeat for 3 s):
    each time its dispatcher forgets that worker's users and may start others
    in their place, so a run with misses is not a clean run of --users users."""
    with open(os.path.join(logdir, "master.err")) as fh:
        return sum("failed to send heartbeat" in line for line in fh)


def run(args, locustfile: str, port: int, result: str, logdir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env.update(BENCH_WAIT_MIN=str(args.wait[0]), BENCH_WAIT_MAX=str(args.wait[1]), BENCH_RESULT=result)
    master_port = free_port()
    common = [sys.executable, "-m", "locust", "-f", locustfile]
    procs = []
    try:
        with open(os.path.join(logdir, "master.err"), "w") as err:
            procs.append(
                subprocess.Popen(
                    common
                    + [
                        "--loglevel",
                        "INFO",  # Locust's workers missing heartbeats, rebalancing: in master.err
                        "--master",
                        "--master-bind-host",
                        "127.0.0.1",
                        "--master-bind-port",
                        str(master_port),
                        "--expect-workers",
                        str(args.workers),
                        "--headless",
                        "-u",
                        str(args.users),
                        "-r",
                        str(args.spawn_rate),
                        "-t",
                        f"{args.seconds}s",
                        "--host",
                        f"http://127.0.0.1:{port}/",
                        "--only-summary",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
        for i in range(args.workers):
            with open(os.path.join(logdir, f"worker{i}.err"), "w") as err:
                procs.append(
                    subprocess.Popen(
                        common
                        + [
                            "--loglevel",
                            "WARNING",
                            "--worker",
                            "--master-host",
                            "127.0.0.1",
                            "--master-port",
                            str(master_port),
                        ],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                )
        try:
            code = procs[0].wait(timeout=args.seconds + 120)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"the master did not finish within {args.seconds + 120} s (logs in {logdir})") from None
        if code != 0 or not os.path.exists(result):
            raise SystemExit(f"the master exited {code} (logs in {logdir})")
        with open(result) as fh:
            return json.load(fh)
    finally:
        everything = []
        for p in procs:
            try:
                everything += [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)  # workers quit with their master
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        _, alive = psutil.wait_procs(everything, timeout=5)
        for p in alive:
            p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=45)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--spawn-rate", type=int, default=1000, help="users per second across workers")
    ap.add_argument(
        "--wait",
        type=float,
        nargs=2,
        default=(5.0, 15.0),
        metavar=("MIN", "MAX"),
        help="think time in seconds (uniform), per user",
    )
    ap.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fd is not None:
        serve(args.serve_fd)
        return
    logdir = tempfile.mkdtemp(prefix="bench-distributed-")
    locustfile = os.path.join(logdir, "bench_locustfile.py")
    with open(locustfile, "w") as fh:
        fh.write(LOCUSTFILE)
    result = os.path.join(logdir, "result.json")
    target, port = start_target()
    load_before = os.getloadavg()[0]
    try:
        m = run(args, locustfile, port, result, logdir)
    finally:
        target.kill()
        target.wait()
    misses = heartbeat_misses(logdir)
    for line in m["problems"]:
        print(line)
    own = m["aggregation_cpu"] + m["decode_cpu"]
    total = m["total_cpu"] - m["own_cpu"]
    print(
        f"{args.workers} workers, {m['users']} users, {m['requests']} valid replies "
        f"(Locust counted {m['locust_probe_requests']}), {m['environments']} environments, {args.seconds} s, "
        f"{m['restarted_users']} users Locust stopped mid-run kept apart"
    )
    print(
        f"worker reports: {m['reports']} ({m['with_rows']} with rows), {m['rows']} rows, "
        f"{m['rows'] / max(1, m['with_rows']):.0f} rows and max {m['max_bytes']} bytes per report"
    )
    print(
        f"master CPU: {total:.2f} s in the test, of which aggregation {m['aggregation_cpu'] * 1000:.1f} ms "
        f"({m['messages']} payloads) + decoding our part {m['decode_cpu'] * 1000:.1f} ms"
    )
    print(
        f"end-of-run summary and outputs: {m['finish_cpu'] * 1000:.1f} ms (once, as in a standalone run; "
        f"{m['finish_cpu'] / total:.3f} of the master's CPU; the workers' final snapshots it unpacks are counted "
        "in aggregation above)"
    )
    wanted = args.users * args.seconds / sum(args.wait) * 2  # mean think time (MIN+MAX)/2, replies ~instant
    print(
        f"machine: load {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; {m['locust_probe_requests']} "
        f"requests of the ~{wanted:.0f} the users' think time asks for; Locust marked workers missing {misses} "
        f"times ({os.cpu_count()} CPUs)"
    )
    print(f"report_bytes_per_worker_interval: {m['bytes'] / max(1, m['reports']):.0f}")
    print(f"master_aggregation_cpu_share: {own / total:.4f}")
    if m["requests"] + m["invalid"] != m["locust_probe_requests"]:
        raise SystemExit(
            f"totals disagree: {m['requests']} valid + {m['invalid']} invalid replies aggregated, "
            f"Locust counted {m['locust_probe_requests']} probe requests"
        )
    if m["spawned"] != args.users:
        raise SystemExit(
            f"not a run of {args.users} users: Locust reported {m['spawned']} spawned (it stops a test whose "
            f"workers all miss heartbeats: a machine too loaded; logs in {os.path.dirname(result)})"
        )
    if m["users"] != m["spawned"]:
        raise SystemExit(
            f"users disagree: the summary has {m['users']} users ({m['restarted_users']} stopped mid-run kept "
            f"apart), Locust spawned {m['spawned']} ("
            f"Locust marked workers missing {misses} times: its dispatcher then starts users elsewhere while theirs "
            f"run on; logs in {logdir})"
        )


if __name__ == "__main__":
    main()
