"""The probe Lambda: which execution environment served this call, and was
the caller's session already in this environment's in-memory cache?

Deployable with `lambda-affinity deploy` (stdlib only, plus the wrapper's lambda_affinity_wrapper
package its zip carries; handler `handler.handler`). It answers both an
Invoke payload `{"session": "..."}` and a Function URL event (payload format
2.0; session from header `x-affinity-session` or query `session=`).

Reply contract (version 1): env_id, request_id, cold, new_environment, init_type,
env_invocations, env_age_ms, session, cache {hit, entries, age_ms}, probe.
`cold`: this call waited for the environment's init (a user-facing cold start);
`new_environment`: the environment's first call, its init done ahead of it
(provisioned, Managed Instances, or proactive: see docs/probe.md for the rule);
`init_type`: AWS_LAMBDA_INITIALIZATION_TYPE; `env_age_ms`: ms since the init.

Environment variables (all optional):
  AFFINITY_CACHE_SIZE     max sessions kept per environment (default 10000)
  AFFINITY_CACHE_TTL_S    seconds a cached session stays valid (default 900)
  AFFINITY_MISS_DELAY_MS  sleep on a miss: the backend read a hit saves (default 0)
  AFFINITY_PROACTIVE_GAP_MS  an on-demand first call this long after init was initialised ahead (default 10000)
It never echoes any environment variable but the log stream name.
"""

from __future__ import annotations

import json
import time

from lambda_affinity_wrapper.state import (
    MAX_SESSION_LEN,
    SESSION_HEADER,
    Environment,
    SessionCache,
    cache_from_env,
    env_id,
    env_number as _env_number,
    is_session_key,
)

# The session cache, its settings and the session key's limits are the wrapper's (wrapper/python/), so the probe
# and an app measured through the wrapper count hits alike; deploy's zip carries that package beside handler.py.
__all__ = ["MAX_SESSION_LEN", "SESSION_HEADER", "SessionCache", "handler", "probe"]
PROBE_VERSION = 1


# Module-level state survives between invocations in one environment: the
# very thing this probe measures.
_ENV = Environment(cache_from_env())
_INIT = _ENV.init
_CACHE = _ENV.cache
_MISS_DELAY_S = _env_number("AFFINITY_MISS_DELAY_MS", 0.0, 0.0, 10_000.0) / 1000.0


class BadEvent(ValueError):
    pass


def _is_url_event(event) -> bool:
    return isinstance(event, dict) and "requestContext" in event and "rawPath" in event


def _check_session(value):
    if value is None:
        return None
    if not is_session_key(value):
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
    env = _ENV
    env.invocations += 1
    now = time.monotonic() if now is None else now
    cold, new_environment = env.start(now)
    cache = None
    if session is not None:
        hit, age = _CACHE.lookup(session, now)
        if not hit and _MISS_DELAY_S:
            time.sleep(_MISS_DELAY_S)
        cache = {"hit": hit, "entries": len(_CACHE), "age_ms": None if age is None else round(age * 1000, 3)}
    return {
        "env_id": env_id(),
        "request_id": request_id,
        "cold": cold,
        "new_environment": new_environment,
        "init_type": env.init_type,
        "env_invocations": env.invocations,
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
