"""Any Locust user of a wrapped function: its replies' affinity headers, tallied with no task changes.

A function run under the handler wrapper (docs/own-function.md) answers every
HTTP event with `x-affinity-*` headers (core/headers.py). For users of any
other class than ours (HttpUser, FastHttpUser, a locust-plugins user...):

- at a user's start (its class's `on_start` is wrapped once per class, before
  the class's own, so a login in `on_start` is measured too) the plugin gives
  the user its label and session key, sends that key as a default header of
  the user's client (`--affinity-session-header`, the probe's by default) unless
  the key is the user's own (`--affinity-session-from cookie:NAME|header:NAME`,
  the wrapper then reads it from the request), and adds the label to what the
  user's `context()` returns;
- Locust's `request` event names no user, but both HTTP clients merge
  `user.context()` into the context they fire it with: the label comes back
  there, and the reply's headers give the facts. A request whose reply has no
  `x-affinity-env` (a static asset, another service) is not counted.

Our own users (FunctionUrlUser, InvokeUser) record the probe's reply body
themselves and are left alone here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..core.endpoints import EndpointTracker
from ..core.headers import AffinityHeaderError, parse_headers
from ..core.hosts import transport_of
from ..core.reply import Observation
from . import adapter

logger = logging.getLogger("lambda_affinity")

CONTEXT_KEY = "affinity_user"  # the user's label in a request event's context
_MARK = "_lambda_affinity_wrapped"


def wrap_on_start(cls: type, start: Callable[[Any], None]) -> bool:
    """Make `cls.on_start` call `start(user)` first; False when it already does
    (through this class or one it inherits from)."""
    original = cls.on_start  # type: ignore[attr-defined]
    if getattr(original, _MARK, False):
        return False

    @functools.wraps(original)
    def on_start(self: Any) -> Any:
        start(self)
        return original(self)

    setattr(on_start, _MARK, True)
    cls.on_start = on_start  # type: ignore[attr-defined]
    return True


def _context_with(original: Callable[[], dict], label: str) -> Callable[[], dict]:
    def context() -> dict:
        return {**original(), CONTEXT_KEY: label}

    return context


class HeaderTally:
    """The plugin's reader of wrapped replies in one Locust process."""

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        self.endpoints = EndpointTracker()
        self.sessions: dict[str, str] = {}  # label -> the session key we send ("" when it is the user's own)

    def install(self, classes: Iterable[type]) -> list[type]:
        """Wrap the start of every user class but ours; returns those wrapped now."""
        return [cls for cls in classes if transport_of(cls) is None and wrap_on_start(cls, self.start_user)]

    def start_user(self, user: Any) -> None:
        plugin = self.plugin
        fresh = getattr(user, "affinity_user", None) is None
        label = plugin.attach(user)
        if not fresh:
            return  # on_start called again through a subclass: done already
        user.context = _context_with(user.context, label)
        options = plugin.options
        if options.affinity_session_from:
            self.sessions[label] = ""
            return
        self.sessions[label] = user.affinity_session
        client = getattr(user, "client", None)
        if client is None or not adapter.set_default_header(
            client, options.affinity_session_header, user.affinity_session
        ):
            logger.warning(
                "lambda-affinity: %s has no HTTP client to send %s on; its replies are tallied without a session",
                type(user).__name__,
                options.affinity_session_header,
            )

    def on_request(
        self,
        name: str = "",
        response: Any = None,
        context: dict | None = None,
        start_time: float | None = None,
        response_time: float | None = None,
        **_kw: Any,
    ) -> None:
        label = context.get(CONTEXT_KEY) if context else None
        if label is None:
            return  # not a user this plugin started (or a request fired by hand without context)
        headers = getattr(response, "headers", None)
        if not headers:
            return
        received = None if start_time is None or response_time is None else start_time + response_time / 1000.0
        try:
            facts = parse_headers(headers.get)
        except AffinityHeaderError:
            self.plugin.tally(label, self.sessions.get(label, ""), None, start_time, received)
            self.endpoints.record_invalid(name)
            return
        if facts is None:
            return
        tracker = self.plugin.tracker
        before = tracker.users.get(label)
        previous = before.last_env if before is not None else -1
        obs = Observation(
            facts.env_id,
            facts.cold,
            facts.session_hit,
            env_invocations=facts.env_invocations,
            new_environment=facts.new_environment,
            init_type=facts.init_type,
        )
        self.plugin.tally(label, self.sessions.get(label, ""), obs, start_time, received)
        stayed = None if previous < 0 else tracker.users[label].last_env == previous
        self.endpoints.record(name, facts.cold, facts.session_hit, stayed, facts.new_environment)

    def reset(self) -> None:
        self.endpoints.reset()
        self.sessions = {}
