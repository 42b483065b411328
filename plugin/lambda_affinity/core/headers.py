"""The affinity facts a wrapped function adds to its replies, as the plugin reads them.

The handler wrapper (wrapper/, docs/own-function.md) adds to every HTTP-event
result these response headers:

- `x-affinity-env`: the execution environment's id (the log stream name, as the probe's env_id);
- `x-affinity-cold`: `1` when the call waited for the environment's init (a user-facing cold start), else `0`;
- `x-affinity-new-env`: `1` on the first call of an environment initialised ahead of it (provisioned,
  Managed Instances, proactive: no wait, an empty cache), else `0`; absent from older wrappers (read as `0`);
- `x-affinity-init-type`: AWS_LAMBDA_INITIALIZATION_TYPE, when Lambda set it;
- `x-affinity-env-invocations`: calls this environment served, this one included;
- `x-affinity-session-hit`: `1`/`0`, whether this environment had seen the request's session
  key before; absent when the request carried no valid key;
- `x-affinity-init-age-ms`: milliseconds since the environment's init.

For other events it logs one line `AFFINITY {json}` with keys env, cold,
env_invocations, session_hit (or null), init_age_ms, new_environment, init_type, request_id, function;
`parse_log_facts` reads that object. Pure: no Locust import, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import LambdaAffinityError
from .reply import MAX_ENV_ID_LEN

ENV_HEADER = "x-affinity-env"
COLD_HEADER = "x-affinity-cold"
INVOCATIONS_HEADER = "x-affinity-env-invocations"
SESSION_HIT_HEADER = "x-affinity-session-hit"
INIT_AGE_HEADER = "x-affinity-init-age-ms"
NEW_ENV_HEADER = "x-affinity-new-env"
INIT_TYPE_HEADER = "x-affinity-init-type"
MAX_INIT_TYPE_LEN = 64  # AWS's values are a few words (on-demand, provisioned-concurrency, ...)
# A number header longer than this is not one the wrapper wrote (an int64 is 19 digits).
MAX_NUMBER_LEN = 24
MAX_SESSION_NAME_LEN = 128


class AffinityHeaderError(LambdaAffinityError, ValueError):
    """A reply whose affinity facts are malformed: counted as invalid, never in a rate.
    Messages name the header, not its value, so Locust groups equal faults into one row."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self}"


class SessionSourceError(LambdaAffinityError, ValueError):
    """--affinity-session-from is not `header:NAME` or `cookie:NAME`."""


class Facts(NamedTuple):
    """One call's affinity facts, from the headers or an AFFINITY log line."""

    env_id: str
    cold: bool
    env_invocations: int
    session_hit: bool | None  # None: the request carried no valid session key
    init_age_ms: float
    new_environment: bool = False  # the environment's first call, its init done ahead (never with cold)
    init_type: str | None = None  # AWS_LAMBDA_INITIALIZATION_TYPE, when the wrapper reported it


class SessionSource(NamedTuple):
    """Where the session key comes from: a request header or a cookie, by name."""

    kind: str  # "header" | "cookie"
    name: str


_FLAGS = {"1": True, "0": False}


def _flag(name: str, value: Any) -> bool:
    """`1`/`0` (a header), or a JSON boolean or 1/0 (the log line's)."""
    if isinstance(value, bool):
        return value
    flag = _FLAGS.get(str(value)) if isinstance(value, (str, int)) else None
    if flag is None:
        raise AffinityHeaderError(f"{name}: not 1 or 0")
    return flag


def _count(name: str, text: Any) -> int:
    if isinstance(text, bool):
        raise AffinityHeaderError(f"{name}: not a whole number")
    if isinstance(text, int):
        value = text
    elif isinstance(text, str) and 0 < len(text) <= MAX_NUMBER_LEN and text.isascii() and text.isdigit():
        value = int(text)
    else:
        raise AffinityHeaderError(f"{name}: not a whole number")
    if value < 1:
        raise AffinityHeaderError(f"{name}: must be at least 1 (this call included)")
    return value


def _age(name: str, text: Any) -> float:
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise AffinityHeaderError(f"{name}: not a number of milliseconds")
    if isinstance(text, str) and not (0 < len(text) <= MAX_NUMBER_LEN and text.isascii()):
        raise AffinityHeaderError(f"{name}: not a number of milliseconds")
    try:
        value = float(text)
    except ValueError:
        raise AffinityHeaderError(f"{name}: not a number of milliseconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise AffinityHeaderError(f"{name}: must be a finite number >= 0")
    return value


def _env(name: str, text: Any) -> str:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_ENV_ID_LEN:
        raise AffinityHeaderError(f"{name}: must be 1 to {MAX_ENV_ID_LEN} characters")
    return text


def parse_headers(get: Callable[[str], Any]) -> Facts | None:
    """The facts of one reply, `get` being its headers' case-insensitive
    lookup (requests' and geventhttpclient's `headers.get`). None when the
    reply carries no `x-affinity-env` (not a wrapped function: not counted);
    AffinityHeaderError when it does but a fact is missing or malformed."""
    env = get(ENV_HEADER)
    if env is None:
        return None
    cold, count, hit, age = get(COLD_HEADER), get(INVOCATIONS_HEADER), get(SESSION_HIT_HEADER), get(INIT_AGE_HEADER)
    # The wrapper's own forms, checked inline (this runs for every reply); anything else takes the checks below.
    flag = _FLAGS.get(cold) if type(cold) is str else None
    hit_flag = _FLAGS.get(hit) if type(hit) is str else None
    if (
        flag is not None
        and (hit is None or hit_flag is not None)
        and type(env) is str
        and 0 < len(env) <= MAX_ENV_ID_LEN
        and type(count) is str
        and 0 < len(count) <= MAX_NUMBER_LEN
        and count.isascii()
        and count.isdigit()
        and count != "0"
        and type(age) is str
        and 0 < len(age) <= MAX_NUMBER_LEN
        and age.isascii()
        and age.isdigit()
        and not env.isspace()
    ):
        return _with_start(
            Facts(env, flag, int(count), hit_flag, float(age)), get(NEW_ENV_HEADER), get(INIT_TYPE_HEADER)
        )
    return _with_start(_checked(env, cold, count, hit, age), get(NEW_ENV_HEADER), get(INIT_TYPE_HEADER))


def _with_start(
    facts: Facts, new_env: Any, kind: Any, names: tuple[str, str] = (NEW_ENV_HEADER, INIT_TYPE_HEADER)
) -> Facts:
    """The facts with how the environment started: the new-environment flag (absent: 0, as an older wrapper
    means it) and the init type (absent: None)."""
    if new_env is None and kind is None:
        return facts
    if isinstance(new_env, (list, tuple)) or isinstance(kind, (list, tuple)):
        raise AffinityHeaderError(f"{names[0] if isinstance(new_env, (list, tuple)) else names[1]}: repeated")
    fresh = False if new_env is None else _flag(names[0], new_env)
    if fresh and facts.cold:
        raise AffinityHeaderError(f"{names[0]}: 1 with cold 1 (a call either waited for the init or did not)")
    if kind is not None and (
        not isinstance(kind, str)
        or not 0 < len(kind) <= MAX_INIT_TYPE_LEN
        or not kind.isascii()
        or not kind.isprintable()
    ):
        raise AffinityHeaderError(f"{names[1]}: must be 1 to {MAX_INIT_TYPE_LEN} printable ASCII characters")
    return facts._replace(new_environment=fresh, init_type=kind)


def _checked(env: Any, cold: Any, count: Any, hit: Any, age: Any) -> Facts:
    values = {ENV_HEADER: env, COLD_HEADER: cold, INVOCATIONS_HEADER: count, SESSION_HIT_HEADER: hit}
    values[INIT_AGE_HEADER] = age
    for name, value in values.items():
        if isinstance(value, (list, tuple)):  # geventhttpclient's Headers.get gives a repeated header as a list
            raise AffinityHeaderError(f"{name}: repeated")
    missing = [h for h in (COLD_HEADER, INVOCATIONS_HEADER, INIT_AGE_HEADER) if values[h] is None]
    if missing:
        raise AffinityHeaderError(f"{ENV_HEADER} without {', '.join(missing)}")
    return Facts(
        _env(ENV_HEADER, env),
        _flag(COLD_HEADER, cold),
        _count(INVOCATIONS_HEADER, count),
        None if hit is None else _flag(SESSION_HIT_HEADER, hit),
        _age(INIT_AGE_HEADER, age),
    )


def parse_log_facts(obj: Mapping[str, Any]) -> Facts:
    """The facts of one `AFFINITY {json}` log line's object."""
    for key in ("env", "cold", "env_invocations", "init_age_ms"):
        if key not in obj:
            raise AffinityHeaderError(f"AFFINITY line without {key!r}")
    hit = obj.get("session_hit")
    facts = Facts(
        _env("env", obj["env"]),
        _flag("cold", obj["cold"]),
        _count("env_invocations", obj["env_invocations"]),
        None if hit is None else _flag("session_hit", hit),
        _age("init_age_ms", obj["init_age_ms"]),
    )
    return _with_start(facts, obj.get("new_environment"), obj.get("init_type"), ("new_environment", "init_type"))


def parse_session_source(text: str) -> SessionSource:
    """`header:NAME` or `cookie:NAME` (the wrapper's AFFINITY_SESSION_FROM form)."""
    kind, sep, name = text.partition(":")
    kind = kind.strip().lower()
    name = name.strip()
    if not sep or kind not in ("header", "cookie") or not name:
        raise SessionSourceError(f"expected header:NAME or cookie:NAME, got {text!r}")
    if not _is_token(name):
        raise SessionSourceError(f"{name!r} is not a {kind} name")
    return SessionSource(kind, name)


def _is_token(name: str) -> bool:
    """A header or cookie name: printable ASCII, no spaces, no separators."""
    return (
        0 < len(name) <= MAX_SESSION_NAME_LEN
        and name.isascii()
        and name.isprintable()
        and not any(c in name for c in ' \t;,=:"()<>@[]{}/?\\')
    )


def check_header_name(text: str) -> str:
    """A header name for --affinity-session-header."""
    name = text.strip()
    if not _is_token(name):
        raise SessionSourceError(f"{text!r} is not a header name")
    return name
