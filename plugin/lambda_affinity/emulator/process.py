"""`lambda-affinity emulate` as a child process, for the Locust plugin and tests.

    with EmulatorProcess() as emu:
        requests.get(emu.function_urls["probe"])

The child keeps a pipe on its stdin: if this process dies, the emulator sees
end of file and stops itself, and the fork-server under it ends every
environment. `stop()` also makes sure nothing of the tree is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO

from ..errors import LambdaAffinityError


class EmulatorStartError(LambdaAffinityError, RuntimeError):
    pass


class EmulatorProcess:
    def __init__(
        self,
        config_path: str | None = None,
        env: dict | None = None,
        startup_timeout: float = 30.0,
        quiet: bool = True,
        preexec_fn=None,
    ) -> None:
        self.config_path = config_path
        self.preexec_fn = preexec_fn  # run in the child before the emulator starts (e.g. setrlimit)
        self.env = env
        self.startup_timeout = startup_timeout
        self.quiet = quiet
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        self.function_urls: dict[str, str] = {}
        self.introspection_url: str | None = None
        self.log_path: str | None = None  # the child's stdout and stderr
        self._dir: tempfile.TemporaryDirectory | None = None
        self._log: IO[bytes] | None = None

    def command(self, ready_file: str) -> list:
        cmd = [
            sys.executable,
            "-m",
            "lambda_affinity.cli",
            "emulate",
            "--port",
            "0",
            "--ready-file",
            ready_file,
            "--exit-with-parent",
        ]
        if self.quiet:
            cmd.append("--quiet")
        if self.config_path:
            cmd += ["--config", os.fspath(self.config_path)]
        return cmd

    def start(self) -> EmulatorProcess:
        if self.proc is not None:
            raise RuntimeError("this EmulatorProcess is already started")
        self._dir = tempfile.TemporaryDirectory(prefix="lambda-affinity-emulator-")
        ready_file = os.path.join(self._dir.name, "ready.json")
        self.log_path = os.path.join(self._dir.name, "emulator.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 -- the child's output for its whole life; stop() closes it
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            self.command(ready_file),
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=self.preexec_fn,
        )
        deadline = time.monotonic() + self.startup_timeout
        while not os.path.exists(ready_file):
            code = self.proc.poll()
            if code is not None:
                log = self._read_log()
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self._cleanup_files()
                self.proc = None
                raise EmulatorStartError(f"the emulator exited with code {code} before it was ready:\n{log}")
            if time.monotonic() > deadline:
                log = self._read_log()
                self.stop()
                raise EmulatorStartError(f"the emulator was not ready within {self.startup_timeout:g} s:\n{log}")
            time.sleep(0.02)
        with open(ready_file) as fh:
            doc = json.load(fh)
        self.endpoint = doc["endpoint"]
        self.function_urls = dict(doc["function_urls"])
        self.introspection_url = doc.get("introspection")
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, SIGKILL as a last resort; then make sure no process of
        the emulator's tree (fork-server, environments) is left. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        descendants = _descendants(proc.pid)
        code = proc.poll()
        if code is None:
            try:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(5)
        if proc.stdin is not None:
            proc.stdin.close()
        _reap(descendants, timeout=5.0)
        self.proc = None
        self._cleanup_files()
        return code

    def _read_log(self) -> str:
        if self.log_path is None:  # never started
            return ""
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read()[-8000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def read_log(self) -> str:
        """The child's output so far (its last 8000 bytes)."""
        return self._read_log()

    def _cleanup_files(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _descendants(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing, or the process is gone
        return []


def _reap(procs: list, timeout: float) -> None:
    """Wait for the emulator's former descendants to end; SIGKILL stragglers."""
    if not procs:
        return
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=2.0)
