"""SigV4 signing and verification for AWS_IAM Function URLs, with botocore's real signer."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from lambda_affinity.aws import sigv4
from lambda_affinity.aws.sigv4 import SigV4Error, forbidden_hint, region_from_function_url, sign_headers, verify

KEY_ID = "AKIDLAMBDAAFFINITY01"
SECRET = "s3cr3t/for+tests/only"
KEYS = {KEY_ID: SECRET}
CREDS = Credentials(KEY_ID, SECRET)
HOST = "127.0.0.1:9001"
URL = f"http://{HOST}/probe/a%20b?session=u1&b=2"
TARGET = "/probe/a%20b?session=u1&b=2"
BODY = b'{"hello": "world"}'
BASE = {"Content-Type": "application/json", "x-affinity-session": "u1"}


def received(extra: dict, base: dict = BASE) -> dict:
    """Headers as the server sees them: the client's, Host, and what its HTTP library adds."""
    return {"Host": HOST, "User-Agent": "locust/2.47", "Content-Length": "18", **base, **extra}


def signed(method="POST", url=URL, headers=BASE, body=BODY, creds=CREDS, region="us-east-1"):
    return received(sign_headers(method, url, headers, body, creds, region), headers)


def reject(kind: str, *args, **kwargs) -> SigV4Error:
    with pytest.raises(SigV4Error) as info:
        verify(*args, **kwargs)
    assert info.value.kind == kind, str(info.value)
    return info.value


def test_valid_signature_passes_with_relative_target_or_full_url():
    headers = signed()
    verify("POST", TARGET, headers, BODY, KEYS)
    verify("POST", URL, headers, BODY, KEYS)
    verify("post", TARGET, list(headers.items()), BODY, KEYS, region="us-east-1")


def test_sign_headers_returns_only_what_to_add():
    added = sign_headers("GET", URL, {}, None, CREDS, "eu-west-1")
    assert set(added) == {"X-Amz-Date", "Authorization"}
    assert re.fullmatch(
        rf"AWS4-HMAC-SHA256 Credential={KEY_ID}/\d{{8}}/eu-west-1/lambda/aws4_request, "
        r"SignedHeaders=host;x-amz-date, Signature=[0-9a-f]{64}",
        added["Authorization"],
    )
    assert SECRET not in json.dumps(added)


def test_temporary_credentials_add_a_signed_security_token():
    creds = Credentials(KEY_ID, SECRET, "session-token-xyz")
    added = sign_headers("GET", URL, {}, b"", creds, "us-east-1")
    assert added["X-Amz-Security-Token"] == "session-token-xyz"
    assert "x-amz-security-token" in added["Authorization"]
    verify("GET", TARGET, received(added), b"", KEYS)


def test_refreshable_credentials_are_frozen_for_signing():
    def refresh():
        return {
            "access_key": KEY_ID,
            "secret_key": SECRET,
            "token": None,
            "expiry_time": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat(),
        }

    creds = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    verify("GET", TARGET, received(sign_headers("GET", URL, {}, b"", creds, "us-east-1")), b"", KEYS)


def test_matches_botocores_own_signer():
    # The same request signed by SigV4Auth directly verifies: we add nothing of our own.
    req = AWSRequest(method="PUT", url=URL, data=BODY, headers=dict(BASE))
    SigV4Auth(CREDS, "lambda", "ap-south-1").add_auth(req)
    verify("PUT", TARGET, received(dict(req.headers), {}), BODY, KEYS)


@pytest.mark.parametrize("change", ["body", "method", "path", "query", "signed header", "key secret"])
def test_any_change_breaks_the_signature(change):
    headers, method, target, body, keys = signed(), "POST", TARGET, BODY, KEYS
    if change == "body":
        body = b'{"hello": "World"}'
    elif change == "method":
        method = "PUT"
    elif change == "path":
        target = "/probe/a%20c?session=u1&b=2"
    elif change == "query":
        target = "/probe/a%20b?session=u2&b=2"
    elif change == "signed header":
        headers["x-affinity-session"] = "u2"
    else:
        keys = {KEY_ID: SECRET + "x"}
    err = reject("signature", method, target, headers, body, keys)
    assert err.status == 403
    assert err.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert json.loads(err.body) == {"message": sigv4.BAD_SIGNATURE_MESSAGE}


def test_query_parameter_order_does_not_matter_but_values_do():
    headers = signed(url=f"http://{HOST}/?b=2&a=1&a=0")
    verify("POST", "/?a=1&a=0&b=2", headers, BODY, KEYS)
    reject("signature", "POST", "/?b=2&a=1", headers, BODY, KEYS)


def test_unsigned_headers_may_change():
    headers = signed()
    headers["User-Agent"] = "something else"
    headers["X-Forwarded-For"] = "10.0.0.1"
    verify("POST", TARGET, headers, BODY, KEYS)


def test_headers_botocore_would_skip_are_honoured_when_the_client_signed_them():
    # Another SDK may sign User-Agent; the server must use the client's list.
    base = {"User-Agent": "custom-sdk/1.0"}
    headers = signed(headers=base)
    auth = headers["Authorization"]
    assert "user-agent" not in auth  # botocore skips it...
    # ...so forge a client that did sign it, with botocore's primitives.
    req = AWSRequest(method="POST", url=URL, data=BODY, headers=base)
    req.context["timestamp"] = headers["X-Amz-Date"]
    signer = sigv4._ExactHeaders(
        CREDS,
        "us-east-1",
        ["host", "user-agent", "x-amz-date"],
        {"host": [HOST], "user-agent": ["custom-sdk/1.0"], "x-amz-date": [headers["X-Amz-Date"]]},
    )
    sig = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    forged = {
        "Host": HOST,
        "User-Agent": "custom-sdk/1.0",
        "X-Amz-Date": headers["X-Amz-Date"],
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{headers['X-Amz-Date'][:8]}/us-east-1/lambda/aws4_request, "
            f"SignedHeaders=host;user-agent;x-amz-date, Signature={sig}"
        ),
    }
    verify("POST", TARGET, forged, BODY, KEYS)
    forged["User-Agent"] = "custom-sdk/2.0"
    reject("signature", "POST", TARGET, forged, BODY, KEYS)


def test_content_sha256_header_must_match_the_body():
    good = signed(headers={**BASE, "x-amz-content-sha256": __import__("hashlib").sha256(BODY).hexdigest()})
    verify("POST", TARGET, good, BODY, KEYS)
    err = reject("signature", "POST", TARGET, good, b"other body", KEYS)
    assert "does not match the body" in str(err)


def test_unsigned_payload_is_refused():
    headers = signed(headers={**BASE, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    err = reject("signature", "POST", TARGET, headers, BODY, KEYS)
    assert "unsigned payloads are not accepted" in str(err)


def test_missing_authorization():
    err = reject("missing", "GET", TARGET, received({}), b"", KEYS)
    assert err.status == 403
    assert err.headers == {"Content-Type": "application/json", "x-amzn-ErrorType": "AccessDeniedException"}
    assert json.loads(err.body) == {"Message": sigv4.FORBIDDEN_MESSAGE}
    assert err.body.startswith(b'{"Message":"Forbidden.')  # compact, as AWS sends it
    assert "AWS_IAM" in str(err)


def test_presigned_query_is_reported_as_unsupported():
    err = reject("missing", "GET", "/?X-Amz-Signature=abc&X-Amz-Credential=x", received({}), b"", KEYS)
    assert "query-string signatures are not supported" in str(err)


def _with_auth(value: str) -> dict:
    headers = signed()
    headers["Authorization"] = value
    return headers


@pytest.mark.parametrize(
    "value, detail, aws",
    [
        ("Bearer abc", "unsupported signing algorithm 'Bearer'", "Unsupported AWS 'algorithm': 'Bearer'"),
        (
            "AWS4-HMAC-SHA256 Credential=a/b/c/lambda/aws4_request",
            "lacks SignedHeaders, Signature",
            "Authorization header requires 'SignedHeaders' parameter. "
            "Authorization header requires 'Signature' parameter.",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}",
            "got 4 part(s)",
            "Credential should be scoped",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/lambda/aws3_request, "
            f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}",
            "terminator is 'aws3_request'",
            "valid terminator",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=xyz",
            "64 lower-case hex",
            "64 lower-case hex",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/lambda/aws4_request, "
            f"SignedHeaders=x-amz-date;host, Signature={'0' * 64}",
            "sorted and unique",
            "sorted",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/lambda/aws4_request, "
            f"SignedHeaders=x-amz-date, Signature={'0' * 64}",
            "Host header is not signed",
            "'Host' or ':authority' must be a 'SignedHeader'",
        ),
    ],
)
def test_malformed_authorization(value, detail, aws):
    err = reject("malformed", "POST", TARGET, _with_auth(value), BODY, KEYS)
    assert detail in str(err)
    assert aws in json.loads(err.body)["message"]
    assert err.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"


def test_missing_or_malformed_date():
    headers = signed()
    del headers["X-Amz-Date"]
    err = reject("malformed", "POST", TARGET, headers, BODY, KEYS)
    assert "X-Amz-Date" in err.aws_message
    headers = signed()
    headers["X-Amz-Date"] = "2024-01-01T00:00:00Z"
    assert "ISO-8601" in reject("malformed", "POST", TARGET, headers, BODY, KEYS).aws_message


def test_signed_header_absent_from_request():
    headers = signed()
    del headers["x-affinity-session"]
    assert "x-affinity-session" in str(reject("signature", "POST", TARGET, headers, BODY, KEYS))


def test_unknown_access_key():
    err = reject("unknown_key", "POST", TARGET, signed(creds=Credentials("AKIDSOMEONEELSE00000", SECRET)), BODY, KEYS)
    assert "AKIDSOMEONEELSE00000" in str(err)
    assert err.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    assert json.loads(err.body) == {"message": "The security token included in the request is invalid."}


def test_scope_must_name_lambda_and_the_region_if_given():
    headers = signed(region="us-west-2")
    verify("POST", TARGET, headers, BODY, KEYS)  # any region when the server does not say
    err = reject("signature", "POST", TARGET, headers, BODY, KEYS, region="us-east-1")
    assert "'us-west-2'" in str(err) and "valid region" in err.aws_message
    req = AWSRequest(method="POST", url=URL, data=BODY, headers=dict(BASE))
    SigV4Auth(CREDS, "execute-api", "us-east-1").add_auth(req)
    err = reject("signature", "POST", TARGET, received(dict(req.headers), {}), BODY, KEYS)
    assert "'execute-api'" in str(err) and "correct service: 'lambda'" in err.aws_message


def test_scope_date_must_match_x_amz_date():
    headers = signed()
    date = headers["X-Amz-Date"]
    other = (dt.datetime.strptime(date[:8], "%Y%m%d") - dt.timedelta(days=1)).strftime("%Y%m%d")
    headers["Authorization"] = headers["Authorization"].replace(f"/{date[:8]}/", f"/{other}/")
    err = reject("signature", "POST", TARGET, headers, BODY, KEYS)
    assert "Date in Credential scope does not match" in err.aws_message


def test_expiry_allows_five_minutes_of_skew_either_way():
    headers = signed()
    at = dt.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    for skew in (dt.timedelta(minutes=5), -dt.timedelta(minutes=5), dt.timedelta(0)):
        verify("POST", TARGET, headers, BODY, KEYS, now=at + skew)
    err = reject("expired", "POST", TARGET, headers, BODY, KEYS, now=at + dt.timedelta(minutes=5, seconds=1))
    stamp = headers["X-Amz-Date"]
    assert re.fullmatch(
        rf"Signature expired: {stamp} is now earlier than \d{{8}}T\d{{6}}Z \(\d{{8}}T\d{{6}}Z - 5 min\.\)",
        err.aws_message,
    )
    assert err.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    err = reject("expired", "POST", TARGET, headers, BODY, KEYS, now=at - dt.timedelta(minutes=6))
    assert err.aws_message.startswith(f"Signature not yet current: {stamp} is still later than")


def test_secrets_never_appear_in_errors():
    headers = signed(creds=Credentials(KEY_ID, "wrong-secret"))
    err = reject("signature", "POST", TARGET, headers, BODY, KEYS)
    for text in (str(err), err.body.decode(), json.dumps(err.headers)):
        assert SECRET not in text and "wrong-secret" not in text


def test_sign_headers_needs_a_region():
    with pytest.raises(ValueError, match="needs a region"):
        sign_headers("GET", URL, {}, b"", CREDS, "")


def test_region_from_function_url():
    assert region_from_function_url("https://abcdef0123.lambda-url.eu-central-1.on.aws/") == "eu-central-1"
    assert region_from_function_url("https://ABCDEF0123.LAMBDA-URL.us-east-1.on.aws") == "us-east-1"
    assert region_from_function_url("http://127.0.0.1:9001/") is None


def test_chain_credentials_and_missing_credentials(monkeypatch, tmp_path):
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never reach for the instance metadata service
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    creds, region = sigv4.chain_credentials()
    assert region == "sa-east-1"
    verify("GET", TARGET, received(sign_headers("GET", URL, {}, b"", creds, region)), b"", KEYS)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ValueError, match="no AWS credentials found") as info:
        sigv4.chain_credentials()
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError, match="cannot read AWS credentials"):
        sigv4.chain_credentials(profile="no-such-profile")


def test_forbidden_hint():
    missing = SigV4Error("missing", "x").body
    assert "--affinity-sigv4" in forbidden_hint(missing, signed=False)
    assert "lambda:InvokeFunctionUrl" in forbidden_hint(missing, signed=True)
    expired = SigV4Error("expired", "x", "Signature expired: a is now earlier than b (c - 5 min.)").body
    assert "clock" in forbidden_hint(expired, signed=True)
    assert "not known" in forbidden_hint(SigV4Error("unknown_key", "x").body, signed=True)
    assert "does not match" in forbidden_hint(SigV4Error("signature", "x").body, signed=True)
    assert "<html>" in forbidden_hint("<html>nope</html>", signed=True)
