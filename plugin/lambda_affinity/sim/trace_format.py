"""The trace format: its columns, its row and error types, and how its values
are parsed (see `trace` for the format itself). Pure: no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

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
# 9999-12-31T23:59:59Z: what datetime can represent, and far past any real log
MAX_TIME_S = 253402300799.0

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


def parse_time(text) -> float:
    """Epoch seconds from epoch seconds, epoch milliseconds (numbers >= 1e11)
    or ISO 8601 (naive = UTC). Raises ValueError saying what is wrong."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a time")
    if isinstance(text, (int, float)):
        value = _float(text)
    else:
        try:
            value = _float(text)
        except ValueError:
            return _checked(_parse_iso(text), text)
    if not math.isfinite(value):
        raise ValueError(f"{_short(text)} is not a finite time (too large, infinite or NaN)")
    return _checked(value / 1000.0 if abs(value) >= MS_THRESHOLD else value, text)


def _float(value) -> float:
    try:
        return float(value)
    except OverflowError:  # an int of hundreds of digits (JSON keeps it exact)
        raise ValueError(f"{_short(value)} is too large for a time") from None


def _checked(seconds: float, text) -> float:
    if seconds < 0:
        raise ValueError(f"{_short(text)} is a negative time (before 1970): times are epoch seconds, or seconds >= 0")
    if seconds > MAX_TIME_S:
        raise ValueError(f"{_short(text)} is past the year 9999: not a time")
    return seconds


def _short(value) -> str:
    """repr(value), cut: a 400-digit number is not worth quoting whole."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        try:
            return f"a number of {len(str(abs(value)))} digits"
        except ValueError:  # past Python's 4,300-digit limit for printing one
            return "a number of thousands of digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def parse_flag(text: str) -> bool | None:
    if text == "":
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{text!r} is not 1, 0, true, false or empty")
