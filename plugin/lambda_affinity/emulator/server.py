"""The emulator: the invocation service behind its HTTP front ends.

    with Emulator() as emu:                 # serves in a thread of its own
        boto3.client("lambda", endpoint_url=emu.endpoint, ...)
        requests.get(emu.function_urls["probe"])

The command line (`lambda-affinity emulate`) runs the same object in the main
thread with `serve_forever`, stopping on SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import tempfile

import gevent
from gevent.event import Event

from ..platform.distributions import parse_distribution
from .auth import Authority
from .config import EmulatorConfig, default_config
from .function_url import FunctionURL
from .introspection import ENVIRONMENTS, PREFIX as INTROSPECTION_PREFIX
from .invoke_api import InvokeAPI
from .network import ModelledNetwork
from .service import InvocationService
from .wire import make_server


class Emulator:
    def __init__(
        self, config: EmulatorConfig | None = None, host: str | None = None, port: int | None = None, log_stream=None
    ) -> None:
        self.config = config or default_config()
        self.host = host or self.config.host
        self.port = port if port is not None else (self.config.port or 0)
        self.log_stream = log_stream
        self.endpoint: str | None = None
        self.function_urls: dict[str, str] = {}
        self.service: InvocationService | None = None
        self._servers: list = []
        self._stopped: Event | None = None  # made by _boot, in the loop that serves
        self._stopping = False
        self._in_thread = False  # started by start(), in a thread of its own
        self._wake = None

    @property
    def introspection_url(self) -> str:
        if self.endpoint is None:
            raise RuntimeError("the emulator is not started: it has no introspection URL yet")
        return self.endpoint + ENVIRONMENTS

    # -- running in the current thread's gevent loop ------------------------
    def _boot(self) -> Event:
        """Start serving; returns the event set once the emulator has stopped."""
        self._stopped = stopped = Event()
        self.service = service = InvocationService(self.config, self.log_stream)
        service.start()
        advertised = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        try:
            api = InvokeAPI(service)
            api.control.bind(self.host)
            main = make_server(self._over_network(api, service.rng, INTROSPECTION_PREFIX), self.host, self.port)
            self._servers.append(main)
            main.start()
            self.endpoint = f"http://{advertised}:{main.server_port}"
            for fn in self.config.functions:
                if not fn.url:
                    continue
                url_id = secrets.token_hex(16)
                app = FunctionURL(service, fn.name, url_id, fn.auth_type)
                srv = make_server(self._over_network(app, service.rng), self.host, 0)
                self._servers.append(srv)
                srv.start()
                app.authority = Authority.of(self.host, srv.server_port)
                self.function_urls[fn.name] = f"http://{advertised}:{srv.server_port}/"
        except BaseException:
            self._shutdown()
            raise
        return stopped

    def _over_network(self, app, rng: random.Random, exempt: str | None = None):
        """`app` behind the modelled network round trip, when the config has one."""
        if self.config.network_latency is None:
            return app  # no wrapper at all: loopback's own round trip, nothing on the hot path
        return ModelledNetwork(app, parse_distribution(self.config.network_latency, "network_latency"), rng, exempt)

    def _shutdown(self) -> None:
        """Stop accepting, end every environment (answering in-flight
        invocations with an error), then close everything. Runs once."""
        if self._stopping:
            return
        self._stopping = True
        try:
            for srv in self._servers:
                srv.close()  # no new connections
            if self.service is not None:
                self.service.shutdown()
            for srv in self._servers:
                srv.stop(timeout=1.0)  # idle keep-alive connections
        finally:
            if self._stopped is not None:
                self._stopped.set()

    def ready_document(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "function_urls": dict(self.function_urls),
            "introspection": self.introspection_url,
            "pid": os.getpid(),
        }

    def serve_forever(
        self, ready_file: str | None = None, handle_signals: bool = True, stop_on_stdin_eof: bool = False, announce=None
    ) -> int:
        """Serve in this thread until SIGINT/SIGTERM (or stdin closing, when
        asked: the parent that started us is gone)."""
        stopped = self._boot()
        handlers = []
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers.append(gevent.signal_handler(sig, self._request_stop))
        if stop_on_stdin_eof:
            gevent.spawn(self._watch_stdin)
        if ready_file:
            write_ready_file(ready_file, self.ready_document())
        if announce is not None:
            announce(self)
        try:
            stopped.wait()
        finally:
            for h in handlers:
                h.cancel()
        return 0

    def _request_stop(self) -> None:
        gevent.spawn(self._shutdown)

    def _watch_stdin(self) -> None:
        from gevent import os as gos

        try:
            os.set_blocking(0, False)
            while gos.nb_read(0, 4096):
                pass
        except OSError:
            pass
        self._request_stop()

    # -- running in a thread of its own (the Python API) -----------------------
    def start(self, timeout: float = 30.0) -> Emulator:
        """Serve from a new OS thread with its own gevent loop; returns when ready.
        Works in a gevent-patched process too (real thread, real locks)."""
        if self._in_thread:
            raise RuntimeError("this Emulator is already started")
        ready = _RealEvent()
        errors: list = []
        self._thread_done = _RealEvent()
        _start_thread(self._thread_main, (ready, errors))
        self._in_thread = True
        if not ready.wait(timeout):
            raise RuntimeError(f"the emulator did not start within {timeout:g} s")
        if errors:
            self._thread_done.wait(timeout)
            self._in_thread = False
            raise errors[0]
        return self

    def _thread_main(self, ready, errors: list) -> None:
        hub = gevent.get_hub()
        try:
            try:
                stopped = self._boot()
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            self._wake = wake = hub.loop.async_()
            wake.start(self._request_stop)
            ready.set()
            try:
                stopped.wait()
            finally:
                wake.close()
                self._wake = None
        finally:
            hub.destroy(destroy_loop=True)
            self._thread_done.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the emulator started with `start()`; returns when every
        environment process has ended."""
        if not self._in_thread:
            return
        wake = self._wake
        if wake is not None:
            wake.send()  # thread-safe: wakes the emulator's loop
        if not self._thread_done.wait(timeout):
            raise RuntimeError(f"the emulator did not stop within {timeout:g} s")
        self._in_thread = False

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _RealEvent:
    """A one-shot event on a real lock, usable across OS threads even when
    gevent has patched `threading`."""

    def __init__(self) -> None:
        import gevent.monkey

        self._lock = gevent.monkey.get_original("_thread", "allocate_lock")()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        if self._set:
            return True
        if self._lock.acquire(True, timeout):
            self._lock.release()
            return True
        return False


def _start_thread(target, args) -> None:
    import gevent.monkey

    gevent.monkey.get_original("_thread", "start_new_thread")(target, args)


def write_ready_file(path: str, doc: dict) -> None:
    """Write atomically, so a reader never sees half a document."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ready-", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
