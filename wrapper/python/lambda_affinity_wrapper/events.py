"""Lambda's HTTP events, as far as the wrapper reads and answers them: which kind an event is, the session key it
carries, and a result with the affinity headers added. Pure: no clock, no environment variables, no I/O.

The result is copied, never changed in place (an app may return the same dict on every call), and a result the
wrapper cannot add headers to without changing its meaning comes back as None (the caller then returns the app's
own object untouched).
"""

from __future__ import annotations

from collections import namedtuple
from enum import Enum

from .state import SESSION_HEADER, is_session_key


class EventKind(Enum):
    HTTP_V2 = "http-v2"  # Function URL, API Gateway HTTP API payload 2.0
    REST_V1 = "rest-v1"  # API Gateway REST API, HTTP API payload 1.0
    ALB = "alb"  # Application Load Balancer, single-value headers
    ALB_MULTI = "alb-multi"  # ALB with multi-value headers on: the response must use multiValueHeaders
    OTHER = "other"  # a direct Invoke, a queue, a schedule...


# collections' namedtuple, not typing's: importing typing would add ~4 ms to every cold start of a wrapped app.
SessionSource = namedtuple("SessionSource", "kind name")
SessionSource.__doc__ = "Where the session key is read: `header` or `cookie`, and its name (headers lower-case)."


DEFAULT_SOURCE = SessionSource("header", SESSION_HEADER)


class Facts(
    namedtuple(
        "Facts", "env cold env_invocations session_hit init_age_ms new_environment init_type", defaults=(False, None)
    )
):
    """What the wrapper tells about one call: env (str), cold (bool: it waited for the init), env_invocations (int),
    session_hit (bool, or None when the request carried no usable session key), init_age_ms (int), new_environment
    (bool: the environment's first call, its init done ahead), init_type (AWS_LAMBDA_INITIALIZATION_TYPE or None)."""

    __slots__ = ()

    def headers(self) -> dict:
        out = {
            "x-affinity-env": self.env,
            "x-affinity-cold": "1" if self.cold else "0",
            "x-affinity-env-invocations": str(self.env_invocations),
        }
        if self.session_hit is not None:
            out["x-affinity-session-hit"] = "1" if self.session_hit else "0"
        out["x-affinity-init-age-ms"] = str(self.init_age_ms)
        out["x-affinity-new-env"] = "1" if self.new_environment else "0"
        if self.init_type is not None:
            out["x-affinity-init-type"] = self.init_type
        return out


def parse_source(setting: str | None) -> SessionSource | None:
    """AFFINITY_SESSION_FROM (`header:NAME` or `cookie:NAME`); unset gives the default, a bad one None."""
    if setting is None or setting == "":
        return DEFAULT_SOURCE
    kind, sep, name = setting.partition(":")
    kind, name = kind.strip().lower(), name.strip()
    if not sep or kind not in ("header", "cookie") or not name or any(c in name for c in " ;=,\t\r\n"):
        return None
    return SessionSource(kind, name.lower() if kind == "header" else name)


def event_kind(event) -> EventKind:
    if not isinstance(event, dict):
        return EventKind.OTHER
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return EventKind.OTHER
    if "rawPath" in event:
        return EventKind.HTTP_V2
    if "elb" in context:
        return EventKind.ALB if "headers" in event else EventKind.ALB_MULTI
    if "httpMethod" in event:
        return EventKind.REST_V1
    return EventKind.OTHER


def _header_values(event: dict, name: str) -> list:
    """Every value of request header `name` (any case), single- and multi-value forms alike."""
    values: list = []
    headers = event.get("headers")
    if isinstance(headers, dict):
        value = headers.get(name)  # payload 2.0 and Function URLs send lower-case names
        if value is not None:
            return [value]
        values += [v for k, v in headers.items() if isinstance(k, str) and k.lower() == name]
    multi = event.get("multiValueHeaders")
    if not values and isinstance(multi, dict):
        for k, vs in multi.items():
            if isinstance(k, str) and k.lower() == name and isinstance(vs, list):
                values += vs
    return values


def _cookie(pairs, name: str):
    for pair in pairs:
        if not isinstance(pair, str):
            continue
        for part in pair.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value
    return None


def session_key(event: dict, source: SessionSource):
    """The request's session key, or None when it has none or it is not a usable one (never raises)."""
    if source.kind == "header":
        values = _header_values(event, source.name)
        value = values[0] if values else None
    else:
        cookies = event.get("cookies")  # payload 2.0 moves cookies out of the headers
        value = _cookie(cookies, source.name) if isinstance(cookies, list) else None
        if value is None:
            value = _cookie(_header_values(event, "cookie"), source.name)
    return value if is_session_key(value) else None


def with_headers(result, kind: EventKind, facts: Facts):
    """A copy of the app's HTTP result with the affinity headers, or None when there is nowhere to put them.

    Without a statusCode a payload 2.0 result is the body itself; REST and ALB answer 502 to it as they do
    unwrapped. A response using multiValueHeaders gets them there (ALB in multi-value mode reads only those).
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        return None
    multi = kind is EventKind.ALB_MULTI or (kind is not EventKind.HTTP_V2 and "multiValueHeaders" in result)
    key = "multiValueHeaders" if multi else "headers"
    existing = result.get(key)
    if existing is not None and not isinstance(existing, dict):
        return None
    added = facts.headers()
    out = dict(result)
    headers = dict(existing) if existing else {}
    if multi:
        headers.update((k, [v]) for k, v in added.items())
    else:
        headers.update(added)
    out[key] = headers
    return out
