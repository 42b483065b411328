"""Traces: one row per request, written by the plugin (`--affinity-trace`),
read back by replay (`simulate --trace`) and calibration (`calibrate`).

The plugin's format is CSV with a header, gzip when the name ends in `.gz`:

    send,recv,user,session,env_id,cold,cache_hit,valid
    1764590400.123456,1764590400.201877,u1,u1-4be1c2,2026/12/01/[$LATEST]5f0c...,1,0,1

`send`/`recv` are epoch seconds; `cold`, `cache_hit`, `valid` are 1/0, empty
when unknown (no cache status, or no valid reply). Rows are written when the
reply arrives, so they are in `recv` order and their `send` times may be a
little out of order (by up to one request's duration); readers put them back
in `send` order with a bounded buffer (`max_disorder_s`), which keeps memory
independent of the trace's length.

Replay also reads any CSV or JSON-lines file with a time column (epoch
seconds, epoch milliseconds, or ISO 8601; naive times are UTC) and a user or
session column. Every bad input raises `TraceError` naming the file, the line
and the column; blank lines are the only rows passed over, and they are
counted in `ReadStats`. A gzip trace cut short (its writer was killed: the
writer flushes at least every second, so the file holds all but the last
moment's rows) is read to its last complete line; the cut is counted in
`ReadStats.truncated` and reported as a warning.

This module is the one to import: it gathers the format (`trace_format`), the
writer (`trace_writer`) and the readers (`trace_reader`), and merges traces.
No Locust import: the plugin, the simulator and the CLI all use this module.
"""

from __future__ import annotations

import heapq

from ..files import atomic_output
from .trace_format import (
    DEFAULT_MAX_DISORDER_S,
    FIELDS,
    MS_THRESHOLD,
    TIME_COLUMNS,
    USER_COLUMNS,
    Arrival,
    ReadStats,
    TraceError,
    TraceOptionError,
    TraceRow,
    parse_time,
)
from .trace_reader import open_binary, open_text, read_arrivals, read_rows, truncation_warning
from .trace_writer import FLUSH_EVERY_S, GZIP_LEVEL, TraceWriter, worker_path


def merge(paths: list[str], out: str, max_disorder_s: float = DEFAULT_MAX_DISORDER_S, stats: list | None = None) -> int:
    """Merge plugin traces (e.g. one per worker) into one file in send order,
    streamed, written whole or not at all; returns the rows written. `stats`, when given, receives one
    ReadStats per input."""
    per_file = [ReadStats() for _ in paths]
    if stats is not None:
        stats.extend(per_file)
    streams = [read_rows(p, max_disorder_s, st) for p, st in zip(paths, per_file, strict=True)]  # inputs checked
    # whole or not at all: a bad row, a full disk or ^C midway leaves `out` as it was
    with atomic_output(out, "wb") as fh, TraceWriter(out, fh) as writer:
        for row in heapq.merge(*streams, key=lambda r: r.send):
            writer.write_row(row)
        return writer.rows


__all__ = [
    "DEFAULT_MAX_DISORDER_S",
    "FIELDS",
    "FLUSH_EVERY_S",
    "GZIP_LEVEL",
    "MS_THRESHOLD",
    "TIME_COLUMNS",
    "USER_COLUMNS",
    "Arrival",
    "TraceError",
    "TraceOptionError",
    "TraceRow",
    "ReadStats",
    "TraceWriter",
    "parse_time",
    "open_binary",
    "open_text",
    "read_arrivals",
    "read_rows",
    "merge",
    "worker_path",
    "truncation_warning",
]
