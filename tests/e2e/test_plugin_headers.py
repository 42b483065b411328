"""A plain Locust test (HttpUser and FastHttpUser, no lambda-affinity code) of an app that answers
with the handler wrapper's x-affinity-* headers: real Locust processes against a real HTTP server on
127.0.0.1 (tests/affinity_app.py), whose own log of what it served is the truth the plugin's figures
are compared with, user by user and endpoint by endpoint."""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
from collections import Counter, defaultdict

import pytest
from affinity_app import AffinityApp
from locust_runs import TEST_LOCUSTFILES, assert_nothing_left, run_locust

PLAIN = os.path.join(TEST_LOCUSTFILES, "plain_app.py")
LAMBDA_AFFINITY_LOCUST = [sys.executable, "-m", "lambda_affinity.cli", "locust"]
NAMES = {"/login": "login", "/items/7": "/items/[id]", "/items/9": "/items/[id]"}


def truth_per_session(log) -> dict[str, tuple]:
    """What each session got, as the tracker counts it: requests, max_count, warm_hits,
    cache_known, environments, cold_starts, switches."""
    by: dict[str, list] = defaultdict(list)
    for s in log:
        by[s.session].append(s)
    out = {}
    for session, served in by.items():
        envs = Counter(s.env for s in served)
        switches = sum(a.env != b.env for a, b in itertools.pairwise(served))
        known = [s.hit for s in served if s.hit is not None]
        out[session] = (
            len(served),
            max(envs.values()),
            sum(known),
            len(known),
            len(envs),
            sum(s.cold for s in served),
            switches,
        )
    return out


def truth_per_endpoint(log, key=lambda s: s.session) -> dict[str, dict]:
    last: dict = {}
    out: dict[str, Counter] = defaultdict(Counter)
    for s in log:
        c = out[NAMES[s.route]]
        c["requests"] += 1
        c["cold_starts"] += s.cold
        if s.hit is not None:
            c["cache_known"] += 1
            c["warm_hits"] += s.hit
        user = key(s)
        if user in last:
            c["followed"] += 1
            c["stays"] += last[user] == s.env
        last[user] = s.env
    return {name: {k: v for k, v in c.items() if v} for name, c in out.items()}


def plugin_endpoints(doc) -> dict[str, dict]:
    keys = ("requests", "cold_starts", "cache_known", "warm_hits", "followed", "stays")
    return {r["name"]: {k: r[k] for k in keys if r[k]} for r in doc["per_endpoint"]}


@pytest.mark.slow
def test_plain_http_and_fast_http_users_are_tallied_per_user_and_endpoint(tmp_path):
    (tmp_path / "locust.conf").write_text("affinity-session-header = x-app-session\n")  # as a config file sets it
    with AffinityApp("header:x-app-session") as app:
        args = ["-f", PLAIN, "--headless", "-u", "4", "-r", "4", "-t", "2s", "--stop-timeout", "3", "-H", app.url]
        args += ["--affinity-json", "a.json", "--csv", "run", "--config", "locust.conf"]
        run = run_locust(args, str(tmp_path), command=LAMBDA_AFFINITY_LOCUST)
        log = list(app.log)
    assert run.code == 0, run
    assert_nothing_left(run)
    doc = json.loads((tmp_path / "a.json").read_text())
    # every reply with headers, none without (the static asset), user by user
    assert doc["requests"] == len(log) > 12 and doc["invalid"] == 0
    truth = truth_per_session(log)
    assert all(s is not None for s in truth)  # the plugin sent every user's key, on both clients
    by_label = {s.rsplit("-", 1)[0]: t for s, t in truth.items()}
    rows = {r["user"]: r for r in csv.DictReader((tmp_path / "run_affinity.csv").read_text().splitlines())}
    fields = ("requests", "max_count", "warm_hits", "cache_known", "environments", "cold_starts", "switches")
    assert {u: tuple(int(r[f]) for f in fields) for u, r in rows.items()} == by_label
    assert doc["environments"] == len({s.env for s in log})
    assert plugin_endpoints(doc) == truth_per_endpoint(log)
    endpoints_csv = list(csv.DictReader((tmp_path / "run_affinity_endpoints.csv").read_text().splitlines()))
    assert {r["name"]: int(r["requests"]) for r in endpoints_csv} == {
        name: c["requests"] for name, c in truth_per_endpoint(log).items()
    }
    # both user classes took part; the console shows the per-endpoint table
    stats = Counter(s.session.rsplit("-", 1)[0] for s in log)
    assert len(stats) == 4
    assert "per endpoint" in run.stderr and "/items/[id]" in run.stderr.split("per endpoint")[1]


@pytest.mark.slow
def test_distributed_cookie_sessions_from_the_environment(cluster_factory, tmp_path):
    """The session key is the app's own login cookie (set through LOCUST_AFFINITY_SESSION_FROM):
    the plugin sends no header; workers' per-user and per-endpoint tallies add up on the master."""
    with AffinityApp("cookie:sid") as app:
        master = ["--expect-workers", "2", "--headless", "-u", "4", "-r", "4", "-t", "3s", "--stop-timeout", "3"]
        c = cluster_factory(
            [*master, "-H", app.url, "--affinity-json", "a.json"],
            locustfile=os.path.join(TEST_LOCUSTFILES, "plain_app_plugin.py"),
            env={"LOCUST_AFFINITY_SESSION_FROM": "cookie:sid", "PYTHONPATH": TEST_LOCUSTFILES},
        )
        code = c.wait_master(60)
        log = list(app.log)
    assert code == 0, c.text("master.err")[-4000:]
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["requests"] == len(log) > 12 and doc["users"] == 4  # 4 logins, then each user's calls
    assert sorted(r["user"][:3] for r in doc["per_user"]) == ["w0-", "w0-", "w1-", "w1-"]
    # each user's login had no cookie yet (no session: no hit header); every later call had its own
    assert sum(s.session is None for s in log) == 4
    cookies = Counter(s.session for s in log if s.session)
    assert len(cookies) == 4
    per_user = sorted(r["requests"] for r in doc["per_user"])
    assert per_user == sorted(n + 1 for n in cookies.values())
    assert sum(r["warm_hits"] for r in doc["per_user"]) == sum(bool(s.hit) for s in log)
    totals = Counter()
    for r in doc["per_endpoint"]:
        totals.update({k: r[k] for k in ("requests", "cold_starts", "cache_known", "warm_hits")})
    assert totals["requests"] == len(log)
    assert totals["cold_starts"] == sum(s.cold for s in log)
    assert totals["cache_known"] == sum(s.hit is not None for s in log) == len(log) - 4
    assert {r["name"]: r["requests"] for r in doc["per_endpoint"]} == dict(Counter(NAMES[s.route] for s in log))
