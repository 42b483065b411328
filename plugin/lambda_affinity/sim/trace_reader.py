"""Reading a trace: the plugin's rows (`read_rows`) or any log's arrivals
(`read_arrivals`), streamed in time order with bounded memory; every bad input
is a TraceError naming the file, line and column."""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import json
import math
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

from ..errors import LambdaAffinityError
from ..files import STDIN, InputFileError, check_input_file, open_input
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
    parse_flag,
    parse_time,
)

# No trace line comes near this (the plugin's are ~150 bytes, an access log's a few KB); a file with longer
# "lines" is not a trace, and is refused here rather than held whole in memory (a gzip of one 1 GiB line).
MAX_LINE_BYTES = 1 << 20


def open_binary(path: str) -> io.BufferedIOBase:
    """The file's bytes (gunzipped when the name ends in `.gz`); "-" is standard input. A missing file,
    a folder, a FIFO or a device: TraceError, as is a file that cannot be read."""
    _check_input(path)
    try:
        if path == STDIN:
            return open_input(path)  # type: ignore[return-value]
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except OSError as exc:
        raise TraceError(path, None, f"cannot read: {exc.strerror or exc}") from None


def _check_input(path: str) -> None:
    """files.check_input_file, its error a TraceError as every reading error of a trace is."""
    try:
        check_input_file(path)
    except InputFileError as exc:
        raise TraceError(path, None, str(exc).removeprefix(f"{path}: ")) from None


def open_text(path: str) -> IO[str]:
    """The file as UTF-8 text, decoded in large chunks (fast), lines bounded by MAX_LINE_BYTES; a decoding
    error is located afterwards by `_bad_bytes`."""
    raw = _BoundedLines(open_binary(path), path)
    text = io.TextIOWrapper(io.BufferedReader(raw, 1 << 16), encoding="utf-8", newline="")
    text._CHUNK_SIZE = 1 << 16  # type: ignore[attr-defined]  # decode in 64 KB chunks, as the layer below reads
    return text


class _BoundedLines(io.RawIOBase):
    """Passes a stream's bytes through, refusing a line longer than MAX_LINE_BYTES as soon as that many bytes
    have come without a newline (one check per 64 KB chunk, not per line)."""

    def __init__(self, inner: Any, path: str) -> None:  # a binary file: open_binary's
        self._inner, self._path = inner, path
        self._lines = 0  # newlines so far
        self._run = 0  # bytes since the last newline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # read1: one read of the stream below; read() would gather several, and lose those it holds when a
        # cut-short gzip raises EOFError (its complete lines must all come through first)
        data = self._inner.read1(len(buffer))
        n = len(data)
        buffer[:n] = data
        last = data.rfind(b"\n")
        if last < 0:
            self._run += n
        elif self._run + data.find(b"\n") > MAX_LINE_BYTES:  # the line this chunk ends
            self._run += data.find(b"\n")
        else:
            self._lines += data.count(b"\n")
            self._run = n - last - 1
        if self._run > MAX_LINE_BYTES:
            raise TraceError(self._path, self._lines + 1, f"a line longer than {MAX_LINE_BYTES:,} bytes: not a trace")
        return n

    def close(self) -> None:
        self._inner.close()
        super().close()


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
    for i, name in enumerate(names):
        if name in names[:i]:
            raise TraceError(path, 1, "appears twice in the header: which one is meant?", name)
    picked = [_pick(names, want, defaults, what, option, path, 1) for want, defaults, what, option in columns]
    return names, picked, [names.index(p) for p in picked]


def _csv(path, first, lines, columns, stats):
    reader = csv.reader(_chain(first, lines))
    names, picked, index = _header(path, reader, columns)
    need = max(index) + 1
    last = reader.line_num
    for row in reader:
        if reader.line_num != last + 1:
            raise _spans_lines(path, last + 1, reader.line_num)
        last = reader.line_num
        if len(row) < need:
            if not row or (len(row) == 1 and not row[0].strip()):
                stats.blank_lines += 1
                continue
            missing = next(p for p, i in zip(picked, index, strict=True) if i >= len(row))
            raise TraceError(
                path, reader.line_num, f"{len(row)} fields, but the header has {len(names)}: no value", missing
            )
        yield (reader.line_num, picked, *(row[i] for i in index))


def _spans_lines(path: str, line: int, end: int) -> TraceError:
    """A CSV row running over several lines: a quote left open swallows the rows after it."""
    return TraceError(
        path,
        line,
        f'a quoted field runs on to line {end}: an unterminated quote (") would swallow the rows after it',
    )


def _chain(first: str, rest: Iterable[str]) -> Iterator[str]:
    yield first
    yield from rest


class _DuplicateKey(LambdaAffinityError, ValueError):
    """Raised inside the JSON decoder; _jsonl turns it into a TraceError naming file and line."""


def _one_value_per_key(pairs: list[tuple[str, object]]) -> dict:
    """json.loads would keep a repeated key's last value without a word: refuse the object instead."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


# built once: json.loads(text, object_pairs_hook=...) would build a decoder per line (0.5 us against 3 us)
_decode = json.JSONDecoder(object_pairs_hook=_one_value_per_key).decode


def _jsonl(path, first, lines, columns, stats):
    picked = None
    number = 0
    for text in _chain(first, lines):
        number += 1
        if not text.strip():
            stats.blank_lines += 1
            continue
        try:
            obj = _decode(text)
        except _DuplicateKey as exc:
            raise TraceError(path, number, f"key {exc.args[0]!r} is given twice: which value is meant?") from None
        except json.JSONDecodeError as exc:
            raise TraceError(path, number, f"not valid JSON (column {exc.colno}: {exc.msg})") from None
        except ValueError as exc:  # an integer past Python's 4,300-digit limit for reading one
            raise TraceError(path, number, f"not valid JSON: {str(exc).split(';')[0]}") from None
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
        while heap and heap[0][0] <= horizon:  # a window of 0 empties it
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
    _check_input(path)  # now, not when the first row is wanted
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
    last = reader.line_num
    for row in reader:
        if reader.line_num != last + 1:  # one int compare a row: no row may swallow the next
            raise _spans_lines(path, last + 1, reader.line_num)
        last += 1
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
        if not 0 <= t < MS_THRESHOLD:  # milliseconds, negative, NaN or infinity: the careful way
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
    _check_input(path)  # now, not when the first row is wanted
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
            flags.append(parse_flag(text if isinstance(text, str) else json.dumps(text)))
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
