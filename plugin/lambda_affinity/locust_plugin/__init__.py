"""lambda-affinity's Locust plugin.

Importing it (lambda_affinity.locust_plugin.users does) adds two listeners to Locust's
global events: one that adds the --affinity-* options to Locust's parser,
and one that, when Locust initialises an Environment, creates that
Environment's plugin object (plugin.AffinityPlugin), whose methods listen to
the rest. Custom users record replies with `record_reply(self, reply)`; any
other user class's replies from a function run under the handler wrapper are
tallied from their x-affinity-* headers with no code (header_users).

`--help` is answered by Locust before it imports a locustfile, so the
options show in `lambda-affinity locust --help`, which loads the plugin first.

Modules: users (FunctionUrlUser, InvokeUser), options (the options and a
typed view), plugin (the plugin object), roles (worker and master),
distributed (worker -> master rows), embedded (the embedded emulator),
tracing (--affinity-trace), sampling (the dashboard's timeline), outputs
(files, checks, console), header_users (any user class of a wrapped function),
adapter (every use of Locust internals).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from locust import events

from ..core.hosts import LambdaTarget, PluginConfigError, check_host, parse_lambda_host
from ..core.reply import Observation, ProbeReplyError
from ..core.tracker import Tracker
from .options import add_arguments
from .outputs import CHECK_EXIT_CODE
from .plugin import SESSION_HEADER, AffinityPlugin, current, plugin_for

__all__ = [
    "CHECK_EXIT_CODE",
    "SESSION_HEADER",
    "AffinityPlugin",
    "LambdaTarget",
    "Observation",
    "PluginConfigError",
    "ProbeReplyError",
    "check_host",
    "parse_lambda_host",
    "plugin_for",
    "record_invalid",
    "record_reply",
    "tracker",
]


def _plugin_of(user: Any) -> AffinityPlugin:
    if isinstance(user, str):
        plugin = current()
        if plugin is None:
            raise RuntimeError("lambda-affinity: no Locust Environment yet; record with the Locust user, not a label")
        return plugin
    return plugin_for(user.environment)


def record_reply(user: Any, reply: Any, sent_at: float | None = None) -> Observation:
    """Parse one probe reply (bytes, str or decoded JSON) and record it for
    `user` (a Locust user, or a label). Raises ProbeReplyError, after counting
    it, when the reply is not a valid probe reply: report it as a failure.
    `sent_at` (epoch seconds) dates the request in --affinity-trace."""
    return _plugin_of(user).record_reply(user, reply, sent_at)


def record_invalid(user: Any, sent_at: float | None = None) -> None:
    """Count a failed call (HTTP error, throttle, function error) for `user`."""
    _plugin_of(user).record(user, None, sent_at)


def tracker(environment: Any = None) -> Tracker:
    """The tracker of `environment`'s plugin (default: this process's); a
    worker's holds its own users only."""
    plugin = plugin_for(environment) if environment is not None else current()
    if plugin is None:
        raise RuntimeError("lambda-affinity: no Locust Environment yet")
    return plugin.tracker


def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_kw: Any) -> None:
    plugin_for(environment).on_init(runner, web_ui)


def main(argv: Iterable[str] | None = None) -> Any:
    """Run Locust's command line with this plugin loaded first, so `--help`
    lists the --affinity-* options next to Locust's own."""
    import locust.main

    sys.argv = ["locust", *(sys.argv[1:] if argv is None else argv)]
    return locust.main.main()


# A module runs once per process: these are added once.
events.init_command_line_parser.add_listener(add_arguments)
events.init.add_listener(_on_init)
