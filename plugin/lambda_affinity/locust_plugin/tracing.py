"""--affinity-trace in a Locust process: one CSV row per request, written
while the test runs (docs/traces.md).

The trace streams to its final name (a worker killed mid-run leaves the rows
it flushed). A file that cannot be written (a folder, /dev/full, a full disk,
a file size limit) is reported once, in one line, and the trace stops there:
the file is cut back to its last flush, so it ends with a whole row, and the
run goes on; the users' requests and Locust's statistics are not touched."""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from ..core.reply import Observation
from ..files import OutputFileError, check_output_target
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
        try:
            check_output_target(path)  # not a folder, FIFO or device; its folder made
            self.writer = TraceWriter(path)
        except (OutputFileError, OSError) as exc:
            message = str(exc) if isinstance(exc, OutputFileError) else f"{path}: cannot write: {exc.strerror or exc}"
            logger.error("lambda-affinity: --affinity-trace %s; no trace is written", message)
            return
        self._flusher = gevent.spawn(self._flush, self.writer)

    def _flush(self, writer: TraceWriter) -> None:
        """The writer flushes itself as rows come; this covers the last rows
        before a quiet spell, so a worker killed then still leaves them on disk."""
        while True:
            gevent.sleep(FLUSH_EVERY_S)
            try:
                writer.flush()
            except OSError as exc:
                self._fail(writer, exc)
                return

    def _fail(self, writer: TraceWriter, exc: OSError) -> None:
        """A write failed: say so once, cut the file back to its last whole row, write no more."""
        if self.writer is not writer:
            return  # already stopped
        self.writer = None
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher is not gevent.getcurrent():
            flusher.kill(block=False)
        writer.abandon()
        logger.error(
            "lambda-affinity: --affinity-trace %s: cannot write: %s; the trace stops here, "
            "with the %d rows written before (the run goes on)",
            writer.path,
            exc.strerror or exc,
            writer.rows,
        )

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
        try:
            if obs is None:
                writer.write(send, recv, label, session, None, None, None, False)
            else:
                writer.write(send, recv, label, session, obs.env_id, obs.cold, obs.cache_hit, True)
        except OSError as exc:
            self._fail(writer, exc)

    def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.kill(block=False)
        writer = self.writer
        if writer is not None:
            try:
                writer.close()
            except OSError as exc:
                self._fail(writer, exc)
                return
            self.writer = None
            logger.info("lambda-affinity: wrote %d trace rows to %s", writer.rows, writer.path)
