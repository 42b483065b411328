"""AWS_IAM Function URLs in the emulator: real HTTP requests signed by
botocore's signer (sigv4.sign_headers) against a running `lambda-affinity
emulate` process, and the `credentials` part of its config."""

from __future__ import annotations

import datetime as dt
import json

import botocore.auth
import pytest
import requests
import yaml
from botocore.credentials import Credentials
from config_files import KEY_ID, SECRET

from lambda_affinity.aws.sigv4 import BAD_SIGNATURE_MESSAGE, FORBIDDEN_MESSAGE, UNKNOWN_KEY_MESSAGE, sign_headers
from lambda_affinity.emulator.process import EmulatorProcess

OTHER_ID, OTHER_SECRET = "AKIDEMULATORTEST0002", "another-secret-value"
REGION = "eu-west-1"  # not the default, so a scope with us-east-1 must be refused
CREDS = Credentials(KEY_ID, SECRET)


@pytest.fixture(scope="module")
def emu(emulator_code, tmp_path_factory):
    faults = str(emulator_code["faults"])
    config = {
        "region": REGION,
        "model": {"init_delay_s": 0},
        "credentials": [
            {"access_key_id": KEY_ID, "secret_access_key": SECRET},
            {"access_key_id": OTHER_ID, "secret_access_key": OTHER_SECRET},
        ],
        "functions": [
            {"name": "private", "handler": "app.handler", "code": faults, "url": {"auth_type": "AWS_IAM"}},
            {"name": "open", "handler": "app.handler", "code": faults, "url": {"auth_type": "NONE"}},
        ],
    }
    path = tmp_path_factory.mktemp("emu-sigv4") / "emulator.yaml"
    path.write_text(yaml.safe_dump(config))
    # not quiet: the log carries the precise reason for each refusal
    with EmulatorProcess(config_path=str(path), quiet=False) as proc:
        yield proc


def send(url, method="GET", body=None, headers=None, sign=True, creds=CREDS, region=REGION, sent_body=None):
    """Sign (method, url, headers, body) as a client would, then send it, or
    `sent_body` instead of the body signed."""
    headers = dict(headers or {})
    if sign:
        headers.update(sign_headers(method, url, headers, body, creds, region))
    return requests.request(method, url, headers=headers, data=body if sent_body is None else sent_body, timeout=30)


def assert_refused(resp, error_type, message_key, message):
    assert resp.status_code == 403, resp.text
    assert resp.headers["x-amzn-ErrorType"] == error_type
    assert resp.headers["Content-Type"] == "application/json" and resp.headers["x-amzn-RequestId"]
    assert resp.json() == {message_key: message}


def test_signed_requests_pass_with_query_path_and_body(emu):
    url = emu.function_urls["private"]
    resp = send(url + "?action=echo&who=a%20user", headers={"x-affinity-session": "u1"})
    assert resp.status_code == 200, resp.text
    event = resp.json()
    assert event["queryStringParameters"] == {"action": "echo", "who": "a user"}
    assert event["headers"]["x-affinity-session"] == "u1" and event["headers"]["authorization"].startswith("AWS4-")
    body = json.dumps({"hello": "world"}).encode()
    resp = send(
        url + "sub/a%20path?action=echo", method="POST", body=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["body"] == body.decode() and resp.json()["rawPath"] == "/sub/a path"


def test_any_configured_key_and_temporary_credentials_pass(emu):
    url = emu.function_urls["private"]
    assert send(url, creds=Credentials(OTHER_ID, OTHER_SECRET)).status_code == 200
    # a session token is signed over (not validated, as the emulator has no STS)
    resp = send(url + "?action=echo", creds=Credentials(KEY_ID, SECRET, "token-abc"))
    assert resp.status_code == 200 and resp.json()["headers"]["x-amz-security-token"] == "token-abc"


def test_unsigned_request_is_refused_as_aws_does(emu):
    assert_refused(
        send(emu.function_urls["private"], sign=False), "AccessDeniedException", "Message", FORBIDDEN_MESSAGE
    )


def test_malformed_authorization_is_refused(emu):
    headers = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/{REGION}/lambda/aws4_request, "
        "SignedHeaders=host;x-amz-date"
    }
    assert_refused(
        send(emu.function_urls["private"], headers=headers, sign=False),
        "IncompleteSignatureException",
        "message",
        "Authorization header requires 'Signature' parameter.",
    )


def test_unknown_access_key_is_refused(emu):
    resp = send(emu.function_urls["private"], creds=Credentials("AKIDNOTINTHECONFIG01", SECRET))
    assert_refused(resp, "UnrecognizedClientException", "message", UNKNOWN_KEY_MESSAGE)


def test_wrong_secret_is_refused(emu):
    resp = send(emu.function_urls["private"], creds=Credentials(KEY_ID, "not-the-secret"))
    assert_refused(resp, "InvalidSignatureException", "message", BAD_SIGNATURE_MESSAGE)


def test_expired_signature_is_refused(emu, monkeypatch):
    # botocore signs at its notion of now: ten minutes ago, past AWS's 5-minute allowance
    past = botocore.auth.get_current_datetime() - dt.timedelta(minutes=10)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: past)
    resp = send(emu.function_urls["private"])
    assert resp.status_code == 403 and resp.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert resp.json()["message"].startswith(f"Signature expired: {past:%Y%m%dT%H%M%SZ} is now earlier than ")


def test_tampered_body_header_or_path_is_refused(emu):
    url = emu.function_urls["private"]
    signed_body = b'{"amount": 1}'
    resp = send(url, method="POST", body=signed_body, sent_body=b'{"amount": 9}')
    assert_refused(resp, "InvalidSignatureException", "message", BAD_SIGNATURE_MESSAGE)
    headers = {"x-affinity-session": "u1"}
    headers.update(sign_headers("GET", url, headers, None, CREDS, REGION))
    resp = requests.get(url, headers={**headers, "x-affinity-session": "u2"}, timeout=30)
    assert_refused(resp, "InvalidSignatureException", "message", BAD_SIGNATURE_MESSAGE)
    resp = requests.get(url + "?action=echo", headers=headers, timeout=30)  # signed without the query
    assert_refused(resp, "InvalidSignatureException", "message", BAD_SIGNATURE_MESSAGE)


def test_scope_must_name_the_emulators_region(emu):
    resp = send(emu.function_urls["private"], region="us-east-1")
    assert resp.status_code == 403 and resp.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert resp.json() == {"message": "Credential should be scoped to a valid region, not 'us-east-1'. "}


def test_none_stays_open_signed_or_not(emu):
    url = emu.function_urls["open"]
    assert send(url, sign=False).status_code == 200
    assert send(url, creds=Credentials("AKIDNOTINTHECONFIG01", "whatever")).status_code == 200


def test_the_log_says_why_and_never_shows_a_secret(emu):
    url = emu.function_urls["private"]
    send(url, creds=Credentials(KEY_ID, "not-the-secret"))
    send(url, sign=False)
    log = emu.read_log()
    assert "[private url] 403 InvalidSignatureException: signature mismatch" in log
    assert "[private url] 403 AccessDeniedException: no Authorization header" in log
    assert SECRET not in log and OTHER_SECRET not in log and "not-the-secret" not in log
