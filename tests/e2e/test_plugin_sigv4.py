"""SigV4 end to end: real headless Locust runs of the Function URL user through
a running emulator whose probe URL has auth type AWS_IAM.

Locust gets its credentials the way a user's run would, from boto3's chain
(here: the AWS_* environment variables), and the emulator's config lists the
same key. Signed runs pass; unsigned or wrongly signed ones are 403s that
Locust counts as failures with the plugin's hint.
"""

from __future__ import annotations

import json
import os

import psutil
import pytest
import yaml
from locust_runs import LOCUSTFILES, assert_nothing_left, error_report, run_locust, stats_json

from lambda_affinity.aws.sigv4 import BAD_SIGNATURE_MESSAGE
from lambda_affinity.emulator.process import EmulatorProcess

pytestmark = pytest.mark.slow

KEY_ID = "AKIDLOCUSTSIGV40001"
SECRET = "locust/s3cr3t+for-tests"
REGION = "us-east-1"
UNSIGNED_HINT = (
    "ProbeReplyError: 403 Forbidden from an unsigned request: the Function URL probably uses auth type "
    "AWS_IAM; sign requests with --affinity-sigv4 (credentials and region from boto3's chain)"
)
WRONG_SECRET_HINT = f"ProbeReplyError: 403 on a signed request: {BAD_SIGNATURE_MESSAGE}"


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    config = {
        "region": REGION,
        "credentials": [{"access_key_id": KEY_ID, "secret_access_key": SECRET}],
        "functions": [{"name": "probe", "url": {"auth_type": "AWS_IAM"}}],
    }
    path = tmp_path_factory.mktemp("plugin-sigv4") / "emulator.yaml"
    path.write_text(yaml.safe_dump(config))
    with EmulatorProcess(config_path=str(path)) as proc:
        tree = [psutil.Process(proc.proc.pid)] + psutil.Process(proc.proc.pid).children(recursive=True)
        yield proc
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive, f"emulator processes left behind: {alive}"


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Only what the test gives may reach boto3's chain in the Locust process:
    no profile, config file, session token or instance metadata of this machine."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    missing = str(tmp_path / "no-such-aws-file")
    return {
        "AWS_SHARED_CREDENTIALS_FILE": missing,
        "AWS_CONFIG_FILE": missing,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": KEY_ID,
    }


def probe_run(emu, tmp_path, env, sign):
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
        "--host",
        emu.function_urls["probe"],
        "--json",
        "--affinity-json",
        "a.json",
    ]
    if sign:
        args.append("--affinity-sigv4")
    run = run_locust(args, cwd=tmp_path, env=env)
    assert_nothing_left(run)
    assert SECRET not in run.stdout + run.stderr
    [row] = [s for s in stats_json(run.stdout) if s["name"] == "probe"]
    return run, row, json.loads((tmp_path / "a.json").read_text())


def test_signed_run_succeeds(emu, tmp_path, aws_env):
    run, row, doc = probe_run(emu, tmp_path, {**aws_env, "AWS_SECRET_ACCESS_KEY": SECRET}, sign=True)
    assert run.code == 0, run
    assert row["num_requests"] >= 4 and row["num_failures"] == 0, row
    assert doc["users"] == 2 and doc["invalid"] == 0 and doc["requests"] == row["num_requests"]


@pytest.mark.parametrize("case", ["unsigned", "wrong secret"])
def test_unsigned_or_wrongly_signed_run_fails_every_request_with_a_hint(emu, tmp_path, aws_env, case):
    if case == "unsigned":
        env, sign, hint = {**aws_env, "AWS_SECRET_ACCESS_KEY": SECRET}, False, UNSIGNED_HINT
    else:
        env, sign, hint = {**aws_env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}, True, WRONG_SECRET_HINT
    run, row, doc = probe_run(emu, tmp_path, env, sign)
    assert run.code == 1, run  # Locust's exit code when requests failed
    assert row["num_requests"] >= 4 and row["num_failures"] == row["num_requests"], row
    assert error_report(run.stderr) == {("GET", "probe", hint): row["num_requests"]}, run
    assert doc["invalid"] == row["num_requests"] and doc["requests"] == 0
    assert "not-the-secret" not in run.stdout + run.stderr


@pytest.mark.parametrize("case", ["no credentials", "no region"])
def test_unsignable_run_says_why_once_and_sends_nothing(emu, tmp_path, aws_env, case):
    env = {**aws_env, "AWS_SECRET_ACCESS_KEY": SECRET}
    host = emu.function_urls["probe"]
    if case == "no credentials":
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        message = "--affinity-sigv4: no AWS credentials found"
    else:
        del env["AWS_DEFAULT_REGION"]
        # loopback, but not a name the signer takes for the local emulator's default region
        host = host.replace("127.0.0.1", "lambda-affinity.invalid")
        message = "--affinity-sigv4: no AWS region to sign for"
    run = run_locust(
        [
            "-f",
            os.path.join(LOCUSTFILES, "function_url.py"),
            "--headless",
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "5s",
            "--host",
            host,
            "--affinity-sigv4",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert_nothing_left(run)
    assert run.code == 2, run
    assert run.stderr.count(message) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert sum(s["num_requests"] for s in stats_json(run.stdout)) == 0, run.stdout
