"""The emulator's side of the fork-server (runtimes/zygote.py): start it,
ask it for environment processes, hear when they exit, stop it.

Every environment process is a child of the zygote. Closing our end of the
socket makes the zygote kill them all and exit, so even an emulator killed
with SIGKILL leaves nothing behind (the zygote sees end of file).

One greenlet writes the socket, in order, from a queue: a burst of cold
starts fills the socket's queue (sendmsg waits for the zygote to catch up),
and two greenlets waiting to write one gevent socket is an error, not a wait.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket as _stdsocket
import subprocess
import sys
from collections.abc import Callable

import gevent
import gevent.monkey
from gevent import socket
from gevent.event import AsyncResult
from gevent.queue import Queue

from ..errors import LambdaAffinityError

RUNTIMES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runtimes")
ZYGOTE = os.path.join(RUNTIMES_DIR, "zygote.py")
MAX_PACKET = 1 << 20


def _zygote_env() -> dict:
    """The least the fork-server needs to run Python. Its children inherit
    this block (/proc/self/environ keeps it even after os.environ is
    replaced), so the emulator's own variables, credentials among them, must
    never be in it."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH")}


class SpawnError(LambdaAffinityError, RuntimeError):
    pass


class ForkServer:
    def __init__(self) -> None:
        self.proc: _Spawned | None = None
        self.sock: socket.socket | None = None
        self._tokens = itertools.count(1)
        self._pending: dict[int, tuple] = {}
        self._on_exit: dict[int, Callable[[str], None]] = {}
        self._reader = None
        self._writer = None
        self._outbox: Queue = Queue()  # (token or None, packet, fds the writer closes once sent)

    def start(self) -> None:
        ours, theirs = _stdsocket.socketpair(_stdsocket.AF_UNIX, _stdsocket.SOCK_SEQPACKET)
        try:
            # A session of its own: a Ctrl-C in the terminal reaches the
            # emulator, which then stops environments in order, not the
            # environments directly.
            self.proc = _Spawned([sys.executable, ZYGOTE, str(theirs.fileno())], theirs.fileno(), _zygote_env())
        finally:
            theirs.close()
        self.sock = socket.socket(fileno=ours.detach())
        self._reader = gevent.spawn(self._read_loop, self.sock)
        self._writer = gevent.spawn(self._write_loop, self.sock)

    def spawn(self, kind: str, argv: list, env: dict, cwd: str, fds: list, on_exit, timeout: float = 10.0) -> int:
        """Start one environment process; returns its pid. `fds[0]` becomes its
        stdout and stderr, `fds[1]` (optional) its Runtime API socket;
        `on_exit(status_text)` is called when it ends."""
        msg = {"op": "spawn", "kind": kind, "argv": argv, "env": env, "cwd": cwd}
        return self._request(msg, fds, on_exit, timeout, "start a process")["pid"]

    def snapshot(self, env: dict, cwd: str, handler: str, log_fd: int, timeout: float) -> None:
        """Run a function's init in the fork-server itself (SnapStart's snapshot): every process it
        starts afterwards has the handler's module loaded. Its output goes to `log_fd`. SpawnError
        with the init's error."""
        msg = {"op": "snapshot", "env": env, "cwd": cwd, "handler": handler}
        self._request(msg, [log_fd], None, timeout, "finish the init")

    def _request(self, msg: dict, fds: list, on_exit, timeout: float, what: str) -> dict:
        if self.sock is None:
            raise SpawnError("the fork-server is not running")
        token = msg["token"] = next(self._tokens)
        result = AsyncResult()
        self._pending[token] = (result, on_exit)
        try:
            # Copies for the writer, which may send after the caller closed its own.
            self._outbox.put((token, json.dumps(msg).encode(), _dup_all(fds)))
            reply = result.get(timeout=timeout)
        except gevent.Timeout:
            raise SpawnError(f"the fork-server did not {what} within {timeout:g} s") from None
        finally:
            self._pending.pop(token, None)
        if "error" in reply:
            raise SpawnError(reply["error"])
        return reply

    def kill(self, pid: int) -> None:
        """SIGKILL one environment process (and its process group). Never
        blocks: the fork-server's reader calls it too."""
        if self.sock is not None:
            self._outbox.put((None, json.dumps({"op": "kill", "pid": pid}).encode(), []))

    def _write_loop(self, sock: socket.socket) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            token, packet, fds = item
            try:
                if token is not None and token not in self._pending:
                    continue  # its caller gave up waiting: start nothing
                if fds:
                    sock.sendmsg([packet], [(_stdsocket.SOL_SOCKET, _stdsocket.SCM_RIGHTS, _fd_bytes(fds))])
                else:
                    sock.send(packet)
            except OSError as exc:
                waiter, _ = self._pending.get(token, (None, None))
                if waiter is not None:
                    waiter.set({"error": f"the fork-server is gone: {exc}"})
            finally:
                for fd in fds:
                    os.close(fd)

    def _read_loop(self, sock: socket.socket) -> None:
        try:
            while True:
                data = sock.recv(MAX_PACKET)
                if not data:
                    break
                msg = json.loads(data)
                if "exited" in msg:
                    callback = self._on_exit.pop(msg["exited"], None)
                    if callback is not None:
                        callback(msg["status"])
                else:
                    waiter, callback = self._pending.get(msg.get("token"), (None, None))
                    if waiter is None and "pid" in msg:
                        self.kill(msg["pid"])  # started after its caller gave up waiting: nobody owns it
                    elif waiter is not None:
                        if "pid" in msg:
                            # Registered before the next packet is read, so an
                            # exit right after the start is never missed.
                            self._on_exit[msg["pid"]] = callback
                        waiter.set(msg)
        except OSError:
            pass
        for waiter, _ in list(self._pending.values()):
            waiter.set({"error": "the fork-server exited"})
        # Every environment process died with the zygote.
        for pid, callback in list(self._on_exit.items()):
            self._on_exit.pop(pid, None)
            callback("signal: killed")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the zygote; it kills and reaps every environment process first."""
        if self.sock is not None:
            try:
                self.sock.shutdown(_stdsocket.SHUT_WR)  # end of file for the zygote
            except OSError:
                pass
        if self.proc is not None:
            try:
                _wait(self.proc, timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _wait(self.proc, 5.0)
        if self._reader is not None:
            self._reader.join(timeout=1.0)
            self._reader.kill(block=False)
        if self._writer is not None:
            self._writer.kill(block=True, timeout=1.0)
            self._writer = None
            while self._outbox.qsize():  # never sent: the copies of their descriptors
                item = self._outbox.get()
                for fd in item[2] if item else ():
                    os.close(fd)
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# The C functions themselves: gevent patches both to watch the child, which
# again only the main thread's loop can.
_posix_spawn = gevent.monkey.get_original("os", "posix_spawn")
_waitpid = gevent.monkey.get_original("os", "waitpid")


class _Spawned:
    """The zygote's process, started with os.posix_spawn rather than Popen:
    in a gevent-patched process (Locust's) Popen is gevent's, which needs
    child watchers, and only the main thread's loop has them, while the
    in-process Emulator runs its loop on a thread of its own. Only polled
    (_wait), never blocked on. `keep_fd` is the one descriptor it inherits
    besides stdio (stdin is /dev/null; the zygote closes any other)."""

    def __init__(self, args: list[str], keep_fd: int, env: dict[str, str]) -> None:
        self.args = args
        self.returncode: int | None = None
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.set_inheritable(keep_fd, True)
        try:
            # setsid: a session of its own, so a Ctrl-C in the terminal reaches the
            # emulator, which stops environments in order, not the environments directly
            self.pid = _posix_spawn(args[0], args, env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0)], setsid=True)
        finally:
            os.close(devnull)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = _waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def _wait(proc: _Spawned, timeout: float) -> None:
    # Poll instead of a blocking wait so other greenlets run meanwhile.
    with gevent.Timeout(timeout, subprocess.TimeoutExpired(proc.args, timeout)):
        while proc.poll() is None:
            gevent.sleep(0.01)


def _dup_all(fds: list) -> list:
    copies = []
    try:
        for fd in fds:
            copies.append(os.dup(fd))
    except OSError as exc:
        for fd in copies:
            os.close(fd)
        raise SpawnError(f"cannot pass descriptors to the fork-server: {exc}") from None
    return copies


def _fd_bytes(fds: list) -> bytes:
    import array

    return array.array("i", fds).tobytes()
