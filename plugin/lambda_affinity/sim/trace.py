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

No Locust import: the plugin, the simulator and the CLI all use this module.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import json
import math
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, NamedTuple, TypeVar

from dateutil.parser import isoparse  # botocore's own dependency; declared in setup.cfg

from ..errors import LambdaAffinityError

FIELDS = ("send", "recv", "user", "session", "env_id", "cold", "cache_hit", "valid")
# Tried in order when no column is named: the plugin's own, then common log names.
TIME_COLUMNS = ("send", "timestamp", "time", "@timestamp", "requestTimeEpoch")
USER_COLUMNS = ("user", "session", "user_id", "session_id", "userId", "sessionId")
DEFAULT_MAX_DISORDER_S = 60.0
# No epoch-seconds time of a real log reaches this (year 5138); an epoch in
# milliseconds does (from 1973): numbers this large are read as milliseconds.
MS_THRESHOLD = 1e11
# gzip level 1: a load generator's CPU bounds its rate; level 6 costs about
# three times as much per row for a file ~15 % smaller.
GZIP_LEVEL = 1
# The writer flushes (a gzip sync point) at least this often, so a killed
# process leaves a readable file missing at most this much of its last rows.
FLUSH_EVERY_S = 1.0

# A replayed request: (time in epoch seconds, user). A plain tuple, not a
# NamedTuple: replay reads millions a second and a tuple is cheapest to make.
Arrival = tuple


class TraceError(LambdaAffinityError, ValueError):
    """A trace cannot be used; the message names the file, line and column."""

    def __init__(self, path: str, line: int | None, message: str, column: str | None = None) -> None:
        where = path if line is None else f"{path}:{line}"
        col = f" column {column!r}:" if column is not None else ""
        super().__init__(f"{where}:{col} {message}")
        self.path, self.line, self.column = path, line, column


class TraceOptionError(LambdaAffinityError, ValueError):
    """A reader's option is out of range (e.g. --max-disorder)."""


class TraceRow(NamedTuple):
    """One request of the plugin's trace."""

    send: float
    recv: float | None
    user: str
    session: str
    env_id: str | None
    cold: bool | None
    cache_hit: bool | None
    valid: bool


@dataclass
class ReadStats:
    """What reading a trace saw, for the reader's report: nothing is passed over uncounted."""

    rows: int = 0
    blank_lines: int = 0
    # rows that came before an earlier-sent row and were put back in order
    reordered: int = 0
    first: float | None = None
    last: float | None = None
    # the gzip stream ended before its end marker (a killed writer); its
    # complete lines up to there were read, an incomplete last one is not
    truncated: bool = False

    @property
    def span_s(self) -> float:
        # first and last are set together with rows, once the file is read
        return 0.0 if self.first is None or self.last is None else self.last - self.first


# -- writing ---------------------------------------------------------------------------


def _flag(value: bool | None) -> str:
    return "" if value is None else ("1" if value else "0")


class TraceWriter:
    """Streams rows to a CSV file (gzip when the name ends in `.gz`): memory
    stays flat however long the run."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path.endswith(".gz"):
            # held open for the writer's life, streamed into; close() and __exit__ close it
            self._fh: IO[str] = gzip.open(  # noqa: SIM115
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


# -- parsing values ----------------------------------------------------------------------


def parse_time(text) -> float:
    """Epoch seconds from epoch seconds, epoch milliseconds (numbers >= 1e11)
    or ISO 8601 (naive = UTC). Raises ValueError saying what is wrong."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a time")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        try:
            value = float(text)
        except ValueError:
            return _parse_iso(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite time")
    return value / 1000.0 if abs(value) >= MS_THRESHOLD else value


def _parse_iso(text: str) -> float:
    s = str(text).strip()
    if not s:
        raise ValueError("empty time")
    try:
        stamp = datetime.fromisoformat(s)  # fast, and before Python 3.11 strict ("Z", 1-digit fractions)
    except ValueError:
        try:
            stamp = isoparse(s)
        except (ValueError, OverflowError):
            raise ValueError(f"{text!r} is neither epoch seconds nor an ISO 8601 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


_TRUE = {"1", "true", "True", "TRUE"}
_FALSE = {"0", "false", "False", "FALSE"}


def _parse_flag(text: str) -> bool | None:
    if text == "":
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{text!r} is not 1, 0, true, false or empty")


# -- reading -----------------------------------------------------------------------------


def open_binary(path: str) -> io.BufferedIOBase:
    """The file's bytes (gunzipped when the name ends in `.gz`); TraceError if it cannot be read."""
    try:
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except OSError as exc:
        raise TraceError(path, None, f"cannot read: {exc.strerror or exc}") from None


def open_text(path: str) -> IO[str]:
    """The file as UTF-8 text, decoded in large chunks (fast); a decoding
    error is located afterwards by `_bad_bytes`."""
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise TraceError(path, None, f"cannot read: {exc.strerror or exc}") from None


def _lines(fh: IO[str], path: str, stats: ReadStats) -> Iterable[str]:
    """The file's lines; for gzip, up to where a cut-short stream ends (see
    the module doc). Plain files are iterated directly (the hot path)."""
    return _gzip_lines(fh, stats) if path.endswith(".gz") else fh


def _gzip_lines(fh: IO[str], stats: ReadStats) -> Iterator[str]:
    # The text layer yields every complete line before it asks gzip for more,
    # so the EOFError of a cut stream comes after them; the incomplete line
    # it held is discarded with it.
    try:
        yield from fh
    except EOFError:
        stats.truncated = True


def truncation_warning(path: str, stats: ReadStats) -> str | None:
    """What to tell the user when `path` was cut short (None when it was not)."""
    if not stats.truncated:
        return None
    return (
        f"{path}: the gzip stream ends early (its writer was killed?): read its {stats.rows} complete rows, "
        "not what was still unwritten"
    )


def _bad_bytes(path: str) -> TraceError:
    """The first line that is not UTF-8, found by reading the file again line by line."""
    with open_binary(path) as fh:
        for number, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return TraceError(path, number, f"not UTF-8 text (byte {exc.start + 1} of the line: {exc.reason})")
    return TraceError(path, None, "not UTF-8 text")


class _Guard:
    """Turns what reading a file can raise into TraceError naming the file."""

    def __init__(self, path: str, line=lambda: None) -> None:
        self.path, self.line = path, line

    def __enter__(self) -> _Guard:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None or issubclass(kind, TraceError):
            return
        if issubclass(kind, UnicodeDecodeError):
            raise _bad_bytes(self.path) from None
        if issubclass(kind, (OSError, EOFError, zlib.error)):
            raise TraceError(self.path, self.line(), f"cannot read: {exc}") from None
        if issubclass(kind, csv.Error):
            raise TraceError(self.path, self.line(), f"not valid CSV: {exc}") from None


def _pick(names: list[str], wanted: str | None, defaults: tuple, what: str, option: str, path: str, line: int) -> str:
    if wanted is not None:
        if wanted not in names:
            raise TraceError(path, line, f"no {what} column {wanted!r} (columns: {', '.join(names) or 'none'})")
        return wanted
    for name in defaults:
        if name in names:
            return name
    raise TraceError(
        path,
        line,
        f"no {what} column: none of {', '.join(defaults)}; name it with {option} "
        f"(columns: {', '.join(names) or 'none'})",
    )


def _records(
    path: str, lines: Iterable[str], columns: list[tuple[str | None, tuple, str, str]], stats: ReadStats
) -> Iterator[tuple]:
    """(line, value, value, ...) for the chosen columns of a CSV or JSON-lines
    file. `columns`: (name or None, default names, what, option)."""
    fh = iter(lines)
    first = next(fh, "")
    if not first:
        raise TraceError(path, 1, "empty file: expected a CSV header or JSON lines")
    if first.lstrip().startswith("{"):
        yield from _jsonl(path, first, fh, columns, stats)
    else:
        yield from _csv(path, first, fh, columns, stats)


def _header(path: str, reader, columns) -> tuple[list, list, list]:
    """(column names, the chosen names, their indexes) from a CSV header."""
    names = [h.strip() for h in next(reader)]
    picked = [_pick(names, want, defaults, what, option, path, 1) for want, defaults, what, option in columns]
    return names, picked, [names.index(p) for p in picked]


def _csv(path, first, lines, columns, stats):
    reader = csv.reader(_chain(first, lines))
    names, picked, index = _header(path, reader, columns)
    need = max(index) + 1
    for row in reader:
        if len(row) < need:
            if not row or (len(row) == 1 and not row[0].strip()):
                stats.blank_lines += 1
                continue
            missing = next(p for p, i in zip(picked, index, strict=True) if i >= len(row))
            raise TraceError(
                path, reader.line_num, f"{len(row)} fields, but the header has {len(names)}: no value", missing
            )
        yield (reader.line_num, picked, *(row[i] for i in index))


def _chain(first: str, rest: Iterable[str]) -> Iterator[str]:
    yield first
    yield from rest


def _jsonl(path, first, lines, columns, stats):
    picked = None
    number = 0
    for text in _chain(first, lines):
        number += 1
        if not text.strip():
            stats.blank_lines += 1
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(path, number, f"not valid JSON (column {exc.colno}: {exc.msg})") from None
        if not isinstance(obj, dict):
            raise TraceError(path, number, f"expected a JSON object per line, got {type(obj).__name__}")
        if picked is None:  # the first object names the columns, as a CSV header would
            names = list(obj)
            picked = [
                _pick(names, want, defaults, what, option, path, number) for want, defaults, what, option in columns
            ]
        values = []
        for name in picked:
            if name not in obj:
                raise TraceError(path, number, "no value", name)
            value = obj[name]
            values.append("" if value is None else value if isinstance(value, (int, float)) else str(value))
        yield (number, picked, *values)


_Payload = TypeVar("_Payload")


def _ordered(
    path: str, items: Iterator[tuple[float, int, _Payload]], window: float, column: list, stats: ReadStats
) -> Iterator[_Payload]:
    """items: (time, line, payload) in file order -> payloads in time order.

    A row is held until one `window` seconds later has been read (bounded
    memory); a row earlier than one already released is an error naming both
    lines."""
    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    newest = -math.inf
    newest_line = n = 0
    for n, item in enumerate(items, 1):  # noqa: B007 -- n counts the rows, read after the loop
        t = item[0]
        if t < newest:
            if t < newest - window:
                raise _out_of_order(path, item[1], t, newest, newest_line, window, column[0])
            stats.reordered += 1
        else:
            newest, newest_line = t, item[1]
        push(heap, item)
        horizon = newest - window
        while heap[0][0] <= horizon:
            out = pop(heap)
            if stats.first is None:
                stats.first = out[0]
            yield out[2]
    stats.rows, stats.last = n, (newest if n else None)
    while heap:
        out = pop(heap)
        if stats.first is None:
            stats.first = out[0]
        yield out[2]


def _out_of_order(
    path: str, line: int, t: float, newest: float, newest_line: int, window: float, column: str
) -> TraceError:
    """The error for a row further back in time than the reorder window allows
    (one message for the generic reader and the CSV hot path)."""
    return TraceError(
        path,
        line,
        f"{t:.6f} is {newest - t:.3f} s before line {newest_line}'s time: rows must be "
        f"in time order, at most {window:g} s apart (--max-disorder)",
        column,
    )


def _time(path: str, line: int, column: str, text) -> float:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise TraceError(path, line, str(exc), column) from None


def _check_window(window: float) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 <= window < math.inf:
        raise TraceOptionError(f"max_disorder_s: must be a finite number >= 0, got {window!r}")


def read_arrivals(
    path: str,
    time_col: str | None = None,
    user_col: str | None = None,
    max_disorder_s: float = DEFAULT_MAX_DISORDER_S,
    stats: ReadStats | None = None,
) -> Iterator[Arrival]:
    """(time, user) of every row, in time order, streamed."""
    _check_window(max_disorder_s)
    stats = stats if stats is not None else ReadStats()
    columns = [(time_col, TIME_COLUMNS, "time", "--time-col"), (user_col, USER_COLUMNS, "user", "--user-col")]
    return _arrivals(path, columns, max_disorder_s, stats)


def _arrivals(path: str, columns: list, window: float, stats: ReadStats) -> Iterator[Arrival]:
    fh = open_text(path)
    reader = None
    with fh, _Guard(path, lambda: reader.line_num if reader is not None else None):
        lines = iter(_lines(fh, path, stats))
        first = next(lines, "")
        if first.lstrip().startswith("{") or not first:
            yield from _generic_arrivals(path, _chain(first, lines), columns, window, stats)
            return
        reader = csv.reader(_chain(first, lines))
        names, (t_name, u_name), (ti, ui) = _header(path, reader, columns)
        yield from _csv_arrivals(path, reader, names, t_name, u_name, ti, ui, window, stats)


def _csv_arrivals(path, reader, names, t_name, u_name, ti, ui, window, stats) -> Iterator[Arrival]:
    """The hot path of replay from a file: one generator, no per-row call
    beyond float() and the heap (bench/simulator.py --replay measures it).
    Rows wait in a heap until one `window` seconds later has been read; a row
    earlier than that is an error naming both lines."""
    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    newest = lowest = -math.inf
    newest_line = n = blank = reordered = 0
    for row in reader:
        try:
            t = float(row[ti])
            user = row[ui]
        except (ValueError, IndexError):
            if len(row) <= max(ti, ui):
                if not row or (len(row) == 1 and not row[0].strip()):
                    blank += 1
                    continue
                missing = t_name if ti >= len(row) else u_name
                raise TraceError(
                    path, reader.line_num, f"{len(row)} fields, but the header has {len(names)}: no value", missing
                ) from None
            t = _time(path, reader.line_num, t_name, row[ti])  # ISO 8601, or a precise error
            user = row[ui]
        if not -MS_THRESHOLD < t < MS_THRESHOLD:  # milliseconds, or NaN / infinity: the careful way
            t = _time(path, reader.line_num, t_name, row[ti])
        if not user or user.isspace():
            raise TraceError(path, reader.line_num, "no user: every row needs one", u_name)
        n += 1
        if t < newest:
            if t < newest - window:
                raise _out_of_order(path, reader.line_num, t, newest, newest_line, window, t_name)
            reordered += 1
            lowest = min(lowest, t)
        else:
            if n == 1:
                lowest = t
            newest, newest_line = t, reader.line_num
        if window:
            push(heap, (t, user))
            horizon = newest - window
            while heap[0][0] <= horizon:
                yield pop(heap)
        else:
            yield (t, user)
    stats.rows, stats.blank_lines, stats.reordered = n, blank, reordered
    stats.first, stats.last = (lowest, newest) if n else (None, None)
    while heap:
        yield pop(heap)


def _generic_arrivals(path, lines, columns, window, stats) -> Iterator[Arrival]:
    """JSON lines (and the empty file's error): the general path, slower."""
    column = ["time"]  # the time column's name, once the first object has named it

    def items():
        for line, picked, t_text, user in _records(path, lines, columns, stats):
            column[0] = picked[0]
            t = _time(path, line, picked[0], t_text)
            if user == "" or (isinstance(user, str) and not user.strip()):
                raise TraceError(path, line, "no user: every row needs one", picked[1])
            yield (t, line, (t, str(user)))

    return _ordered(path, items(), window, column, stats)


def read_rows(
    path: str, max_disorder_s: float = DEFAULT_MAX_DISORDER_S, stats: ReadStats | None = None
) -> Iterator[TraceRow]:
    """The plugin's trace rows, in send order, streamed; every column is required."""
    _check_window(max_disorder_s)
    stats = stats if stats is not None else ReadStats()
    columns: list[tuple[str | None, tuple, str, str]] = [
        (name, (name,), name, "the plugin's trace format") for name in FIELDS
    ]

    def items():
        with open_text(path) as fh, _Guard(path):
            for line, _picked, *v in _records(path, _lines(fh, path, stats), columns, stats):
                row = _row(path, line, v)
                yield (row.send, line, row)

    return _ordered(path, items(), max_disorder_s, ["send"], stats)


def _row(path: str, line: int, v: list) -> TraceRow:
    send = _time(path, line, "send", v[0])
    recv = None if v[1] == "" else _time(path, line, "recv", v[1])
    user, session, env_id = str(v[2]), str(v[3]), str(v[4])
    if not user.strip():
        raise TraceError(path, line, "no user: every row needs one", "user")
    flags = []
    for name, text in zip(("cold", "cache_hit", "valid"), v[5:8], strict=True):
        try:
            flags.append(_parse_flag(text if isinstance(text, str) else json.dumps(text)))
        except ValueError as exc:
            raise TraceError(path, line, str(exc), name) from None
    cold, cache_hit, valid = flags
    if valid is None:
        raise TraceError(path, line, "empty: every row says whether its reply was valid", "valid")
    if valid and not env_id:
        raise TraceError(path, line, "empty in a valid row: a valid reply names its environment", "env_id")
    if recv is not None and recv < send:
        raise TraceError(path, line, f"{recv:.6f} is before the row's send time {send:.6f}", "recv")
    return TraceRow(send, recv, user, session, env_id or None, cold, cache_hit, valid)


def merge(paths: list[str], out: str, max_disorder_s: float = DEFAULT_MAX_DISORDER_S, stats: list | None = None) -> int:
    """Merge plugin traces (e.g. one per worker) into one file in send order,
    streamed; returns the rows written. `stats`, when given, receives one
    ReadStats per input."""
    per_file = [ReadStats() for _ in paths]
    if stats is not None:
        stats.extend(per_file)
    streams = [read_rows(p, max_disorder_s, st) for p, st in zip(paths, per_file, strict=True)]
    with TraceWriter(out) as writer:
        for row in heapq.merge(*streams, key=lambda r: r.send):
            writer.write_row(row)
        return writer.rows


def worker_path(path: str, index: int) -> str:
    """Where worker `index` writes its part of `path`: `trace.csv.gz` -> `trace.w3.csv.gz`."""
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.partition(".")
    part = f"{stem}.w{index}{dot}{ext}"
    return f"{folder}/{part}" if folder else part


__all__ = [
    "FIELDS",
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
