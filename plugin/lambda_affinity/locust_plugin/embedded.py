"""The embedded emulator a run starts when it has no --host: the bundled
probe behind the real wire protocols, stopped when Locust quits."""

from __future__ import annotations

import atexit
import json
import logging
import urllib.request
from collections.abc import Iterable
from typing import Any

from ..core.hosts import LambdaTarget, PluginConfigError, Transport

logger = logging.getLogger("lambda_affinity")


class EmbeddedEmulator:
    """One emulator process for a Locust process (the master's, in a
    distributed run). `start` returns the host of each transport asked for."""

    def __init__(self, function: str, config_path: str | None) -> None:
        self.function = function
        self.config_path = config_path
        self.process: Any = None
        self.notes: list[str] = []  # e.g. the emulator's own cap refused calls
        # what the run's `reproduce` records: the platform model (ModelConfig's fields) and the modelled timings
        self.model: dict | None = None
        self.timings: dict[str, str | None] = {}

    def start(self, transports: Iterable[Transport]) -> dict[Transport, str]:
        from ..emulator.process import EmulatorProcess, EmulatorStartError

        kinds = set(transports)
        emu = EmulatorProcess(config_path=self.config_path)
        try:
            emu.__enter__()
        except EmulatorStartError as exc:  # e.g. a bad config: its message names file and key
            raise PluginConfigError(f"the embedded emulator did not start: {exc}") from None
        self.process = emu
        atexit.register(self.stop)  # also covers exits that skip `quitting`
        urls = getattr(emu, "function_urls", {}) or {}
        if Transport.FUNCTION_URL in kinds and self.function not in urls:
            self.stop()
            raise PluginConfigError(
                f"the embedded emulator has no Function URL for function {self.function!r} "
                f"(functions with a URL: {', '.join(sorted(urls)) or 'none'}); see --affinity-function"
            )
        every = {Transport.INVOKE: LambdaTarget(self.function, emu.endpoint).host()}
        if self.function in urls:
            every[Transport.FUNCTION_URL] = urls[self.function]
        hosts = {k: every[k] for k in kinds if k in every}
        described = introspect(emu)
        if described is not None:
            self.model = described.get("model")
            self.timings = {f"emulator_{k}": described.get(k) for k in ("network_latency", "service_time")}
        logger.info(
            "Embedded Lambda emulator started (Invoke API %s); the run targets %s",
            emu.endpoint,
            " and ".join(hosts[k] for k in sorted(hosts, key=lambda t: t.value)),
        )
        return hosts

    def stop(self) -> None:
        """Idempotent."""
        emu, self.process = self.process, None
        if emu is None:
            return
        note = local_cap_note(emu)
        if note:
            self.notes.append(note)
        emu.stop()


DEFAULT_ROW = "probe"  # FunctionUrlUser.probe_name: the stats row of a Function URL user that names none


def name_rows(cls: Any, transport: Transport | None, function: str | None) -> None:
    """A Function URL user on the embedded emulator gets its stats row named after the function (an Invoke
    user's row already is), unless its class names the row itself. The default function is `probe`, so a
    default run's row keeps its name."""
    if transport is Transport.FUNCTION_URL and function and getattr(cls, "probe_name", None) == DEFAULT_ROW:
        cls.probe_name = function


def introspect(emu: Any) -> dict | None:
    """The emulator's introspection document (emulator/introspection.py); None when it cannot be read."""
    if not getattr(emu, "introspection_url", None):
        return None
    try:
        with urllib.request.urlopen(emu.introspection_url, timeout=2) as reply:
            doc = json.loads(reply.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def local_cap_note(emu: Any) -> str | None:
    """A line for the summary when the emulator's own cap on environments (a
    limit of this machine, not AWS's) refused calls during the run."""
    cap = (introspect(emu) or {}).get("local_cap") or {}
    if not cap.get("throttled"):
        return None
    source = "set by its config" if cap.get("source") == "config" else "derived from this machine"
    return (
        f"the embedded emulator's cap of {cap.get('max_environments')} live environments ({source}) "
        f"refused {cap['throttled']} calls with 429: a limit of this machine, not AWS's account "
        "concurrency; see docs/emulator.md, Machine cap"
    )
