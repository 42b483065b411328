"""A Lambda Managed Instances environment: up to K invocations at once, in real processes.

As AWS runs each runtime on Managed Instances (docs/model.md, "Managed Instances"):
- Python: K processes, each the built-in runtime client with its own memory, each polling the
  environment's one Runtime API for /next (one invocation at a time each);
- Node.js: one process whose main thread starts W worker threads (node:worker_threads, each loading the
  handler with its own module globals; W from AWS_LAMBDA_NODEJS_WORKER_COUNT, default 1), each worker
  running ceil(K / W) /next loops at once (bootstrap.mjs).
All of them share the environment's id (AWS_LAMBDA_LOG_STREAM_NAME) and AWS_LAMBDA_INITIALIZATION_TYPE is
`lambda-managed-instances`. An event goes to the runtime connection that has waited longest on /next.

Simplifications (docs/emulator.md): any process of the environment ending, or one invocation timing out,
ends the whole environment (its other invocations get the exit's error); output is not split per
invocation (LogType Tail carries none of it).
"""

from __future__ import annotations

import time
from collections import deque

import gevent

from .forkserver import SpawnError
from .invocation import Invocation, Result
from .runtime_api import GONE, PARKED, RuntimeConnection
from .sandbox import INIT_TIMEOUT_S, STOPPED, Sandbox

INITIALIZATION_TYPE = "lambda-managed-instances"
# How many /next loops the Node.js runtime client runs in all (its workers share them out).
MAX_CONCURRENCY_VAR = "LAMBDA_AFFINITY_MAX_CONCURRENCY"


class ManagedSandbox(Sandbox):
    def __init__(self, host, fn, env, k: int) -> None:
        super().__init__(host, fn, env)
        self.k = k
        self.pids: list[int] = []
        self.in_flight: dict[str, Invocation] = {}
        self._waiting: deque = deque()  # runtime connections parked on /next, longest-waiting first
        self._serving: dict[str, RuntimeConnection] = {}  # request id -> the connection it was handed on

    # -- life ---------------------------------------------------------------
    def _spawn_processes(self, kind: str, argv: list, env: dict, log_w: int) -> None:
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = INITIALIZATION_TYPE
        env[MAX_CONCURRENCY_VAR] = str(self.k)
        for _ in range(1 if self.fn.is_node else self.k):
            self.pids.append(self._spawn(kind, argv, env, log_w, self._exited_one))
        self.pid = self.pids[0]

    def _exited_one(self, status: str) -> None:
        """One of its processes ended: the environment ends with it (the others are killed)."""
        if self.exit_status is None:
            self.kill()
            self.exited(status)

    def kill(self) -> None:
        for pid in self.pids:
            self.host.forkserver.kill(pid)

    def terminate(self, stopping: bool) -> None:
        self.host.flush_log()
        self.kill()
        if not self._init.ready():
            self._init.set(("stopped",))
        if stopping:
            for inv in list(self.in_flight.values()):
                self._finish(inv, STOPPED)
        self._end()

    def exited(self, status: str) -> None:
        self.exit_status = status
        self.drain_logs()
        if not self._init.ready():
            self._init.set(("exit", status))
        for inv in list(self.in_flight.values()):
            self._finish(inv, self._exit_result(inv.request_id, status))
        self._end()
        self.host.sandbox_exited(self)

    def watched(self) -> bool:
        return not self._ended and (bool(self.in_flight) or not self._init.ready())

    # -- invocations -------------------------------------------------------------
    def _begin(self, inv: Invocation) -> None:
        self.in_flight[inv.request_id] = inv

    def _forget(self, inv: Invocation) -> None:
        self.in_flight.pop(inv.request_id, None)

    def _take_parked(self) -> RuntimeConnection | None:
        while self._waiting:
            conn = self._waiting.popleft()
            if not conn.closed:
                return conn
        return None

    def _lend(self, conn: RuntimeConnection, inv: Invocation) -> None:
        self._serving[inv.request_id] = conn
        try:
            conn.run_invocation(inv)
        finally:
            self._serving.pop(inv.request_id, None)

    def want_next(self, conn: RuntimeConnection, keep_alive: bool, park_only: bool = False):
        if not self._init.ready():
            self.drain_logs()
            self._init.set(("ready",))
        if self._ended:
            return GONE
        if self._queue.qsize():
            return self._queue.get() or GONE
        if keep_alive and not conn.closed and conn not in self._waiting:
            self._waiting.append(conn)
            return PARKED
        if park_only:
            return None
        return self._queue.get() or GONE

    def connection_closed(self, conn: RuntimeConnection) -> None:
        if conn in self._waiting:
            self._waiting.remove(conn)

    def complete(self, request_id: str, result: Result) -> bool:
        inv = self.in_flight.get(request_id)
        if inv is None:
            return False
        self._finish(inv, result)
        return True

    def _finish(self, inv: Invocation, result: Result) -> None:
        self.in_flight.pop(inv.request_id, None)
        waiter = inv.result
        assert waiter is not None
        if not waiter.ready():
            waiter.set(result)
        conn = self._serving.get(inv.request_id)
        if conn is not None:
            conn.wake(inv)

    def _answer_waiting(self) -> None:
        for _ in range(max(1, len(self.pids) * self.k)):
            self._queue.put(None)  # every runtime loop waiting on /next gets its answer
        while self._waiting:
            self._waiting.popleft().answer_parked(GONE)

    def describe(self, now: float) -> dict:
        d = super().describe(now)
        d["pids"] = list(self.pids)
        d["in_flight"] = len(self.in_flight)
        d["waiting_on_next"] = len(self._waiting)
        d["max_concurrency"] = self.k
        return d


class ManagedFleets:
    """The service's side of Managed Instances: each environment the model's scaler creates gets a
    ManagedSandbox, started in the background; the model routes calls to it once its init is done."""

    def __init__(self, service) -> None:
        self.service = service
        self._starting: list = []  # the greenlets starting environments (publish waits for its own)
        for fleet in service.platform.managed.values():
            fleet.on_create = self._create

    def publish(self, timeout: float = INIT_TIMEOUT_S) -> None:
        """As publishing a version does: start each function's first environments, and wait (at most
        `timeout`) until their init is done."""
        if not self.service.platform.managed:
            return
        self.service.platform.expire(time.monotonic())
        gevent.joinall(self._starting, timeout=timeout)

    def add(self, function: str) -> None:
        """A function added to the model after the start (a published version): start its environments,
        in the background (PublishVersion answers at once, as AWS's does before the version is ACTIVE)."""
        fleet = self.service.platform.managed.get(function)
        if fleet is not None:
            fleet.on_create = self._create
            fleet.tick(time.monotonic())

    def _create(self, env) -> None:
        service = self.service
        if service.stopping:  # the scaler acting while the emulator stops: nothing more starts
            service.platform.kill(env)
            return
        fn = service.functions[env.function]
        sandbox = ManagedSandbox(service, fn, env, fn.managed["per_environment_max_concurrency"])
        env.handle = sandbox
        service._sandboxes.add(sandbox)
        self._starting = [g for g in self._starting if not g.dead]
        self._starting.append(gevent.spawn(self._init, sandbox))

    def _init(self, sandbox: ManagedSandbox) -> None:
        service, env = self.service, sandbox.env
        try:
            sandbox.start()
        except (SpawnError, OSError) as exc:
            service._sandboxes.discard(sandbox)
            service._print(f"[{env.function}] could not start a Managed Instances environment: {exc}")
            service.platform.kill(env)
            return
        failure = sandbox.wait_init("init")
        if failure is None:
            service.platform.ready(env, time.monotonic())
            service._timer_check()
            return
        if failure is not STOPPED:
            service._print(f"[{env.function}] a Managed Instances environment failed its init: {failure.error_type}")
        service.platform.kill(env)
