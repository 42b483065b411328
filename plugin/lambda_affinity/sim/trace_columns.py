"""A trace's extra columns for replay: `--duration-col` (each row's time on the environment) and
`--function-col` (the function each row calls). Rows come as (time, user, duration or None, function
or None), in time order, streamed, through trace_reader's general path (CSV and JSON lines alike);
the two-column replay keeps trace_reader's faster CSV path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from .trace_format import DEFAULT_MAX_DISORDER_S, TIME_COLUMNS, USER_COLUMNS, ReadStats, TraceError
from .trace_reader import _check_input, _check_window, _Guard, _lines, _ordered, _records, _time, open_text

# No invocation runs this long: Lambda's limit is 15 min, Azure Functions' premium plan's 60 min by default.
MAX_DURATION_S = 86400.0


def read_columns(
    path: str,
    time_col: str | None = None,
    user_col: str | None = None,
    duration_col: str | None = None,
    function_col: str | None = None,
    max_disorder_s: float = DEFAULT_MAX_DISORDER_S,
    stats: ReadStats | None = None,
) -> Iterator[tuple]:
    """(time, user, duration s or None, function or None) of every row, in time order, streamed; a
    column not named gives None. A bad duration or an empty function is a TraceError naming the line."""
    _check_window(max_disorder_s)
    _check_input(path)
    stats = stats if stats is not None else ReadStats()
    columns: list[tuple[str | None, tuple, str, str]] = [
        (time_col, TIME_COLUMNS, "time", "--time-col"),
        (user_col, USER_COLUMNS, "user", "--user-col"),
    ]
    if duration_col is not None:
        columns.append((duration_col, (duration_col,), "duration", "--duration-col"))
    if function_col is not None:
        columns.append((function_col, (function_col,), "function", "--function-col"))
    column = ["time"]

    def items():
        with open_text(path) as fh, _Guard(path):
            for line, picked, t_text, user, *extra in _records(path, _lines(fh, path, stats), columns, stats):
                column[0] = picked[0]
                t = _time(path, line, picked[0], t_text)
                if user == "" or (isinstance(user, str) and not user.strip()):
                    raise TraceError(path, line, "no user: every row needs one", picked[1])
                duration = function = None
                at = 2
                if duration_col is not None:
                    duration = _duration(path, line, picked[at], extra[0])
                    at += 1
                if function_col is not None:
                    function = str(extra[at - 2])
                    if not function.strip():
                        raise TraceError(path, line, "no function: every row needs one", picked[at])
                yield (t, line, (t, str(user), duration, function))

    return _ordered(path, items(), max_disorder_s, column, stats)


def _duration(path: str, line: int, column: str, text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise TraceError(path, line, f"{text!r} is not a duration in seconds", column) from None
    if not 0 <= value <= MAX_DURATION_S or math.isnan(value):
        raise TraceError(path, line, f"{text!r}: a duration must be from 0 to {MAX_DURATION_S:g} seconds", column)
    return value
