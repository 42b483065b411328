"""Traces in-process: writing and reading (trace.py) and open-loop replay (simulate.replay)."""

from __future__ import annotations

import tracemalloc

import pytest
from trace_rows import rows_fixture, write

from lambda_affinity.core.summary import summarize
from lambda_affinity.platform import ModelConfig
from lambda_affinity.sim.replay import replay
from lambda_affinity.sim.simulate import Scenario
from lambda_affinity.sim.trace import (
    ReadStats,
    TraceError,
    TraceWriter,
    merge,
    parse_time,
    read_arrivals,
    read_rows,
    worker_path,
)


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_writer_round_trip(tmp_path, name):
    path = str(tmp_path / name)
    with TraceWriter(path) as w:
        for r in rows_fixture():
            w.write_row(r)
    assert w.rows == 4
    with open(path, "rb") as fh:
        assert (fh.read(2) == b"\x1f\x8b") == name.endswith(".gz")
    stats = ReadStats()
    assert list(read_rows(path, stats=stats)) == rows_fixture()
    assert (stats.rows, stats.first, stats.last, stats.span_s) == (4, 100.0, 102.0, 2.0)
    assert list(read_arrivals(path)) == [(100.0, "u1"), (100.5, "u2"), (101.25, "u1"), (102.0, "u1")]


def test_rows_a_little_out_of_order_are_put_back_and_counted(tmp_path):
    path = write(tmp_path, "time,user\n1,a\n3,b\n2.5,c\n4,d\n")
    stats = ReadStats()
    assert list(read_arrivals(path, max_disorder_s=1, stats=stats)) == [(1, "a"), (2.5, "c"), (3, "b"), (4, "d")]
    assert stats.reordered == 1 and stats.rows == 4


def test_blank_lines_are_counted(tmp_path):
    stats = ReadStats()
    path = write(tmp_path, "time,user\n1,a\n\n2,b\n")
    assert len(list(read_arrivals(path, stats=stats))) == 2 and stats.blank_lines == 1


BAD = [
    ("time,user\n1,a\n5,b\n2,c\n", None, "t.csv:4: column 'time': 2.000000 is 3.000 s before line 3's time"),
    ("when,user\n1,a\n", None, "t.csv:1: no time column: none of send, timestamp"),
    ("time,who\n1,a\n", None, "t.csv:1: no user column: none of user, session"),
    ("time,user\n1,a\nsoon,b\n", None, "t.csv:3: column 'time': 'soon' is neither epoch seconds nor an ISO 8601"),
    ("time,user\n1,a\nnan,b\n", None, "t.csv:3: column 'time': 'nan' is not a finite time"),
    ("time,user\n1,a\n2, \n", None, "t.csv:3: column 'user': no user: every row needs one"),
    ("time,user\n1,a\n2\n", None, "t.csv:3: column 'user': 1 fields, but the header has 2"),
    (b"time,user\n1,a\n2,caf\xe9\n", None, "t.csv:3: not UTF-8 text (byte 6 of the line"),
    ("", None, "t.csv:1: empty file"),
    ('{"ts": 1, "u": "a"}\n[1, 2]\n', "jsonl", "t.jsonl:2: expected a JSON object per line, got list"),
    ('{"ts": 1, "u": "a"}\n{"ts": 2\n', "jsonl", "t.jsonl:2: not valid JSON"),
    ('{"ts": 1, "u": "a"}\n{"u": "b"}\n', "jsonl", "t.jsonl:2: column 'ts': no value"),
    ('{"ts": 1, "u": "a"}\n{"ts": 2, "u": "b", "ts": 9}\n', "jsonl", "t.jsonl:2: key 'ts' is given twice"),
    ('{"ts": 1, "u": {"id": "a", "id": "b"}}\n', "jsonl", "t.jsonl:1: key 'id' is given twice"),
]


@pytest.mark.parametrize("text,kind,message", BAD)
def test_bad_input_names_file_line_and_column(tmp_path, text, kind, message):
    path = write(tmp_path, text, "t.jsonl" if kind else "t.csv")
    cols = ("ts", "u") if kind else (None, None)
    with pytest.raises(TraceError) as err:
        list(read_arrivals(path, *cols, max_disorder_s=1))
    assert str(err.value).startswith(str(tmp_path)) and message in str(err.value), str(err.value)


PLUGIN_HEADER = "send,recv,user,session,env_id,cold,cache_hit,valid\n"


@pytest.mark.parametrize(
    "row,message",
    [
        ("1,1.1,u1,s,,0,0,1", "t.csv:2: column 'env_id': empty in a valid row"),
        ("1,1.1,u1,s,e,maybe,0,1", "t.csv:2: column 'cold': 'maybe' is not 1, 0, true, false or empty"),
        ("1,1.1,u1,s,e,0,0,", "t.csv:2: column 'valid': empty"),
        ("1,0.5,u1,s,e,0,0,1", "t.csv:2: column 'recv': 0.500000 is before the row's send time"),
        ("1,1.1,,s,e,0,0,1", "t.csv:2: column 'user': no user"),
    ],
)
def test_bad_plugin_rows(tmp_path, row, message):
    path = write(tmp_path, PLUGIN_HEADER + row + "\n")
    with pytest.raises(TraceError) as err:  # the message is checked as a plain substring below
        list(read_rows(path))
    assert message in str(err.value), str(err.value)


def test_plugin_format_needs_every_column(tmp_path):
    path = write(tmp_path, "send,user\n1,a\n")
    with pytest.raises(TraceError, match=r"t.csv:1: no recv column 'recv'"):
        list(read_rows(path))


def test_times_in_seconds_milliseconds_and_iso_8601():
    assert parse_time("1764590400.5") == 1764590400.5
    assert parse_time(1764590400500) == 1764590400.5  # API Gateway's requestTimeEpoch
    assert parse_time("2025-12-01T12:00:00.5Z") == 1764590400.5  # ALB
    assert parse_time("2025-12-01 12:00:00.500") == 1764590400.5  # CloudWatch's @timestamp: UTC
    assert parse_time("2025-12-01T13:00:00.5+01:00") == 1764590400.5
    for bad in ("", "noon", "inf", True):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_reading_is_streamed_in_bounded_memory(tmp_path):
    """200 000 rows (6 MB) read with a 1 s window: the heap holds a second of rows, not the file."""
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("time,user\n")
        for i in range(200_000):
            fh.write(f"{1764590400 + i * 0.01:.3f},user{i % 5000}\n")
    tracemalloc.start()
    n = sum(1 for _ in read_arrivals(str(path), max_disorder_s=1.0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 200_000
    assert peak < 1_000_000, peak


def test_worker_paths():
    assert worker_path("out/trace.csv.gz", 3) == "out/trace.w3.csv.gz"
    assert worker_path("trace", 0) == "trace.w0"


def test_merge_keeps_every_row_in_send_order(tmp_path):
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv.gz")
    rows = rows_fixture()
    with TraceWriter(a) as w:
        for r in rows[::2]:
            w.write_row(r)
    with TraceWriter(b) as w:
        for r in rows[1::2]:
            w.write_row(r)
    out = str(tmp_path / "m.csv")
    assert merge([a, b], out) == 4
    assert list(read_rows(out)) == rows


# -- replay -------------------------------------------------------------------------------


def test_replay_a_serial_user_keeps_one_environment():
    arrivals = [(i * 1.0, "u") for i in range(100)]
    res = replay(arrivals, Scenario(latency="0"), seed=1)
    doc = summarize(res.tracker.rows(), res.tracker.environments)
    assert (res.invocations, res.cold_starts, doc["environments"], doc["hit_rate"]["mean"]) == (100, 1, 1, 1.0)
    assert doc["warm_cache_rate"]["mean"] == 0.99


@pytest.mark.parametrize("latency", ["0", "0.06:0.1"])
def test_replay_is_open_loop(latency):
    """50 users sending at the same instant, twice 10 s apart: 50 environments,
    made once; a user does not wait for its reply (two calls 1 ms apart run at once)."""
    arrivals = [(t, f"u{i}") for t in (0.0, 10.0) for i in range(50)]
    res = replay(arrivals, Scenario(latency=latency), seed=1)
    assert res.invocations == 100 and res.cold_starts == 50 and res.peak_concurrency == 50
    res = replay([(0.0, "u"), (0.001, "u")], Scenario(latency="0"), seed=1)
    assert res.cold_starts == 2


def test_replay_keeps_the_model_constraints_keep_alive():
    """C2 in replay: a call every 5 min stays warm, every 11 min is cold."""
    five = replay([(i * 300.0, "u") for i in range(10)], Scenario(latency="0"), seed=1)
    eleven = replay([(i * 660.0, "u") for i in range(10)], Scenario(latency="0"), seed=1)
    assert (five.cold_starts, eleven.cold_starts) == (1, 10)


def test_replay_throttles_are_counted():
    arrivals = [(0.0, f"u{i}") for i in range(5)]
    res = replay(arrivals, Scenario(latency="0", model=ModelConfig(account_concurrency=2)), seed=1)
    assert (res.invocations, res.throttled) == (2, 3)
    assert sum(t.invalid for t in res.tracker.users.values()) == 3


def test_replay_refuses_arrivals_out_of_order():
    for latency in ("0", "0.06:0.1"):
        with pytest.raises(ValueError, match="arrivals out of time order"):
            replay([(2.0, "a"), (1.0, "b")], Scenario(latency=latency), seed=1)
