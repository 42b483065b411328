"""One execution environment as a real OS process.

A `Sandbox` owns the environment's process (forked by the zygote with
Lambda's environment variables and nothing else of the emulator's), its
Runtime API port, and its log pipe. It runs one invocation at a time and
keeps its process, hence the function's module-level state, between them.
"""

from __future__ import annotations

import os
import shutil
import sys
import time

import gevent
from gevent import Timeout, os as gos, socket as gsocket
from gevent.event import AsyncResult
from gevent.queue import Queue
from gevent.server import StreamServer

from . import layers
from .config import EmulatorConfig, FunctionConfig
from .forkserver import RUNTIMES_DIR, ForkServer
from .invocation import (
    Invocation,
    LogTail,
    Result,
    exit_result,
    init_error,
    init_timeout_result,
    out_of_memory_result,
    timeout_result,
)
from .runtime_api import GONE, PARKED, RuntimeAPI, RuntimeConnection, connection_handler

INIT_TIMEOUT_S = 10.0  # AWS: the init phase has 10 s
_MAX_PARTIAL_LINE = 64 * 1024  # an endless line is cut here rather than buffered
# What stands in for the credentials Lambda hands a function: dummies, so that
# nothing of the emulator's own environment reaches function code.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAEMULATORDUMMYKEY",
    "AWS_SECRET_ACCESS_KEY": "emulator/dummy/secret/not/a/real/credential",
    "AWS_SESSION_TOKEN": "emulator-dummy-session-token",
}
STOPPED = Result(b"", status="stopped")  # the emulator stopped during this invocation


def lambda_environment(
    fn: FunctionConfig,
    cfg: EmulatorConfig,
    env_id: str,
    runtime_api: str,
    opt: str | None = None,
    init_type: str = "on-demand",
) -> dict:
    """The variables Lambda sets in an environment, plus the function's own (`opt`: its layers' folder;
    `init_type`: AWS_LAMBDA_INITIALIZATION_TYPE, how its init came about)."""
    paths = [os.path.dirname(sys.executable)]
    node = shutil.which("node")
    if node:
        paths.append(os.path.dirname(node))
    paths += ["/usr/local/bin", "/usr/bin", "/bin"]
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "AWS_LAMBDA_FUNCTION_VERSION": fn.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": env_id,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
        "AWS_REGION": cfg.region,
        "AWS_DEFAULT_REGION": cfg.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
        "_HANDLER": fn.handler,
        "LAMBDA_TASK_ROOT": fn.code,
        "LAMBDA_RUNTIME_DIR": RUNTIMES_DIR,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": ":".join(dict.fromkeys(paths)),
        **DUMMY_CREDENTIALS,
    }
    if os.environ.get("LD_LIBRARY_PATH"):  # Lambda sets one too; the interpreter may need ours
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    env.update(layers.environment(fn, opt))
    env.update(fn.environment)
    return env


def launch_command(fn: FunctionConfig) -> tuple[str, list]:
    """(zygote kind, argv) for the function's runtime client."""
    if fn.is_node:
        return "exec", [shutil.which("node") or "node", os.path.join(RUNTIMES_DIR, "bootstrap.mjs")]
    if fn.runtime_client == "awslambdaric":
        return "awslambdaric", ["awslambdaric", layers.runtime_handler(fn)]
    return "python", [os.path.join(RUNTIMES_DIR, "bootstrap.py")]


def max_memory_mb(pid: int | None) -> int | None:
    """Peak resident memory (VmHWM), as REPORT's Max Memory Used."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return max(1, int(line.split()[1]) // 1024)
    except (OSError, ValueError, IndexError):
        return None
    return None


class Sandbox:
    def __init__(self, host, fn: FunctionConfig, env) -> None:
        # host: the InvocationService (fork-server, config, log printing).
        self.host = host
        self.fn = fn
        self.env = env  # the platform model's Environment
        self.pid: int | None = None
        # the fork-server its process came from: a SnapStart snapshot's, or the shared one
        self.forkserver: ForkServer | None = None
        self.port: int | None = None
        self.exit_status: str | None = None
        self.current: Invocation | None = None
        self.init_log = LogTail()
        self._queue: Queue = Queue()  # invocations for a runtime not parked on /next
        self._parked: RuntimeConnection | None = None  # a connection waiting on /next, lent to the next invocation
        self._direct: RuntimeConnection | None = None  # the connection the current invocation is served on
        self._init = AsyncResult()
        self._server: StreamServer | None = None
        self._logfd: int | None = None
        self._reader = None
        self._partial = b""
        self._ended = False
        self._status_fd: int | None = None  # /proc/PID/status, for REPORT's Max Memory Used
        self.out_of_memory = False  # killed for going over fn.memory
        self.log_prefix = f"[{fn.name} {env.id[-8:]}] "  # before each of its lines on the emulator's stdout

    # -- life ---------------------------------------------------------------
    def start(self) -> None:
        """Open the Runtime API port and start the process (init runs in it)."""
        self._server_app = RuntimeAPI(self)
        kind, argv = launch_command(self.fn)
        # Out of descriptors (EMFILE) can strike at any step: whatever was
        # opened before it is closed again, or each failed cold start leaks.
        r = w = None
        try:
            self._server = StreamServer(("127.0.0.1", 0), connection_handler(self, self._server_app))
            self._server.init_socket()
            self._server.start()
            self.port = self._server.server_port
            env = lambda_environment(
                self.fn,
                self.host.config,
                self.env.id,
                f"127.0.0.1:{self.port}",
                self.host.opt_dirs.get(self.fn.name),
                self.env.init_type,
            )
            r, w = os.pipe()
            # Readable before the spawn returns: the runtime may post its init
            # error (after logging it) while we still wait for the fork-server.
            self._logfd = r
            os.set_blocking(r, False)
            self._spawn_processes(kind, argv, env, w)
        except BaseException:
            self._logfd = None
            if r is not None:
                os.close(r)
            self.kill()  # any process already started (a Managed Instances environment has several)
            self._close_server()
            raise
        finally:
            if w is not None:
                os.close(w)
        self._reader = gevent.spawn(self._read_logs)
        self.host.watch_memory(self)

    def _spawn_processes(self, kind: str, argv: list, env: dict, log_w: int) -> None:
        """The environment's process (a Managed Instances one: its several, managed_sandbox.py)."""
        self.pid = self._spawn(kind, argv, env, log_w, self.exited)

    def _spawn(self, kind: str, argv: list, env: dict, log_w: int, on_exit) -> int:
        """One process writing to the log pipe `log_w`; returns its pid."""
        fds = [log_w]
        ours = theirs = None
        try:
            if kind == "python":
                # The built-in client also gets a connected socket to this same
                # Runtime API: a Unix socket costs less per exchange than TCP.
                ours, theirs = gsocket.socketpair()
                fds.append(theirs.fileno())
                gevent.spawn(RuntimeConnection(self, self._server_app, ours).serve)
                ours = None  # its greenlet's now: it closes it at end of file (`theirs` closed below)
            # a SnapStart function's environments are forked from its snapshot (emulator/pools.py)
            self.forkserver = forkserver = self.host.pools.forkserver_for(self.fn)
            return forkserver.spawn(kind, argv, env, self.fn.code, fds, on_exit)
        finally:
            if ours is not None:
                ours.close()
            if theirs is not None:
                theirs.close()

    def wait_init(self, request_id: str, timeout: float = INIT_TIMEOUT_S) -> Result | None:
        """None once the runtime asks for its first event; else the failure."""
        try:
            outcome = self._init.get(timeout=timeout)
        except gevent.Timeout:
            self.kill()
            return init_timeout_result(request_id, timeout)
        kind = outcome[0]
        if kind == "ready":
            return None
        if kind == "init_error":
            self.kill()  # the runtime exits by itself too; make sure
            return init_error(outcome[1], outcome[2])
        if kind == "exit":
            return self._exit_result(request_id, outcome[1])
        return STOPPED

    def run(self, inv: Invocation) -> Result:
        """Hand `inv` to the runtime and wait for its result or its timeout."""
        if self._ended:
            return self._exit_result(inv.request_id, self.exit_status or "environment stopped")
        inv.result = result = AsyncResult()
        inv.started = time.monotonic()
        inv.deadline_ms = int((time.time() + inv.timeout_s) * 1000)
        self._begin(inv)
        self.host.watch_memory(self)
        timer = Timeout.start_new(inv.timeout_s)
        try:
            conn = self._take_parked()
            if conn is not None:
                self._lend(conn, inv)
            else:
                self._queue.put(inv)
            return result.get()
        except Timeout as exc:
            if exc is not timer:
                raise
            self.drain_logs()
            self._forget(inv)
            self.kill()
            return timeout_result(inv.request_id, inv.timeout_s)
        finally:
            timer.close()

    # What a Managed Instances environment (K invocations at once, managed_sandbox.py) does otherwise.
    def _begin(self, inv: Invocation) -> None:
        self.current = inv

    def _forget(self, inv: Invocation) -> None:
        self.current = None

    def _take_parked(self) -> RuntimeConnection | None:
        conn, self._parked = self._parked, None
        return conn

    def _lend(self, conn: RuntimeConnection, inv: Invocation) -> None:
        """The runtime waits on /next on `conn`: answer it with `inv` and serve
        the connection from this greenlet until the result is in."""
        self._direct = conn
        try:
            conn.run_invocation(inv)
        finally:
            self._direct = None

    def peak_memory_mb(self) -> int | None:
        """The process's peak resident memory (VmHWM), as REPORT's Max Memory
        Used; None once it has ended. Read through a descriptor kept open:
        half the cost of opening the status file for each REPORT, and never
        another process's that got the pid again."""
        fd = self._status_fd
        if fd is None:
            if self.pid is None or self.exit_status is not None:
                return None
            try:
                fd = self._status_fd = os.open(f"/proc/{self.pid}/status", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
        try:
            data = os.pread(fd, 8192, 0)
            i = data.index(b"VmHWM:")
            return max(1, int(data[i + 6 : data.index(b"\n", i)].split()[0]) // 1024)
        except (OSError, ValueError, IndexError):
            return None

    def over_memory(self) -> None:
        """It went over its memory size: killed, its invocation (or init)
        fails with Runtime.OutOfMemory when the process has ended."""
        self.out_of_memory = True
        self.kill()

    def _exit_result(self, request_id: str, status: str) -> Result:
        return out_of_memory_result(request_id) if self.out_of_memory else exit_result(request_id, status)

    def watched(self) -> bool:
        """Whether its memory is watched now: while it initializes or runs an invocation."""
        return not self._ended and (self.current is not None or not self._init.ready())

    def kill(self) -> None:
        if self.pid is not None and self.exit_status is None:
            self.host.forkserver.kill(self.pid)

    def terminate(self, stopping: bool) -> None:
        """The platform retired this environment: end the process. With
        `stopping` (emulator shutdown) an invocation in flight gets STOPPED."""
        self.host.flush_log()  # a REPORT not yet written reads the process's memory: before it goes
        self.kill()
        if not self._init.ready():
            self._init.set(("stopped",))
        inv = self.current
        if inv is not None and stopping:
            self.current = None
            self._deliver(inv, STOPPED)
        self._end()

    # -- called by the fork-server and the Runtime API -----------------------
    def exited(self, status: str) -> None:
        """The process ended (reaped by the zygote)."""
        self.exit_status = status
        if not self._init.ready():
            self.drain_logs()
            self._init.set(("exit", status))
        inv = self.current
        if inv is not None:
            self.drain_logs()
            self.current = None
            self._deliver(inv, self._exit_result(inv.request_id, status))
        self._end()
        self.host.sandbox_exited(self)

    def init_failed(self, payload: bytes, error_type: str | None) -> bool:
        if self._init.ready():
            return False
        self.drain_logs()  # the runtime logged the error before posting it
        self._init.set(("init_error", payload, error_type))
        return True

    def want_next(self, conn: RuntimeConnection, keep_alive: bool, park_only: bool = False):
        """A runtime connection asks for its next event: the Invocation, GONE
        once the environment ends, or PARKED: the connection is lent to the
        next invocation, which answers it. With `park_only`, None when it
        cannot be parked (the caller must not block)."""
        if not self._init.ready():
            self.drain_logs()  # what init printed is the init phase's
            self._init.set(("ready",))
        if self._ended:
            return GONE
        if self._queue.qsize():
            return self._queue.get() or GONE
        if self.current is not None:
            # A /next while an invocation is in flight (the handler calling the Runtime API itself, or a
            # runtime asking early): AWS's runtime API (rapid) answers it with the invocation in progress,
            # so the environment's next invocation cannot go to a connection that will never answer it.
            return self.current
        if keep_alive and self._parked is None and not conn.closed:
            self._parked = conn
            return PARKED
        if park_only:
            return None
        return self._queue.get() or GONE  # blocks until an event is dispatched

    def connection_closed(self, conn: RuntimeConnection) -> None:
        if self._parked is conn:
            self._parked = None

    def complete(self, request_id: str, result: Result) -> bool:
        inv = self.current
        if inv is None or inv.request_id != request_id:
            return False
        if inv.log is not None or self.host.log_stream is not None:
            self.drain_logs()  # what the handler printed before answering belongs to this invocation
        self.current = None
        self._deliver(inv, result)
        return True

    def _deliver(self, inv: Invocation, result: Result) -> None:
        waiter = inv.result
        assert waiter is not None  # run() sets it before the invocation can be answered
        waiter.set(result)
        conn = self._direct
        if conn is not None:
            conn.wake(inv)  # its greenlet may be waiting on the runtime for this result

    # -- logs -------------------------------------------------------------------
    def _read_logs(self) -> None:
        fd = self._logfd
        if fd is None:  # start() failed after all
            return
        try:
            while True:
                data = gos.nb_read(fd, 65536)
                if not data:
                    break
                self._feed(data)
        except OSError:
            pass
        finally:
            if self._partial:
                self._emit(self._partial)
                self._partial = b""
            self._logfd = None
            os.close(fd)
            self.host.forget(self)

    def drain_logs(self) -> None:
        """Read what is already in the pipe, without waiting."""
        fd = self._logfd
        if fd is None:
            return
        while True:
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _MAX_PARTIAL_LINE:
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            self._emit(line)

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        inv = self.current
        if inv is not None:
            if inv.log is not None:
                inv.log.add(line)
        elif not self._init.ready():
            self.init_log.add(line)
        self.host.print_line(self, line)

    # -- internals --------------------------------------------------------------
    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._answer_waiting()
        self._close_server()
        self._close_status()

    def _answer_waiting(self) -> None:
        """The environment ended: a runtime waiting on /next gets its answer."""
        self._queue.put(None)
        conn = self._parked
        if conn is not None:
            self._parked = None
            conn.answer_parked(GONE)

    def _close_status(self) -> None:
        fd, self._status_fd = self._status_fd, None
        if fd is not None:
            os.close(fd)

    def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()

    def close_logs(self, timeout: float = 0.5) -> None:
        """At emulator stop, after every process has ended: the pipe reaches
        end of file, unless something outside the process group holds it."""
        if self._reader is not None:
            self._reader.join(timeout=timeout)
            self._reader.kill(block=True, timeout=timeout)

    def describe(self, now: float) -> dict:
        d = self.env.describe(now)
        d["pid"] = self.pid
        d["runtime_api_port"] = self.port
        d["runtime"] = self.fn.runtime
        return d
