"""The probe reply contract (probe_lambda/handler.py writes it), as the plugin reads it.

`parse_reply` turns one reply into an `Observation` or raises a
`ProbeReplyError` whose message says exactly what is wrong. It accepts:

- the contract object `{"env_id": ..., "cold": ..., "cache": {...}, ...}`,
  as bytes, str (a Function URL body, an Invoke payload) or an already
  decoded dict;
- the seed article's bare reply: a JSON string holding only the log stream
  name (no cold flag, no cache status then);
- a Lambda proxy result `{"statusCode": ..., "body": "..."}` as the Invoke API
  returns it for a handler written for Function URLs (the seed's handler):
  the body is parsed as above, a 4xx/5xx status is an error.

Pure: no Locust import, no I/O. Messages are stable per kind of fault (no
request ids in them) so Locust groups equal faults into one failure row.
"""

from __future__ import annotations

import json
import re

from ..errors import LambdaAffinityError

PROBE_VERSION = 1
MAX_ENV_ID_LEN = 512
MAX_INIT_TYPE_LEN = 64  # AWS_LAMBDA_INITIALIZATION_TYPE's values are a few words
_SNIPPET = 80

_loads = json.loads


class ProbeReplyError(LambdaAffinityError, ValueError):
    """A reply that is not a valid probe reply, or a call that gave none.
    Never enters a rate."""

    def __repr__(self) -> str:
        # Locust's failure table shows repr(error): keep it the plain message.
        return f"{type(self).__name__}: {self}"


class Observation:
    """One valid reply: which environment served it, and what it saw."""

    __slots__ = (
        "env_id",
        "cold",
        "cache_hit",
        "request_id",
        "env_invocations",
        "env_age_ms",
        "session",
        "new_environment",
        "init_type",
    )

    def __init__(
        self,
        env_id: str,
        cold: bool | None = None,
        cache_hit: bool | None = None,
        request_id: str | None = None,
        env_invocations: int | None = None,
        env_age_ms: float | None = None,
        session: str | None = None,
        new_environment: bool | None = None,
        init_type: str | None = None,
    ) -> None:
        # cold: the call waited for the environment's init; new_environment: the environment's first call, its
        # init done ahead (no wait, an empty cache). At most one is true; None: the reply does not say.
        self.env_id = env_id
        self.cold = cold
        self.cache_hit = cache_hit
        self.request_id = request_id
        self.env_invocations = env_invocations
        self.env_age_ms = env_age_ms
        self.session = session
        self.new_environment = new_environment
        self.init_type = init_type

    @property
    def outcome(self) -> str | None:
        """`cold`, `new environment`, `cache hit`, `cache miss`, or None when the reply does not say
        (a cold start or a new environment is always a miss too; theirs are the more telling labels)."""
        if self.cold:
            return "cold"
        if self.new_environment:
            return "new environment"
        if self.cache_hit is None:
            return None
        return "cache hit" if self.cache_hit else "cache miss"

    def __repr__(self) -> str:
        return (
            f"Observation(env_id={self.env_id!r}, cold={self.cold!r}, cache_hit={self.cache_hit!r}, "
            f"request_id={self.request_id!r}, env_invocations={self.env_invocations!r}, "
            f"env_age_ms={self.env_age_ms!r}, session={self.session!r}, new_environment={self.new_environment!r}, "
            f"init_type={self.init_type!r})"
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, Observation):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)


def snippet(value, limit: int = _SNIPPET) -> str:
    """A short, printable excerpt of raw reply text for an error message."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).decode("utf-8", "replace")
    else:
        text = value
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text)} chars)"
    return repr(text)


def _json(value, limit: int = _SNIPPET) -> str:
    """A decoded value shown as JSON, so `"true"` and `true` read differently."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def parse_reply(reply) -> Observation:
    """Parse and validate one probe reply (see the module docstring)."""
    doc = _document(reply)
    if type(doc) is dict:
        # fast path for a well-formed contract reply; anything else is checked below
        env_id = doc.get("env_id")
        cold = doc.get("cold")
        cache = doc.get("cache")
        if (
            type(env_id) is str
            and 0 < len(env_id) <= MAX_ENV_ID_LEN
            and (cold is True or cold is False)
            and type(cache) is dict
            and doc.get("probe") == PROBE_VERSION
            and type(doc["probe"]) is int
        ):
            hit = cache.get("hit")
            invocations = doc.get("env_invocations")
            if (hit is True or hit is False) and type(invocations) is int and invocations > 0:
                fresh, kind = _start_fields(doc, cold)
                return Observation(
                    env_id,
                    cold,
                    hit,
                    doc.get("request_id"),
                    invocations,
                    doc.get("env_age_ms"),
                    doc.get("session"),
                    fresh,
                    kind,
                )
    if isinstance(doc, dict):
        if "env_id" in doc:
            return _from_contract(doc)
        return _from_other_object(doc)
    if isinstance(doc, str):
        return Observation(_check_env_id(doc))
    raise ProbeReplyError(f"reply is a JSON {_json_type(doc)}, not a probe object or a log stream name: {_json(doc)}")


def _document(reply):
    """The reply as a decoded JSON value: text and bytes are parsed, anything else is taken as decoded."""
    if isinstance(reply, memoryview):
        reply = bytes(reply)  # json.loads takes str, bytes and bytearray, not a memoryview
    if type(reply) is bytes:
        # Decoding first skips json's encoding sniffing: this runs once per
        # request in a load generator. Non-UTF-8 bytes take the general path.
        try:
            reply = reply.decode()
        except UnicodeDecodeError:
            pass
    if isinstance(reply, (bytes, bytearray, str)):
        if not reply:
            raise ProbeReplyError("reply is empty")
        try:
            return _loads(reply)
        except (ValueError, UnicodeDecodeError):
            raise ProbeReplyError(f"reply is not JSON: {snippet(reply)}") from None
    return reply


def _from_contract(doc: dict) -> Observation:
    version = doc.get("probe", PROBE_VERSION)
    if version != PROBE_VERSION or isinstance(version, bool):
        raise ProbeReplyError(f"reply is probe contract version {version!r}; this plugin reads version {PROBE_VERSION}")
    env_id = _check_env_id(doc["env_id"])
    cold = doc.get("cold")
    if cold is not None and not isinstance(cold, bool):
        raise ProbeReplyError(f"reply field cold is not a boolean: {_json(cold)}")
    cache = doc.get("cache")
    if cache is None:
        hit = None
    elif isinstance(cache, dict):
        hit = cache.get("hit")
        if not isinstance(hit, bool):
            raise ProbeReplyError(f"reply field cache.hit is not a boolean: {_json(hit)}")
    else:
        raise ProbeReplyError(f"reply field cache is not an object or null: {_json(cache)}")
    invocations = doc.get("env_invocations")
    if invocations is not None and (
        not isinstance(invocations, int) or isinstance(invocations, bool) or invocations < 1
    ):
        raise ProbeReplyError(f"reply field env_invocations is not a positive integer: {_json(invocations)}")
    fresh, kind = _start_fields(doc, cold)
    return Observation(
        env_id, cold, hit, doc.get("request_id"), invocations, doc.get("env_age_ms"), doc.get("session"), fresh, kind
    )


def _start_fields(doc: dict, cold: bool | None) -> tuple[bool | None, str | None]:
    """new_environment and init_type, checked (both absent from older probes: None)."""
    fresh = doc.get("new_environment")
    if fresh is not None and not isinstance(fresh, bool):
        raise ProbeReplyError(f"reply field new_environment is not a boolean: {_json(fresh)}")
    if fresh and cold:
        raise ProbeReplyError(
            "reply fields cold and new_environment are both true (a call either waited for init or not)"
        )
    kind = doc.get("init_type")
    if kind is not None and (not isinstance(kind, str) or not 0 < len(kind) <= MAX_INIT_TYPE_LEN):
        raise ProbeReplyError(
            f"reply field init_type is not a string of 1 to {MAX_INIT_TYPE_LEN} characters: {_json(kind)}"
        )
    return fresh, kind


def _from_other_object(doc: dict) -> Observation:
    if "error" in doc:
        # The probe's own rejection of a bad request (Invoke form carries statusCode).
        status = doc.get("statusCode")
        where = f"probe error {status}" if status is not None else "probe error"
        raise ProbeReplyError(f"{where}: {doc['error']}")
    if "errorMessage" in doc or "errorType" in doc:
        # A function error payload that reached us without its header.
        raise ProbeReplyError(function_error(None, doc))
    if "statusCode" in doc and "body" in doc:
        return _from_proxy_result(doc)
    keys = ", ".join(sorted(map(str, doc))) or "none"
    raise ProbeReplyError(f"reply has no env_id (keys: {keys})")


def _from_proxy_result(doc: dict) -> Observation:
    status = doc["statusCode"]
    body = doc["body"]
    if not isinstance(status, int) or isinstance(status, bool):
        raise ProbeReplyError(f"reply statusCode is not an integer: {_json(status)}")
    if status >= 400:
        shown = snippet(body) if isinstance(body, str) else _json(body)
        raise ProbeReplyError(f"function answered HTTP {status}: {shown}")
    if not isinstance(body, str):
        raise ProbeReplyError(f"reply body is not a string: {_json(body)}")
    if doc.get("isBase64Encoded"):
        raise ProbeReplyError("reply body is base64-encoded; a probe reply is JSON text")
    return parse_reply(body)


def _check_env_id(value) -> str:
    if not isinstance(value, str) or not value:
        raise ProbeReplyError(f"reply env_id is not a non-empty string: {_json(value)}")
    if len(value) > MAX_ENV_ID_LEN:
        raise ProbeReplyError(f"reply env_id is longer than {MAX_ENV_ID_LEN} characters ({len(value)})")
    return value


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


# -- failed calls: one stable message per kind of fault --------------------------


def http_failure(status: int, body: bytes | str | None, error: BaseException | None = None) -> str:
    """A Function URL call that gave no probe reply (status 0: no HTTP answer)."""
    if not status:
        return f"no reply: {type(error).__name__}: {error}" if error is not None else "no reply"
    text = snippet(body) if body else "(empty body)"
    if status == 429:
        return f"throttled: HTTP 429: {text}"
    return f"HTTP {status}: {text}"


def invoke_failure(code: str, status: int | None, message: str | None, reason: str | None = None) -> str:
    """An Invoke API error response (botocore's ClientError fields)."""
    if code == "TooManyRequestsException" or status == 429:
        return f"throttled: {code}" + (f" ({reason})" if reason else "") + f": {message or ''}".rstrip(": ")
    where = f" (HTTP {status})" if status else ""
    return f"invoke failed: {code}{where}: {message or ''}".rstrip(": ")


# The emulator's Function URL answers a function error with AWS's bare 502; beside it, this header (not
# AWS's) carries {"kind", "errorType", "errorMessage"} as ASCII JSON, so a load test can say why.
EMULATOR_ERROR_HEADER = "X-Lambda-Affinity-Function-Error"


def url_function_error(header: str | None) -> str | None:
    """The failure message of a Function URL 502 that carries the emulator's header; None without it."""
    if not header:
        return None
    try:
        doc = _loads(header)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    return function_error(doc.get("kind") or "Unhandled", doc)


_REQUEST_ID_PREFIX = re.compile(r"^RequestId: [0-9A-Za-z-]+ (Error: )?")


def function_error(kind: str | None, payload) -> str:
    """An invocation whose handler failed: `kind` is X-Amz-Function-Error
    (Unhandled/Handled) or None, `payload` the error payload (raw or decoded)."""
    head = f"function error ({kind})" if kind else "function error"
    doc = payload
    if isinstance(payload, (bytes, bytearray, str)):
        try:
            doc = _loads(payload) if payload else None
        except (ValueError, UnicodeDecodeError):
            doc = None
    if isinstance(doc, dict) and ("errorType" in doc or "errorMessage" in doc):
        # Lambda starts timeout and crash messages with "RequestId: <uuid> Error: ";
        # without it equal faults share one row in Locust's failure table.
        message = _REQUEST_ID_PREFIX.sub("", str(doc.get("errorMessage", "")), count=1)
        if len(message) > _SNIPPET:
            message = message[:_SNIPPET] + "..."
        return f"{head}: {doc.get('errorType', '?')}: {message}"
    return f"{head}: {snippet(payload) if payload else '(empty payload)'}"
