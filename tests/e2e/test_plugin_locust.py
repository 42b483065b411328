"""The Locust plugin end to end: real headless Locust processes against the emulator.

Each run is a `locust` subprocess; every process it started (the embedded
emulator, its fork-server, environments) is collected while it runs and must
be gone when it exits.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time

import psutil
import pytest
from fixture_paths import HANDLERS
from locust_runs import (
    FIXTURES,
    LOCUST,
    LOCUSTFILES,
    TEST_LOCUSTFILES,
    assert_nothing_left,
    error_report,
    run_locust,
    stats_json,
)

from lambda_affinity.emulator.process import EmulatorProcess
from lambda_affinity.platform import ModelConfig


@pytest.mark.slow
def test_seed_experiment_end_to_end(tmp_path):
    run = run_locust(
        [
            "-f",
            os.path.join(LOCUSTFILES, "seed_experiment.py"),
            "--headless",
            "--affinity-json",
            "out/affinity.json",
            "--csv",
            "out/run",
            "--html",
            "out/report.html",
        ],
        cwd=tmp_path,
    )
    assert run.code == 0, run
    assert '"SeedUser": 10' in run.stderr  # all ten spawned in one batch
    doc = json.loads((tmp_path / "out" / "affinity.json").read_text())
    assert doc["users"] == 10 and doc["invalid"] == 0
    # ~10 s of request + 0-1 s think: about 18 requests per user against a local emulator
    assert 10 * 8 <= doc["requests"] <= 10 * 40, doc["requests"]
    assert all(0 < u["max_share"] <= 1 for u in doc["per_user"])
    assert all(0 < doc["hit_rate"][k] <= 1 for k in ("mean", "min", "p50", "max", "weighted"))
    assert doc["warm_cache_rate"] is not None and 1 <= doc["cold_starts"] <= doc["environments"]
    # on demand (the emulator's AWS_LAMBDA_INITIALIZATION_TYPE): every environment's first call waited for its init
    assert doc["new_environment_calls"] == 0 and doc["cold_starts"] == doc["environments"]
    assert sum(u["new_environment_calls"] for u in doc["per_user"]) == 0
    assert sum(doc["histogram"]) == 10
    rates = re.search(r"^rates: (.+)$", run.stderr, re.M)
    assert rates, run
    values = [float(x) for x in rates.group(1).split(",")]
    assert len(values) == 10 and all(0 < v <= 1 for v in values)
    assert values == [round(u["max_share"], 2) for u in doc["per_user"]]
    assert "Lambda affinity: 10 users" in run.stderr
    per_user_csv = (tmp_path / "out" / "run_affinity.csv").read_text().splitlines()
    assert per_user_csv[0].startswith("user,requests,max_count,max_share") and len(per_user_csv) == 11
    assert (tmp_path / "out" / "run_affinity_summary.csv").read_text().startswith("metric,mean,min")
    report = (tmp_path / "out" / "report.html").read_text()
    assert '<section id="lambda-affinity"' in report and "<svg" in report
    assert report.index('<section id="lambda-affinity"') > report.index('<div id="root">')
    assert_nothing_left(run)


KEEP_ALIVE_ZERO = "model:\n  keep_alive_s: 0\nfunctions:\n  - name: probe\n"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "env", "conf"])
def test_each_threshold_fails_with_exit_code_3(tmp_path, how):
    check, threshold, config = {
        # keep-alive 0: every call lands on a new environment, so max-share is 1/n < 0.9
        "cli": ("affinity-min-hit-rate", "0.9", KEEP_ALIVE_ZERO),
        # each user's first call is a cache miss, so no one reaches 1.0
        "env": ("affinity-min-warm-rate", "1.0", None),
        # a fresh emulator has no environment: the first calls are cold
        "conf": ("affinity-max-cold-ratio", "0", None),
    }[how]
    args = [
        "-f",
        os.path.join(LOCUSTFILES, "function_url.py"),
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
        "--affinity-json",
        "a.json",
    ]
    env = {}
    if config:
        (tmp_path / "emu.yaml").write_text(config)
        args += ["--affinity-emulator-config", "emu.yaml"]
    if how == "cli":
        args += [f"--{check}", threshold]
    elif how == "env":
        env["LOCUST_" + check.upper().replace("-", "_")] = threshold
    else:
        (tmp_path / "ci.conf").write_text(f"{check} = {threshold}\n")
        args += ["--config", "ci.conf"]
    run = run_locust(args, cwd=tmp_path, env=env)
    assert run.code == 3, run
    doc = json.loads((tmp_path / "a.json").read_text())
    measured = {
        "affinity-min-hit-rate": doc["hit_rate"]["p50"],
        "affinity-min-warm-rate": doc["warm_cache_rate"]["p50"],
        "affinity-max-cold-ratio": doc["cold_starts"] / doc["requests"],
    }[check]
    failed = [line for line in run.stderr.splitlines() if "CHECK FAILED" in line]
    assert len(failed) == 1, run
    assert f"--{check} {float(threshold):g}:" in failed[0] and f"was {measured:.3f}," in failed[0], failed
    assert_nothing_left(run)


@pytest.mark.slow
def test_thresholds_met_exit_0_and_split_stats(tmp_path):
    run = run_locust(
        [
            "-f",
            os.path.join(LOCUSTFILES, "function_url.py"),
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "3s",
            "--json",
            "--affinity-split-stats",
            "--affinity-min-hit-rate",
            "0.05",
            "--affinity-min-warm-rate",
            "0",
            "--affinity-max-cold-ratio",
            "1",
        ],
        cwd=tmp_path,
    )
    assert run.code == 0, run
    passed = [line for line in run.stderr.splitlines() if line.startswith("CHECK passed")]
    assert [p.split(":")[1].split()[0] for p in passed] == [
        "--affinity-min-hit-rate",
        "--affinity-min-warm-rate",
        "--affinity-max-cold-ratio",
    ]
    names = {s["name"] for s in stats_json(run.stdout)}
    # rows split by outcome: cold starts, then hits and (first calls per environment) misses
    assert "probe [cold]" in names and "probe [cache hit]" in names and "probe" not in names, names
    assert names <= {"probe [cold]", "probe [cache hit]", "probe [cache miss]"}
    assert_nothing_left(run)


@pytest.mark.slow
def test_invoke_user_through_boto3_on_the_embedded_emulator(tmp_path):
    run = run_locust(
        [
            "-f",
            os.path.join(LOCUSTFILES, "invoke.py"),
            "--headless",
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "3s",
            "--json",
            "--affinity-json",
            "a.json",
        ],
        cwd=tmp_path,
    )
    assert run.code == 0, run
    stats = stats_json(run.stdout)
    assert [(s["method"], s["name"]) for s in stats] == [("invoke", "probe")]
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["users"] == 3 and doc["invalid"] == 0
    assert doc["reproduce"]["command"] == "locust" and doc["reproduce"]["options"]["num_users"] == 3
    # the embedded emulator's model is the default one, as the simulator's default scenario has it
    assert doc["reproduce"]["model"] == dataclasses.asdict(ModelConfig())
    assert doc["reproduce"]["options"]["emulator_network_latency"] is None
    assert doc["requests"] == stats[0]["num_requests"] and stats[0]["num_failures"] == 0
    assert doc["warm_cache_rate"] is not None and doc["cold_starts"] >= 1 and doc["new_environment_calls"] == 0
    assert "lambda://probe?endpoint_url=http://127.0.0.1:" in run.stderr  # the embedded emulator's Invoke API
    assert_nothing_left(run)


@pytest.mark.slow
def test_malformed_replies_are_failures_with_precise_messages(tmp_path):
    with EmulatorProcess(config_path=os.path.join(FIXTURES, "configs", "broken_emulator.yaml")) as emu:
        tree = psutil.Process(emu.proc.pid).children(recursive=True) + [psutil.Process(emu.proc.pid)]
        env = {
            "BROKEN_URL": emu.function_urls["broken"],
            "THROTTLED_URL": emu.function_urls["throttled"],
            "EMULATOR_ENDPOINT": emu.endpoint,
        }
        run = run_locust(
            [
                "-f",
                os.path.join(TEST_LOCUSTFILES, "broken.py"),
                "--headless",
                "-u",
                "2",
                "-r",
                "2",
                "-t",
                "3s",
                "--json",
                "--affinity-json",
                "a.json",
            ],
            cwd=tmp_path,
            env=env,
        )
    assert run.code == 1, run  # Locust's exit code when requests failed
    report = error_report(run.stderr)
    expected = {
        ("GET", "url not-json"): "ProbeReplyError: reply is not JSON: 'this is not json'",
        ("GET", "url no-env-id"): "ProbeReplyError: reply has no env_id (keys: hello)",
        ("GET", "url error-500"): "ProbeReplyError: HTTP 500: 'boom'",
        # AWS's bare 502, and beside it the emulator's header naming the function's error
        ("GET", "url raise"): "ProbeReplyError: function error (Unhandled): RuntimeError: deliberately broken",
        ("GET", "url throttled"): 'ProbeReplyError: throttled: HTTP 429: \'{"Message": "Rate Exceeded."}\'',
        (
            "invoke",
            "invoke number",
        ): "ProbeReplyError: reply is a JSON number, not a probe object or a log stream name: 42",
        ("invoke", "invoke no-env-id"): "ProbeReplyError: reply has no env_id (keys: hello)",
        ("invoke", "invoke bad-cold"): 'ProbeReplyError: reply field cold is not a boolean: "yes"',
        ("invoke", "invoke raise"): "ProbeReplyError: function error (Unhandled): RuntimeError: deliberately broken",
        ("invoke", "invoke throttled"): "ProbeReplyError: throttled: TooManyRequestsException "
        "(ReservedFunctionConcurrentInvocationLimitExceeded): Rate Exceeded.",
    }
    assert {(m, n): e for (m, n, e) in report} == expected, run
    stats = {(s["method"], s["name"]): s for s in stats_json(run.stdout)}
    doc = json.loads((tmp_path / "a.json").read_text())
    # every failure counted as invalid, every success as a valid reply, nothing else
    for key in expected:
        assert stats[key]["num_failures"] == stats[key]["num_requests"] == report[(*key, expected[key])]
    assert stats[("GET", "url ok")]["num_failures"] == stats[("invoke", "invoke ok")]["num_failures"] == 0
    assert doc["invalid"] == sum(report.values())
    assert doc["requests"] == stats[("GET", "url ok")]["num_requests"] + stats[("invoke", "invoke ok")]["num_requests"]
    assert doc["users"] == 2
    assert doc["reproduce"]["model"] is None  # a host of its own: the plugin does not know its model
    assert_nothing_left(run)
    psutil.wait_procs(tree, timeout=5)
    assert not [p for p in tree if p.is_running()]


def test_help_lists_the_plugin_options(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "lambda_affinity.cli", "locust", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    for option in (
        "--affinity-json",
        "--affinity-min-hit-rate",
        "--affinity-min-warm-rate",
        "--affinity-max-cold-ratio",
        "--affinity-split-stats",
        "--affinity-endpoint-url",
        "--affinity-sigv4",
        "--affinity-emulator-config",
        "--affinity-function",
    ):
        assert option in out.stdout
    assert "lambda-affinity:" in out.stdout and "--headless" in out.stdout


def test_bad_threshold_is_an_option_error(tmp_path):
    run = run_locust(
        ["-f", os.path.join(LOCUSTFILES, "function_url.py"), "--headless"],
        cwd=tmp_path,
        env={"LOCUST_AFFINITY_MIN_HIT_RATE": "1.5"},
    )
    assert run.code == 2, run
    assert "--affinity-min-hit-rate: must be between 0 and 1, got 1.5" in run.stderr


@pytest.mark.parametrize(
    "locustfile, host, message",
    [
        (
            "function_url.py",
            "lambda://probe",
            "FunctionUrlProbe needs an http(s):// Function URL (or no --host for the embedded emulator), got "
            "'lambda://probe'; use an InvokeUser (locustfiles/invoke.py) for lambda:// hosts",
        ),
        (
            "invoke.py",
            "https://abc.lambda-url.us-east-1.on.aws/",
            "InvokeProbe needs lambda://FUNCTION_NAME (or no --host for the embedded emulator), got "
            "'https://abc.lambda-url.us-east-1.on.aws/'; use a FunctionUrlUser (locustfiles/function_url.py) "
            "for Function URLs",
        ),
        (
            "invoke.py",
            "lambda://bad name",
            "host 'lambda://bad name': lambda:// needs a function name, name:alias or function ARN",
        ),
        (
            "function_url.py",
            "ftp://example.com",
            "host 'ftp://example.com' is neither http(s):// (a Function URL) nor lambda://FUNCTION_NAME",
        ),
    ],
)
def test_host_forms_are_checked_before_the_run(tmp_path, locustfile, host, message):
    run = run_locust(
        ["-f", os.path.join(LOCUSTFILES, locustfile), "--headless", "-t", "1s", "--host", host], cwd=tmp_path
    )
    assert run.code == 1, run
    assert message in run.stderr, run
    assert_nothing_left(run)


def test_bad_embedded_emulator_config_is_one_clear_error(tmp_path):
    (tmp_path / "emu.yaml").write_text("functions:\n  - name: probe\n    memory: 64\n")
    run = run_locust(
        [
            "-f",
            os.path.join(LOCUSTFILES, "function_url.py"),
            "--headless",
            "-t",
            "1s",
            "--affinity-emulator-config",
            "emu.yaml",
        ],
        cwd=tmp_path,
    )
    assert run.code == 1, run
    assert "the embedded emulator did not start" in run.stderr
    assert "emu.yaml: functions[0].memory: expected a whole number from 128 to 10240, got 64" in run.stderr
    assert "Traceback" not in run.stderr
    assert_nothing_left(run)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_no_process_left_when_locust_is_stopped_mid_run(tmp_path, sig):
    """SIGTERM: Locust shuts down through `quitting`, which stops the emulator.
    SIGKILL: nothing of Locust runs; the emulator sees its stdin pipe close."""
    proc = subprocess.Popen(
        LOCUST
        + [
            "-f",
            os.path.join(LOCUSTFILES, "function_url.py"),
            "--headless",
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "60s",
            "--affinity-json",
            "a.json",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = {}
    deadline = time.monotonic() + 30
    # wait until the environments are up (emulator, fork-server, at least one environment)
    while len(seen) < 3 and time.monotonic() < deadline:
        for child in psutil.Process(proc.pid).children(recursive=True):
            seen.setdefault(child.pid, child)
        time.sleep(0.1)
    time.sleep(1.0)
    for child in psutil.Process(proc.pid).children(recursive=True):
        seen.setdefault(child.pid, child)
    assert len(seen) >= 3, seen
    proc.send_signal(getattr(__import__("signal"), sig))
    _, stderr = proc.communicate(timeout=30)
    if sig == "SIGTERM":
        assert proc.returncode == 0, stderr
        assert "Lambda affinity: 3 users" in stderr
        assert json.loads((tmp_path / "a.json").read_text())["users"] == 3
    _, alive = psutil.wait_procs(list(seen.values()), timeout=10)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]


@pytest.mark.slow
def test_the_embedded_emulators_own_cap_is_named_in_the_summary(tmp_path):
    """A cap of 1 environment (a 0.5 s init keeps it busy) refuses the other
    users' first calls: the run's summary says once that the refusals came
    from this machine's cap, not from AWS's account limit."""
    (tmp_path / "emu.yaml").write_text("model: {max_environments: 1, init_delay_s: 0.5}\nfunctions:\n  - name: probe\n")
    run = run_locust(
        [
            "-f",
            os.path.join(LOCUSTFILES, "function_url.py"),
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "2s",
            "--affinity-emulator-config",
            "emu.yaml",
            "--affinity-json",
            "a.json",
        ],
        cwd=tmp_path,
    )
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["invalid"] > 0, run
    notes = [line for line in run.stderr.splitlines() if "embedded emulator's cap of 1 live environments" in line]
    assert len(notes) == 1, run.stderr[-3000:]
    assert "(set by its config) refused" in notes[0] and "not AWS's account concurrency" in notes[0]
    assert_nothing_left(run)


RAISING_LOCUSTFILE = """
from locust import constant

from lambda_affinity.users import FunctionUrlUser


class Raising(FunctionUrlUser):
    wait_time = constant(0.2)
    probe_path = "raise"  # the host ends with /
"""


def test_the_embedded_emulators_function_errors_reach_locust_under_the_functions_name(tmp_path):
    # Before: the failure was "HTTP 502: 'Internal Server Error'" on a row named `probe`.
    (tmp_path / "locustfile.py").write_text(RAISING_LOCUSTFILE)
    (tmp_path / "emu.yaml").write_text(
        f"model: {{init_delay_s: 0}}\nfunctions:\n  - name: broken\n    handler: broken.handler\n"
        f"    code: {HANDLERS / 'broken'}\n"
    )
    args = ["-f", "locustfile.py", "--headless", "-u", "1", "-r", "1", "-t", "2s", "--json"]
    run = run_locust([*args, "--affinity-emulator-config", "emu.yaml", "--affinity-function", "broken"], cwd=tmp_path)
    assert run.code == 1, run  # Locust's exit code when requests failed
    report = error_report(run.stderr)
    [(method, name, error)] = report
    assert (method, name, error) == (
        "GET",
        "broken",
        "ProbeReplyError: function error (Unhandled): RuntimeError: deliberately broken",
    ), run
    assert [(s["name"], s["num_failures"] == s["num_requests"] > 0) for s in stats_json(run.stdout)] == [
        ("broken", True)
    ]
    assert_nothing_left(run)


SPY_HANDLER = HANDLERS / "spy/app.py"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's")
def test_function_code_cannot_read_the_locust_process_that_embeds_the_emulator(tmp_path):
    """The Locust process holds the user's AWS credentials in its environment:
    function code must not read it. Two guards hold it: the plugin makes the
    Locust process non-dumpable before it starts the embedded emulator (what
    stops a same-user reader), and the fork-server drops every capability, so
    even a root run's functions cannot override that (here, as root, either
    guard alone denies the read)."""
    (tmp_path / "code").mkdir()
    shutil.copyfile(SPY_HANDLER, (tmp_path / "code" / "app.py"))
    spy_out = tmp_path / "spy.jsonl"
    (tmp_path / "emu.yaml").write_text(
        "model: {init_delay_s: 0}\nfunctions:\n  - name: probe\n    handler: app.handler\n    code: ./code\n"
        f"    environment: {{SPY_OUT: '{spy_out}'}}\n"
    )
    run = run_locust(
        [
            "-f",
            os.path.join(LOCUSTFILES, "function_url.py"),
            "--headless",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "1s",
            "--affinity-emulator-config",
            "emu.yaml",
        ],
        cwd=tmp_path,
        env={"AWS_SECRET_ACCESS_KEY": "do-not-leak-0123456789"},
    )
    seen = [json.loads(line) for line in spy_out.read_text().splitlines()]
    assert seen, run
    for row in seen:
        assert row["locust"] == run.pid, row
        assert row["outcome"].startswith("PermissionError"), row
    assert_nothing_left(run)
