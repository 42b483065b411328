"""Environments whose init is not a user's wait: provisioned concurrency and SnapStart.

Provisioned concurrency: at start, before the front ends take a call, the platform model makes each
function's `provisioned_concurrency` environments (Platform.provision) and this module starts their
processes with AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency and waits for every init, as a
function's alias answers only once its provisioned concurrency is READY on AWS. The model counts the
first call on each as a new-environment call, keeps them idle however long, and replaces one that
retires (its lifetime, a crash): the successor's process starts in the background, and until its init
is done calls spill over to on-demand environments.

SnapStart: at start (on AWS, when a version is published) the function's init runs once, in a
fork-server of its own (runtimes/zygote.py, "snapshot"), with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start;
every environment of the function is then forked from that process, its module-level state a copy of
what the init computed: two environments share a random number drawn at import, as AWS warns they do.
The restore costs the model's `restore_delay` (service.py sleeps it as it sleeps an init delay).
"""

from __future__ import annotations

import json
import os
import time

import gevent
from gevent import os as gos
from gevent.pool import Group

from ..errors import LambdaAffinityError
from ..platform import INITIALIZING
from ..platform.environment import SNAP_START
from ..platform.scheduler import INIT_FAILED
from .config import FunctionConfig
from .forkserver import ForkServer, SpawnError
from .sandbox import INIT_TIMEOUT_S, STOPPED, Sandbox, lambda_environment


class ProvisioningError(LambdaAffinityError, RuntimeError):
    """A provisioned environment's init or a SnapStart snapshot failed at start: the emulator does not serve."""


class Pools:
    def __init__(self, service) -> None:
        self.service = service  # the InvocationService
        self._snapshots: dict[str, ForkServer] = {}  # by FunctionConfig.key: $LATEST's and each version's
        self._retired: set[ForkServer] = set()  # snapshots of code since replaced, still running environments
        self._starting = Group()
        self._closers = Group()  # each waits for a replaced snapshot's environments to end
        self.failures: list[str] = []  # inits that failed at start
        self._started = False

    def forkserver_for(self, fn: FunctionConfig) -> ForkServer:
        """Where `fn`'s environments are forked: its snapshot's fork-server, or the shared one."""
        return self._snapshots.get(fn.key, self.service.forkserver) if fn.snapstart else self.service.forkserver

    def deployed(self, fn: FunctionConfig) -> None:
        """`fn` is now what its $LATEST or version runs (an update, a published version): a SnapStart
        function's later environments are forked from a snapshot of it. The old snapshot's fork-server
        ends once the environments forked from it have (ending it earlier would kill them)."""
        if not fn.snapstart:
            return
        old = self._snapshots.pop(fn.key, None)
        try:
            self._snapshots[fn.key] = self._snapshot(fn)
        except ProvisioningError as exc:
            # each environment then runs the init itself and meets the error, as a call would on AWS
            self.service._print(f"[{fn.key} snapshot] {exc}; its environments init on their own")
        if old is not None:
            self._retired.add(old)
            self._closers.spawn(self._close_when_unused, old)

    def _close_when_unused(self, server: ForkServer, every_s: float = 1.0) -> None:
        platform = self.service.platform
        while any(getattr(env.handle, "forkserver", None) is server for env in platform.environments()):
            gevent.sleep(every_s)
        server.close()
        self._retired.discard(server)

    def start(self) -> None:
        """Take every SnapStart function's snapshot, then start every provisioned environment and wait
        for their inits. ProvisioningError names the function and what failed."""
        try:
            for fn in self.service.config.functions:
                if fn.snapstart:
                    self._snapshots[fn.key] = self._snapshot(fn)
            self.service.platform.provision(time.monotonic())  # each one: preinit() below
            self._starting.join(timeout=INIT_TIMEOUT_S + 5.0)
            if self.failures:
                raise ProvisioningError(f"provisioned concurrency: {self.failures[0]}")
            self._started = True
        except BaseException:
            self.service.shutdown()  # nothing left running: the emulator does not start
            raise

    def close(self) -> None:
        self._closers.kill(block=True, timeout=1.0)
        for server in [*self._snapshots.values(), *self._retired]:
            server.close()
        self._snapshots.clear()
        self._retired.clear()

    def preinit(self, env) -> None:
        """The model's `on_preinit`: start the environment's process; its init runs in the background."""
        if not self.service.stopping:
            self._starting.spawn(self._init, env)

    def _init(self, env) -> None:
        service = self.service
        fn = service.functions[env.function]
        sandbox = Sandbox(service, fn, env)
        env.handle = sandbox
        service._sandboxes.add(sandbox)
        try:
            sandbox.start()
        except (SpawnError, OSError) as exc:  # e.g. out of descriptors
            service.forget(sandbox)
            failure: str | None = f"could not start the environment: {exc}"
        else:
            result = sandbox.wait_init("")
            if result is STOPPED or service.stopping:
                return
            failure = None if result is None else _error_text(result.payload)
        if failure is None and env.state == INITIALIZING:
            service.platform.initialized(env, time.monotonic())
            service._timer_check()  # its lifetime is a deadline now
            return
        if self._started:  # a replacement: the pool is one short from now on
            service._print(f"[{fn.key}] a provisioned environment's init failed: {failure}")
        else:
            self.failures.append(f"{fn.key}: {failure}")
        service.platform.kill(env, INIT_FAILED)  # not replaced: it would fail again

    def _snapshot(self, fn: FunctionConfig) -> ForkServer:
        """A fork-server that has run `fn`'s init; ProvisioningError (and none left running) if it failed."""
        service = self.service
        server = ForkServer()
        server.start()
        opt = service.opt_dirs.get(fn.name)
        # No Runtime API and no log stream yet: the init runs before any environment exists.
        env = lambda_environment(fn, service.config, "", "", opt, SNAP_START)
        r, w = os.pipe()
        os.set_blocking(r, False)
        relay = gevent.spawn(self._relay, r, f"[{fn.key} snapshot] ")
        try:
            server.snapshot(env, fn.code, env["_HANDLER"], w, INIT_TIMEOUT_S)
        except SpawnError as exc:
            server.close()
            raise ProvisioningError(f"{fn.key}: SnapStart's init failed: {exc}") from None
        finally:
            os.close(w)
            relay.join(timeout=1.0)
            relay.kill(block=True)
            os.close(r)
        return server

    def _relay(self, fd: int, prefix: str) -> None:
        """The snapshot's init output, on the emulator's log as an environment's is."""
        partial = b""
        while True:
            data = gos.nb_read(fd, 65536)
            if not data:
                break
            *lines, partial = (partial + data).split(b"\n")
            for line in lines:
                self.service._print(prefix + line.decode("utf-8", "replace"))
        if partial:
            self.service._print(prefix + partial.decode("utf-8", "replace"))


def _error_text(payload: bytes) -> str:
    """`Type: message` of an init's error payload (AWS's shape), else the payload itself."""
    try:
        doc = json.loads(payload)
        return f"{doc['errorType']}: {doc['errorMessage']}"
    except (ValueError, TypeError, KeyError):
        return payload.decode("utf-8", "replace")
