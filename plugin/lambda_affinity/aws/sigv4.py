"""SigV4 for Lambda Function URLs whose auth type is `AWS_IAM`: signing (the
Locust user) and verifying (the emulator). botocore does the cryptography and
the canonical request; this module only adds what a server needs around it.

Client side::

    creds, region = chain_credentials()          # boto3's chain; ValueError if none
    extra = sign_headers("POST", url, {"content-type": "application/json"},
                         body, creds, region or region_from_function_url(url))
    # send the request with its own headers plus `extra`; the headers given to
    # sign_headers (and the Host of `url`) must reach the server unchanged.

Server side (a Function URL front end configured with `AWS_IAM`)::

    try:
        verify(method, raw_target, headers, body, keys)   # keys: {access key id: secret}
    except SigV4Error as err:
        log(err)                                          # precise, never a secret
        return err.status, err.headers, err.body          # 403, AWS's error type and body

`raw_target` is the path and query exactly as received (still percent-encoded),
or a full URL; `headers` must include `Host`.

On a 403 from a Function URL, `forbidden_hint(body, signed)` gives the user a
one-line explanation (use `--affinity-sigv4`, check the clock, the keys...).

What AWS answers (status 403 for all; `x-amzn-ErrorType` header + JSON body):
  missing auth     AccessDeniedException        {"Message": "Forbidden. For troubleshooting ..."}
  malformed        IncompleteSignatureException {"message": "Authorization header requires ..."}
  unknown key      UnrecognizedClientException  {"message": "The security token included in the request is invalid."}
  bad signature    InvalidSignatureException    {"message": "The request signature we calculated does not ..."}
  expired          InvalidSignatureException    {"message": "Signature expired: ... is now earlier than ..."}
The "Forbidden" body is the one Function URLs have sent since 2025 (before, just
"Forbidden"); the others are the Lambda endpoint's own (lower-case "message").
Query-string (presigned) signatures are not supported: they count as missing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SERVICE = "lambda"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = _dt.timedelta(minutes=5)  # AWS's allowance between X-Amz-Date and its clock
_AMZ_DATE = "%Y%m%dT%H%M%SZ"

FORBIDDEN_MESSAGE = (
    "Forbidden. For troubleshooting Function URL authorization issues, see: "
    "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
)
BAD_SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
UNKNOWN_KEY_MESSAGE = "The security token included in the request is invalid."

# kind -> (x-amzn-ErrorType, JSON key of the message)
_KINDS = {
    "missing": ("AccessDeniedException", "Message"),
    "malformed": ("IncompleteSignatureException", "message"),
    "unknown_key": ("UnrecognizedClientException", "message"),
    "signature": ("InvalidSignatureException", "message"),
    "expired": ("InvalidSignatureException", "message"),
}

_DEFAULT_MESSAGES = {
    "missing": FORBIDDEN_MESSAGE,
    "unknown_key": UNKNOWN_KEY_MESSAGE,
    "signature": BAD_SIGNATURE_MESSAGE,
}

_FUNCTION_URL_HOST = re.compile(r"^[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$")


class SigV4Error(Exception):
    """A request an `AWS_IAM` Function URL rejects.

    `kind`: missing | malformed | unknown_key | signature | expired.
    `str(err)`: the precise reason, for logs. `status`, `headers`, `body`: AWS's
    403 answer, which (like AWS's) does not say more than AWS would.
    """

    status = 403

    def __init__(self, kind: str, detail: str, aws_message: str | None = None) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown SigV4Error kind {kind!r}")
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.error_type, self._key = _KINDS[kind]
        self.aws_message = aws_message if aws_message is not None else _DEFAULT_MESSAGES.get(kind, detail)

    @property
    def body(self) -> bytes:
        return json.dumps({self._key: self.aws_message}, separators=(",", ":")).encode()

    @property
    def headers(self) -> dict:
        return {"Content-Type": "application/json", "x-amzn-ErrorType": self.error_type}


# What a user can set, in AWS CLI v2's order after --region (named in every "no region" message).
REGION_SETTINGS = "set AWS_REGION (or AWS_DEFAULT_REGION), or a region in your AWS profile"
_REGION_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # botocore's rule, lower case as AWS's


@dataclass(frozen=True)
class Region:
    """A region and the setting it came from (for messages: "eu-west-1, from AWS_REGION")."""

    name: str
    source: str


def resolve_region(
    flag: str | None, environ: Mapping[str, str], profile_region: str | None, profile: str | None = None
) -> Region | None:
    """The region the AWS CLI v2 would use: --region, then AWS_REGION, then
    AWS_DEFAULT_REGION, then the profile's `region`; None if none is set.

    boto3 reads AWS_DEFAULT_REGION only, so every part of this project asks
    here instead. An empty setting counts as unset; a malformed one is a
    ValueError naming the setting.
    """
    candidates = (
        ("--region", flag),
        ("AWS_REGION", environ.get("AWS_REGION")),
        ("AWS_DEFAULT_REGION", environ.get("AWS_DEFAULT_REGION")),
        (f"the region of AWS profile {profile or 'default'!r}", profile_region),
    )
    for source, value in candidates:
        if value is None or not value.strip():
            continue
        return Region(check_region(value, source), source)
    return None


def check_region(value: str, source: str) -> str:
    """`value` if it is a region name, else a ValueError naming where it came from."""
    if not _REGION_NAME.match(value):
        raise ValueError(f"{source} is {value!r}, not a region name (like eu-west-1)")
    return value


def chain_region(flag: str | None = None, profile: str | None = None) -> Region | None:
    """resolve_region() on this process's environment and AWS config files."""
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        # The profile: `profile`, else AWS_PROFILE, else "default", as botocore (and the CLI) pick it.
        session = botocore.session.Session(profile=profile)
        profile_region = session.get_scoped_config().get("region")
    except BotoCoreError as exc:  # e.g. ProfileNotFound, a broken config file
        raise ValueError(f"cannot read AWS credentials or config: {exc}") from None
    return resolve_region(flag, os.environ, profile_region, profile or session.profile)


def chain_session(profile: str | None = None, region: str | None = None):
    """A boto3 Session whose credential chain (env, profile, SSO, role...)
    found credentials, its region resolved as the AWS CLI v2 does
    (resolve_region; `region` is the --region flag), or None if none is set.

    Raises ValueError naming what is missing, never echoing a secret.
    """
    import boto3
    from botocore.exceptions import BotoCoreError

    resolved = chain_region(region, profile)
    try:
        session = boto3.Session(profile_name=profile, region_name=resolved.name if resolved else None)
        found = session.get_credentials()
    except BotoCoreError as exc:  # e.g. ProfileNotFound, a broken config file
        raise ValueError(f"cannot read AWS credentials: {exc}") from None
    if found is None:
        raise ValueError(
            "no AWS credentials found: boto3's chain looked at AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, ~/.aws/credentials and ~/.aws/config (SSO, assume-role), and container/instance roles; "
            "configure one (e.g. `aws configure` or `aws sso login`)"
        )
    return session


def chain_credentials(profile: str | None = None, region: str | None = None):
    """(credentials, region name or None) from boto3's chain; see chain_session.

    The credentials may refresh themselves (SSO, roles): pass them as they are
    to sign_headers, which takes a consistent snapshot per request.
    """
    session = chain_session(profile, region)
    return session.get_credentials(), session.region_name


def region_from_function_url(url: str) -> str | None:
    """The region in an AWS Function URL (`https://<id>.lambda-url.<region>.on.aws/`), else None."""
    m = _FUNCTION_URL_HOST.match((urlsplit(url).hostname or "").lower())
    return m.group(1) if m else None


def _frozen(credentials):
    # Refreshable credentials may rotate between reading the key id and the
    # secret: sign with one consistent snapshot, as botocore's own signer does.
    get = getattr(credentials, "get_frozen_credentials", None)
    return get() if get else credentials


def sign_headers(
    method: str, url: str, headers: Mapping[str, str] | None, body: bytes | str | None, credentials, region: str
) -> dict:
    """The headers to add so an `AWS_IAM` Function URL accepts the request.

    Signs `method`, `url` (its host, path and query), every header in
    `headers` and `body` for service `lambda` in `region` at the current time.
    Returns {"X-Amz-Date", "Authorization"} plus "X-Amz-Security-Token" for
    temporary credentials.
    """
    if not region:
        raise ValueError(f"SigV4 needs a region: {REGION_SETTINGS}, or use the Function URL's")
    request = AWSRequest(method=method.upper(), url=url, data=body or b"", headers=dict(headers or {}))
    before = set(request.headers.keys())
    SigV4Auth(_frozen(credentials), SERVICE, region).add_auth(request)
    return {k: v for k, v in request.headers.items() if k not in before or k == "Authorization"}


class _ExactHeaders(SigV4Auth):
    """SigV4Auth that signs exactly the headers the client listed.

    botocore's signer skips some headers (User-Agent, Expect, X-Amzn-Trace-Id)
    when it signs; a server must honour whatever list the client signed.
    """

    def __init__(self, credentials, region: str, signed: list, received: Mapping[str, list]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed
        self._received = received

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in self._signed:
            for value in self._received[name]:
                out[name] = value
        return out


def _lower_headers(headers) -> dict:
    """{lower-case name: [values]} from a dict, a list of pairs or an HTTP message."""
    items = headers.items() if hasattr(headers, "items") else headers
    out: dict = {}
    for name, value in items:
        out.setdefault(name.lower(), []).append(value)
    return out


def _parse_authorization(value: str):
    if not value.startswith(ALGORITHM + " "):
        algorithm = value.split(" ", 1)[0]
        raise SigV4Error(
            "malformed",
            f"unsupported signing algorithm {algorithm!r}: expected {ALGORITHM}",
            f"Unsupported AWS 'algorithm': '{algorithm}'",
        )
    parts: dict = {}
    for piece in value[len(ALGORITHM) + 1 :].split(","):
        key, sep, val = piece.strip().partition("=")
        if sep:
            parts[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not parts.get(k)]
    if missing:
        msg = " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
        raise SigV4Error("malformed", f"Authorization header lacks {', '.join(missing)}", msg)
    scope = parts["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise SigV4Error(
            "malformed",
            f"Credential must be KEY/YYYYMMDD/REGION/SERVICE/aws4_request, got {len(scope)} part(s)",
            "Credential should be scoped to a valid region, service and date: KEY/YYYYMMDD/REGION/lambda/aws4_request.",
        )
    if scope[4] != "aws4_request":
        raise SigV4Error(
            "malformed",
            f"Credential terminator is {scope[4]!r}, not 'aws4_request'",
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{scope[4]}'.",
        )
    if not re.fullmatch(r"[0-9a-f]{64}", parts["Signature"]):
        raise SigV4Error(
            "malformed", "Signature must be 64 lower-case hex digits", "Signature should be 64 lower-case hex digits."
        )
    signed = parts["SignedHeaders"].split(";")
    if signed != sorted(set(signed)) or any(h != h.lower() or not h for h in signed):
        raise SigV4Error(
            "malformed",
            f"SignedHeaders must be lower-case, sorted and unique, got {parts['SignedHeaders']!r}",
            "SignedHeaders should be lower-case, sorted and separated by ';'.",
        )
    return scope, signed, parts["Signature"]


def verify(
    method: str,
    url: str,
    headers,
    body: bytes | str | None,
    keys: Mapping[str, str],
    now: _dt.datetime | None = None,
    region: str | None = None,
) -> None:
    """Check an `AWS_IAM` Function URL request's SigV4 signature; raise SigV4Error if AWS would refuse it.

    `url`: the path and query as received (percent-encoded) or a full URL.
    `headers`: a mapping or (name, value) pairs, including Host.
    `keys`: {access key id: secret access key} the server trusts; a session
    token (X-Amz-Security-Token) is signed over but not itself validated.
    `now`: the server's clock (default: now, UTC). `region`: if given, the
    credential scope must name it; else any region is accepted.
    """
    received = _lower_headers(headers)
    scope, signed, signature = _parse_authorization(_authorization(received, url))
    access_key, day, scope_region, service = scope[:4]
    amz_date, signed_at = _signed_at(signed, received, day)
    _check_scope(service, scope_region, region)
    unsent = [h for h in signed if h not in received]
    if unsent:
        raise SigV4Error("signature", f"signed header(s) {', '.join(unsent)} not in the request")

    secret = keys.get(access_key)
    if secret is None:
        raise SigV4Error("unknown_key", f"unknown access key id {access_key!r}")

    _check_clock(signed_at, amz_date, now)
    payload, declared = _payload(body, received)

    request = AWSRequest(method=method.upper(), url=url, data=payload)
    request.context["timestamp"] = amz_date
    if declared is not None:
        request.headers["X-Amz-Content-SHA256"] = declared
    auth = _ExactHeaders(Credentials(access_key, secret), scope_region, signed, received)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if not hmac.compare_digest(expected, signature):
        raise SigV4Error(
            "signature",
            "signature mismatch: the method, path, query, signed headers, body "
            "or secret key differ from what was signed",
        )


def _authorization(received: dict, url: str) -> str:
    """The Authorization header's value; SigV4Error when the request is not signed."""
    authorization = received.get("authorization")
    if not authorization:
        presigned = "X-Amz-Signature" in dict(parse_qsl(urlsplit(url).query))
        raise SigV4Error(
            "missing",
            "no Authorization header"
            + (
                " (query-string signatures are not supported; sign the headers)"
                if presigned
                else ": the Function URL's auth type is AWS_IAM, so requests must be SigV4-signed"
            ),
        )
    return authorization[0]


def _signed_at(signed: list, received: dict, day: str) -> tuple[str, _dt.datetime]:
    """(X-Amz-Date as sent, as a time): the signed Host and the date the
    signature rests on, which must agree with the credential scope's day."""
    if "host" not in signed:
        raise SigV4Error(
            "malformed",
            "the Host header is not signed",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    amz_date = (received.get("x-amz-date") or [None])[0]
    if amz_date is None:
        raise SigV4Error(
            "malformed",
            "no X-Amz-Date header",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    try:
        signed_at = _dt.datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise SigV4Error(
            "malformed",
            f"X-Amz-Date {amz_date!r} is not YYYYMMDDTHHMMSSZ",
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.",
        ) from None
    if day != amz_date[:8]:
        raise SigV4Error(
            "signature",
            f"credential scope date {day} differs from X-Amz-Date {amz_date}",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{day}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    return amz_date, signed_at


def _check_scope(service: str, scope_region: str, region: str | None) -> None:
    """The credential scope names Lambda, and this URL's region when one is given."""
    if service != SERVICE:
        raise SigV4Error(
            "signature",
            f"credential scope names service {service!r}, not 'lambda'",
            f"Credential should be scoped to correct service: '{SERVICE}'. ",
        )
    if region is not None and scope_region != region:
        raise SigV4Error(
            "signature",
            f"credential scope names region {scope_region!r}, this URL is in {region!r}",
            f"Credential should be scoped to a valid region, not '{scope_region}'. ",
        )


def _check_clock(signed_at: _dt.datetime, amz_date: str, now: _dt.datetime | None) -> None:
    """Signed within MAX_SKEW of the server's clock, either way."""
    now = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    if signed_at < now - MAX_SKEW:
        raise SigV4Error(
            "expired",
            f"signed at {amz_date}, more than 5 minutes before the server's {now:{_AMZ_DATE}}",
            f"Signature expired: {amz_date} is now earlier than {now - MAX_SKEW:{_AMZ_DATE}} "
            f"({now:{_AMZ_DATE}} - 5 min.)",
        )
    if signed_at > now + MAX_SKEW:
        raise SigV4Error(
            "expired",
            f"signed at {amz_date}, more than 5 minutes after the server's {now:{_AMZ_DATE}}",
            f"Signature not yet current: {amz_date} is still later than {now + MAX_SKEW:{_AMZ_DATE}} "
            f"({now:{_AMZ_DATE}} + 5 min.)",
        )


def _payload(body: bytes | str | None, received: dict) -> tuple[bytes, str | None]:
    """(the body's bytes, the declared x-amz-content-sha256 or None)."""
    payload = body.encode() if isinstance(body, str) else (body or b"")
    declared = (received.get("x-amz-content-sha256") or [None])[0]
    # Lambda hashes the payload itself: it takes no UNSIGNED-PAYLOAD, and a
    # declared hash must be the body's, or the body could be swapped.
    if declared is not None and declared != hashlib.sha256(payload).hexdigest():
        unsigned = declared.startswith(("UNSIGNED", "STREAMING"))
        raise SigV4Error(
            "signature",
            "unsigned payloads are not accepted by Lambda"
            if unsigned
            else "x-amz-content-sha256 does not match the body",
        )
    return payload, declared


def forbidden_hint(body: bytes | str | None, signed: bool) -> str:
    """One line telling a user why an `AWS_IAM` Function URL answered 403."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        doc = json.loads(text)
        message = str(doc.get("Message") or doc.get("message") or "") if isinstance(doc, dict) else ""
    except ValueError:
        message = ""
    if not signed:
        return (
            "403 Forbidden from an unsigned request: the Function URL probably uses auth type AWS_IAM; "
            "sign requests with --affinity-sigv4 (credentials and region from boto3's chain)"
        )
    if message.startswith(("Signature expired", "Signature not yet current")):
        return f"403: {message} -- the local clock is off by more than 5 minutes"
    if message == UNKNOWN_KEY_MESSAGE:
        return "403: the access key is not known to AWS (wrong account, deleted key, or a session token missing)"
    if message.startswith("Forbidden"):
        return (
            "403 Forbidden although signed: the identity lacks lambda:InvokeFunctionUrl and lambda:InvokeFunction "
            "on this function (identity policy or the function's resource policy)"
        )
    return f"403 on a signed request: {message or text[:200]}"
