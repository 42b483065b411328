"""The AWS region, resolved as the AWS CLI v2 does, alike in deploy, destroy, the SigV4 signer and InvokeUser."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lambda_affinity.sigv4 import REGION_SETTINGS, Region, check_region, resolve_region

ALL = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"}


@pytest.mark.parametrize("flag, environ, profile_region, expected", [
    ("ap-south-1", ALL, "sa-east-1", Region("ap-south-1", "--region")),
    (None, ALL, "sa-east-1", Region("eu-west-1", "AWS_REGION")),
    (None, {"AWS_DEFAULT_REGION": "us-east-2"}, "sa-east-1", Region("us-east-2", "AWS_DEFAULT_REGION")),
    (None, {}, "sa-east-1", Region("sa-east-1", "the region of AWS profile 'default'")),
    (None, {}, None, None),
    # An empty setting is unset, as in the AWS CLI.
    ("", {"AWS_REGION": "", "AWS_DEFAULT_REGION": " "}, "sa-east-1",
     Region("sa-east-1", "the region of AWS profile 'default'")),
])
def test_order_is_the_aws_cli_v2s(flag, environ, profile_region, expected):
    assert resolve_region(flag, environ, profile_region) == expected


def test_the_profile_is_named():
    assert resolve_region(None, {}, "sa-east-1", "loadtest") == \
        Region("sa-east-1", "the region of AWS profile 'loadtest'")


@pytest.mark.parametrize("flag, environ, message", [
    ("eu west 1", {}, r"--region is 'eu west 1', not a region name \(like eu-west-1\)"),
    (None, {"AWS_REGION": "EU-WEST-1"}, "AWS_REGION is 'EU-WEST-1', not a region name"),
    (None, {"AWS_DEFAULT_REGION": "-eu"}, "AWS_DEFAULT_REGION is '-eu', not a region name"),
])
def test_a_malformed_setting_is_named(flag, environ, message):
    with pytest.raises(ValueError, match=message):
        resolve_region(flag, environ, None)


def test_a_later_malformed_setting_is_not_read():
    assert resolve_region(None, {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "?"}, None).source == "AWS_REGION"
    assert check_region("us-gov-west-1", "x") == "us-gov-west-1"


# -- the plugin's two AWS clients, in a process of their own (Locust patches the process when imported)

PLUGIN_REGIONS = """
import json
from lambda_affinity.locust_plugin import PluginConfigError
from lambda_affinity.users import SignerUnavailable, _build_signer, lambda_client

out = {}
try:
    out["invoke"] = lambda_client(None, None).meta.region_name
except PluginConfigError as exc:
    out["invoke"] = str(exc)
signer = _build_signer("https://probe.example.com/")
if isinstance(signer, SignerUnavailable):
    out["signer"] = signer.message
else:
    out["signer"] = signer("GET", "https://probe.example.com/", {}, b"")["Authorization"].split("/")[2]
print(json.dumps(out))
"""


def plugin_regions(tmp_path, **settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "AKIAREGIONTEST000000",
                "AWS_SECRET_ACCESS_KEY": "region-test-secret"})
    env.update(settings)
    done = subprocess.run([sys.executable, "-c", PLUGIN_REGIONS], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"])
def test_invoke_user_and_signer_take_the_region_from_one_setting_only(tmp_path, setting):
    if setting == "AWS_PROFILE":
        (tmp_path / "config").write_text("[profile loadtest]\nregion = ap-southeast-2\n"
                                         "aws_access_key_id = AKIAREGIONTEST000000\n"
                                         "aws_secret_access_key = region-test-secret\n")
        settings = {"AWS_PROFILE": "loadtest", "AWS_CONFIG_FILE": str(tmp_path / "config")}
    else:
        settings = {setting: "ap-southeast-2"}
    assert plugin_regions(tmp_path, **settings) == {"invoke": "ap-southeast-2", "signer": "ap-southeast-2"}


@pytest.mark.slow
def test_invoke_user_and_signer_without_a_region_name_what_works(tmp_path):
    out = plugin_regions(tmp_path)
    assert out["invoke"] == \
        f"no AWS region for the Invoke API: add ?region=... to the lambda:// host, or {REGION_SETTINGS}"
    assert out["signer"] == ("--affinity-sigv4: no AWS region to sign for: https://probe.example.com/ names none; "
                             f"{REGION_SETTINGS}")
    out = plugin_regions(tmp_path, AWS_REGION="eu west 1")
    assert out["invoke"] == "AWS_REGION is 'eu west 1', not a region name (like eu-west-1)"
    assert out["signer"] == "--affinity-sigv4: AWS_REGION is 'eu west 1', not a region name (like eu-west-1)"
