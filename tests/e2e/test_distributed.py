"""Distributed runs with real processes: a Locust master and `locust --worker`
subprocesses on 127.0.0.1, the master's embedded emulator as the target.

Each worker also dumps what it recorded itself when its test stops (a
listener in the test's locustfile), so the master's totals are compared with
every worker's own record, user by user, and with Locust's request counts.
Every process started (master, workers, the emulator below the master) is
collected while it runs, killed and reaped at the end, and must be gone.
"""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import time

import pytest
from locust_runs import TEST_LOCUSTFILES, probe_requests

MALFORMED_LOCUSTFILE = f"{TEST_LOCUSTFILES}/distributed_malformed.py"
RAMP_DOWN_LOCUSTFILE = f"{TEST_LOCUSTFILES}/distributed_ramp_down.py"


def own_records(tmp_path) -> dict[int, dict]:
    return {
        int(re.search(r"worker-(\d+)", p.name).group(1)): json.loads(p.read_text())
        for p in tmp_path.glob("worker-*.json")
    }


def csv_rows(text: str) -> dict[str, dict]:
    """The per-user CSV as {user: row} with the tracker's types."""
    out = {}
    for r in csv.DictReader(io.StringIO(text)):
        out[r["user"]] = {
            k: (r[k] if k == "user" else None if r[k] == "" else float(r[k]) if k == "max_share" else int(r[k]))
            for k in r
        }
    return out


MASTER = [
    "--expect-workers",
    "2",
    "--headless",
    "-u",
    "10",
    "-r",
    "10",
    "--json",
    "--affinity-json",
    "out/a.json",
    "--csv",
    "out/run",
    "--html",
    "out/report.html",
]


def assert_master_holds(doc, rows_csv, records: dict[int, dict]):
    """The master's rows are exactly the workers' own, user by user."""
    for index, record in records.items():
        for row in record["rows"]:
            assert row["user"].startswith(f"w{index}-u")
            assert rows_csv[row["user"]] == {
                **row,
                "max_share": float(row["max_share"]) if row["max_share"] is not None else None,
            }, row["user"]
    assert doc["per_user"] == list(rows_csv.values())  # the JSON's rows are the CSV's, field for field


def assert_master_log(err: str, doc: dict):
    """The master's log of a clean two-worker run: the emulator, the summary, the check and every file written."""
    assert "Embedded Lambda emulator started" in err
    assert f"Lambda affinity: 10 users, {doc['requests']} valid replies" in err
    assert "CHECK passed: --affinity-min-hit-rate 0.01" in err
    assert "sent no final report" not in err
    for name in ("a.json", "run_affinity.csv", "run_affinity_summary.csv", "report.html"):
        assert f"affinity: wrote out/{name}" in err


def assert_emulator_only_below_master(c):
    """No worker started an emulator; the master's runs below it."""
    for w in c.workers:
        assert "Embedded Lambda emulator" not in c.text(f"{w.name}.err")
    assert [p for p in c.seen.values() if p.pid not in {c.master.pid, *(w.pid for w in c.workers)}], (
        "the emulator runs below the master"
    )


@pytest.mark.slow
def test_master_and_two_workers_exact_totals(cluster_factory, tmp_path):
    c = cluster_factory(
        MASTER + ["-t", "5s", "--affinity-min-hit-rate", "0.01", "--stop-timeout", "5"], env={"AFFINITY_LINGER_S": "3"}
    )
    code = c.wait_master(60)
    err = c.text("master.err")
    assert code == 0, err[-4000:]
    # the workers finish their tasks (up to 3 s) after the stop: their last calls still count
    waited = float(re.search(r"waited ([\d.]+) s for the workers' final snapshots", err).group(1))
    assert waited < 5, waited  # logged only when there was a wait (> 0.1 s)
    records = own_records(tmp_path)
    assert sorted(records) == [0, 1]
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    rows = csv_rows((tmp_path / "out" / "run_affinity.csv").read_text())
    mine = [r for rec in records.values() for r in rec["rows"]]
    # user keys are unique across workers, and every user of every worker is there
    assert len(rows) == len(mine) == doc["users"] == 10
    assert_master_holds(doc, rows, records)
    assert doc["requests"] == sum(r["requests"] for r in mine) > 20
    assert doc["invalid"] == sum(r["invalid"] for r in mine) == 0
    assert doc["cold_starts"] == sum(r["cold_starts"] for r in mine)
    # workers share the master's emulator: its environments are counted once
    assert doc["environments"] == len(set(records[0]["envs"]) | set(records[1]["envs"]))
    assert probe_requests(c.text("master.out")) == doc["requests"] + doc["invalid"]
    assert doc["workers"] == {"count": 2, "lost": []}
    assert_master_log(err, doc)
    assert '<section id="lambda-affinity"' in (tmp_path / "out" / "report.html").read_text()
    # the workers used the master's emulator and started none of their own
    assert_emulator_only_below_master(c)


@pytest.mark.slow
def test_worker_killed_mid_run_is_reported_and_nothing_else_is_lost(cluster_factory, tmp_path):
    c = cluster_factory(MASTER + ["-t", "9s"])
    victim = c.workers[1]
    deadline = time.monotonic() + 30
    # Locust ends the spawn phase with one of two lines: the second when the workers' user counts came later
    # than its 1 s wait (seen on a loaded 2-core machine); either way every user is running.
    while not re.search(r"All users spawned|Spawning is complete", c.text("master.err")):
        assert time.monotonic() < deadline and c.master.poll() is None, c.text("master.err")[-3000:]
        time.sleep(0.1)
    time.sleep(3.5)  # at least one periodic report (every 3 s) from each worker
    c.collect()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    started = time.monotonic()
    code = c.wait_master(60)
    err = c.text("master.err")
    assert code == 0, err[-4000:]
    # the master waited for nothing it could not get: the run ended on time
    assert time.monotonic() - started < 5.5 + 8, err[-3000:]
    records = own_records(tmp_path)
    assert len(records) == 1, "only the surviving worker dumped its record"
    ((alive_index, alive),) = records.items()
    lost_index = 1 - alive_index
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    rows = csv_rows((tmp_path / "out" / "run_affinity.csv").read_text())
    assert doc["workers"]["count"] == 2 and [w["index"] for w in doc["workers"]["lost"]] == [lost_index]
    lost_lines = [line for line in err.splitlines() if "sent no final report" in line]
    assert len(lost_lines) == 1 and f"worker {lost_index} (" in lost_lines[0], lost_lines
    # nothing of the surviving worker is lost, user by user
    assert_master_holds(doc, rows, {alive_index: alive})
    # what the killed worker sent before it died is kept
    kept = {u: r for u, r in rows.items() if u.startswith(f"w{lost_index}-")}
    assert len(kept) == 5 and all(r["requests"] > 0 for r in kept.values()), kept
    assert re.search(
        rf"kept what it sent until then: 5 users, {sum(r['requests'] for r in kept.values())} valid", lost_lines[0]
    ), lost_lines
    # Locust's counts and ours come from the same reports: they agree exactly
    assert probe_requests(c.text("master.out")) == doc["requests"] + doc["invalid"]
    assert doc["users"] == 10 and "affinity: wrote out/a.json" in err


@pytest.mark.slow
def test_malformed_row_and_payloads_from_a_worker_are_rejected_alone(cluster_factory, tmp_path):
    c = cluster_factory(MASTER + ["-t", "7s"], locustfile=MALFORMED_LOCUSTFILE)
    code = c.wait_master(60)
    err = c.text("master.err")
    assert code == 0, err[-4000:]
    assert "Traceback" not in err, err[-4000:]
    records = own_records(tmp_path)
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    rows = csv_rows((tmp_path / "out" / "run_affinity.csv").read_text())
    # everything both workers recorded is there, user by user; the bad row is not
    assert len(rows) == doc["users"] == 10 and "w1-u999" not in rows
    assert_master_holds(doc, rows, records)
    assert probe_requests(c.text("master.out")) == doc["requests"] + doc["invalid"]
    # reported once, naming the worker: one malformed row, a final that is not a mapping, one that cannot be read
    lines = [line for line in err.splitlines() if "malformed" in line]
    assert len(lines) == 1, lines
    assert "worker 1 (" in lines[0] and "sent 2 malformed payloads and 1 malformed rows" in lines[0], lines
    assert doc["workers"] == {"count": 2, "lost": []}


@pytest.mark.slow
def test_sigterm_while_the_master_waits_for_workers_still_writes_its_outputs(cluster_factory, tmp_path):
    c = cluster_factory(
        ["--expect-workers", "2", "--headless", "-u", "4", "-t", "5s", "--affinity-json", "out/a.json"], workers=1
    )
    deadline = time.monotonic() + 30
    while "reported as ready. 1 workers connected" not in c.text("master.err"):
        assert time.monotonic() < deadline and c.master.poll() is None, c.text("master.err")[-3000:]
        time.sleep(0.1)
    c.master.send_signal(signal.SIGTERM)
    code = c.wait_master(30)  # the worker quits with it
    err = c.text("master.err")
    assert code == 0 and "Traceback" not in err, err[-3000:]
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    assert doc["users"] == 0 and doc["requests"] == 0
    assert "got SIGTERM before the test started" in err and "affinity: wrote out/a.json" in err


@pytest.mark.slow
def test_users_locust_stops_mid_run_are_kept_apart_and_counted_in_the_totals(cluster_factory, tmp_path):
    c = cluster_factory(
        ["--expect-workers", "2", "--headless", "--json", "--affinity-json", "out/a.json", "--csv", "out/run"],
        locustfile=RAMP_DOWN_LOCUSTFILE,
    )
    code = c.wait_master(60)
    err = c.text("master.err")
    assert code == 0 and "Traceback" not in err, err[-4000:]
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    rows = csv_rows((tmp_path / "out" / "run_affinity.csv").read_text())
    # the 6 users that ran to the end are the run's users; the 4 stopped mid-run are apart, in no rate
    assert doc["users"] == 6 == len(rows) == len(doc["per_user"]) and doc["restarted_users"] == 4
    assert sum(doc["histogram"]) == 6
    # their replies still count: the totals are Locust's own
    assert (
        probe_requests(c.text("master.out"))
        == doc["requests"] + doc["invalid"]
        > sum(r["requests"] + r["invalid"] for r in rows.values())
    )
