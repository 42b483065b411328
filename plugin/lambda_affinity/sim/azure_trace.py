"""The public Azure Functions invocation trace 2021 (Azure Public Dataset, AzureFunctionsInvocationTrace2021.md)
as a trace `simulate --trace` replays: one row per invocation with the columns

    app,func,end_timestamp,duration

(app and func are hashed ids, func unique only within its app; end_timestamp and duration in seconds).
An invocation arrived at end_timestamp - duration; the trace's rows are not in that order, so they
are put back in it through a bounded window (`max_disorder_s`), as the readers do.

Written: `time,user,function,duration`, in arrival order, for
`simulate --trace OUT --duration-col duration --function-col function`. `time` is epoch seconds: the
trace's seconds after 2021-01-31T00:00:00Z, the day its two weeks start (its timestamps "have been
modified": they are offsets, not dates). The trace has no users: `user` is synthesised from the
function (or the app), an assumption docs/traces.md states.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import LambdaAffinityError
from ..files import atomic_output
from .trace_columns import MAX_DURATION_S
from .trace_format import TraceError
from .trace_reader import _check_input, _Guard, open_text

COLUMNS = ("app", "func", "end_timestamp", "duration")
OUT_COLUMNS = ("time", "user", "function", "duration")
# 2021-01-31T00:00:00Z: the trace's first day (its description); its times are seconds from there.
ORIGIN = 1612051200.0
USER_FROM = ("function", "app")
# A day: more than any invocation's duration, so rows the trace lists by end time come back in
# arrival order; the window holds a day of rows (the two-week trace has a few hundred thousand a day).
DEFAULT_MAX_DISORDER_S = 86400.0


class AzureTraceError(LambdaAffinityError, ValueError):
    """An option of the conversion is out of range."""


@dataclass
class Converted:
    rows: int = 0
    functions: int = 0
    apps: int = 0
    reordered: int = 0
    blank_lines: int = 0
    first: float | None = None  # arrival times written, epoch seconds
    last: float | None = None


def convert(
    src: str, out: str, user_from: str = "function", max_disorder_s: float = DEFAULT_MAX_DISORDER_S
) -> Converted:
    """Read the Azure trace `src` (CSV, .gz too) and write `out` (gzip when it ends in .gz) whole or
    not at all. A bad row is a TraceError naming the line and column."""
    if user_from not in USER_FROM:
        raise AzureTraceError(f"user_from: {user_from!r} is not one of {', '.join(USER_FROM)}")
    if not 0 <= max_disorder_s < math.inf:
        raise AzureTraceError(f"max_disorder_s: must be a finite number >= 0, got {max_disorder_s!r}")
    _check_input(src)
    done = Converted()
    with atomic_output(out, "wb") as raw:
        stream: Any = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) if out.endswith(".gz") else raw
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(OUT_COLUMNS)
        for t, user, function, duration in _ordered(src, user_from, max_disorder_s, done):
            writer.writerow((f"{t:.6f}", user, function, repr(duration)))
        text.flush()
        text.detach()
        if stream is not raw:
            stream.close()
    return done


def _ordered(src: str, user_from: str, window: float, done: Converted) -> Iterator[tuple]:
    heap: list = []
    newest, newest_line = -math.inf, 0
    functions: set[str] = set()
    apps: set[str] = set()
    for line, t, app, function, duration in _rows(src, done):
        functions.add(function)
        apps.add(app)
        if t < newest:
            if t < newest - window:
                raise TraceError(
                    src,
                    line,
                    f"arrives {newest - t:.3f} s before line {newest_line}'s invocation: rows may be at most "
                    f"{window:g} s out of arrival order (--max-disorder)",
                    "end_timestamp",
                )
            done.reordered += 1
        else:
            newest, newest_line = t, line
        heapq.heappush(heap, (t, line, app if user_from == "app" else function, function, duration))
        while heap[0][0] <= newest - window:
            yield _out(heapq.heappop(heap), done)
    while heap:
        yield _out(heapq.heappop(heap), done)
    done.functions, done.apps = len(functions), len(apps)


def _out(item: tuple, done: Converted) -> tuple:
    t, _line, user, function, duration = item
    done.rows += 1
    if done.first is None:
        done.first = t
    done.last = t
    return t, user, function, duration


def _rows(src: str, done: Converted) -> Iterator[tuple]:
    """(line, arrival time, app, function, duration) of each row, in file order."""
    with open_text(src) as fh, _Guard(src):
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise TraceError(
                src, 1, f"not the Azure Functions 2021 trace: no {missing[0]} column (columns: {', '.join(header)})"
            )
        index = [header.index(c) for c in COLUMNS]
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                done.blank_lines += 1
                continue
            line = reader.line_num
            if len(row) < len(header):
                raise TraceError(src, line, f"{len(row)} fields, but the header has {len(header)}")
            app, func, end, duration = (row[i].strip() for i in index)
            if not app or not func:
                raise TraceError(src, line, "empty: every row names its app and function", "app" if not app else "func")
            end_s = _seconds(src, line, "end_timestamp", end, math.inf)
            took = _seconds(src, line, "duration", duration, MAX_DURATION_S)
            yield line, ORIGIN + end_s - took, app, f"{app}/{func}", took


def _seconds(src: str, line: int, column: str, text: str, most: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(src, line, f"{text!r} is not a number of seconds", column) from None
    if not 0 <= value <= most or math.isinf(value):
        raise TraceError(src, line, f"{text!r}: must be a finite number of seconds >= 0", column)
    return value
