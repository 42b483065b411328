"""Every use of Locust beyond its documented extension API, in one place.

The rest of the plugin uses Locust's public API only (events, User classes,
`environment.parsed_options`, `runner.send_message`/`register_message`,
`environment.process_exit_code`, the web UI's template args). What is here
reads attributes Locust does not document; each function says what it
relies on, so a Locust upgrade is checked here and nowhere else.

Checked on Locust 2.47.0 (the newest: CI's whole suite, Python 3.13) and
2.42.6 (the oldest setup.cfg admits: CI runs the plugin's tests there, on
Python 3.10). Older releases drop a --config file's settings when its lines
also parse as TOML (fixed in 2.42.6).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

from locust.contrib.fasthttp import FAILURE_EXCEPTIONS as _FAST_HTTP_FAILURES
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

CHECKED_ON = ("2.42.6", "2.47.0")


class Role(enum.Enum):
    """What a Locust process is in a run."""

    STANDALONE = "standalone"  # a LocalRunner, or no runner yet
    MASTER = "master"
    WORKER = "worker"


def role_of(runner: Any) -> Role:
    if isinstance(runner, MasterRunner):
        return Role.MASTER
    if isinstance(runner, WorkerRunner):
        return Role.WORKER
    return Role.STANDALONE


def worker_index(runner: Any) -> int:
    return int(runner.worker_index)


def is_running(runner: Any) -> bool:
    """Users are being spawned or run (a quit now must stop them first)."""
    return runner is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING)


def refresh_clock() -> None:
    """gevent's loop keeps the time of its last turn, and none runs while
    Python imports Locust, boto3 and the locustfile (seconds on a busy
    machine). Locust starts its `-t` timer next, from that stale clock, and
    the run would end that much early (a 3 s run lasted 0.6 s, on every
    Locust 2.20-2.47): called at `init`, just before."""
    import gevent

    gevent.get_hub().loop.update_now()


# -- argument parser --------------------------------------------------------------


def parser_has_option(parser: Any, flag: str) -> bool:
    """argparse keeps a parser's options in the private `_actions`."""
    return any(flag in action.option_strings for action in parser._actions)


# -- master: the workers it knows ----------------------------------------------------


def connected_workers(runner: Any) -> Iterator[tuple[str, int | None]]:
    """(client id, worker index) of every worker that is ready or running.
    `runner.clients` (WorkerNodes) and its `ready`/`spawning`/`running` lists
    are not documented."""
    for client in runner.clients.ready + runner.clients.spawning + runner.clients.running:
        yield client.id, runner.get_worker_index(client.id)


def worker_gone(runner: Any, client_id: str) -> bool:
    """The worker left Locust's list (stopped, quit, dropped after missing heartbeats)."""
    return runner.clients.get(client_id) is None


def worker_missing(runner: Any, client_id: str) -> bool:
    """The worker is in Locust's list but missing heartbeats now."""
    client = runner.clients.get(client_id)
    return client is not None and client.state == STATE_MISSING


def stopping_users_mid_run(runner: Any) -> bool:
    """A worker handling a spawn message that lowered its count (Locust's
    rebalancing, a ramp-down): `worker_state` is SPAWNING until it is done,
    while a test's end sets `state` to cleanup/stopping first."""
    return (
        isinstance(runner, WorkerRunner)
        and runner.worker_state == STATE_SPAWNING
        and runner.state in (STATE_RUNNING, STATE_SPAWNING)
    )


def running_users(runner: Any) -> list[Any]:
    """The User instances running now: a runner's `user_greenlets` is a gevent
    Group of greenlets spawned with their user as first argument."""
    return [g.args[0] for g in list(getattr(runner, "user_greenlets", ())) if getattr(g, "args", None)]


def register_message_once(runner: Any, name: str, listener: Any) -> None:
    """`register_message` refuses a name twice; `custom_messages` tells."""
    if name not in runner.custom_messages:
        runner.register_message(name, listener)


def message_listener_stopped(runner: Any) -> bool:
    """Locust's own listener of worker messages is gone: `runner.quit()` kills
    the runner's greenlet group, 0.5 s after telling workers to quit."""
    return len(runner.greenlet) == 0


def receive_late_message(runner: Any) -> tuple[str, Any]:
    """Read one worker message from the master's socket directly (only once
    Locust's listener is gone). Raises locust.exception.RPCError."""
    return runner.server.recv_from_client()


def dispatch_late_message(runner: Any, msg: Any, left: Any) -> None:
    """Apply a worker message read after Locust's listener is gone, the way
    that listener would: Locust's stats reports (so its request counts include
    the workers' last reports), our own messages, and a worker's goodbye
    (`left(client_id)`). The message types are Locust's wire protocol."""
    if msg.type == "stats":
        runner.environment.events.worker_report.fire(client_id=msg.node_id, data=msg.data)
    elif msg.type in runner.custom_messages:
        listener, _concurrent = runner.custom_messages[msg.type]  # a pair in every Locust setup.cfg admits
        listener(environment=runner.environment, msg=msg)
    elif msg.type == "quit":  # after its last stats ("client_stopped" is not: its stats still come)
        left(msg.node_id)
    elif msg.type == "exception":
        runner.log_exception(msg.node_id, msg.data["msg"], msg.data["traceback"])


# -- FastHttpUser's session ---------------------------------------------------------


# What FastHttpSession counts as a failed request (a module constant, not documented).
FAILURE_EXCEPTIONS: tuple[type[BaseException], ...] = tuple(_FAST_HTTP_FAILURES)


def request_name(session: Any) -> str | None:
    """The name set by `client.rename_request(...)`; FastHttpSession has no
    `request_name` in some Locust 2.x releases."""
    return getattr(session, "request_name", None)


def raw_urlopen(session: Any, url: str, method: str, headers: dict, body: bytes | None) -> Any:
    """Send through a FastHttpSession's own geventhttpclient agent (its pool,
    timeouts and settings) without FastHttpSession.request's per-request
    bookkeeping, which costs more CPU than the plugin's whole recording.
    `session.client` is the undocumented agent."""
    return session.client.urlopen(url, method=method, headers=headers, payload=body)


# -- a user's default headers --------------------------------------------------------


def set_default_header(client: Any, name: str, value: str) -> bool:
    """Send `name: value` with every request of a user's client; False when
    the client is neither Locust's HttpSession (a requests.Session: its
    documented `headers`) nor its FastHttpSession, whose `client` (the
    undocumented geventhttpclient agent) holds `default_headers`."""
    headers = getattr(client, "headers", None)
    if headers is None:
        headers = getattr(getattr(client, "client", None), "default_headers", None)
    if headers is None:
        return False
    headers[name] = value
    return True
