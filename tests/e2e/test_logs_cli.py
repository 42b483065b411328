"""`lambda-affinity logs`: a Logs Insights export (tests/fixtures/logs, AWS's documented formats) into a
trace that `calibrate` and `simulate --trace` accept; faults are one line and write nothing."""

from __future__ import annotations

import json

import pytest
from commands import cli
from fixture_paths import FIXTURES

LOGS = FIXTURES / "logs"


@pytest.mark.slow
def test_an_export_becomes_a_trace_that_calibrate_and_simulate_read(tmp_path):
    out = tmp_path / "prod.csv.gz"
    done = cli(
        "logs",
        str(LOGS / "insights_export.csv"),
        str(LOGS / "get_query_results.json"),
        "--out",
        str(out),
        "--user-col",
        "userId",
    )
    assert done.returncode == 0, done.stderr
    # the two files are one export in two formats: every call twice
    assert done.stdout.startswith(f"wrote 96 rows to {out} from 398 log events: 96 REPORT, 8 AFFINITY")
    fit = cli("calibrate", str(out), "--replays", "2", "--json")
    assert fit.returncode == 0, fit.stderr
    assert json.loads(fit.stdout)["measured"]["environments"] == 3
    sim = cli("simulate", "--trace", str(out), "--json")
    assert sim.returncode == 0, sim.stderr
    assert json.loads(sim.stdout)["trace"]["rows"] == 96


@pytest.mark.slow
def test_faults_are_one_line_and_write_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('@timestamp,@message,@logStream\n2026-12-03 09:00:00.000,"REPORT RequestId: r1\tDuration: x",s\n')
    done = cli("logs", str(LOGS / "insights_export.csv"), str(bad), "--out", str(tmp_path / "t.csv"))
    assert done.returncode == 2
    assert done.stderr == (
        f"lambda-affinity logs: error: {bad}:2: column '@message': a REPORT line without its request id and "
        "`Duration: N ms`\n"
    )
    assert not (tmp_path / "t.csv").exists()
    bad.write_text("@timestamp,@message,@logStream\nnot a time,REPORT RequestId: r1\tDuration: 1 ms,s\n")
    done = cli("logs", str(bad), "--out", str(tmp_path / "u.csv"))
    assert done.returncode == 2
    assert done.stderr == (
        f"lambda-affinity logs: error: {bad}:2: column '@timestamp': 'not a time' is neither epoch seconds "
        "nor an ISO 8601 time\n"
    )
    assert not (tmp_path / "u.csv").exists()
    (tmp_path / "dir").mkdir()
    done = cli("logs", str(LOGS / "insights_export.csv"), "--out", str(tmp_path / "dir"))
    assert done.returncode == 2 and "exists and is a directory; refusing to replace it" in done.stderr
