"""CloudWatch Logs Insights exports of a Lambda function's logs, read into the plugin's trace.

What is read (docs/own-function.md, "From logs"):

- the export: the CSV or JSON the console's "Export results" downloads, or the JSON
  `aws logs get-query-results` prints (`{"results": [[{"field": ..., "value": ...}, ...]]}`),
  of a query such as `fields @timestamp, @message, @logStream, @log`;
- Lambda's own `REPORT RequestId: ... Duration: ... ms ... Init Duration: ... ms` lines (text or the
  JSON log format's `platform.report`): one row per call, its environment the log stream (one per
  execution environment), a cold start when `Init Duration` (SnapStart: `Restore Duration`) is there;
- the handler wrapper's `AFFINITY {json}` lines (calls that were not HTTP events): the environment, cold
  start and session hit as the wrapper saw them, joined to the call's REPORT by request id.

Who made a call is the value of `user_col` (a column of the export: Logs Insights discovers the
fields of JSON log lines, so `fields ..., userId` gives one) on any line of that call, or the
AFFINITY line's `session`; without either every call is one user's (ANONYMOUS).

Pure: `rows_of(records)` turns records (field -> value) into trace rows; reading a file is
`read_export` at the edge. Every line and field is bounded; a fault is one line naming the
file, the record and the field.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from ..core.headers import AffinityHeaderError, Facts, parse_log_facts
from ..files import open_input
from .trace_format import TraceError, TraceRow, parse_time

TIME, MESSAGE, STREAM, REQUEST_ID = "@timestamp", "@message", "@logStream", "@requestId"
ANONYMOUS = "(unknown user)"
# A log event is at most 256 KB (CloudWatch's quota); a line or field longer than that is not an export's.
MAX_FIELD_CHARS = 262_144
MAX_LINE_CHARS = 2 * MAX_FIELD_CHARS
# An export holds at most 10 000 events (a get-query-results page, the console's); 100 000 paged
MAX_EXPORT_CHARS = 1024 * 1024 * 1024
MARKER = "AFFINITY "

_REPORT = re.compile(r"REPORT RequestId: ([0-9A-Za-z-]{1,64})\s+Duration: ([0-9.]+) ms")
# A SnapStart function's cold start shows `Restore Duration` instead (AWS docs, SnapStart monitoring).
_INIT = re.compile(r"(?:Init|Restore) Duration: ([0-9.]+) ms")
_STATUS = re.compile(r"Status: (\w+)")
# The runtimes' text log prefix: "[INFO]\t2026-12-03T10:00:00.123Z\t<request id>\tmessage" (Python),
# "2026-12-03T10:00:00.123Z\t<request id>\tINFO\tmessage" (Node.js).
_TEXT_REQUEST_ID = re.compile(r"^(?:\[\w+\]\t)?\S+\t([0-9a-fA-F]{8}-[0-9a-fA-F-]{27})\t")
_JSON_REQUEST_IDS = ("requestId", "request_id", "function_request_id", "aws_request_id")


@dataclass
class LogStats:
    """What reading saw: nothing is passed over uncounted."""

    records: int = 0
    reports: int = 0
    affinity_lines: int = 0
    other_lines: int = 0  # the app's own lines (read for the user column, if any)
    rows: int = 0
    cold: int = 0
    without_user: int = 0  # rows that fell to ANONYMOUS
    unmatched_affinity: int = 0  # AFFINITY lines whose call had no REPORT in the export (a row each, no duration)


@dataclass
class _Call:
    """What the export says of one call (one request id)."""

    first_where: str
    report_time: float | None = None
    duration_ms: float = 0.0
    init_ms: float | None = None
    status: str | None = None
    stream: str | None = None
    facts: Facts | None = None
    affinity_time: float | None = None
    user: str | None = None


def _field(where: str, record: Mapping[str, Any], name: str, required: bool = True) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise TraceError(where, None, f"no {name}: the query must return it (fields @timestamp, @message, ...)")
        return None
    if not isinstance(value, str):
        value = str(value)
    if len(value) > MAX_FIELD_CHARS:
        raise TraceError(where, None, f"{name} is longer than {MAX_FIELD_CHARS} characters")
    return value


def _unwrap_json(message: str) -> tuple[str, dict | None]:
    """The JSON log format: the event as an object; its `message` is the text line."""
    if not message.startswith("{"):
        return message, None
    try:
        obj = json.loads(message)
    except ValueError:
        return message, None
    if not isinstance(obj, dict):
        return message, None
    text = obj.get("message")
    return (text if isinstance(text, str) else message), obj


def _json_report(obj: dict) -> tuple[str, float, float | None, str | None] | None:
    """The JSON log format's `platform.report` event: (request id, duration, init duration, status)."""
    if obj.get("type") != "platform.report" or not isinstance(obj.get("record"), dict):
        return None
    record = obj["record"]
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    rid, duration = record.get("requestId"), metrics.get("durationMs")
    if not isinstance(rid, str) or not isinstance(duration, (int, float)):
        return None
    init = metrics.get("initDurationMs", metrics.get("restoreDurationMs"))
    return rid, float(duration), float(init) if isinstance(init, (int, float)) else None, record.get("status")


def _affinity(where: str, text: str) -> dict:
    start = text.find(MARKER + "{")
    try:
        obj, _end = json.JSONDecoder().raw_decode(text, start + len(MARKER))
    except ValueError as exc:
        raise TraceError(where, None, f"an AFFINITY line that is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise TraceError(where, None, "an AFFINITY line that is not a JSON object")
    return obj


def _request_id(record: Mapping[str, Any], text: str, obj: dict | None) -> str | None:
    rid = record.get(REQUEST_ID)
    if isinstance(rid, str) and rid:
        return rid
    if obj is not None:
        for key in _JSON_REQUEST_IDS:
            if isinstance(obj.get(key), str) and obj[key]:
                return obj[key]
    m = _TEXT_REQUEST_ID.match(text)
    return m.group(1) if m else None


def _time(where: str, text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise TraceError(where, None, str(exc), TIME) from None


class _Reader:
    def __init__(self, user_col: str | None, stats: LogStats) -> None:
        self.user_col = user_col
        self.stats = stats
        self.calls: dict[str, _Call] = {}
        self.loose: list[_Call] = []  # AFFINITY lines without a request id

    def call(self, rid: str | None, where: str) -> _Call:
        if rid is None:
            c = _Call(where)
            self.loose.append(c)
            return c
        known = self.calls.get(rid)
        if known is None:
            known = self.calls[rid] = _Call(where)
        return known

    def take(self, where: str, record: Mapping[str, Any]) -> None:
        self.stats.records += 1
        when = _time(where, _field(where, record, TIME) or "")
        message = (_field(where, record, MESSAGE) or "").strip()
        stream = _field(where, record, STREAM, required=False)
        user = _field(where, record, self.user_col, required=False) if self.user_col else None
        text, obj = _unwrap_json(message)
        report = _json_report(obj) if obj is not None else None
        m = _REPORT.search(text) if report is None and text.startswith("REPORT") else None
        if m is None and report is None and text.startswith("REPORT RequestId:"):
            raise TraceError(where, None, "a REPORT line without its request id and `Duration: N ms`", MESSAGE)
        if m is not None:
            init, status = _INIT.search(text), _STATUS.search(text)
            report = (m.group(1), float(m.group(2)), float(init.group(1)) if init else None, status and status.group(1))
        c: _Call | None = None
        if report is not None:
            self.stats.reports += 1
            c = self.call(report[0], where)
            c.report_time, c.duration_ms, c.init_ms, c.status = when, report[1], report[2], report[3]
            c.stream = stream
        elif MARKER + "{" in text:
            self.stats.affinity_lines += 1
            c = self._affinity_call(where, record, text, obj, when)
            c.stream = c.stream or stream
        else:
            self.stats.other_lines += 1
        if user is not None:
            if c is None:
                rid = _request_id(record, text, obj)
                if rid is None:
                    return  # a line of no call: its user names nothing
                c = self.call(rid, where)
            c.user = c.user or user

    def _affinity_call(self, where: str, record: Mapping[str, Any], text: str, obj: dict | None, when: float) -> _Call:
        line = _affinity(where, text)
        try:
            facts = parse_log_facts(line)
        except AffinityHeaderError as exc:
            raise TraceError(where, None, str(exc)) from None
        rid = line.get("request_id")
        c = self.call(rid if isinstance(rid, str) and rid else _request_id(record, text, obj), where)
        c.facts, c.affinity_time = facts, when
        session = line.get("session")
        if isinstance(session, str) and session:
            c.user = c.user or session
        return c

    def rows(self) -> list[TraceRow]:
        out = []
        for c in [*self.calls.values(), *self.loose]:
            row = self._row(c)
            if row is not None:
                out.append(row)
        out.sort(key=lambda r: r.send)
        self.stats.rows = len(out)
        self.stats.cold = sum(bool(r.cold) for r in out)
        return out

    def _row(self, c: _Call) -> TraceRow | None:
        if c.report_time is None and c.facts is None:
            return None  # only the app's own lines of a call whose REPORT is outside the export
        env = c.facts.env_id if c.facts is not None else c.stream
        if not env:
            raise TraceError(c.first_where, None, f"a REPORT line without {STREAM}: add it to the query's fields")
        user = c.user
        if user is None:
            self.stats.without_user += 1
            user = ANONYMOUS
        if c.report_time is not None:
            recv: float | None = c.report_time
            send = c.report_time - (c.duration_ms + (c.init_ms or 0.0)) / 1000.0
        else:
            self.stats.unmatched_affinity += 1
            assert c.affinity_time is not None  # set with facts
            recv, send = None, c.affinity_time
        cold = c.facts.cold if c.facts is not None else c.init_ms is not None
        hit = c.facts.session_hit if c.facts is not None else None
        valid = c.status is None or c.status.lower() == "success"
        return TraceRow(send, recv, user, "" if user == ANONYMOUS else user, env, cold, hit, valid)


def rows_of(
    records: Iterable[tuple[str, Mapping[str, Any]]], user_col: str | None = None, stats: LogStats | None = None
) -> list[TraceRow]:
    """Trace rows, in send order, from (where, record) pairs, `where` naming the record in messages."""
    reader = _Reader(user_col, stats if stats is not None else LogStats())
    for where, record in records:
        reader.take(where, record)
    return reader.rows()


# -- files ----------------------------------------------------------------------------------------------


def _bounded_lines(fh: IO[str], path: str) -> Iterator[str]:
    n = 0
    while True:
        line = fh.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE_CHARS:
            raise TraceError(path, n, f"a line longer than {MAX_LINE_CHARS} characters: not a Logs Insights export")
        yield line


def csv_records(fh: IO[str], path: str) -> Iterator[tuple[str, dict]]:
    """The console's CSV export: a header line of field names, then one event per record."""
    reader = csv.reader(_bounded_lines(fh, path))
    try:
        header = next(reader, None)
        if header is None:
            raise TraceError(path, None, "empty: no header line")
        header = [h.strip().lstrip("\ufeff") for h in header]
        if TIME not in header or MESSAGE not in header:
            raise TraceError(path, 1, f"the header names no {TIME} or no {MESSAGE}: {','.join(header)[:200]}")
        for values in reader:
            if not values:
                continue
            if len(values) != len(header):
                raise TraceError(path, reader.line_num, f"{len(values)} fields, the header has {len(header)}")
            yield f"{path}:{reader.line_num}", dict(zip(header, values, strict=True))
    except csv.Error as exc:
        raise TraceError(path, reader.line_num, f"not CSV: {exc}") from None


def json_records(text: str, path: str) -> Iterator[tuple[str, dict]]:
    """get-query-results' `{"results": [[{"field", "value"}, ...], ...]}`, or the console's JSON
    export: an array of objects keyed by field."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TraceError(path, None, f"not JSON: {exc}") from None
    events = doc.get("results") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise TraceError(path, None, 'neither get-query-results\' {"results": [...]} nor an array of events')
    for i, event in enumerate(events):
        where = f"{path}: event {i + 1}"
        if isinstance(event, list):  # [{"field": "@timestamp", "value": "..."}, ...]
            record = {}
            for item in event:
                if not isinstance(item, dict) or not isinstance(item.get("field"), str):
                    raise TraceError(where, None, 'an event field that is not {"field": ..., "value": ...}')
                record[item["field"]] = item.get("value")
            yield where, record
        elif isinstance(event, dict):
            yield where, event
        else:
            raise TraceError(where, None, "an event that is neither a list of fields nor an object")


def read_export(path: str, user_col: str | None = None, stats: LogStats | None = None) -> list[TraceRow]:
    """One export file (CSV or JSON, told by its first character) into trace rows."""
    with open_input(path, binary=False) as fh:
        text = fh.read(MAX_EXPORT_CHARS + 1)
    if len(text) > MAX_EXPORT_CHARS:
        raise TraceError(path, None, f"an export over {MAX_EXPORT_CHARS} characters: split the query's time range")
    if text.lstrip()[:1] in ("{", "["):
        return rows_of(json_records(text, path), user_col, stats)
    return rows_of(csv_records(io.StringIO(text, newline=""), path), user_col, stats)
