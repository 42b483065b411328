"""--affinity-trace in a Locust process: one CSV row per request, written
while the test runs (docs/traces.md)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import gevent

from ..core.reply import Observation
from ..sim.trace import FLUSH_EVERY_S, TraceWriter, worker_path

logger = logging.getLogger("lambda_affinity")


class TraceRecorder:
    """The open trace of the current test, if any. A new test writes its
    trace afresh: standalone to PATH, worker N to its own part."""

    def __init__(self) -> None:
        self.writer: TraceWriter | None = None
        self._flusher: Any = None

    @property
    def active(self) -> bool:
        return self.writer is not None

    def open(self, path: str | None, worker: int | None = None) -> None:
        self.close()
        if not path:
            return
        if worker is not None:
            path = worker_path(path, worker)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.writer = TraceWriter(path)
        self._flusher = gevent.spawn(self._flush, self.writer)

    @staticmethod
    def _flush(writer: TraceWriter) -> None:
        """The writer flushes itself as rows come; this covers the last rows
        before a quiet spell, so a worker killed then still leaves them on disk."""
        while True:
            gevent.sleep(FLUSH_EVERY_S)
            writer.flush()

    def row(
        self,
        label: str,
        session: str,
        sent_at: float | None,
        obs: Observation | None,
        received_at: float | None = None,
    ) -> None:
        """One row for a request just recorded (valid when `obs` is given)."""
        writer = self.writer
        if writer is None:
            return
        recv = time.time() if received_at is None else received_at
        send = recv if sent_at is None else sent_at
        if obs is None:
            writer.write(send, recv, label, session, None, None, None, False)
        else:
            writer.write(send, recv, label, session, obs.env_id, obs.cold, obs.cache_hit, True)

    def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.kill(block=False)
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
            logger.info("lambda-affinity: wrote %d trace rows to %s", writer.rows, writer.path)
