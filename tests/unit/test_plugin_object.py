"""The Locust plugin's parts, in-process: options on Locust's real parser,
host forms, the plugin object on a real Locust Environment and LocalRunner,
the worker and master roles exchanging real payloads, the outputs, and
Locust internals used only by the adapter (the layers and cycles: test_layers.py)."""

from __future__ import annotations

import ast
import json
import logging
import pathlib

import pytest
from locust import User, events
from locust.argument_parser import get_parser
from locust.env import Environment
from locust.event import Events

from lambda_affinity import locust_plugin
from lambda_affinity.core.hosts import LambdaTarget, Transport, host_kind
from lambda_affinity.core.reply import ProbeReplyError
from lambda_affinity.core.tracker import Tracker
from lambda_affinity.locust_plugin import PluginConfigError, adapter, check_host, parse_lambda_host, plugin_for
from lambda_affinity.locust_plugin.options import AffinityOptions, add_arguments
from lambda_affinity.locust_plugin.outputs import RunReport, print_report, write_outputs
from lambda_affinity.locust_plugin.roles import REPORT_KEY, MasterRole, WorkerRole
from lambda_affinity.locust_plugin.users import FunctionUrlUser, InvokeUser

PACKAGE = pathlib.Path(locust_plugin.__file__).resolve().parent.parent


def reply(env_id: str, hit: bool = False, cold: bool = False) -> dict:
    return {
        "env_id": env_id,
        "request_id": "r",
        "cold": cold,
        "env_invocations": 1,
        "env_age_ms": 1,
        "session": "s",
        "cache": {"hit": hit, "entries": 1, "age_ms": None},
        "probe": 1,
    }


# -- options on Locust's own parser ---------------------------------------------------


def test_options_parse_from_the_command_line_env_and_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no locust.conf of the repository's
    for key in [k for k in __import__("os").environ if k.startswith("LOCUST_")]:
        monkeypatch.delenv(key)
    parser = get_parser()
    parsed = parser.parse_args(["--affinity-min-hit-rate", "0.5", "--affinity-split-stats"])
    options = AffinityOptions.of(parsed)
    assert options.affinity_min_hit_rate == 0.5 and options.affinity_split_stats
    assert options.thresholds() == {
        "affinity-min-hit-rate": 0.5,
        "affinity-min-warm-rate": None,
        "affinity-max-cold-ratio": None,
    }
    monkeypatch.setenv("LOCUST_AFFINITY_MAX_COLD_RATIO", "0.25")
    assert AffinityOptions.of(get_parser().parse_args([])).affinity_max_cold_ratio == 0.25
    monkeypatch.delenv("LOCUST_AFFINITY_MAX_COLD_RATIO")
    conf = tmp_path / "x.conf"
    conf.write_text("affinity-min-warm-rate = 0.75\naffinity-function = other\n")
    options = AffinityOptions.of(get_parser().parse_args(["--config", str(conf)]))
    assert (options.affinity_min_warm_rate, options.affinity_function) == (0.75, "other")


@pytest.mark.parametrize("value, message", [("1.5", "must be between 0 and 1, got 1.5"), ("x", "not a number")])
def test_a_bad_threshold_is_a_precise_option_error(value, message, capsys):
    with pytest.raises(SystemExit):
        get_parser().parse_args(["--affinity-min-hit-rate", value])
    assert message in capsys.readouterr().err


def test_adding_the_options_twice_leaves_one_set():
    parser = get_parser()  # the plugin's listener already added them
    add_arguments(parser)
    flags = [f for a in parser._actions for f in a.option_strings if f.startswith("--affinity-json")]
    assert flags == ["--affinity-json"]


def test_options_of_a_bare_environment_are_the_defaults():
    assert AffinityOptions.of(None) == AffinityOptions()
    assert AffinityOptions.of(None).affinity_function == "probe"


# -- hosts -------------------------------------------------------------------------------


def test_lambda_hosts_round_trip_and_refuse_bad_forms():
    target = parse_lambda_host("lambda://my-probe:live?endpoint_url=http://127.0.0.1:9&region=eu-west-1")
    assert target == LambdaTarget("my-probe:live", "http://127.0.0.1:9", "eu-west-1")
    assert parse_lambda_host(target.host()) == target
    for bad, words in [
        ("lambda://", "needs a function name"),
        ("lambda://f?x=1", "unknown parameter x"),
        ("lambda://f?endpoint_url=ftp://h", r"must be an http\(s\) URL"),
    ]:
        with pytest.raises(PluginConfigError, match=words):
            parse_lambda_host(bad)


def test_each_user_class_refuses_the_other_host_form():
    assert host_kind("https://x.lambda-url.us-east-1.on.aws/") is Transport.FUNCTION_URL
    assert host_kind(None) is None
    check_host(FunctionUrlUser, "http://127.0.0.1:1/")
    check_host(InvokeUser, "lambda://f")
    check_host(User, "anything")  # not ours: not our business
    with pytest.raises(PluginConfigError, match="use an InvokeUser"):
        check_host(FunctionUrlUser, "lambda://f")
    with pytest.raises(PluginConfigError, match="use a FunctionUrlUser"):
        check_host(InvokeUser, "http://127.0.0.1:1/")
    with pytest.raises(PluginConfigError, match="neither http"):
        check_host(InvokeUser, "ftp://x")


# -- the plugin object on a real Environment ----------------------------------------------


class Probe(FunctionUrlUser):
    host = "http://127.0.0.1:9/"


def environment(**parsed) -> Environment:
    env = Environment(user_classes=[Probe], events=Events())
    env.parsed_options = get_parser().parse_args([]) if parsed is not None else None
    for key, value in parsed.items():
        setattr(env.parsed_options, key, value)
    env.create_local_runner()
    return env


def test_users_get_stable_labels_and_their_replies_are_tallied():
    env = environment()
    plugin = plugin_for(env)
    assert plugin_for(env) is plugin and locust_plugin.current() is plugin
    user = Probe(env)
    assert user.affinity_user == "u1" and user.affinity_session.startswith("u1-")
    assert plugin.attach(user) == "u1"
    locust_plugin.record_reply(user, json.dumps(reply("e1", cold=True)))
    locust_plugin.record_reply(user, reply("e1", hit=True))
    locust_plugin.record_reply(user, json.dumps("2020/03/27/[$LATEST]" + "a" * 32))  # the seed's bare reply
    with pytest.raises(ProbeReplyError):
        locust_plugin.record_reply(user, b"<html>")
    locust_plugin.record_invalid(user)
    doc, rows = plugin.snapshot()
    assert rows[0]["user"] == "u1" and rows[0]["requests"] == 3 and rows[0]["invalid"] == 2
    assert doc["users"] == 1 and doc["environments"] == 2 and doc["cold_starts"] == 1
    assert locust_plugin.tracker(env) is plugin.tracker


def test_a_new_test_measures_afresh_and_changes_the_session_keys():
    env = environment()
    plugin = plugin_for(env)
    first = Probe(env)
    locust_plugin.record_reply(first, reply("e1"))
    env.events.test_start.fire(environment=env)
    assert plugin.snapshot()[1] == []
    second = Probe(env)
    assert second.affinity_user == "u1" and second.affinity_session != first.affinity_session


def test_finish_writes_the_outputs_and_sets_exit_code_3_on_a_failed_check(tmp_path):
    out = tmp_path / "out" / "a.json"
    env = environment(affinity_json=str(out), affinity_min_hit_rate=0.9, csv_prefix=str(tmp_path / "run"))
    plugin = plugin_for(env)
    user = Probe(env)
    for env_id in ("e1", "e2", "e1", "e2"):
        locust_plugin.record_reply(user, reply(env_id))
    report = plugin.finish()
    assert report is not None and report.failed and env.process_exit_code == 3
    doc = json.loads(out.read_text())
    assert doc["hit_rate"]["p50"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run_affinity.csv", "run_affinity_summary.csv"]
    assert "0.9" in report.failures[0]


def test_the_cost_of_a_miss_prices_the_warm_cache_in_the_summary(capsys):
    env = environment(affinity_miss_cost_ms=5.0, affinity_miss_cost_usd=0.25e-6)
    user = Probe(env)
    for hit in (False, True, True, True):
        locust_plugin.record_reply(user, reply("e1", hit=hit))
    cost = plugin_for(env).snapshot()[0]["miss_cost"]
    assert cost["hits_per_million"] == 750_000 and cost["saved_ms_per_million"] == 750_000 * 5.0
    assert abs(cost["saved_usd_per_million"] - 0.1875) < 1e-9
    for value in ("-1", "inf", "nan"):
        with pytest.raises(SystemExit):
            get_parser().parse_args(["--miss-cost-ms", value])
        assert "must be a finite number >= 0" in capsys.readouterr().err


def test_a_plugin_that_probed_nothing_and_was_asked_nothing_stays_silent():
    env = Environment(user_classes=[User], events=Events())
    env.create_local_runner()
    assert plugin_for(env).finish() is None


def test_the_version_changes_with_the_runner_state():
    env = environment()
    plugin = plugin_for(env)
    before = plugin.version()
    env.runner.state = "stopped"
    assert plugin.version() != before


def test_print_report_shows_table_rates_files_and_checks(caplog):
    doc_rows = [
        {
            "user": "u1",
            "requests": 2,
            "max_count": 1,
            "max_share": 0.5,
            "warm_hits": 0,
            "cache_known": 0,
            "environments": 2,
            "cold_starts": 2,
            "new_environment_calls": 0,
            "switches": 1,
            "invalid": 0,
        }
    ]
    from lambda_affinity.core import summary

    report = RunReport(
        summary.summarize(doc_rows, 2), doc_rows, ["failed: x"], ["passed: y"], ["worker lost"], ["a.json"]
    )
    with caplog.at_level(logging.INFO):
        print_report(report, ["emulator cap"])
    text = caplog.text
    for part in (
        "Lambda affinity: 1 users",
        "rates: 0.50",
        "affinity: wrote a.json",
        "worker lost",
        "emulator cap",
        "passed: y",
        "failed: x",
    ):
        assert part in text


def test_write_outputs_adds_a_section_to_an_existing_html_report(tmp_path):
    page = tmp_path / "r.html"
    page.write_text("<html><body><h1>Locust</h1></body></html>")
    rows = [
        {
            "user": "u1",
            "requests": 1,
            "max_count": 1,
            "max_share": 1.0,
            "warm_hits": 1,
            "cache_known": 1,
            "environments": 1,
            "cold_starts": 0,
            "new_environment_calls": 0,
            "switches": 0,
            "invalid": 0,
        }
    ]
    from lambda_affinity.core import summary

    report = write_outputs(summary.summarize(rows, 1), rows, AffinityOptions(html_file=str(page)), ["a warning"])
    html = page.read_text()
    assert report.written == [str(page)] and "a warning" in html and "<h1>Locust</h1>" in html


# -- roles: a worker's payloads folded by a master --------------------------------------


def test_worker_reports_and_final_snapshot_reach_the_master_exactly():
    tracker = Tracker()
    worker, master = WorkerRole(tracker), MasterRole()
    master.begin("run1", [("w0", 0)])
    data: dict = {}
    worker.add_to_report(data)
    assert data == {}  # not in a run yet
    worker.begin("run1")
    for i in range(30):
        tracker.record(f"u{i % 3}", f"e{i % 4}")
    worker.add_to_report(data)
    master.on_report("w0", data, 0)

    def by_user(rows):
        return sorted(rows, key=lambda r: r["user"])

    assert by_user(master.aggregator.row_dicts()) == by_user(tracker.rows())
    tracker.record_invalid("u0")
    sent = []

    class Runner:
        def send_message(self, name, payload):
            sent.append((name, payload))

    worker.send_final(Runner())
    worker.send_final(Runner())  # once per run
    assert len(sent) == 1
    master.receive("w0", sent[0][1], 0)
    assert master.aggregator.row_dicts() == tracker.rows() and master.aggregator.problems() == []
    assert master.aggregator.environments == 4
    stale: dict = {}
    worker.begin("run0")
    tracker.record("u9", "e9")
    worker.add_to_report(stale)
    assert not master.receive("w0", stale[REPORT_KEY], 0)  # another run's: dropped


# -- the package's shape -----------------------------------------------------------------


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of the modules `path` imports (relative ones resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if path.name == "__init__.py":
        module = package
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def test_locust_runner_internals_are_used_only_by_the_adapter():
    users_of_runners = sorted(
        "/".join(p.relative_to(PACKAGE.parent).parts)
        for p in PACKAGE.rglob("*.py")
        if "locust.runners" in _imports(p) or "locust.contrib.fasthttp.FAILURE_EXCEPTIONS" in _imports(p)
    )
    assert users_of_runners == ["lambda_affinity/locust_plugin/adapter.py"]


def test_importing_the_plugin_adds_two_listeners_to_locusts_global_events():
    from lambda_affinity.locust_plugin import _on_init

    assert _on_init in events.init._handlers and add_arguments in events.init_command_line_parser._handlers
    for hook in ("test_start", "test_stop", "quitting", "quit", "report_to_master", "worker_report"):
        handlers = getattr(events, hook)._handlers
        assert not any(getattr(h, "__module__", "").startswith("lambda_affinity") for h in handlers), hook


def test_the_adapter_names_the_oldest_locust_setup_cfg_admits():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(PACKAGE.parent.parent / "setup.cfg")
    [bound] = [r for r in cfg["options"]["install_requires"].split() if r.startswith("locust>=")]
    assert bound.removeprefix("locust>=") in adapter.CHECKED_ON


def test_a_master_waits_past_the_usual_bound_only_for_workers_still_heard_from():
    """At 8 workers x 5 000 users on 2 cores, Locust's dispatch put 21 000 and 22 000 users on the two workers it
    did not mark missing; they took longer than the 10 s wait to stop them and send their final snapshots, and
    without those the users Locust had stopped on them could not be told apart (43 000 users for 40 000)."""
    import socket

    from locust.runners import STATE_MISSING, WorkerNode

    from lambda_affinity.locust_plugin.distributed import final_payload

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = Environment(user_classes=[Probe], events=Events())
    runner = env.create_master_runner("127.0.0.1", port)
    try:
        master = MasterRole()
        master.begin("r", [("a", 0), ("b", 1)])
        master.receive("a", final_payload(Tracker(), "r"), 0)
        # while the master reads the messages itself: heard from within 3 s
        assert master.still_heard(runner, {"b": 98.0}, 100.0)
        assert not master.still_heard(runner, {"b": 96.0}, 100.0)
        assert master.still_heard(runner, {"a": 99.9}, 100.0)  # its final snapshot is in, Locust's report after it not
        master.on_report("a", {}, 0)
        assert not master.still_heard(runner, {"a": 99.9}, 100.0)  # settled
        # while Locust's listener does: in its list of workers and not missing
        assert not master.still_heard(runner, None, 100.0)
        runner.clients["b"] = WorkerNode("b")
        assert master.still_heard(runner, None, 100.0)
        runner.clients["b"].state = STATE_MISSING
        assert not master.still_heard(runner, None, 100.0)
        # Locust's list marks b missing; once Locust's listener is gone that list no longer changes, and a worker
        # this master still hears from is not lost (a worker Locust gave 32 000 users reported 0.9 s before the end)
        assert master.lost_workers(runner) == {"b"} and master.lost_workers(runner, {"b": 96.0}, 100.0) == {"b"}
        assert master.lost_workers(runner, {"b": 99.0}, 100.0) == set()
        assert not master.settled(runner, {"b": 99.0}, 100.0)
        master.aggregator.left("b")  # said goodbye without a final snapshot: nothing more will come
        assert not master.still_heard(runner, {"b": 99.9}, 100.0)
    finally:
        runner.quit()
