"""Logs Insights exports into trace rows (sim/logs.py): the fixtures are exports in the format AWS
documents (the console's CSV download and `aws logs get-query-results` JSON of
`fields @timestamp, @message, @logStream, @log, userId`), built by tests/fixtures/logs/make_exports.py."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest
from fixture_paths import FIXTURES

from lambda_affinity.files import OutputFileError
from lambda_affinity.sim.logs import ANONYMOUS, MAX_LINE_CHARS, LogStats, read_export, rows_of
from lambda_affinity.sim.trace import TraceError, read_rows
from lambda_affinity.sim.trace_writer import write_trace

LOGS = FIXTURES / "logs"
STREAM = "2026/12/03/[$LATEST]aaaa"
RID = "6f1e2f3a-1111-2222-3333-444455556666"


def rec(time, message, stream=STREAM, **extra):
    return {"@timestamp": time, "@message": message, "@logStream": stream, **extra}


def report(rid=RID, duration="12.50", init=None, status=None):
    line = f"REPORT RequestId: {rid}\tDuration: {duration} ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\t"
    line += f"Max Memory Used: 60 MB\t{f'Init Duration: {init} ms' if init else ''}"
    return line + (f"\tStatus: {status}" if status else "") + "\n"


def test_both_export_formats_give_the_same_rows():
    csv_stats, json_stats = LogStats(), LogStats()
    a = read_export(str(LOGS / "insights_export.csv"), "userId", csv_stats)
    b = read_export(str(LOGS / "get_query_results.json"), "userId", json_stats)
    assert a == b and len(a) == csv_stats.reports == 48
    assert csv_stats == json_stats
    assert csv_stats.affinity_lines == 4 and csv_stats.without_user == 0
    assert [r.send for r in a] == sorted(r.send for r in a)  # Logs Insights lists newest first
    assert {r.user for r in a} == {"alice", "bob", "carol", "dave"}
    assert sum(bool(r.cold) for r in a) == len({r.env_id for r in a}) == 3  # one cold start per log stream
    assert all(r.valid and r.recv is not None and r.recv >= r.send for r in a)


def test_a_report_is_a_call_its_stream_the_environment_init_duration_a_cold_start():
    rows = rows_of(
        [
            ("x:2", rec("2026-12-03 09:00:01.000", report(init="200.00"))),
            ("x:3", rec("2026-12-03 09:00:05.000", report("r2", "50.00"), stream="s2")),
        ]
    )
    assert [(r.env_id, r.cold, r.cache_hit, r.user) for r in rows] == [
        (STREAM, True, None, ANONYMOUS),
        ("s2", False, None, ANONYMOUS),
    ]
    assert rows[0].recv - rows[0].send == pytest.approx(0.2125)  # init + duration before the REPORT
    assert rows[1].recv - rows[1].send == pytest.approx(0.05)


def test_affinity_lines_join_their_report_and_win_on_the_facts():
    affinity = json.dumps(
        {"env": "e9", "cold": False, "env_invocations": 4, "session_hit": True, "init_age_ms": 99, "request_id": RID}
    )
    rows = rows_of(
        [
            ("x:1", rec("2026-12-03 09:00:01.000", f"[INFO]\t2026-12-03T09:00:00.990Z\t{RID}\tAFFINITY {affinity}\n")),
            ("x:2", rec("2026-12-03 09:00:01.010", report(status="timeout"))),
        ]
    )
    assert [(r.env_id, r.cold, r.cache_hit, r.valid) for r in rows] == [("e9", False, True, False)]


def test_users_come_from_any_line_of_the_call():
    app = json.dumps({"level": "INFO", "message": "hi", "function_request_id": RID, "userId": "ann"})
    text = "2026-12-03T09:00:00.500Z\tr2\tINFO\thello\n"
    stats = LogStats()
    rows = rows_of(
        [
            ("x:1", rec("2026-12-03 09:00:00.500", app, userId="ann")),
            ("x:2", rec("2026-12-03 09:00:01.000", report())),
            ("x:3", rec("2026-12-03 09:00:02.000", text, userId="")),
            ("x:4", rec("2026-12-03 09:00:03.000", report("r2"))),
        ],
        user_col="userId",
        stats=stats,
    )
    assert [r.user for r in rows] == ["ann", ANONYMOUS] and stats.without_user == 1 and stats.other_lines == 2


def test_the_json_log_format_is_read_too():
    platform = {
        "time": "2026-12-03T09:00:01.000Z",
        "type": "platform.report",
        "record": {"requestId": RID, "metrics": {"durationMs": 10.0, "initDurationMs": 150.0}, "status": "success"},
    }
    rows = rows_of([("x:1", rec("2026-12-03T09:00:01.000Z", json.dumps(platform)))])
    assert [(r.cold, r.valid) for r in rows] == [(True, True)]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([rec("", report())], "x:1: no @timestamp"),
        ([rec("yesterday", report())], "x:1: column '@timestamp': 'yesterday' is neither"),
        ([rec("2026-12-03 09:00:01.000", report(), stream="")], "x:1: a REPORT line without @logStream"),
        ([rec("2026-12-03 09:00:01.000", "AFFINITY {not json")], "x:1: an AFFINITY line that is not JSON"),
        ([rec("2026-12-03 09:00:01.000", 'AFFINITY {"env": "e"}')], "x:1: AFFINITY line without 'cold'"),
        ([rec("2026-12-03 09:00:01.000", "m" * 300_000)], "x:1: @message is longer than 262144 characters"),
    ],
)
def test_faults_are_one_line_naming_the_record(records, message):
    with pytest.raises(TraceError) as err:
        rows_of([("x:1", r) for r in records])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_file_faults(tmp_path):
    cases = {
        "empty.csv": ("", "empty: no header line"),
        "header.csv": ("time,message\n", "the header names no @timestamp"),
        "fields.csv": ('@timestamp,@message\n2026-12-03 09:00:00,"a",b\n', "fields.csv:2: 3 fields, the header has 2"),
        "long.csv": ("@timestamp,@message\n" + "x" * (MAX_LINE_CHARS + 5) + "\n", "long.csv:2: a line longer than"),
        "shape.json": ('{"status": "Complete"}', "neither get-query-results'"),
        "field.json": ('{"results": [[{"value": "x"}]]}', "field.json: event 1: an event field that is not"),
        "bad.json": ("[1, ", "bad.json: not JSON"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(TraceError) as err:
            read_export(str(path))
        assert message in str(err.value), name


def test_the_trace_is_written_whole_and_read_back(tmp_path):
    rows = read_export(str(LOGS / "insights_export.csv"), "userId")
    for name in ("t.csv", "t.csv.gz"):
        assert write_trace(str(tmp_path / name), rows) == 48
        assert list(read_rows(str(tmp_path / name))) == [
            r._replace(send=round(r.send, 6), recv=round(r.recv, 6))
            for r in rows  # the format's microseconds
        ]
    raw = gzip.decompress((tmp_path / "t.csv.gz").read_bytes()).decode()
    assert raw == (tmp_path / "t.csv").read_text()
    assert next(csv.reader(io.StringIO(raw))) == [
        "send",
        "recv",
        "user",
        "session",
        "env_id",
        "cold",
        "cache_hit",
        "valid",
    ]
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputFileError, match="is a directory"):
        write_trace(str(tmp_path / "dir"), rows)


def test_the_wrappers_own_affinity_line_is_read(capsys, monkeypatch):
    """The contract from the other side: what the handler wrapper prints for a non-HTTP call."""
    from lambda_affinity_wrapper import affinity

    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", STREAM)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "shop-api")

    class Context:
        aws_request_id = RID

    @affinity
    def handler(event, context):
        return {"done": True}

    assert handler({"Records": []}, Context()) == {"done": True}
    line = capsys.readouterr().out.strip()
    assert line.startswith("AFFINITY {")
    rows = rows_of(
        [
            ("x:1", rec("2026-12-03 09:00:01.000", line, stream="")),
            ("x:2", rec("2026-12-03 09:00:01.005", report(), stream=STREAM)),
        ]
    )
    assert [(r.env_id, r.cache_hit, r.recv is not None) for r in rows] == [(STREAM, None, True)]
