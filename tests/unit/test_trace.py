"""Traces: writing and reading (trace.py), open-loop replay (simulate.replay),
`simulate --trace/--model`, `merge-traces`, and `--affinity-trace` in real
Locust runs, standalone and distributed."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import tracemalloc

import psutil
import pytest

from lambda_affinity.platform import ModelConfig
from lambda_affinity.simulate import Scenario, replay
from lambda_affinity.summary import summarize
from lambda_affinity.trace import (
    ReadStats, TraceError, TraceRow, TraceWriter, merge, parse_time, read_arrivals, read_rows, worker_path,
)
from locust_runs import Cluster, probe_requests
from locust_runs import LOCUSTFILES, ROOT, assert_nothing_left, run_locust

EXAMPLE = os.path.join(ROOT, "docs", "examples", "api-gateway-access-log.jsonl")
ENV = "2026/12/01/[$LATEST]" + "ab" * 16


def rows_fixture():
    return [
        TraceRow(100.0, 100.08, "u1", "u1-x", ENV, True, False, True),
        TraceRow(100.5, 100.6, "u2", "u2-x", ENV + "2", True, None, True),
        TraceRow(101.25, 101.3, "u1", "u1-x", None, None, None, False),
        TraceRow(102.0, 102.1, "u1", "u1-x", ENV, False, True, True),
    ]


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


def write(tmp_path, text, name="t.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


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
]


@pytest.mark.parametrize("text,kind,message", BAD)
def test_bad_input_names_file_line_and_column(tmp_path, text, kind, message):
    path = write(tmp_path, text, "t.jsonl" if kind else "t.csv")
    cols = ("ts", "u") if kind else (None, None)
    with pytest.raises(TraceError) as err:
        list(read_arrivals(path, *cols, max_disorder_s=1))
    assert str(err.value).startswith(str(tmp_path)) and message in str(err.value), str(err.value)


PLUGIN_HEADER = "send,recv,user,session,env_id,cold,cache_hit,valid\n"


@pytest.mark.parametrize("row,message", [
    ("1,1.1,u1,s,,0,0,1", "t.csv:2: column 'env_id': empty in a valid row"),
    ("1,1.1,u1,s,e,maybe,0,1", "t.csv:2: column 'cold': 'maybe' is not 1, 0, true, false or empty"),
    ("1,1.1,u1,s,e,0,0,", "t.csv:2: column 'valid': empty"),
    ("1,0.5,u1,s,e,0,0,1", "t.csv:2: column 'recv': 0.500000 is before the row's send time"),
    ("1,1.1,,s,e,0,0,1", "t.csv:2: column 'user': no user"),
])
def test_bad_plugin_rows(tmp_path, row, message):
    path = write(tmp_path, PLUGIN_HEADER + row + "\n")
    with pytest.raises(TraceError, match=".*") as err:
        list(read_rows(path))
    assert message in str(err.value), str(err.value)


def test_plugin_format_needs_every_column(tmp_path):
    path = write(tmp_path, "send,user\n1,a\n")
    with pytest.raises(TraceError, match=r"t.csv:1: no recv column 'recv'"):
        list(read_rows(path))


def test_times_in_seconds_milliseconds_and_iso_8601():
    assert parse_time("1764590400.5") == 1764590400.5
    assert parse_time(1764590400500) == 1764590400.5            # API Gateway's requestTimeEpoch
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


# -- the command line ---------------------------------------------------------------------

def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lambda_affinity.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_simulate_replays_the_example_access_log():
    p = cli("simulate", "--trace", EXAMPLE, "--time-col", "requestTimeEpoch", "--user-col", "principalId",
            "--json", "--seed", "1")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    with open(EXAMPLE) as fh:
        lines = sum(1 for line in fh if line.strip())
    assert doc["requests"] + doc["invalid"] == lines == doc["trace"]["rows"]
    assert doc["users"] == 6 and doc["trace"]["blank_lines"] == 0
    assert 290 < doc["trace"]["span_s"] <= 300


def test_simulate_trace_table(tmp_path):
    path = write(tmp_path, "time,user\n1,a\n2,b\n3,a\n\n")
    p = cli("simulate", "--trace", path)
    assert p.returncode == 0, p.stderr
    assert "rates: 1.00,1.00" in p.stdout
    assert f"replayed {path}: 3 requests over 2.0 s (1 blank lines passed over, 0 rows put back" in p.stdout


def test_simulate_model_file_and_overrides(tmp_path):
    """--model FILE sets the model, an option given on the command line wins;
    a bad file is named with its key."""
    (tmp_path / "m.yaml").write_text("model:\n  policy: lru\n  keep_alive_s: 0\n")
    base = ["simulate", "--runs", "3", "--seed", "2", "--json"]
    plain = json.loads(cli(*base).stdout)
    from_file = json.loads(cli(*base, "--model", str(tmp_path / "m.yaml")).stdout)
    overridden = json.loads(cli(*base, "--model", str(tmp_path / "m.yaml"), "--keep-alive", "600").stdout)
    assert from_file["cold_starts"] == from_file["requests"]  # keep-alive 0: every call cold
    assert plain["cold_starts"] < plain["requests"] and overridden["cold_starts"] < overridden["requests"]
    assert overridden["hit_rate"]["mean"] < plain["hit_rate"]["mean"] - 0.1  # lru spreads calls
    (tmp_path / "bad.yaml").write_text("model:\n  routers: many\n")
    p = cli(*base, "--model", str(tmp_path / "bad.yaml"))
    assert p.returncode == 2 and f"--model {tmp_path / 'bad.yaml'}: model.routers: expected a whole number" in p.stderr


@pytest.mark.parametrize("args,message", [
    (("--trace", "missing.csv"), "missing.csv: cannot read: No such file or directory"),
    (("--trace", "EXAMPLE"), "jsonl:1: no user column: none of user, session, user_id, session_id, userId, "
                             "sessionId; name it with --user-col (columns: requestId, requestTimeEpoch, principalId"),
    (("--trace", "EXAMPLE", "--time-col", "requestTimeEpoch", "--user-col", "nobody"), "no user column 'nobody'"),
    (("--trace", "EXAMPLE", "--max-disorder", "-1"), "max_disorder_s: must be a finite number >= 0"),
])
def test_simulate_trace_errors(tmp_path, args, message):
    p = cli("simulate", *[EXAMPLE if a == "EXAMPLE" else a for a in args], cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_merge_traces_command(tmp_path):
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    for path, rows in ((a, rows_fixture()[:2]), (b, rows_fixture()[2:])):
        with TraceWriter(path) as w:
            for r in rows:
                w.write_row(r)
    p = cli("merge-traces", str(tmp_path / "all.csv.gz"), b, a)
    assert p.returncode == 0 and "wrote 4 rows from 2 traces" in p.stdout, p.stderr
    assert list(read_rows(str(tmp_path / "all.csv.gz"))) == rows_fixture()
    p = cli("merge-traces", a, a, b)
    assert p.returncode == 2 and "the output is also an input" in p.stderr


@pytest.mark.parametrize("out", ["./a.csv", "sub/../a.csv", "link.csv", "hard.csv", "A_ABS"])
def test_merge_traces_refuses_an_input_spelt_differently(tmp_path, out):
    """The output names an input by another path: refused before TraceWriter truncates the input."""
    with TraceWriter(str(tmp_path / "a.csv")) as w:
        w.write_row(rows_fixture()[0])
    (tmp_path / "sub").mkdir()
    os.symlink("a.csv", tmp_path / "link.csv")
    os.link(tmp_path / "a.csv", tmp_path / "hard.csv")
    before = (tmp_path / "a.csv").read_bytes()
    p = cli("merge-traces", str(tmp_path / "a.csv") if out == "A_ABS" else out, "a.csv", cwd=tmp_path)
    assert p.returncode == 2 and "the output is also an input" in p.stderr, (p.stdout, p.stderr)
    assert (tmp_path / "a.csv").read_bytes() == before


# -- --affinity-trace in real Locust runs ------------------------------------------------------

def check_trace_matches(path, doc, users=None):
    rows = list(read_rows(str(path)))
    assert len(rows) == doc["requests"] + doc["invalid"]
    assert sum(r.valid for r in rows) == doc["requests"]
    assert sum(bool(r.cold) for r in rows) == doc["cold_starts"]
    per_user = {}
    for r in rows:
        per_user[r.user] = per_user.get(r.user, 0) + r.valid
        assert r.recv >= r.send and r.session.startswith(r.user + "-")
    assert per_user == {u["user"]: u["requests"] for u in doc["per_user"]}
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "env", "conf"])
def test_affinity_trace_standalone(tmp_path, how):
    args = ["-f", os.path.join(LOCUSTFILES, "function_url.py"), "--headless", "-u", "3", "-r", "3", "-t", "2s",
            "--affinity-json", "a.json"]
    env = {}
    if how == "cli":
        args += ["--affinity-trace", "out/trace.csv.gz"]
    elif how == "env":
        env["LOCUST_AFFINITY_TRACE"] = "out/trace.csv.gz"
    else:
        (tmp_path / "t.conf").write_text("affinity-trace = out/trace.csv.gz\n")
        args += ["--config", "t.conf"]
    run = run_locust(args, cwd=tmp_path, env=env)
    assert run.code == 0, run
    doc = json.loads((tmp_path / "a.json").read_text())
    rows = check_trace_matches(tmp_path / "out" / "trace.csv.gz", doc)
    assert f"wrote {len(rows)} trace rows to out/trace.csv.gz" in run.stderr
    assert_nothing_left(run)


LOCUSTFILE = '''
from locust import between
from lambda_affinity.users import FunctionUrlUser


class Probe(FunctionUrlUser):
    wait_time = between(0, 0.3)
'''


@pytest.mark.slow
def test_affinity_trace_distributed_one_file_per_worker_then_merged(tmp_path):
    c = Cluster(tmp_path, ["--expect-workers", "2", "--headless", "-u", "6", "-r", "6", "-t", "3s", "--json",
                           "--affinity-json", "a.json", "--affinity-trace", "trace.csv"], locustfile=LOCUSTFILE)
    try:
        assert c.wait_master(60) == 0, c.text("master.err")[-4000:]
    finally:
        assert c.close() == []
    assert not (tmp_path / "trace.csv").exists()  # the master runs no users
    parts = [str(tmp_path / "trace.w0.csv"), str(tmp_path / "trace.w1.csv")]
    p = cli("merge-traces", str(tmp_path / "all.csv.gz"), *parts)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "a.json").read_text())
    rows = check_trace_matches(tmp_path / "all.csv.gz", doc)
    assert {r.user.split("-")[0] for r in rows} == {"w0", "w1"}
    assert len(rows) == probe_requests(c.text("master.out"))  # Locust's own count


# -- a writer killed mid-run ---------------------------------------------------------------------

KILLED_WRITER = '''
import sys, time
from lambda_affinity.trace import TraceWriter
w = TraceWriter(sys.argv[1])
for i in range(50_000):
    w.write(1000.0 + i * 0.001, 1000.0 + i * 0.001 + 0.0005, f"u{i % 30}", "s", ENV, i < 30, False, True)
time.sleep(1.2)  # past the flush deadline: the next row flushes everything
w.write(1050.0, 1050.1, "u0", "s", ENV, False, True, True)
print("ready", flush=True)
time.sleep(60)
'''


@pytest.mark.slow
def test_a_gzip_trace_of_a_killed_writer_is_read_to_where_it_ends(tmp_path):
    """SIGKILL after 50,001 rows: every row up to the writer's last flush is
    read, the cut is counted and warned about, and merge-traces and simulate
    --trace work on the file."""
    path = str(tmp_path / "t.csv.gz")
    proc = subprocess.Popen([sys.executable, "-c", f"ENV = {ENV!r}\n" + KILLED_WRITER, path],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
    finally:
        proc.kill()  # SIGKILL: no close, no gzip end marker
        proc.wait(timeout=10)
        proc.stdout.close()
    stats = ReadStats()
    rows = list(read_rows(path, stats=stats))
    assert len(rows) == 50_001 and rows[-1].send == 1050.0 and stats.truncated
    stats = ReadStats()
    assert sum(1 for _ in read_arrivals(path, stats=stats)) == 50_001 and stats.truncated
    warning = f"{path}: the gzip stream ends early (its writer was killed?): read its 50001 complete rows"
    p = cli("merge-traces", str(tmp_path / "all.csv"), path)
    assert p.returncode == 0 and "wrote 50001 rows" in p.stdout and "warning: " + warning in p.stderr, p.stderr
    p = cli("simulate", "--trace", path, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["trace"]["truncated"] is True and warning in p.stderr, p.stderr


def test_a_gzip_trace_cut_anywhere_yields_a_prefix_of_its_rows(tmp_path):
    """Cut at arbitrary bytes (no flush point): the rows read are exactly the
    first ones written, never a garbled row from an incomplete line; calibrate
    works on it and says so."""
    whole = str(tmp_path / "whole.csv.gz")
    written = [TraceRow(1000.0 + i, 1000.5 + i, f"user-{i % 7}", f"s{i}", ENV, i == 0, True, True)
               for i in range(3000)]
    with TraceWriter(whole) as w:
        for r in written:
            w.write_row(r)
    data = open(whole, "rb").read()
    cut = str(tmp_path / "cut.csv.gz")
    for size in (len(data) // 3, len(data) // 2 + 17, len(data) - 40):
        with open(cut, "wb") as fh:
            fh.write(data[:size])
        stats = ReadStats()
        rows = list(read_rows(cut, stats=stats))
        assert 0 < len(rows) < len(written) and rows == written[:len(rows)] and stats.truncated
        assert stats.rows == len(rows)
    p = cli("calibrate", cut, "--replays", "2", "--json")
    warning = f"{cut}: the gzip stream ends early (its writer was killed?): read its {len(rows)} complete rows"
    assert p.returncode == 0 and warning in p.stderr and any(warning in n for n in json.loads(p.stdout)["notes"])


QUIET_LOCUSTFILE = '''
from locust import constant
from lambda_affinity.users import FunctionUrlUser


class Probe(FunctionUrlUser):
    wait_time = constant(120)  # one request each, then a quiet spell
'''


@pytest.mark.slow
def test_a_killed_locust_keeps_the_rows_written_before_a_quiet_spell(tmp_path):
    """3 users send one request each, then wait: no row comes to flush the
    writer, so the plugin flushes it; SIGKILL then leaves all 3 rows."""
    from test_plugin_locust import LOCUST

    (tmp_path / "lf.py").write_text(QUIET_LOCUSTFILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    path = str(tmp_path / "trace.csv.gz")
    with open(tmp_path / "locust.err", "wb") as err:
        proc = subprocess.Popen(LOCUST + ["-f", "lf.py", "--headless", "-u", "3", "-r", "3", "-t", "60s",
                                          "--affinity-trace", "trace.csv.gz"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    tree = [psutil.Process(proc.pid)]
    rows = []
    try:
        deadline = time.monotonic() + 30
        while len(rows) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.25)
            tree += [c for c in tree[0].children(recursive=True) if c not in tree]
            try:
                rows = list(read_rows(path))
            except TraceError:  # not there yet, or nothing flushed: not even the header
                pass
    finally:
        for p in reversed(tree):  # SIGKILL: the plugin closes nothing
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=10)
        _, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive, alive
    assert len(rows) == 3, (rows, (tmp_path / "locust.err").read_text()[-2000:])
    stats = ReadStats()
    assert len(list(read_rows(path, stats=stats))) == 3 and stats.truncated
