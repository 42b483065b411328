"""The invocation service: runs invocations on environments placed by the
platform model, in real time.

The model (lambda_affinity.platform) decides placement, keep-alive, lifetime
and throttling; this drives it with time.monotonic() from one gevent loop,
attaches a Sandbox (a real process) to each environment it creates, and stops
that process when the model retires the environment.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from typing import Literal, TypedDict

import gevent
from gevent.event import Event
from gevent.pool import Group

from ..errors import LambdaAffinityError
from ..platform import ACCOUNT_LIMIT, HANDOFF, IDLE, INITIALIZING, Platform, Throttled, UnknownFunction
from ..platform.distributions import parse_distribution
from ..platform.scheduler import SHUTDOWN
from . import layers
from .code_store import CodeStore
from .config import EmulatorConfig, FunctionConfig
from .containment import make_undumpable
from .forkserver import ForkServer, SpawnError
from .invocation import (
    Invocation,
    LogTail,
    Result,
    end_line,
    exit_result,
    new_invocation,
    new_request_id,
    report_line,
    start_line,
    timeout_log_line,
    timeout_result,
)
from .machine import machine_cap, raise_fd_limit
from .managed_sandbox import ManagedFleets
from .memory import MemoryWatch
from .pools import Pools
from .sandbox import STOPPED, Sandbox

MAX_ASYNC_PENDING = 1000  # Event invocations queued at once; beyond it: 429
ASYNC_RETRY_S = 60.0  # how long a throttled Event invocation keeps retrying


class LocalCap(TypedDict):
    """The emulator's own cap on live environments (shown at /_emulator/environments)."""

    max_environments: int | None
    source: Literal["config", "machine"]
    decided_by: str | None  # for "machine": "memory" | "tasks" | "descriptors"
    throttled: int  # calls refused by it


class ServiceStats(TypedDict):
    invocations: int
    function_errors: int
    timeouts: int
    throttled: int
    async_dropped: int
    local_cap: LocalCap


class ServiceStopping(LambdaAffinityError):
    """The emulator is stopping: this invocation will not complete."""


class LocalCapThrottled(Throttled):
    """The emulator's own cap on live environments refused a cold start: a
    limit of this machine, not AWS's account concurrency. `message` says so."""

    def __init__(self, exc: Throttled, message: str) -> None:
        super().__init__(exc.reason, exc.function, exc.limit)
        self.message = message


class Slot:
    """A leased environment. Set `recycle` when it must not be reused."""

    __slots__ = ("lease", "recycle")

    def __init__(self, lease) -> None:
        self.lease = lease
        self.recycle = False


class _Leasing:
    """`InvocationService.lease(function)`: acquires on entry; on exit always
    releases, recycled when the slot says so or when the body raised. A plain
    class rather than @contextmanager: it is on every invocation's path."""

    __slots__ = ("service", "function", "slot")

    def __init__(self, service: InvocationService, function: str) -> None:
        self.service = service
        self.function = function

    def __enter__(self) -> Slot:
        self.slot = slot = Slot(self.service.platform.acquire(self.function, time.monotonic()))
        return slot

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        slot = self.slot
        if exc_type is not None:
            slot.recycle = True
        service = self.service
        service.platform.release(slot.lease.env, time.monotonic(), recycle=slot.recycle)
        service._timer_check()
        return False


class InvocationService:
    def __init__(self, config: EmulatorConfig, log_stream=None) -> None:
        self.config = config
        self.functions = {f.name: f for f in config.functions}
        self._arns = {name: self.arn(name) for name in self.functions}
        # Once, before anything reads it: the front ends' connections and every environment's
        # descriptors live in this process (1024 would stop a burst near 250), and the cap
        # derived below is bounded by it.
        raise_fd_limit()
        model = config.model
        self.local_cap = LocalCap(
            max_environments=model.max_environments, source="config", decided_by=None, throttled=0
        )
        if model.max_environments is None:
            derived = machine_cap(config.functions)
            model = model.replace(max_environments=derived.cap)
            self.local_cap = LocalCap(
                max_environments=derived.cap, source="machine", decided_by=derived.decided_by, throttled=0
            )
        self.pools = Pools(self)  # provisioned environments and SnapStart's snapshots
        self.platform = Platform(
            model,
            [f.spec() for f in config.functions],
            on_retire=self._on_retire,
            wall_offset=time.time() - time.monotonic(),
            on_preinit=self.pools.preinit,
        )
        self.forkserver = ForkServer()
        self.log_stream = log_stream  # START/END/REPORT and function output; None: quiet
        self._out: list = []  # lines not written yet (str, or a callable giving one)
        self._out_scheduled = False
        self.stopping = False
        self.active = 0  # invocations in flight, synchronous and Event
        self._drained = Event()
        self._drained.set()
        self._sandboxes: set = set()
        self.memory = MemoryWatch(self._print)
        self._memory_watch = None
        self._async = Group()
        self._timer = None
        self._timer_wake = Event()
        self._timer_target: float | None = None
        # The emulator's own generator for modelled durations (service time
        # here, the network in front): `random`'s global state stays untouched.
        self.rng = random.Random()
        self._service_time = (
            None if config.service_time is None else parse_distribution(config.service_time, "service_time")
        )
        self.stats = ServiceStats(
            invocations=0, function_errors=0, timeouts=0, throttled=0, async_dropped=0, local_cap=self.local_cap
        )
        self._cap_warned = False  # the local cap's stderr line is written once per run
        self._opt_root: str | None = None  # the folder of every function's /opt stand-in (layers.py)
        self.code_store = CodeStore()  # code uploaded by UpdateFunctionCode (control_api.py)
        self.opt_dirs: dict = {}
        self.managed = ManagedFleets(self)  # Managed Instances functions' environments, started by their scaler

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        make_undumpable()  # function code must not read this process's environment (the user's credentials)
        self._opt_root, self.opt_dirs = layers.prepare(self.config.functions)
        self.forkserver.start()
        self._timer = gevent.spawn(self._run_timer)
        self._memory_watch = gevent.spawn(self.memory.run, lambda: self.stopping)
        self.managed.publish()  # their first environments, ready before the emulator takes a call
        self.pools.start()  # before any call, as AWS readies them before the version takes traffic

    def shutdown(self, timeout: float = 5.0) -> None:
        """End every environment; in-flight invocations are answered with an error."""
        self.stopping = True
        self.platform.shutdown()  # on_retire -> each sandbox ends, STOPPED to its invocation
        self._drained.wait(timeout)
        self._async.kill(block=True, timeout=1.0)
        for greenlet in (self._timer, self._memory_watch):
            if greenlet is not None:
                greenlet.kill(block=True, timeout=1.0)
        self.forkserver.close()  # the zygote kills and reaps whatever is left
        self.pools.close()
        for sandbox in list(self._sandboxes):
            sandbox.close_logs()
        if self._opt_root is not None:
            shutil.rmtree(self._opt_root, ignore_errors=True)
        self.code_store.close()
        self.flush_log()

    # -- placement ----------------------------------------------------------
    def lease(self, function: str) -> _Leasing:
        """`with service.lease(fn) as slot:` acquire an environment from the
        model; always release it (recycled when the slot says so, or when the
        body raised)."""
        return _Leasing(self, function)

    def deploy(self, name: str, fn: FunctionConfig) -> None:  # new environments run fn; the model retires old ones
        self.pools.deployed(fn)  # SnapStart: a snapshot of the new code first
        self.functions[name] = fn
        self.platform.deploy(name, time.monotonic())
        self._timer_check()

    def add_version(self, fn: FunctionConfig) -> None:  # a published version: a function of its own in the model
        self.pools.deployed(fn)  # SnapStart: the version's own snapshot (AWS takes it at publish)
        self.functions[fn.key] = fn
        self._arns[fn.key] = f"{self.arn(fn.name)}:{fn.version}"
        self.platform.add_function(fn.spec())
        self.managed.add(fn.key)  # a Managed Instances version: its first environments start now

    # -- invocations -------------------------------------------------------------
    def arn(self, function: str) -> str:
        return f"arn:aws:lambda:{self.config.region}:{self.config.account_id}:function:{function}"

    def invoke(
        self,
        function: str,
        payload: bytes,
        client_context: str | None = None,
        tail: bool = False,
        request_id: str | None = None,
        count_throttle: bool = True,
    ) -> tuple[Result, LogTail | None]:
        """Run one invocation to its end. Raises UnknownFunction, Throttled, ServiceStopping.
        `count_throttle=False`: a refusal is not counted (an Event call's retry: its client got 202)."""
        if self.stopping:
            raise ServiceStopping()
        request_id = request_id or new_request_id()
        log = LogTail() if tail else None
        self.active += 1
        self._drained.clear()
        try:
            with self.lease(function) as slot:
                result = self._run(slot, function, payload, client_context, request_id, log)
                slot.recycle = result.recycle
        except Throttled as exc:
            if count_throttle:
                self.stats["throttled"] += 1
            # The account limit refuses before counting the call in; past that
            # point only the cap on live environments refuses with this reason.
            counter = self.platform.counter
            if exc.reason == ACCOUNT_LIMIT and counter.total < counter.account_limit:
                raise self._local_cap_hit(exc, count_throttle) from None
            raise
        finally:
            self.active -= 1
            if self.active == 0:
                self._drained.set()
        self.stats["invocations"] += 1
        if result.function_error:
            self.stats["function_errors"] += 1
            if result.status == "timeout":
                self.stats["timeouts"] += 1
        return result, log

    def _local_cap_hit(self, exc: Throttled, count: bool = True) -> LocalCapThrottled:
        cap = self.local_cap
        if count:  # only calls answered 429: the Locust summary reports this number as such
            cap["throttled"] += 1
        why = (
            f"derived from this machine's {cap['decided_by']}"
            if cap["source"] == "machine"
            else "model.max_environments in the config"
        )
        message = (
            f"Rate Exceeded. The local Lambda emulator's cap of {cap['max_environments']} live environments "
            f"({why}) was hit: a limit of this machine, not AWS's account concurrency limit."
        )
        if not self._cap_warned:
            self._cap_warned = True
            try:  # once per run, on stderr even with --quiet: a run's summary should say why calls failed
                sys.stderr.write(
                    f"lambda-affinity emulator: {message} Set model.max_environments to change it; "
                    "later throttles are counted in local_cap.throttled (/_emulator/environments).\n"
                )
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        return LocalCapThrottled(exc, message)

    def _run(
        self, slot: Slot, function: str, payload: bytes, client_context, request_id: str, log: LogTail | None
    ) -> Result:
        env = slot.lease.env
        fn = self.functions[function]
        init_ms = None
        if slot.lease.cold:
            started = time.monotonic()
            sandbox = Sandbox(self, fn, env)
            env.handle = sandbox
            self._sandboxes.add(sandbox)
            try:
                sandbox.start()
            except (SpawnError, OSError) as exc:  # e.g. out of descriptors: an answer, not a dropped call
                self._sandboxes.discard(sandbox)
                return exit_result(request_id, f"could not start the environment: {exc}")
            failure = sandbox.wait_init(request_id)
            if failure is None and slot.lease.init_delay_s > 0:
                gevent.sleep(slot.lease.init_delay_s)  # the model's cold-start cost, on top of the real one
            if failure is STOPPED or self.stopping:
                raise ServiceStopping()
            init_ms = (time.monotonic() - started) * 1000
            if log is not None:
                for line in sandbox.init_log.lines:
                    log.add(line)
            if failure is not None:
                if log is not None or self.log_stream is not None:
                    self._log_line(sandbox, log, start_line(request_id), False)
                self._log_end(sandbox, request_id, log, failure, 0.0, init_ms)
                return failure
            self.platform.ready(env, time.monotonic())
        else:
            sandbox = env.handle
        inv = new_invocation(request_id, payload, self._arns[function], fn.timeout, client_context, log)
        if log is not None or self.log_stream is not None:
            self._log_line(sandbox, log, start_line(request_id), False)
        result = sandbox.run(inv)
        if result is STOPPED:
            raise ServiceStopping()
        if self._service_time is not None and not result.recycle:
            result = self._service(self._service_time(self.rng), sandbox, inv, result)
        if log is not None or self.log_stream is not None:
            self._log_end(sandbox, request_id, log, result, (time.monotonic() - inv.started) * 1000, init_ms)
        return result

    def _service(self, busy: float, sandbox: Sandbox, inv: Invocation, result: Result) -> Result:
        """Modelled time on the environment (the simulator's `service`): the environment stays leased, so it
        also decides where overlapping calls land. Part of the invocation's duration, so bounded by the
        function's timeout as AWS bounds it: past it, the call times out and the environment is recycled."""
        left = inv.timeout_s - (time.monotonic() - inv.started)
        if not busy < left:  # also inf and nan
            gevent.sleep(max(0.0, left))
            sandbox.drain_logs()
            sandbox.kill()
            return timeout_result(inv.request_id, inv.timeout_s)
        if busy > 0:
            gevent.sleep(busy)
        return result

    def invoke_async(self, function: str, payload: bytes, client_context: str | None = None) -> str:
        """An Event invocation: queued, answered 202, run in the background
        (retried while throttled, as Lambda's async queue does). Raises
        UnknownFunction now; Throttled when the local queue is full."""
        if function not in self.functions:
            raise UnknownFunction(function)
        if self.stopping:
            raise ServiceStopping()
        if len(self._async) >= MAX_ASYNC_PENDING:
            raise Throttled(ACCOUNT_LIMIT, function, MAX_ASYNC_PENDING)
        request_id = new_request_id()
        self._async.spawn(self._run_async, function, payload, client_context, request_id)
        return request_id

    def _run_async(self, function, payload, client_context, request_id) -> None:
        give_up = time.monotonic() + ASYNC_RETRY_S
        delay = 0.05
        while True:
            try:
                # Retries are not refusals: its client was answered 202; a drop is counted once below.
                self.invoke(function, payload, client_context, request_id=request_id, count_throttle=False)
                return
            except Throttled:
                if time.monotonic() + delay > give_up:
                    break
                gevent.sleep(delay)
                delay = min(delay * 2, 1.0)
            except ServiceStopping:
                break
        self.stats["async_dropped"] += 1
        self._print(f"[{function}] Event invocation {request_id} dropped: throttled or stopping")

    # -- logs ---------------------------------------------------------------
    # Every line goes out in order through `_out`. START, END and REPORT are
    # written at the loop's next turn, after the invocation's reply has gone
    # out (one write for all that piled up meanwhile); a warm invocation's
    # REPORT is even formatted then. Any other line (function output, errors)
    # writes the backlog at once, so the order on stdout never changes.
    def _log_line(self, sandbox: Sandbox, log: LogTail | None, line: str, flush: bool = True) -> None:
        if log is not None:
            log.add(line)
        self.print_line(sandbox, line, flush)

    def _log_end(self, sandbox, request_id, log, result: Result, duration_ms: float, init_ms) -> None:
        if result.status == "timeout":
            when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
            self._log_line(sandbox, log, timeout_log_line(when, request_id, sandbox.fn.timeout), False)
        self._log_line(sandbox, log, end_line(request_id), False)
        fn = sandbox.fn
        if log is None and result.status is None:
            # Only printed: built when written. The environment's retirement
            # writes the backlog first (Sandbox.terminate), while its
            # process still answers for its memory.
            self._print(
                lambda: (
                    sandbox.log_prefix
                    + report_line(
                        request_id, duration_ms, fn.memory, sandbox.peak_memory_mb(), init_ms, None, fn.snapstart
                    )
                ),
                False,
            )
        else:
            # Killed for its memory: AWS reports the whole size as used.
            peak = fn.memory if sandbox.out_of_memory else sandbox.peak_memory_mb()
            line = report_line(request_id, duration_ms, fn.memory, peak, init_ms, result.status, fn.snapstart)
            self._log_line(sandbox, log, line, False)

    def print_line(self, sandbox: Sandbox, line: str, flush: bool = True) -> None:
        if self.log_stream is not None:
            self._print(sandbox.log_prefix + line, flush)

    def _print(self, text, flush: bool = True) -> None:
        """Write `text` (a line, or a callable giving one) after the lines
        before it: now, or with `flush=False` at the loop's next turn."""
        if self.log_stream is None:
            return
        self._out.append(text)
        if flush:
            self.flush_log()
        elif not self._out_scheduled:
            self._out_scheduled = True
            gevent.get_hub().loop.run_callback(self._flush_scheduled)

    def _flush_scheduled(self) -> None:
        self._out_scheduled = False
        self.flush_log()

    def flush_log(self) -> None:
        out = self._out
        if not out:
            return
        self._out = []
        if self.log_stream is None:
            return
        try:
            self.log_stream.write("".join([(x if isinstance(x, str) else x()) + "\n" for x in out]))
            self.log_stream.flush()
        except (OSError, ValueError):
            self.log_stream = None  # the reader went away; keep serving

    # -- environments ending -------------------------------------------------
    def _on_retire(self, env, reason: str) -> None:
        sandbox = env.handle
        if sandbox is not None:
            sandbox.terminate(stopping=reason == SHUTDOWN)

    def sandbox_exited(self, sandbox: Sandbox) -> None:
        """Its process ended. An idle environment (or one in its hand-off, or a
        replacement initialised and waiting to take over) leaves the model now;
        a busy or initializing one is recycled by the invocation that holds it
        (or, initialising ahead of any call, by the pools' init watch)."""
        env = sandbox.env
        waiting = env.state == INITIALIZING and not env.invocations and env.ready_at is not None
        if env.state in (IDLE, HANDOFF) or waiting:
            self.platform.kill(env, now=time.monotonic())  # a provisioned one is replaced as of now

    def forget(self, sandbox: Sandbox) -> None:
        self._sandboxes.discard(sandbox)

    # -- memory ------------------------------------------------------------------
    def watch_memory(self, sandbox: Sandbox) -> None:
        """Check its memory until it is idle again (called as it starts and at each invocation)."""
        self.memory.add(sandbox)

    # -- keep-alive and lifetime -----------------------------------------
    def _timer_check(self) -> None:
        """After a release: wake the timer if a deadline now comes sooner."""
        target = self._timer_target
        if target is None or (self.platform.next_deadline() or target) < target:
            self._timer_wake.set()

    def _run_timer(self) -> None:
        while not self.stopping:
            deadline = self.platform.next_deadline()
            self._timer_target = deadline
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._timer_wake.wait(wait)
            self._timer_wake.clear()
            self.platform.expire(time.monotonic())
