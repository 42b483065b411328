"""InvokeUser and the SigV4 signer take their region in a fresh Python process, as Locust would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fixture_paths import SCRIPTS
from locust_runs import ROOT

from lambda_affinity.aws.sigv4 import REGION_SETTINGS

PLUGIN_REGIONS = SCRIPTS / "plugin_regions.py"


def plugin_regions(tmp_path, **settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ACCESS_KEY_ID": "AKIAREGIONTEST000000",
            "AWS_SECRET_ACCESS_KEY": "region-test-secret",
        }
    )
    env.update(settings)
    done = subprocess.run([sys.executable, str(PLUGIN_REGIONS)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"])
def test_invoke_user_and_signer_take_the_region_from_one_setting_only(tmp_path, setting):
    if setting == "AWS_PROFILE":
        (tmp_path / "config").write_text(
            "[profile loadtest]\nregion = ap-southeast-2\n"
            "aws_access_key_id = AKIAREGIONTEST000000\n"
            "aws_secret_access_key = region-test-secret\n"
        )
        settings = {"AWS_PROFILE": "loadtest", "AWS_CONFIG_FILE": str(tmp_path / "config")}
    else:
        settings = {setting: "ap-southeast-2"}
    assert plugin_regions(tmp_path, **settings) == {"invoke": "ap-southeast-2", "signer": "ap-southeast-2"}


@pytest.mark.slow
def test_invoke_user_and_signer_without_a_region_name_what_works(tmp_path):
    out = plugin_regions(tmp_path)
    assert (
        out["invoke"]
        == f"no AWS region for the Invoke API: add ?region=... to the lambda:// host, or {REGION_SETTINGS}"
    )
    assert out["signer"] == (
        f"--affinity-sigv4: no AWS region to sign for: https://probe.example.com/ names none; {REGION_SETTINGS}"
    )
    out = plugin_regions(tmp_path, AWS_REGION="eu west 1")
    assert out["invoke"] == "AWS_REGION is 'eu west 1', not a region name (like eu-west-1)"
    assert out["signer"] == "--affinity-sigv4: AWS_REGION is 'eu west 1', not a region name (like eu-west-1)"


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"AWS_ACCESS_KEY_ID": "AKIAREGIONTEST000000", "AWS_SECRET_ACCESS_KEY": "s"},
            "no AWS region for the Invoke API",
        ),
        ({"AWS_REGION": "eu-west-1"}, "credentials"),
    ],
    ids=["no-region", "no-credentials"],
)
def test_lambda_host_without_region_or_credentials_stops_at_start_with_one_line(tmp_path, settings, message):
    """Before: a gevent traceback per user, then idle until -t ended."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCUST_"))}
    env.update(
        {
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            **settings,
        }
    )
    locustfile = os.path.join(ROOT, "locustfiles", "invoke.py")
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", locustfile, "--host", "lambda://probe", "--headless", "-u", "2"]
        + ["-t", "30s"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "lambda-affinity:" in line]
    assert len(lines) == 1 and message in lines[0], done.stderr[-3000:]
    assert "Run time limit" not in done.stderr  # stopped before the run began
