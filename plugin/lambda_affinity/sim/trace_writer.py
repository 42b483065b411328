"""Writing a trace: the plugin streams its rows to a file as replies arrive."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import time
from collections.abc import Iterable
from typing import IO

from ..files import atomic_output
from .trace_format import FIELDS, TraceRow

# gzip level 1: a load generator's CPU bounds its rate; level 6 costs about
# three times as much per row for a file ~15 % smaller.
GZIP_LEVEL = 1
# The writer flushes (a gzip sync point) at least this often, so a killed
# process leaves a readable file missing at most this much of its last rows.
FLUSH_EVERY_S = 1.0


def _flag(value: bool | None) -> str:
    return "" if value is None else ("1" if value else "0")


class TraceWriter:
    """Streams rows to a CSV file (gzip when the name ends in `.gz`): memory
    stays flat however long the run."""

    def __init__(self, path: str, stream: IO[bytes] | None = None) -> None:
        """Write to `path`, or into `stream` (a binary file the caller opened, e.g. files.atomic_output's,
        and closes; `path` then only says whether to gzip)."""
        self.path = path
        gz = path.endswith(".gz")
        self._gzip: gzip.GzipFile | None = None
        if stream is not None:
            # the layers over the caller's stream are closed here, the stream itself is left open
            if gz:
                self._gzip = gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=GZIP_LEVEL)
            self._wrapper = io.TextIOWrapper(self._gzip or stream, encoding="utf-8", newline="")
            self._fh: IO[str] = self._wrapper
        elif gz:
            # held open for the writer's life, streamed into; close() and __exit__ close it
            self._fh = gzip.open(  # noqa: SIM115
                path, "wt", encoding="utf-8", newline="", compresslevel=GZIP_LEVEL
            )
        else:
            self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 -- as above
        self._borrowed = stream is not None
        self._closed = False
        self._csv = csv.writer(self._fh, lineterminator="\n")
        self._csv.writerow(FIELDS)
        self.rows = 0
        self.flushed_rows = 0  # rows on disk, whole, at the last flush
        self.flushed_bytes = 0  # the file's size then: where abandon() cuts it back to
        self._flush_at = time.monotonic() + FLUSH_EVERY_S
        self.flush()  # the header on disk: a file cut back by abandon() still has it

    def write(
        self,
        send: float,
        recv: float | None,
        user: str,
        session: str,
        env_id: str | None,
        cold: bool | None,
        cache_hit: bool | None,
        valid: bool,
    ) -> None:
        self._csv.writerow(
            (
                f"{send:.6f}",
                "" if recv is None else f"{recv:.6f}",
                user,
                session,
                env_id or "",
                _flag(cold),
                _flag(cache_hit),
                _flag(valid),
            )
        )
        self.rows += 1
        if time.monotonic() >= self._flush_at:
            self.flush()

    def write_row(self, row: TraceRow) -> None:
        self.write(*row)

    def flush(self) -> None:
        if self._closed:
            return
        self._fh.flush()  # gzip: a sync flush, so everything so far can be decompressed
        self._flush_at = time.monotonic() + FLUSH_EVERY_S
        self.flushed_bytes = os.fstat(self._fh.fileno()).st_size
        self.flushed_rows = self.rows

    def abandon(self) -> None:
        """Stop after a write error (a full disk): close without raising and
        cut the file back to its last flush, so it ends with a whole row
        (gzip: a sync point a reader decompresses up to)."""
        with contextlib.suppress(OSError):
            self._fh.close()  # tries to write the rest, fails again, closes anyway
        with contextlib.suppress(OSError):
            os.truncate(self.path, self.flushed_bytes)
        self.rows = self.flushed_rows

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._borrowed:
            self._fh.close()
            return
        self._fh.flush()
        self._wrapper.detach()  # the caller's stream stays open for the caller to finish
        if self._gzip is not None:
            self._gzip.close()  # the gzip trailer; GzipFile(fileobj=...) leaves the stream open

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_trace(path: str, rows: Iterable[TraceRow]) -> int:
    """A whole trace, written whole or not at all (files.atomic_output); returns its rows."""
    with atomic_output(path, "wb") as raw, TraceWriter(path, raw) as writer:
        for row in rows:
            writer.write_row(row)
    return writer.rows


def worker_path(path: str, index: int) -> str:
    """Where worker `index` writes its part of `path`: `trace.csv.gz` -> `trace.w3.csv.gz`."""
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.partition(".")
    part = f"{stem}.w{index}{dot}{ext}"
    return f"{folder}/{part}" if folder else part
