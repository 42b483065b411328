"""The emulator's `credentials` config, in-process: loaded, kept out of repr, bad entries named."""

from __future__ import annotations

import pytest
from config_files import KEY_ID, SECRET, config_error, write

from lambda_affinity.emulator.config import load_config


def test_credentials_and_region_load_and_stay_out_of_repr(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            f"""
region: ap-southeast-2
credentials:
  - {{access_key_id: {KEY_ID}, secret_access_key: "{SECRET}"}}
  - {{access_key_id: testing, secret_access_key: testing}}
functions: [{{name: p, url: {{auth_type: AWS_IAM}}}}]
""",
        )
    )
    assert cfg.credentials == {KEY_ID: SECRET, "testing": "testing"} and cfg.region == "ap-southeast-2"
    assert SECRET not in repr(cfg)
    assert load_config(write(tmp_path, "functions: [{name: p}]")).region == "us-east-1"


@pytest.mark.parametrize(
    "text,key,words",
    [
        ("credentials: {a: b}", "credentials", "expected a list of {access_key_id, secret_access_key}, got a mapping"),
        ("credentials: [AKID]", "credentials[0]", "expected a mapping"),
        ("credentials: [{access_key_id: AKID}]", "credentials[0].secret_access_key", "missing"),
        ("credentials: [{secret_access_key: TOPSECRET}]", "credentials[0].access_key_id", "missing"),
        (
            "credentials: [{access_key_id: AKID, secret_access_key: ''}]",
            "credentials[0].secret_access_key",
            "expected a non-empty string, got an empty string",
        ),
        (
            "credentials: [{access_key_id: AKID, secret_access_key: 12345}]",
            "credentials[0].secret_access_key",
            "expected a non-empty string, got int",
        ),
        ("credentials: [{access_key_id: AKID, secret_access_key: x, token: t}]", "credentials[0].token", "unknown key"),
        # a secret pasted as the id: described, not shown
        (
            "credentials: [{access_key_id: 'TOP/SECRET+x', secret_access_key: x}]",
            "credentials[0].access_key_id",
            "got 12 characters including '+' '/'",
        ),
        (
            "credentials: [{access_key_id: A, secret_access_key: x}, {access_key_id: A, secret_access_key: TOPSECRET}]",
            "credentials[1].access_key_id",
            "'A' is listed twice",
        ),
        ("region: Europe", "region", "AWS region name such as us-east-1, got 'Europe'"),
    ],
)
def test_bad_credentials_name_file_and_key_and_never_the_secret(tmp_path, text, key, words):
    msg = config_error(tmp_path, text, key, words)
    assert "TOPSECRET" not in msg and "TOP/SECRET" not in msg and "12345" not in msg
