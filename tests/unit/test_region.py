"""The AWS region, resolved as the AWS CLI v2 does, alike in deploy, destroy, the SigV4 signer and InvokeUser."""

from __future__ import annotations

import pytest

from lambda_affinity.aws.sigv4 import Region, check_region, resolve_region

ALL = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"}


@pytest.mark.parametrize(
    "flag, environ, profile_region, expected",
    [
        ("ap-south-1", ALL, "sa-east-1", Region("ap-south-1", "--region")),
        (None, ALL, "sa-east-1", Region("eu-west-1", "AWS_REGION")),
        (None, {"AWS_DEFAULT_REGION": "us-east-2"}, "sa-east-1", Region("us-east-2", "AWS_DEFAULT_REGION")),
        (None, {}, "sa-east-1", Region("sa-east-1", "the region of AWS profile 'default'")),
        (None, {}, None, None),
        # An empty setting is unset, as in the AWS CLI.
        (
            "",
            {"AWS_REGION": "", "AWS_DEFAULT_REGION": " "},
            "sa-east-1",
            Region("sa-east-1", "the region of AWS profile 'default'"),
        ),
    ],
)
def test_order_is_the_aws_cli_v2s(flag, environ, profile_region, expected):
    assert resolve_region(flag, environ, profile_region) == expected


def test_the_profile_is_named():
    assert resolve_region(None, {}, "sa-east-1", "loadtest") == Region(
        "sa-east-1", "the region of AWS profile 'loadtest'"
    )


@pytest.mark.parametrize(
    "flag, environ, message",
    [
        ("eu west 1", {}, r"--region is 'eu west 1', not a region name \(like eu-west-1\)"),
        (None, {"AWS_REGION": "EU-WEST-1"}, "AWS_REGION is 'EU-WEST-1', not a region name"),
        (None, {"AWS_DEFAULT_REGION": "-eu"}, "AWS_DEFAULT_REGION is '-eu', not a region name"),
    ],
)
def test_a_malformed_setting_is_named(flag, environ, message):
    with pytest.raises(ValueError, match=message):
        resolve_region(flag, environ, None)


def test_a_later_malformed_setting_is_not_read():
    assert resolve_region(None, {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "?"}, None).source == "AWS_REGION"
    assert check_region("us-gov-west-1", "x") == "us-gov-west-1"


# -- the plugin's two AWS clients, in a process of their own (Locust patches the process when imported)
