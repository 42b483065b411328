"""The wrapper around an app's handler: count the call, check the session, add the facts to the result.

Settings (environment variables, read once at init):
  AFFINITY_HANDLER        the app's own handler (module.function), when the wrapper is the configured handler
  AFFINITY_SESSION_FROM   header:NAME | cookie:NAME (default header:x-affinity-session)
  AFFINITY_CACHE_SIZE, AFFINITY_CACHE_TTL_S   the bounded cache of seen session keys (as the probe's)
  AFFINITY_INVOKE_FIELD   1: a direct Invoke's JSON-object result gets an `_affinity` field (default off)
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import time

from . import events
from .events import EventKind, Facts
from .state import Environment, cache_from_env, env_id

HANDLER_ENV = "AFFINITY_HANDLER"


class Wrapper:
    """One environment's wrapper: its counters and settings, shared by every wrapped handler in the process."""

    def __init__(self) -> None:
        self.environment = Environment(cache_from_env())
        source = events.parse_source(os.environ.get("AFFINITY_SESSION_FROM"))
        if source is None:  # a typo must not break the app: say so once, use the default
            sys.stderr.write(
                f"lambda_affinity_wrapper: AFFINITY_SESSION_FROM={os.environ.get('AFFINITY_SESSION_FROM')!r} "
                f"is not header:NAME or cookie:NAME; reading header {events.SESSION_HEADER}\n"
            )
            source = events.DEFAULT_SOURCE
        self.source = source
        self.invoke_field = os.environ.get("AFFINITY_INVOKE_FIELD") == "1"

    def call(self, fn, event, context):
        environment = self.environment
        environment.invocations += 1
        now = time.monotonic()
        kind = events.event_kind(event)
        hit = None
        if kind is not EventKind.OTHER:
            key = events.session_key(event, self.source)
            if key is not None:
                hit = environment.cache.lookup(key, now)[0]
        cold, new_environment = environment.start(now)
        result = fn(event, context)
        facts = Facts(
            env_id(),
            cold,
            environment.invocations,
            hit,
            int((now - environment.init) * 1000),
            new_environment,
            environment.init_type,
        )
        if kind is not EventKind.OTHER:
            out = events.with_headers(result, kind, facts)
            if out is not None:
                return out
        doc = {**facts._asdict(), "request_id": getattr(context, "aws_request_id", None)}
        doc["function"] = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        print("AFFINITY " + json.dumps(doc, separators=(",", ":"), default=str))  # a hand-made context: any id
        if self.invoke_field and kind is EventKind.OTHER and isinstance(result, dict):
            return {**result, "_affinity": doc}
        return result


_WRAPPER: Wrapper | None = None


def _wrapper() -> Wrapper:
    global _WRAPPER
    if _WRAPPER is None:
        _WRAPPER = Wrapper()
    return _WRAPPER


def affinity(fn):
    """Decorator: `@affinity` over a handler(event, context) adds the affinity facts to its results."""
    wrapper = _wrapper()

    @functools.wraps(fn)
    def wrapped(event, context):
        return wrapper.call(fn, event, context)

    return wrapped


class HandlerSettingError(ImportError):
    """AFFINITY_HANDLER is missing or names no handler (an ImportError: the runtime reports an init error)."""


def load_handler(spec: str | None):
    """The app's handler from `module.function` (module may be a path with `/`), as Lambda's runtime finds it."""
    if not spec:
        raise HandlerSettingError(f"{HANDLER_ENV} is not set: name the app's handler (e.g. app.handler)")
    modname, _, fname = spec.rpartition(".")
    if not modname or not fname:
        raise HandlerSettingError(f"{HANDLER_ENV}={spec!r}: expected module.function (e.g. app.handler)")
    module = importlib.import_module(modname.replace("/", "."))
    fn = getattr(module, fname, None)
    if not callable(fn):
        raise HandlerSettingError(f"{HANDLER_ENV}={spec!r}: module {modname!r} has no handler {fname!r}")
    return fn


_original = None


def handler(event, context):
    """The handler to configure (`lambda_affinity_wrapper.handler`): runs AFFINITY_HANDLER wrapped."""
    global _original
    if _original is None:
        _original = affinity(load_handler(os.environ.get(HANDLER_ENV)))
    return _original(event, context)


def preload() -> None:
    """Load the app's handler now, during init as unwrapped, when this wrapper is the configured handler."""
    global _original
    if os.environ.get("_HANDLER") == "lambda_affinity_wrapper.handler" and _original is None:
        _original = affinity(load_handler(os.environ.get(HANDLER_ENV)))
