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
        self._snapshots: dict[str, ForkServer] = {}
        self._starting = Group()
        self.failures: list[str] = []

    def forkserver_for(self, fn: FunctionConfig) -> ForkServer:
        """Where `fn`'s environments are forked: its snapshot's fork-server, or the shared one."""
        return self._snapshots.get(fn.name, self.service.forkserver)

    def start(self) -> None:
        """Take every SnapStart function's snapshot, then start every provisioned environment and wait
        for their inits. ProvisioningError names the function and what failed."""
        try:
            for fn in self.service.config.functions:
                if fn.snapstart:
                    self._snapshot(fn)
            self.service.platform.provision(time.monotonic())  # each one: preinit() below
            self._starting.join(timeout=INIT_TIMEOUT_S + 5.0)
            if self.failures:
                raise ProvisioningError(f"provisioned concurrency: {self.failures[0]}")
        except BaseException:
            self.service.shutdown()  # nothing left running: the emulator does not start
            raise

    def close(self) -> None:
        for server in self._snapshots.values():
            server.close()
        self._snapshots.clear()

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
        self.failures.append(f"{fn.name}: {failure}")
        service.platform.kill(env, INIT_FAILED)  # not replaced: it would fail again

    def _snapshot(self, fn: FunctionConfig) -> None:
        service = self.service
        server = self._snapshots[fn.name] = ForkServer()
        server.start()
        opt = service.opt_dirs.get(fn.name)
        # No Runtime API and no log stream yet: the init runs before any environment exists.
        env = lambda_environment(fn, service.config, "", "", opt, SNAP_START)
        r, w = os.pipe()
        os.set_blocking(r, False)
        relay = gevent.spawn(self._relay, r, f"[{fn.name} snapshot] ")
        try:
            server.snapshot(env, fn.code, env["_HANDLER"], w, INIT_TIMEOUT_S)
        except SpawnError as exc:
            raise ProvisioningError(f"{fn.name}: SnapStart's init failed: {exc}") from None
        finally:
            os.close(w)
            relay.join(timeout=1.0)
            relay.kill(block=True)
            os.close(r)

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
