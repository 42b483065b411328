"""Writing a trace: the plugin streams its rows to a file as replies arrive."""

from __future__ import annotations

import csv
import gzip
import io
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

    def __init__(self, path: str, fh: IO[str] | None = None) -> None:
        """Write to `path`, or to `fh` (a text file the caller opened for `path` and closes)."""
        self.path = path
        self._fh: IO[str]
        if fh is not None:
            self._fh = fh
        elif path.endswith(".gz"):
            # held open for the writer's life, streamed into; close() and __exit__ close it
            self._fh = gzip.open(  # noqa: SIM115
                path, "wt", encoding="utf-8", newline="", compresslevel=GZIP_LEVEL
            )
        else:
            self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 -- as above
        self._csv = csv.writer(self._fh, lineterminator="\n")
        self._csv.writerow(FIELDS)
        self.rows = 0
        self._flush_at = time.monotonic() + FLUSH_EVERY_S

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
        if self._fh.closed:
            return
        self._fh.flush()  # gzip: a sync flush, so everything so far can be decompressed
        self._flush_at = time.monotonic() + FLUSH_EVERY_S

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_trace(path: str, rows: Iterable[TraceRow]) -> int:
    """A whole trace, written whole or not at all (files.atomic_output); returns its rows."""
    with atomic_output(path, "wb") as raw:
        if path.endswith(".gz"):
            # closing this text layer ends the gzip stream and leaves `raw` open (GzipFile given a fileobj)
            text: IO[str] = gzip.open(  # noqa: SIM115 -- closed below, before atomic_output renames
                raw, "wt", encoding="utf-8", newline="", compresslevel=GZIP_LEVEL
            )
        else:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = TraceWriter(path, text)
        for row in rows:
            writer.write_row(row)
        if path.endswith(".gz"):
            text.close()
        else:
            text.flush()
            text.detach()  # type: ignore[attr-defined]  # atomic_output syncs and closes `raw` itself
    return writer.rows


def worker_path(path: str, index: int) -> str:
    """Where worker `index` writes its part of `path`: `trace.csv.gz` -> `trace.w3.csv.gz`."""
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.partition(".")
    part = f"{stem}.w{index}{dot}{ext}"
    return f"{folder}/{part}" if folder else part
