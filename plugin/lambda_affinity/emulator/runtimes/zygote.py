"""The fork-server: one process that pre-imports the Python runtime client and
forks one child per execution environment.

A fork from a warm interpreter starts an environment in a few ms instead of
30-40 ms for a fresh `python` (docs/emulator.md, "Performance"), so the model's
init delay, not the machine, sets what a cold start costs. Children that run
another runtime (Node.js) exec it right after the fork.

Protocol over a SOCK_SEQPACKET socket (fd in argv[1]), one JSON object per
packet:
  emulator -> zygote  {"op": "spawn", "token": T, "kind": "python" | "awslambdaric" | "exec",
                       "argv": [...], "env": {...}, "cwd": DIR} with fds attached: the write
                       end of the environment's log pipe (its stdout and stderr) and,
                       optionally, a connected socket to the Runtime API for the
                       built-in Python runtime client (fd 3 in the child)
                      {"op": "kill", "pid": P}
                      {"op": "snapshot", "token": T, "env": {...}, "cwd": DIR, "handler": "module.function"}
                      with the write end of a log pipe attached: SnapStart (below)
  zygote -> emulator  {"token": T, "pid": P} or {"token": T, "error": "..."}
                      {"token": T, "ok": true} (a snapshot taken)
                      {"exited": P, "status": "exit status 1" | "signal: killed"}
A snapshot runs a function's init (imports its handler's module) in the zygote itself, once: every
environment forked afterwards starts with that module loaded, its module-level state copied from
the snapshot, as SnapStart restores one snapshot into every environment. The emulator gives each
SnapStart function a fork-server of its own for this (emulator/pools.py).

End of file on the socket means the emulator is gone: every child is killed
and reaped, then the zygote exits. Children get SIGKILL if the zygote dies
(PR_SET_PDEATHSIG), so no environment process outlives the emulator.

Containment (Linux): the zygote is non-dumpable (its children are made
dumpable again: their own /proc is theirs), has no capabilities (when
run as root it drops them all, the bounding set too, so nothing it forks or
execs regains them) and sets no_new_privs, so function code cannot read the
zygote's or the emulator's memory or environment. Both the zygote and every
environment process are child subreapers: whatever a handler starts, even in
a new session, stays below its environment while it lives and is handed to
the zygote when it ends, which then kills it (`sweep`).
"""

import importlib.util
import json
import os
import resource
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable  # already loaded by the imports above: costs no start-up time


def _load(name: str):
    """A module next to this file, under a private name: a function's own
    module called `bootstrap` (or `proctree`) is not shadowed."""
    spec = importlib.util.spec_from_file_location(
        f"_lambda_affinity_{name}", os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the runtime module {name!r} next to {__file__}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Pre-import the runtime client (and with it json, socket, traceback), so
# forks start warm.
bootstrap = _load("bootstrap")
proctree = _load("proctree")

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
_CAP_VERSION_3 = 0x20080522
MAX_PACKET = 1 << 20

_prctl: Callable[..., int] | None
try:
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux: the zygote's own cleanup still applies
    _prctl = None


def contain() -> None:
    """Once, before the first fork (see the module's docstring)."""
    if _prctl is None:
        return
    _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if os.geteuid() == 0:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as fh:
                last = int(fh.read())
        except (OSError, ValueError):
            last = 63
        for cap in range(last + 1):
            _prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        # Effective, permitted and inheritable sets, two 32-bit words each: all empty.
        if _libc.capset(ctypes.byref(Header(_CAP_VERSION_3, 0)), (ctypes.c_uint32 * 6)()) != 0:
            sys.stderr.write(f"lambda-affinity fork-server: capset failed (errno {ctypes.get_errno()})\n")
    _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def stray_children(me: int, known) -> list:
    """Our children that are not environment processes: what an ended
    environment left running, handed to us as its subreaper. Read from our
    own /proc children files: a scan of all of /proc after every exit would
    cost ~30 ms with 1,000 environments, and spawns wait behind it."""
    return [pid for pid in proctree.children(me) if pid not in known]


def sweep(me: int, known) -> None:
    for pid in stray_children(me, known):
        kill_group(pid)  # also its process group (a setsid child leads its own)


def describe_status(status: int) -> str:
    """Wait status in the words Lambda uses ("exit status 1", "signal: killed")."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        names: dict[int, str] = {
            signal.SIGKILL: "killed",
            signal.SIGSEGV: "segmentation fault",
            signal.SIGTERM: "terminated",
            signal.SIGABRT: "aborted",
            signal.SIGINT: "interrupt",
        }
        known = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
        return f"signal: {names.get(sig, known)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


RUNTIME_FD = 3  # where a child finds its Runtime API socket, when it has one
LAMBDA_NOFILE = 1024  # Lambda's RLIMIT_NOFILE, soft and hard


def lambda_fd_limit() -> None:
    """Lambda's 1,024 open files: the emulator raised its own limit (for its
    connections and environments) before starting us, and forks inherit it."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = LAMBDA_NOFILE if hard == resource.RLIM_INFINITY else min(LAMBDA_NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def child(ctl: socket.socket, wakeup_r: int, wakeup_w: int, msg: dict, fds: list, zygote_pid: int) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            # Orphans of what the handler starts stay below the environment.
            _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            # Inherited from the zygote; a function may read its own /proc/self
            # (a non-dumpable one is root's), as on Lambda.
            _prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        if os.getppid() != zygote_pid:  # the zygote died between fork and prctl
            os._exit(1)
        lambda_fd_limit()
        # A process group per environment: killing it also ends whatever the
        # handler started, as Lambda does when it destroys the microVM.
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        ctl.close()
        os.close(wakeup_r)
        os.close(wakeup_w)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[0], 2)
        runtime_fd = None
        if len(fds) > 1 and msg["kind"] == "python":
            runtime_fd = RUNTIME_FD
            os.dup2(fds[1], RUNTIME_FD, inheritable=False)  # not for the handler's subprocesses
        os.closerange(RUNTIME_FD + 1 if runtime_fd else RUNTIME_FD, 65536)
        os.chdir(msg["cwd"])
        env = msg["env"]
        kind = msg["kind"]
        if kind == "exec":
            os.execve(msg["argv"][0], msg["argv"], env)
        enter_function(msg)
        sys.argv = list(msg["argv"])
        if kind == "python":
            try:
                code = bootstrap.main(runtime_fd)
            except (bootstrap.RuntimeAPIError, OSError):
                code = 0  # the emulator closed the Runtime API: this environment is being stopped
        elif kind == "awslambdaric":
            # Imported only now: its C extension reads AWS_LAMBDA_RUNTIME_API on import.
            from awslambdaric import __main__ as ric

            ric.main(sys.argv)
            code = 0
        else:
            sys.stderr.write(f"unknown runtime kind {kind!r}\n")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        flush_std()
        os._exit(code)


def enter_function(msg: dict) -> None:
    """The function's variables, and its code and layers on the import path (awslambdaric's too)."""
    os.environ.clear()
    os.environ.update(msg["env"])
    # The function's code, not this folder, comes first on the import path.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]
    sys.path.insert(0, msg["cwd"])
    bootstrap.add_layer_paths(msg["cwd"])


def flush_std() -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass


def take_snapshot(msg: dict, fds: list) -> dict:
    """Run the function's init here (see the module's docstring); its output goes to fds[0]."""
    saved = os.dup(1), os.dup(2)
    os.dup2(fds[0], 1)
    os.dup2(fds[0], 2)
    os.close(fds[0])
    try:
        os.chdir(msg["cwd"])
        enter_function(msg)
        bootstrap.load_handler(msg["handler"])
        return {"ok": True}
    except bootstrap.InitError as exc:
        sys.stderr.write(f"[ERROR] {exc.error_type}: {exc.message}\n" + "".join(exc.stack))
        return {"error": f"{exc.error_type}: {exc.message}"}
    except BaseException as exc:  # SystemExit too: the snapshot failed, the fork-server goes on
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        flush_std()
        for fd, saved_fd in ((1, saved[0]), (2, saved[1])):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)


def main() -> int:
    ctl_fd = int(sys.argv[1])
    # Started by posix_spawn, which closes no descriptor: close any the emulator's process let leak (its own are
    # close-on-exec), as Popen's close_fds did; environments forked from here close theirs again.
    os.closerange(3, ctl_fd)
    os.closerange(ctl_fd + 1, 65536)
    ctl = socket.socket(fileno=ctl_fd)
    zygote_pid = os.getpid()
    contain()
    # Terminal signals are for the emulator, which stops us through the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_r, False)
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children = set()

    def send(obj: dict) -> None:
        try:
            ctl.send(json.dumps(obj).encode())
        except OSError:
            pass

    def reap() -> None:
        reaped = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped = True
            if pid in children:
                children.discard(pid)
                kill_group(pid)  # what the environment left running dies with it
                send({"exited": pid, "status": describe_status(status)})
        if reaped:
            # Its orphans are ours by now (reparented before it could be
            # reaped); killed, they are reaped and swept in turn.
            sweep(zygote_pid, children)

    watched: list[socket.socket | int] = [ctl, wakeup_r]
    try:
        while True:
            try:
                ready, _, _ = select.select(watched, [], [])
            except InterruptedError:
                continue
            if wakeup_r in ready:
                try:
                    os.read(wakeup_r, 4096)
                except BlockingIOError:
                    pass
                reap()
            if ctl not in ready:
                continue
            data, fds, _, _ = socket.recv_fds(ctl, MAX_PACKET, 4)
            if not data:
                break  # the emulator is gone
            msg = json.loads(data)
            if msg["op"] == "spawn":
                sys.stdout.flush()
                sys.stderr.flush()
                try:
                    pid = os.fork()
                except OSError as exc:
                    for fd in fds:
                        os.close(fd)
                    send({"token": msg["token"], "error": str(exc)})
                    continue
                if pid == 0:
                    child(ctl, wakeup_r, wakeup_w, msg, fds, zygote_pid)
                for fd in fds:
                    os.close(fd)
                try:
                    os.setpgid(pid, pid)  # also here, so a kill right after the fork finds the group
                except OSError:
                    pass
                children.add(pid)
                send({"token": msg["token"], "pid": pid})
            elif msg["op"] == "snapshot":
                send({"token": msg["token"], **take_snapshot(msg, fds)})
            elif msg["op"] == "kill":
                for fd in fds:
                    os.close(fd)
                # Only our own, not-yet-reaped children: a reaped pid may be reused.
                if msg["pid"] in children:
                    kill_group(msg["pid"])
    finally:
        end_all(zygote_pid, children)
    return 0


def end_all(me: int, children: set) -> None:
    """Kill and reap every environment and all they left behind. Only the
    end of one of our children hands us orphans, so after each batch of
    reaps, sweep again; done when nothing is left to wait for."""
    for pid in children:
        kill_group(pid)
    while True:
        try:
            os.waitpid(-1, 0)
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        sweep(me, ())


if __name__ == "__main__":
    sys.exit(main())
