"""The probe Lambda: which execution environment served this call, and was
the caller's session already in this environment's in-memory cache?

Deployable as is (stdlib only; handler `handler.handler`). It answers both an
Invoke payload `{"session": "..."}` and a Function URL event (payload format
2.0; session from header `x-affinity-session` or query `session=`).

Reply contract (version 1): env_id, request_id, cold, env_invocations,
env_age_ms, session, cache {hit, entries, age_ms}, probe.

Environment variables (all optional):
  AFFINITY_CACHE_SIZE     max sessions kept per environment (default 10000)
  AFFINITY_CACHE_TTL_S    seconds a cached session stays valid (default 900)
  AFFINITY_MISS_DELAY_MS  sleep on a miss: the backend read a hit saves (default 0)
It never echoes any environment variable but the log stream name.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict

PROBE_VERSION = 1
MAX_SESSION_LEN = 256
SESSION_HEADER = "x-affinity-session"


class SessionCache:
    """A bounded LRU with a TTL counted from when the session was cached.

    Time is passed in, so the simulator can drive the same cache on a
    virtual clock.
    """

    __slots__ = ("max_entries", "ttl_s", "_items")

    def __init__(self, max_entries: int = 10000, ttl_s: float = 900.0) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._items: OrderedDict = OrderedDict()

    def lookup(self, key: str, now: float):
        """Return (hit, age_s); a miss (or an expired entry) caches the key."""
        items = self._items
        stored = items.get(key)
        if stored is not None and now - stored < self.ttl_s:
            items.move_to_end(key)
            return True, now - stored
        items[key] = now
        items.move_to_end(key)
        while len(items) > self.max_entries:
            items.popitem(last=False)
        return False, None

    def __len__(self) -> int:
        return len(self._items)


def _env_number(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    if value != value:  # NaN slips through min/max: treat it as unset
        return default
    return min(max(value, lo), hi)


# Module-level state survives between invocations in one environment: the
# very thing this probe measures.
_INIT = time.monotonic()
_CACHE = SessionCache(
    int(_env_number("AFFINITY_CACHE_SIZE", 10000, 1, 1_000_000)),
    _env_number("AFFINITY_CACHE_TTL_S", 900.0, 0.001, 86400.0),
)
_MISS_DELAY_S = _env_number("AFFINITY_MISS_DELAY_MS", 0.0, 0.0, 10_000.0) / 1000.0
_invocations = 0


class BadEvent(ValueError):
    pass


def _is_url_event(event) -> bool:
    return isinstance(event, dict) and "requestContext" in event and "rawPath" in event


def _check_session(value):
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_SESSION_LEN:
        raise BadEvent(f"session must be a string of 1 to {MAX_SESSION_LEN} characters")
    return value


def _session_from_url_event(event: dict):
    headers = event.get("headers") or {}
    query = event.get("queryStringParameters") or {}
    if not isinstance(headers, dict) or not isinstance(query, dict):
        raise BadEvent("headers and queryStringParameters must be objects")
    # Function URLs lower-case header names; be lenient for hand-made events.
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == SESSION_HEADER:
            return _check_session(value)
    return _check_session(query.get("session"))


def _session_from_payload(event):
    if event is None:
        return None
    if not isinstance(event, dict):
        raise BadEvent(f'payload must be a JSON object like {{"session": "..."}}, got {type(event).__name__}')
    return _check_session(event.get("session"))


def probe(session, request_id, now: float | None = None) -> dict:
    """Count this invocation and consult the session cache."""
    global _invocations
    _invocations += 1
    now = time.monotonic() if now is None else now
    cache = None
    if session is not None:
        hit, age = _CACHE.lookup(session, now)
        if not hit and _MISS_DELAY_S:
            time.sleep(_MISS_DELAY_S)
        cache = {"hit": hit, "entries": len(_CACHE), "age_ms": None if age is None else round(age * 1000, 3)}
    return {
        "env_id": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "unknown"),
        "request_id": request_id,
        "cold": _invocations == 1,
        "env_invocations": _invocations,
        "env_age_ms": round((now - _INIT) * 1000, 3),
        "session": session,
        "cache": cache,
        "probe": PROBE_VERSION,
    }


def _url_response(status: int, body: dict) -> dict:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handler(event, context):
    request_id = getattr(context, "aws_request_id", None)
    if _is_url_event(event):
        try:
            session = _session_from_url_event(event)
        except BadEvent as exc:
            return _url_response(400, {"error": str(exc), "probe": PROBE_VERSION})
        return _url_response(200, probe(session, request_id))
    try:
        session = _session_from_payload(event)
    except BadEvent as exc:
        return {"error": str(exc), "statusCode": 400, "probe": PROBE_VERSION}
    return probe(session, request_id)
