"""The `lambda-affinity` commands' files (issue 22, items 2 and 3), as a user meets them: outputs written whole
or not at all (merge-traces --out/--force, calibrate --out, sweep --out on a full disk, a folder, /dev/full),
inputs that are not regular files or are hostile, one line each."""

from __future__ import annotations

import json
import os
import pathlib
import resource
import signal
import subprocess
import sys

import pytest
from locust_runs import ROOT
from trace_rows import ENV

from lambda_affinity.sim.trace import TraceRow, TraceWriter, read_rows

EXAMPLE = os.path.join(ROOT, "docs", "examples", "api-gateway-access-log.jsonl")


def cli(*args, cwd=None, fsize: int | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """`lambda-affinity ARGS`; `fsize`: a file-size limit (ulimit -f) that fails writes past it as a full disk
    does (SIGXFSZ ignored, so the write returns EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "lambda_affinity.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        input=input,
        preexec_fn=limit if fsize is not None else None,
    )


def one_line_error(p: subprocess.CompletedProcess, words: str) -> None:
    assert p.returncode == 2 and words in p.stderr, (p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr


def trace(path, users=3, calls=5, start=0.0) -> str:
    """Serial users, each on its own environment: cold first, then warm hits."""
    rows = sorted(
        (
            TraceRow(start + i * 0.2 + u * 0.01, start + i * 0.2 + u * 0.01 + 0.05, f"u{u}", f"u{u}-s",
                     f"{ENV}{u}", i == 0, i > 0, True)
            for u in range(users)
            for i in range(calls)
        ),
        key=lambda r: r.send,
    )  # fmt: skip
    with TraceWriter(str(path)) as w:
        for r in rows:
            w.write_row(r)
    return str(path)


def temps(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_merge_traces_never_loses_a_trace(tmp_path):
    w0, w1 = trace(tmp_path / "dt.w0.csv"), trace(tmp_path / "dt.w1.csv", start=0.1)
    before = (tmp_path / "dt.w0.csv").read_bytes()
    # OUT forgotten: `merge-traces dt.w*.csv` overwrote worker 0's trace with worker 1's, exit 0
    one_line_error(cli("merge-traces", w0, w1), "dt.w0.csv exists: the first argument is read as the output")
    assert (tmp_path / "dt.w0.csv").read_bytes() == before
    out = tmp_path / "all.csv"
    p = cli("merge-traces", "--out", out, w0, w1)
    assert p.returncode == 0 and "wrote 30 rows from 2 traces" in p.stdout, p.stderr
    merged = out.read_bytes()
    one_line_error(cli("merge-traces", "--out", out, w0), "all.csv exists: give --force to replace it")
    # a typo in an input: was truncating OUT before the inputs were read
    one_line_error(cli("merge-traces", "--out", out, "--force", w0, tmp_path / "dt.w9.csv"), "dt.w9.csv: no such file")
    # a bad row far into an input: OUT stays as it was, no temporary file left
    bad = tmp_path / "bad.csv"
    bad.write_text((tmp_path / "dt.w1.csv").read_text() + "9.0,9.1,u9,s,e,1,0,maybe\n")
    one_line_error(cli("merge-traces", "--out", out, "--force", w0, bad), "bad.csv:17: column 'valid'")
    assert out.read_bytes() == merged and temps(tmp_path) == []
    p = cli("merge-traces", "--out", out, "--force", w0, "--max-disorder", "0")  # 0 was an IndexError
    assert p.returncode == 0 and "wrote 15 rows from 1 traces" in p.stdout, p.stderr
    # the older form still works where it is safe: OUT does not exist yet
    p = cli("merge-traces", tmp_path / "new.csv.gz", w0, w1)
    assert p.returncode == 0 and "use --out" in p.stderr, p.stderr
    assert len(list(read_rows(str(tmp_path / "new.csv.gz")))) == 30


@pytest.mark.parametrize("where", ["directory", "device", "missing-folder"])
def test_outputs_that_are_not_files(tmp_path, where):
    w0 = trace(tmp_path / "t.csv")
    target = {"directory": tmp_path, "device": "/dev/full", "missing-folder": tmp_path / "a" / "b" / "out.yaml"}[where]
    for args in (("merge-traces", "--out", target, w0), ("calibrate", w0, "--replays", "2", "--out", target)):
        p = cli(*args)
        if where == "missing-folder":  # made, as for sweep --out
            assert p.returncode == 0, p.stderr
        else:
            one_line_error(p, f"{target}: exists and is a {where}; refusing to replace it")
        assert not os.path.exists(target) or where != "missing-folder" or os.path.getsize(target) > 0


def test_a_full_disk_leaves_every_output_as_it_was(tmp_path):
    """A file-size limit stands in for a full disk (as a small tmpfs would): the write fails after the
    temporary file has begun; the old file stays, no temporary is left."""
    w0 = trace(tmp_path / "t.csv", users=20, calls=20)  # ~40 KB merged
    out, model, sweep = tmp_path / "all.csv", tmp_path / "m.yaml", tmp_path / "sweep"
    for path in (out, model):
        path.write_text("old\n")
    sweep.mkdir()
    (sweep / "sweep.html").write_text("old\n")
    one_line_error(cli("merge-traces", "--out", out, "--force", w0, fsize=8192), f"{out}: cannot write: File too large")
    one_line_error(
        cli("calibrate", w0, "--replays", "2", "--out", model, fsize=64), "m.yaml: cannot write: File too large"
    )
    p = cli("sweep", "--vary", "users=1,2", "--runs", "1", "--duration", "5", "--out", sweep, fsize=6144)
    assert p.returncode == 2 and "sweep.html: cannot write: File too large" in p.stderr, p.stderr
    assert out.read_text() == model.read_text() == (sweep / "sweep.html").read_text() == "old\n"
    assert temps(tmp_path) == temps(sweep) == []


def test_inputs_that_are_not_files_or_are_hostile(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line_error(
        cli("simulate", "--trace", "/dev/zero"), "/dev/zero: is a device, not a regular file"
    )  # grew to 3 GB
    one_line_error(cli("simulate", "--trace", fifo), "fifo: is a FIFO, not a regular file")  # blocked for ever
    one_line_error(cli("calibrate", fifo), "fifo: is a FIFO, not a regular file")
    one_line_error(cli("merge-traces", "--out", tmp_path / "o.csv", fifo), "fifo: is a FIFO, not a regular file")
    assert not (tmp_path / "o.csv").exists()
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\nmodel: *a8\n")
    one_line_error(cli("simulate", "--model", bomb), "bomb.yaml: line 6, column 5: expands to more than 100,000")
    one_line_error(cli("simulate", "--model", "/dev/zero"), "--model /dev/zero: is a device, not a regular file")
    # standard input is the one non-file taken, and read once
    log = pathlib.Path(EXAMPLE).read_text(encoding="utf-8")
    p = cli("simulate", "--trace", "-", "--user-col", "principalId", "--json", input=log)
    assert p.returncode == 0 and json.loads(p.stdout)["trace"]["rows"] == 250, p.stderr
    p = cli("simulate", "--trace", "-", "--user-col", "principalId", "--runs", "2", input=log)
    one_line_error(p, "--trace -: standard input can be read once: give --runs 1")
    sexagesimal = tmp_path / "m.yaml"
    sexagesimal.write_text("network_latency: 1:30\nservice_time: 0:1\n")  # YAML 1.1: 90 and 1
    p = cli("simulate", "--model", sexagesimal, "--users", "2", "--duration", "60", "--json", "--random-seed", "1")
    assert p.returncode == 0, p.stderr
    quoted = tmp_path / "q.yaml"
    quoted.write_text('network_latency: "1:30"\nservice_time: "0:1"\n')
    q = cli("simulate", "--model", quoted, "--users", "2", "--duration", "60", "--json", "--random-seed", "1")
    assert q.stdout == p.stdout  # unquoted reads as quoted: uniform 1..30 s, not a fixed 90 s
