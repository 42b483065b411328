"""Cold starts apart from new-environment calls (issue 19 item 3), from the probe to every output.

A cold start is a call that waited for its environment's init; a new-environment call is the first call on an
environment whose init was done ahead of it (provisioned concurrency, Managed Instances, proactive initialisation):
no wait, but an empty cache. The probe tells them apart by AWS_LAMBDA_INITIALIZATION_TYPE and, on demand, by the
gap between its init and its first call (docs/probe.md).
"""

import csv
import importlib
import io
import json
import time
import types

import pytest

import probe_lambda.handler as handler_module
from lambda_affinity.core.headers import AffinityHeaderError, parse_headers, parse_log_facts
from lambda_affinity.core.reply import Observation, ProbeReplyError, parse_reply
from lambda_affinity.core.summary import summarize
from lambda_affinity.core.tracker import Tracker
from lambda_affinity.locust_plugin.wire import check_row, is_row, pack_rows, unpack_row
from lambda_affinity.platform.environment import Environment, Start
from lambda_affinity.platform.scheduler import Lease
from lambda_affinity.report.render import render_html_section, render_table, rows_csv, summary_csv
from lambda_affinity.report.timeline import Timeline, headline
from lambda_affinity.sim.simulate import Scenario, _serve
from lambda_affinity.sim.sweep import measure
from lambda_affinity_wrapper.state import PROACTIVE_GAP_MS, waited_for_init

STREAM = "2026/12/03/[$LATEST]0123456789abcdef0123456789abcdef"


@pytest.fixture
def environment(monkeypatch):
    """A fresh probe environment: handler.py's module state reloaded (its init is the reload) with Lambda's
    variables as `set(...)` gives them."""

    def start(**env):
        monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", STREAM)
        monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
        monkeypatch.delenv("AFFINITY_PROACTIVE_GAP_MS", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(handler_module)

    yield start
    monkeypatch.undo()
    importlib.reload(handler_module)


def call(probe, n=1):
    return probe.handler({"session": "alice"}, types.SimpleNamespace(aws_request_id=f"req-{n}"))


def test_on_demand_first_call_right_after_init_is_a_cold_start(environment):
    probe = environment(AWS_LAMBDA_INITIALIZATION_TYPE="on-demand")
    first, second = call(probe, 1), call(probe, 2)
    assert (first["cold"], first["new_environment"], first["init_type"]) == (True, False, "on-demand")
    assert first["env_age_ms"] < PROACTIVE_GAP_MS  # the time since init that decided it
    assert (second["cold"], second["new_environment"]) == (False, False)
    assert parse_reply(first).cold is True and parse_reply(first).new_environment is False


@pytest.mark.parametrize("kind", ["provisioned-concurrency", "lambda-managed-instances"])
def test_an_environment_initialised_ahead_by_its_type_gives_a_new_environment_call(environment, kind):
    probe = environment(AWS_LAMBDA_INITIALIZATION_TYPE=kind)
    first, second = call(probe, 1), call(probe, 2)
    assert (first["cold"], first["new_environment"], first["init_type"]) == (False, True, kind)
    assert first["cache"]["hit"] is False  # no wait, but an empty cache
    assert (second["cold"], second["new_environment"]) == (False, False) and second["cache"]["hit"] is True
    obs = parse_reply(json.dumps(first))
    assert (obs.cold, obs.new_environment, obs.init_type, obs.outcome) == (False, True, kind, "new environment")


def test_p_proactive_init_an_on_demand_first_call_long_after_init_is_a_new_environment_call(environment):
    # Real module state and the real clock: the environment is initialised (the reload), then its first call
    # comes after a pause longer than the gap, as when Lambda initialised it proactively.
    probe = environment(AWS_LAMBDA_INITIALIZATION_TYPE="on-demand", AFFINITY_PROACTIVE_GAP_MS="150")
    time.sleep(0.2)
    first = call(probe)
    assert first["env_age_ms"] >= 150
    assert (first["cold"], first["new_environment"], first["env_invocations"]) == (False, True, 1)
    # the same pause before a later call changes nothing: only a first call can be either
    time.sleep(0.2)
    assert (call(probe, 2)["cold"], call(probe, 3)["new_environment"]) == (False, False)


def test_the_default_gap_is_ten_seconds_of_the_probes_own_clock(environment):
    probe = environment()  # no AWS_LAMBDA_INITIALIZATION_TYPE: an old runtime or a hand-run handler
    late = probe.probe("s", "r1", now=probe._INIT + 10.0)
    assert (late["cold"], late["new_environment"], late["init_type"]) == (False, True, None)
    probe = environment()
    early = probe.probe("s", "r1", now=probe._INIT + 9.999)
    assert (early["cold"], early["new_environment"]) == (True, False)


def test_a_snapstart_restore_is_a_cold_start_whatever_its_clock_says(environment):
    # the init clock of a restored environment started at the snapshot, so the gap says nothing
    probe = environment(AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    first = probe.probe("s", "r1", now=probe._INIT + 3600.0)
    assert (first["cold"], first["new_environment"], first["init_type"]) == (True, False, "snap-start")


def test_the_rule_alone():
    assert waited_for_init("on-demand", 0.05, 10.0) and not waited_for_init("on-demand", 10.0, 10.0)
    assert not waited_for_init("provisioned-concurrency", 0.0, 10.0)
    assert not waited_for_init("lambda-managed-instances", 0.0, 10.0)
    assert waited_for_init("snap-start", 1e6, 10.0) and waited_for_init(None, 1.0, 10.0)


def test_the_wrapper_reports_the_same_facts_in_its_headers(monkeypatch):
    from lambda_affinity_wrapper import wrap

    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", STREAM)
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")
    w = wrap.Wrapper()
    event = {"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET"}}, "headers": {}}
    ctx = types.SimpleNamespace(aws_request_id="r")
    first = w.call(lambda e, c: {"statusCode": 200, "body": ""}, event, ctx)["headers"]
    second = w.call(lambda e, c: {"statusCode": 200, "body": ""}, event, ctx)["headers"]
    assert (first["x-affinity-cold"], first["x-affinity-new-env"]) == ("0", "1")
    assert first["x-affinity-init-type"] == "provisioned-concurrency"
    assert (second["x-affinity-cold"], second["x-affinity-new-env"]) == ("0", "0")
    facts = parse_headers(first.get)
    assert (facts.cold, facts.new_environment, facts.init_type) == (False, True, "provisioned-concurrency")


# -- the plugin's reading of replies and headers -------------------------------------------------------------------

REPLY = {"env_id": "e1", "request_id": "r", "cold": False, "env_invocations": 1, "cache": {"hit": False}, "probe": 1}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"new_environment": "yes"}, 'reply field new_environment is not a boolean: "yes"'),
        ({"new_environment": 1}, "reply field new_environment is not a boolean: 1"),
        ({"cold": True, "new_environment": True}, "reply fields cold and new_environment are both true"),
        ({"init_type": 7}, "reply field init_type is not a string of 1 to 64 characters: 7"),
        ({"init_type": ""}, 'reply field init_type is not a string of 1 to 64 characters: ""'),
        ({"init_type": "x" * 65}, "reply field init_type is not a string of 1 to 64 characters"),
    ],
)
def test_bad_start_fields_have_precise_messages(change, message):
    with pytest.raises(ProbeReplyError) as info:
        parse_reply({**REPLY, **change})
    assert message in str(info.value)


def test_an_older_probes_reply_says_nothing_of_new_environments():
    obs = parse_reply(json.dumps({**REPLY, "cold": True}))
    assert (obs.cold, obs.new_environment, obs.init_type, obs.outcome) == (True, None, None, "cold")


def test_the_fast_path_and_the_checked_path_agree_on_the_new_fields():
    fast = parse_reply({**REPLY, "new_environment": True, "init_type": "on-demand"})
    checked = parse_reply({**REPLY, "new_environment": True, "init_type": "on-demand", "probe": 1.0})  # slow path
    assert fast == checked == Observation("e1", False, False, "r", 1, None, None, True, "on-demand")


HEADERS = {
    "x-affinity-env": "e1",
    "x-affinity-cold": "0",
    "x-affinity-env-invocations": "1",
    "x-affinity-init-age-ms": "12000",
    "x-affinity-new-env": "1",
    "x-affinity-init-type": "on-demand",
}


def test_headers_carry_the_new_environment_flag_and_the_init_type():
    facts = parse_headers(HEADERS.get)
    assert (facts.cold, facts.new_environment, facts.init_type) == (False, True, "on-demand")
    older = {k: v for k, v in HEADERS.items() if k not in ("x-affinity-new-env", "x-affinity-init-type")}
    assert parse_headers(older.get)[5:] == (False, None)  # an older wrapper's reply: no new-environment call
    line = {"env": "e1", "cold": False, "env_invocations": 1, "init_age_ms": 12000, "new_environment": True}
    assert parse_log_facts(line).new_environment is True


@pytest.mark.parametrize(
    "change,message",
    [
        ({"x-affinity-new-env": "yes"}, "x-affinity-new-env: not 1 or 0"),
        ({"x-affinity-cold": "1"}, "x-affinity-new-env: 1 with cold 1"),
        ({"x-affinity-init-type": "x" * 65}, "x-affinity-init-type: must be 1 to 64 printable ASCII characters"),
        ({"x-affinity-new-env": ["1", "1"]}, "x-affinity-new-env: repeated"),
    ],
)
def test_bad_start_headers_say_which(change, message):
    with pytest.raises(AffinityHeaderError, match=message):
        parse_headers({**HEADERS, **change}.get)


# -- counting ------------------------------------------------------------------------------------------------------


def test_the_tracker_counts_new_environment_calls_apart_and_exactly():
    t = Tracker()
    t.record("u1", "A", cold=True, cache_hit=False)
    t.record("u1", "A", cold=False, cache_hit=True)
    t.record("u1", "B", cold=False, cache_hit=False, new_environment=True)
    t.record("u1", "B", cold=False, cache_hit=True, new_environment=False)
    t.record("u2", "C", cold=None, cache_hit=None, new_environment=None)  # a bare reply: says nothing
    t.record("u2", "D", False, False, True)
    row = t.row("u1")
    assert (row["cold_starts"], row["new_environment_calls"], row["requests"]) == (1, 1, 4)
    assert (t.row("u2")["cold_starts"], t.row("u2")["new_environment_calls"]) == (0, 1)
    doc = summarize(t.rows(), t.environments)
    assert (doc["cold_starts"], doc["new_environment_calls"], doc["environments"]) == (1, 2, 4)
    assert [u["new_environment_calls"] for u in doc["per_user"]] == [1, 1]


def test_every_output_shows_both_counts():
    t = Tracker()
    t.record("u1", "A", cold=True, cache_hit=False)
    t.record("u1", "B", cold=False, cache_hit=False, new_environment=True)
    t.record("u1", "C", cold=False, cache_hit=False, new_environment=True)
    doc = summarize(t.rows(), t.environments)
    assert "1 cold starts, 2 new-environment calls" in render_table(doc).splitlines()[0]
    lines = summary_csv(doc).splitlines()
    at = lines.index("users,requests,invalid,environments,cold_starts,new_environment_calls")
    assert lines[at + 1] == "1,3,0,3,1,2"
    (per_user,) = csv.DictReader(io.StringIO(rows_csv(t.rows())))
    assert (per_user["cold_starts"], per_user["new_environment_calls"]) == ("1", "2")
    assert "1 cold starts (cold ratio 0.333), 2 new-environment calls" in render_html_section(doc, [], [])
    figures = {f["key"]: f["value"] for f in headline(doc)}
    assert (figures["cold_starts"], figures["new_environment_calls"]) == (1, 2)


def test_the_timeline_counts_new_environment_calls_per_interval():
    t = Tracker()
    line = Timeline()
    t.record("u1", "A", cold=True)
    line.add(1.0, summarize(t.rows(), t.environments))
    t.record("u1", "B", new_environment=True)
    t.record("u2", "C", new_environment=True)
    line.add(2.0, summarize(t.rows(), t.environments))
    t.record("u2", "C")
    line.close(3.0, summarize(t.rows(), t.environments))
    assert [p.new_environment_calls for p in line.points] == [0, 2, 0]
    assert [p.cold_starts for p in line.points] == [1, 0, 0]


def test_worker_rows_carry_new_environment_calls_to_the_master():
    t = Tracker()
    t.record("w0-u1", "A", cold=True)
    t.record("w0-u1", "B", new_environment=True)
    (packed,) = [list(w) for w in pack_rows(t.rows())]
    assert is_row(packed) and check_row(packed) is None
    assert unpack_row(packed) == t.row("w0-u1")


# -- the simulator ---------------------------------------------------------------------------------------------------


def test_the_simulator_gives_an_environment_initialised_ahead_an_empty_cache_and_no_init_delay():
    # A lease as the model gives one for a pre-initialised environment (Start.NEW_ENVIRONMENT): no init wait,
    # the session cache as empty as a cold one's.
    env = Environment("e1", "probe", "$LATEST", 0, 0.0)
    readied = []
    busy, hit, _slot = _serve(Lease(env, Start.NEW_ENVIRONMENT, 0.0), "u1", 5.0, 0.01, 100, 900.0, readied.append)
    assert (busy, hit, readied) == (0.01, False, [])
    busy, hit, _slot = _serve(Lease(env, Start.WARM, 0.0), "u1", 6.0, 0.01, 100, 900.0, readied.append)
    assert (busy, hit) == (0.01, True)


def test_an_on_demand_simulation_has_no_new_environment_calls_and_a_sweep_row_says_so():
    row = measure(10, Scenario(users=10, duration_s=20.0), 0, 7)
    assert row["new_environment_calls"] == 0 and row["cold_starts"] == row["environments"] >= 1


def test_endpoints_count_new_environment_calls_and_a_master_refuses_an_older_workers_table():
    from lambda_affinity.core.endpoints import EndpointTracker
    from lambda_affinity.locust_plugin.distributed import Aggregator
    from lambda_affinity.locust_plugin.wire import blob, pack_columns, pack_digests

    t = EndpointTracker()
    t.record("login", cold=False, cache_hit=False, stayed=None, new_environment=True)
    t.record("login", cold=True, cache_hit=False, stayed=None, new_environment=False)
    t.record("/items", cold=False, cache_hit=True, stayed=True)
    rows = {r["name"]: r for r in t.rows()}
    assert (rows["login"]["cold_starts"], rows["login"]["new_environment_calls"]) == (1, 1)
    assert "       1" in render_table({**summarize([], 0), "per_endpoint": t.rows()}).split("login")[1].splitlines()[0]
    agg = Aggregator()
    agg.start("r")
    bad_table = blob([["login", 1, 0, 1, 0, 0, 0, 0]])
    agg.receive("c0", {"run": "r", "cols": pack_columns([]), "envh": pack_digests([]), "endpoints": bad_table})
    assert agg.endpoint_rows() == [] and "an endpoint entry is not [name, 8 counts]" in agg.problems()[0]
    agg.receive("c0", {"run": "r", "cols": pack_columns([]), "envh": pack_digests([]), "endpoints": blob(t.table())})
    assert {r["name"]: r["new_environment_calls"] for r in agg.endpoint_rows()} == {"login": 1, "/items": 0}
