"""Traces through processes: `simulate --trace/--model`, `merge-traces` and `calibrate` as commands, a writer
killed mid-run, and `--affinity-trace` in real Locust runs, standalone and distributed."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest
from commands import cli
from locust_runs import (
    FIXTURES,
    LOCUST,
    LOCUSTFILES,
    ROOT,
    TEST_LOCUSTFILES,
    Cluster,
    assert_nothing_left,
    probe_requests,
    run_locust,
)
from trace_rows import ENV, rows_fixture, write

from lambda_affinity.sim.trace import ReadStats, TraceError, TraceRow, TraceWriter, read_arrivals, read_rows

EXAMPLE = os.path.join(ROOT, "docs", "examples", "api-gateway-access-log.jsonl")


# -- the command line ---------------------------------------------------------------------


def test_simulate_replays_the_example_access_log():
    p = cli(
        "simulate",
        "--trace",
        EXAMPLE,
        "--time-col",
        "requestTimeEpoch",
        "--user-col",
        "principalId",
        "--json",
        "--seed",
        "1",
    )
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


@pytest.mark.parametrize(
    "args,message",
    [
        (("--trace", "missing.csv"), "missing.csv: no such file"),
        (
            ("--trace", "EXAMPLE"),
            "jsonl:1: no user column: none of user, session, user_id, session_id, userId, "
            "sessionId; name it with --user-col (columns: requestId, requestTimeEpoch, principalId",
        ),
        (("--trace", "EXAMPLE", "--time-col", "requestTimeEpoch", "--user-col", "nobody"), "no user column 'nobody'"),
        (
            ("--trace", "EXAMPLE", "--max-disorder", "-1"),
            "argument --max-disorder: '-1' is not a duration: must be a finite number of seconds >= 0",
        ),
    ],
)
def test_simulate_trace_errors(tmp_path, args, message):
    p = cli("simulate", *[EXAMPLE if a == "EXAMPLE" else a for a in args], cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_merge_traces_command(tmp_path):
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    for path, rows in ((a, rows_fixture()[:2]), (b, rows_fixture()[2:])):
        with TraceWriter(path) as w:
            for r in rows:
                w.write_row(r)
    p = cli("merge-traces", "--out", str(tmp_path / "all.csv.gz"), b, a)
    assert p.returncode == 0 and "wrote 4 rows from 2 traces" in p.stdout and not p.stderr, p.stderr
    assert list(read_rows(str(tmp_path / "all.csv.gz"))) == rows_fixture()
    p = cli("merge-traces", "--out", a, "--force", a, b)
    assert p.returncode == 2 and "the output is also an input" in p.stderr


@pytest.mark.parametrize("out", ["./a.csv", "sub/../a.csv", "link.csv", "hard.csv", "A_ABS"])
def test_merge_traces_refuses_an_input_spelt_differently(tmp_path, out):
    """The output names an input by another path: refused (also with --force) before anything is written."""
    with TraceWriter(str(tmp_path / "a.csv")) as w:
        w.write_row(rows_fixture()[0])
    (tmp_path / "sub").mkdir()
    os.symlink("a.csv", tmp_path / "link.csv")
    os.link(tmp_path / "a.csv", tmp_path / "hard.csv")
    before = (tmp_path / "a.csv").read_bytes()
    target = str(tmp_path / "a.csv") if out == "A_ABS" else out
    p = cli("merge-traces", "--out", target, "--force", "a.csv", cwd=tmp_path)
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
    args = [
        "-f",
        os.path.join(LOCUSTFILES, "function_url.py"),
        "--headless",
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        "2s",
        "--affinity-json",
        "a.json",
    ]
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


@pytest.mark.slow
def test_affinity_trace_distributed_one_file_per_worker_then_merged(tmp_path):
    c = Cluster(
        tmp_path,
        [
            "--expect-workers",
            "2",
            "--headless",
            "-u",
            "6",
            "-r",
            "6",
            "-t",
            "3s",
            "--json",
            "--affinity-json",
            "a.json",
            "--affinity-trace",
            "trace.csv",
        ],
        locustfile=os.path.join(TEST_LOCUSTFILES, "probe_quick_think.py"),
    )
    try:
        assert c.wait_master(60) == 0, c.text("master.err")[-4000:]
    finally:
        assert c.close() == []
    assert not (tmp_path / "trace.csv").exists()  # the master runs no users
    parts = [str(tmp_path / "trace.w0.csv"), str(tmp_path / "trace.w1.csv")]
    p = cli("merge-traces", "--out", str(tmp_path / "all.csv.gz"), *parts)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "a.json").read_text())
    rows = check_trace_matches(tmp_path / "all.csv.gz", doc)
    assert {r.user.split("-")[0] for r in rows} == {"w0", "w1"}
    assert len(rows) == probe_requests(c.text("master.out"))  # Locust's own count


# -- a writer killed mid-run ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_gzip_trace_of_a_killed_writer_is_read_to_where_it_ends(tmp_path):
    """SIGKILL after 50,001 rows: every row up to the writer's last flush is
    read, the cut is counted and warned about, and merge-traces and simulate
    --trace work on the file."""
    path = str(tmp_path / "t.csv.gz")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(FIXTURES, "scripts", "killed_trace_writer.py"), path, ENV],
        stdout=subprocess.PIPE,
        text=True,
    )
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
    p = cli("merge-traces", "--out", str(tmp_path / "all.csv"), path)
    assert p.returncode == 0 and "wrote 50001 rows" in p.stdout and "warning: " + warning in p.stderr, p.stderr
    p = cli("simulate", "--trace", path, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["trace"]["truncated"] is True and warning in p.stderr, p.stderr


def test_a_gzip_trace_cut_anywhere_yields_a_prefix_of_its_rows(tmp_path):
    """Cut at arbitrary bytes (no flush point): the rows read are exactly the
    first ones written, never a garbled row from an incomplete line; calibrate
    works on it and says so."""
    whole = str(tmp_path / "whole.csv.gz")
    written = [TraceRow(1000.0 + i, 1000.5 + i, f"user-{i % 7}", f"s{i}", ENV, i == 0, True, True) for i in range(3000)]
    with TraceWriter(whole) as w:
        for r in written:
            w.write_row(r)
    with open(whole, "rb") as fh:
        data = fh.read()
    cut = str(tmp_path / "cut.csv.gz")
    for size in (len(data) // 3, len(data) // 2 + 17, len(data) - 40):
        with open(cut, "wb") as fh:
            fh.write(data[:size])
        stats = ReadStats()
        rows = list(read_rows(cut, stats=stats))
        assert 0 < len(rows) < len(written) and rows == written[: len(rows)] and stats.truncated
        assert stats.rows == len(rows)
    p = cli("calibrate", cut, "--replays", "2", "--json")
    warning = f"{cut}: the gzip stream ends early (its writer was killed?): read its {len(rows)} complete rows"
    assert p.returncode == 0 and warning in p.stderr and any(warning in n for n in json.loads(p.stdout)["notes"])


@pytest.mark.slow
def test_a_killed_locust_keeps_the_rows_written_before_a_quiet_spell(tmp_path):
    """3 users send one request each, then wait: no row comes to flush the
    writer, so the plugin flushes it; SIGKILL then leaves all 3 rows."""
    shutil.copyfile(os.path.join(TEST_LOCUSTFILES, "probe_once_then_quiet.py"), tmp_path / "lf.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    path = str(tmp_path / "trace.csv.gz")
    with open(tmp_path / "locust.err", "wb") as err:
        proc = subprocess.Popen(
            LOCUST
            + ["-f", "lf.py", "--headless", "-u", "3", "-r", "3", "-t", "60s", "--affinity-trace", "trace.csv.gz"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
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


def _file_size_limit(limit):
    """As `ulimit -f`: writes past `limit` bytes fail with EFBIG (SIGXFSZ ignored), as on a full disk."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_affinity_trace_on_a_full_disk_stops_once_and_leaves_locusts_stats_alone(tmp_path):
    limit = 16_000  # 20 users pass it within a second or two; Locust's own outputs stay below it
    run = run_locust(
        [
            "-f",
            os.path.join(TEST_LOCUSTFILES, "probe_quick_think.py"),
            "--headless",
            "-u",
            "20",
            "-r",
            "20",
            "-t",
            "4s",
            "--json",
            "--affinity-json",
            "a.json",
            "--affinity-trace",
            "out/trace.csv",
        ],
        cwd=tmp_path,
        preexec_fn=_file_size_limit(limit),
    )
    assert run.code == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    doc = json.loads((tmp_path / "a.json").read_text())
    # every request counted by both, the ones after the trace stopped too
    assert probe_requests(run.stdout) == doc["requests"] + doc["invalid"]
    lines = [line for line in run.stderr.splitlines() if "--affinity-trace" in line]
    assert len(lines) == 1 and "out/trace.csv: cannot write: File too large; the trace stops here" in lines[0], lines
    kept = int(re.search(r"with the (\d+) rows written before", lines[0]).group(1))
    # the file ends with a whole row: every row reads, as many as the line says, fewer than the run's
    trace = tmp_path / "out" / "trace.csv"
    assert trace.stat().st_size <= limit and trace.read_bytes().endswith(b"\n")
    rows = list(read_rows(str(trace)))
    assert 0 < len(rows) == kept < doc["requests"] + doc["invalid"]
    assert_nothing_left(run)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["folder", "/dev/full"])
def test_affinity_trace_that_is_a_folder_or_a_device_is_refused_once_at_start(tmp_path, target):
    """Not a regular file: one line at the start, no trace, and the run and its other outputs go on."""
    if target == "folder":
        (tmp_path / "folder").mkdir()
    kind = "a directory" if target == "folder" else "a device"
    run = run_locust(
        [
            "-f",
            os.path.join(TEST_LOCUSTFILES, "probe_quick_think.py"),
            "--headless",
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "2s",
            "--json",
            "--affinity-json",
            "a.json",
            "--affinity-trace",
            target,
        ],
        cwd=tmp_path,
    )
    assert run.code == 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "--affinity-trace" in line]
    assert len(lines) == 1 and f"{target}: exists and is {kind}; refusing to replace it" in lines[0], lines
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["requests"] > 0 and probe_requests(run.stdout) == doc["requests"] + doc["invalid"]
    if target == "folder":
        assert list((tmp_path / "folder").iterdir()) == []
    assert_nothing_left(run)
