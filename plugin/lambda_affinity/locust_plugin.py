"""Locust wiring for lambda-affinity: options, the per-process tracker, the
embedded emulator, end-of-run outputs and CI checks.

Importing this module (users.py does) registers everything with Locust's
global events. Custom users record replies with `record_reply(self, reply)`.

Hosts:
  (none)                  start the embedded emulator with the bundled probe,
                          point the run at it, stop it when Locust quits
  http(s)://...           a Function URL (FunctionUrlUser)
  lambda://NAME           the Invoke API (InvokeUser); NAME may be an ARN or
                          name:alias; `?endpoint_url=...&region=...` optional

`--help` is answered by Locust before it imports a locustfile, so plugin
options only show when the plugin is imported first:
`python -m lambda_affinity.locust_plugin -f locustfiles/x.py --help` (or any
Locust command line after `python -m lambda_affinity.locust_plugin`).

Distributed runs (Locust's --master/--worker): workers send the per-user rows
that changed with each of Locust's periodic reports and a full snapshot when
their test stops; the master folds them in (distributed.py) and writes every
output at `quitting`, once the workers' final snapshots are in or a bounded
wait is over. The web UI's "Affinity" tab lives in webui.py.
"""
from __future__ import annotations

import argparse
import atexit
import itertools
import json
import logging
import os
import re
import sys
import time
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, unquote

import gevent
from gevent.event import Event
from locust import events
from locust.exception import RPCError
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from . import summary
from .distributed import Aggregator, final_payload, periodic_payload
from .emulator.containment import make_undumpable
from .probe import Observation, ProbeReplyError, parse_reply
from .tracker import Tracker

logger = logging.getLogger("lambda_affinity")
console = logging.getLogger("locust.stats_logger")  # Locust's own channel for its end-of-run tables

CHECK_EXIT_CODE = 3  # locust-plugins' convention for a failed check
RATES_LINE_MAX_USERS = 50
SESSION_HEADER = "x-affinity-session"
DEFAULT_FUNCTION = "probe"
FINAL_MESSAGE = "lambda_affinity_final"  # a worker's full snapshot when its test stops
REPORT_KEY = "lambda_affinity"           # our part of Locust's periodic worker report
# How long a quitting master waits for workers' final snapshots, on top of
# Locust's --stop-timeout (workers stop their users first). Workers reply
# within milliseconds; the bound only matters for a worker that hangs.
FINAL_WAIT_S = 10.0


class PluginConfigError(ValueError):
    """The run is set up in a way the plugin cannot honour; said before it starts."""


# -- process-wide state --------------------------------------------------------

class _State:
    def __init__(self) -> None:
        self.tracker = Tracker()
        self.environment = None
        self.emulator = None
        self.numbers = itertools.count(1)
        self.run_token = os.urandom(3).hex()
        # worker side: the master's run this worker takes part in, and whether
        # its final snapshot for that run has gone out
        self.run: str | None = None
        self.final_sent = False
        # master side: every worker's rows, and a wake-up for the final wait
        self.aggregator = Aggregator()
        self.heard = Event()
        self.worker_problems: list[str] = []
        self.emulator_notes: list[str] = []  # e.g. the embedded emulator's own cap was hit
        self.doc: dict | None = None
        self.check_failures: list[str] = []
        self.check_passes: list[str] = []
        self.written: list[str] = []
        # -u/-r/-t as the user gave them (Locust fills in 1 user, 1/s later)
        self.given: dict = {}
        self.trace = None  # a trace.TraceWriter while a test with --affinity-trace runs
        self.trace_flusher = None  # the greenlet flushing it while no row comes (a killed worker keeps its rows)


STATE = _State()


def tracker() -> Tracker:
    """This process's tracker (a worker's holds its own users only)."""
    return STATE.tracker


def _option(name: str, default=None):
    env = STATE.environment
    options = getattr(env, "parsed_options", None) if env is not None else None
    return getattr(options, name, default) if options is not None else default


# -- users' identity and the public recording call ----------------------------

def attach(user) -> str:
    """Give a Locust user its stable label (the row key) and session key (sent
    to the function). Idempotent; returns the label."""
    label = getattr(user, "affinity_user", None)
    if label is None:
        runner = getattr(STATE.environment, "runner", None)
        prefix = f"w{runner.worker_index}-" if isinstance(runner, WorkerRunner) else ""
        label = f"{prefix}u{next(STATE.numbers)}"
        user.affinity_user = label
        # the token keeps two runs against one warm deployment from sharing cache entries
        user.affinity_session = f"{label}-{STATE.run_token}"
        STATE.tracker.register(label)
    return label


def _label(user) -> str:
    return user if isinstance(user, str) else attach(user)


def record_reply(user, reply, sent_at: float | None = None) -> Observation:
    """Parse one probe reply (bytes, str or decoded JSON) and record it for
    `user` (a Locust user or a label). Raises ProbeReplyError, after counting
    it, when the reply is not a valid probe reply: report it as a failure.
    `sent_at` (epoch seconds) dates the request in --affinity-trace."""
    label = _label(user)
    try:
        obs = parse_reply(reply)
    except ProbeReplyError:
        STATE.tracker.record_invalid(label)
        trace_row(user, sent_at, None)
        raise
    STATE.tracker.record(label, obs.env_id, obs.cold, obs.cache_hit)
    trace_row(user, sent_at, obs)
    return obs


def record_invalid(user, sent_at: float | None = None) -> None:
    """Count a failed call (HTTP error, throttle, function error) for `user`."""
    STATE.tracker.record_invalid(_label(user))
    trace_row(user, sent_at, None)


def trace_row(user, sent_at: float | None, obs: Observation | None, received_at: float | None = None) -> None:
    """One --affinity-trace row for a request just recorded (valid when `obs`
    is given); nothing without --affinity-trace."""
    writer = STATE.trace
    if writer is None:
        return
    recv = time.time() if received_at is None else received_at
    label = _label(user)
    session = getattr(user, "affinity_session", "") if not isinstance(user, str) else ""
    send = recv if sent_at is None else sent_at
    if obs is None:
        writer.write(send, recv, label, session, None, None, None, False)
    else:
        writer.write(send, recv, label, session, obs.env_id, obs.cold, obs.cache_hit, True)


def _open_trace(environment) -> None:
    """A new test writes its trace afresh: standalone to PATH, worker N to its own part (trace.worker_path)."""
    from .trace import TraceWriter, worker_path

    _close_trace()
    path = _option("affinity_trace")
    runner = environment.runner
    if not path or isinstance(runner, MasterRunner):
        return  # the master runs no users: its workers write the rows
    if isinstance(runner, WorkerRunner):
        path = worker_path(path, runner.worker_index)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    STATE.trace = TraceWriter(path)
    STATE.trace_flusher = gevent.spawn(_flush_trace, STATE.trace)


def _flush_trace(writer) -> None:
    """The writer flushes itself as rows come; this covers the last rows before
    a quiet spell, so a worker killed then still leaves them on disk."""
    from .trace import FLUSH_EVERY_S

    while True:
        gevent.sleep(FLUSH_EVERY_S)
        writer.flush()


def _close_trace() -> None:
    flusher, STATE.trace_flusher = STATE.trace_flusher, None
    if flusher is not None:
        flusher.kill(block=False)
    writer, STATE.trace = STATE.trace, None
    if writer is not None:
        writer.close()
        logger.info("lambda-affinity: wrote %d trace rows to %s", writer.rows, writer.path)


def stats_name(base: str, obs: Observation | None) -> str:
    """The request name in Locust's stats: split by outcome with --affinity-split-stats."""
    if obs is None or not _option("affinity_split_stats", False):
        return base
    outcome = obs.outcome
    return f"{base} [{outcome}]" if outcome else base


# -- hosts ------------------------------------------------------------------------

_FUNCTION_REF = re.compile(r"^[A-Za-z0-9_.:-]{1,170}$")


class LambdaTarget:
    """A parsed `lambda://FUNCTION[?endpoint_url=...&region=...]` host."""

    __slots__ = ("function", "endpoint_url", "region")

    def __init__(self, function: str, endpoint_url: str | None = None, region: str | None = None) -> None:
        self.function, self.endpoint_url, self.region = function, endpoint_url, region

    def __repr__(self) -> str:
        return f"LambdaTarget({self.function!r}, endpoint_url={self.endpoint_url!r}, region={self.region!r})"

    def host(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in (("endpoint_url", self.endpoint_url), ("region", self.region)) if v)
        return f"lambda://{self.function}" + (f"?{query}" if query else "")


def parse_lambda_host(host: str) -> LambdaTarget:
    if not host.startswith("lambda://"):
        raise PluginConfigError(f"not a lambda:// host: {host!r}")
    rest = host[len("lambda://"):]
    name, _, query = rest.partition("?")
    name = unquote(name).rstrip("/")
    if not _FUNCTION_REF.match(name):
        raise PluginConfigError(
            f"host {host!r}: lambda:// needs a function name, name:alias or function ARN "
            "(letters, digits, - _ . :), e.g. lambda://my-probe or lambda://my-probe:live")
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - {"endpoint_url", "region"})
    if unknown:
        raise PluginConfigError(f"host {host!r}: unknown parameter {', '.join(unknown)} (known: endpoint_url, region)")
    endpoint = params.get("endpoint_url") or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise PluginConfigError(f"host {host!r}: endpoint_url must be an http(s) URL")
    return LambdaTarget(name, endpoint, params.get("region") or None)


def host_kind(host: str | None) -> str | None:
    if not host:
        return None
    if host.startswith(("http://", "https://")):
        return "function_url"
    if host.startswith("lambda://"):
        return "invoke"
    return "unknown"


_HOST_HELP = {
    "function_url": "an http(s):// Function URL (or no --host for the embedded emulator)",
    "invoke": "lambda://FUNCTION_NAME (or no --host for the embedded emulator)",
}


def check_host(user_class, host: str | None) -> None:
    """Refuse a host the user class cannot talk to, before any user starts."""
    transport = getattr(user_class, "affinity_transport", None)
    kind = host_kind(host)
    if transport is None or kind is None or kind == transport:
        if kind == "invoke" and transport == "invoke":
            parse_lambda_host(host)
        return
    if kind == "unknown":
        raise PluginConfigError(
            f"host {host!r} is neither http(s):// (a Function URL) nor lambda://FUNCTION_NAME (the Invoke API)")
    raise PluginConfigError(
        f"{user_class.__name__} needs {_HOST_HELP[transport]}, got {host!r}"
        + ("; use an InvokeUser (locustfiles/invoke.py) for lambda:// hosts" if kind == "invoke"
           else "; use a FunctionUrlUser (locustfiles/function_url.py) for Function URLs"))


# -- embedded emulator ------------------------------------------------------------

def _affinity_classes(environment) -> list:
    return [c for c in (environment.user_classes or []) if getattr(c, "affinity_transport", None)]


def _start_emulator(environment, classes: list) -> None:
    from .emulator.process import EmulatorProcess, EmulatorStartError

    function = _option("affinity_function", DEFAULT_FUNCTION)
    config = _option("affinity_emulator_config")
    emu = EmulatorProcess(config_path=config)
    try:
        emu.__enter__()
    except EmulatorStartError as exc:  # e.g. a bad config: its message names file and key
        raise PluginConfigError(f"the embedded emulator did not start: {exc}") from None
    STATE.emulator = emu
    atexit.register(stop_emulator)  # also covers exits that skip `quitting`
    urls = getattr(emu, "function_urls", {}) or {}
    kinds = {c.affinity_transport for c in classes}
    if "function_url" in kinds and function not in urls:
        stop_emulator()
        raise PluginConfigError(
            f"the embedded emulator has no Function URL for function {function!r} "
            f"(functions with a URL: {', '.join(sorted(urls)) or 'none'}); see --affinity-function")
    url_host = urls.get(function)
    invoke_host = LambdaTarget(function, emu.endpoint).host()
    hosts = {"function_url": url_host, "invoke": invoke_host}
    for cls in classes:
        if cls.host is None:
            cls.host = hosts[cls.affinity_transport]
    if len(kinds) == 1:
        # one host for all: it also travels to workers in every spawn message
        environment.host = hosts[next(iter(kinds))]
    if environment.parsed_options is not None:
        # per user kind, for workers (parsed options travel in spawn messages too)
        environment.parsed_options.affinity_hosts = {k: hosts[k] for k in kinds}
    logger.info("Embedded Lambda emulator started (Invoke API %s); the run targets %s", emu.endpoint,
                " and ".join(hosts[k] for k in sorted(kinds)))


def stop_emulator() -> None:
    emu, STATE.emulator = STATE.emulator, None
    if emu is not None:
        note = _local_cap_note(emu)
        if note:
            STATE.emulator_notes.append(note)
        emu.stop()


def _local_cap_note(emu) -> str | None:
    """A line for the summary when the emulator's own cap on environments (a
    limit of this machine, not AWS's) refused calls during the run."""
    import json
    import urllib.request

    if not getattr(emu, "introspection_url", None):
        return None
    try:
        with urllib.request.urlopen(emu.introspection_url, timeout=2) as reply:
            cap = json.loads(reply.read()).get("local_cap") or {}
    except (OSError, ValueError):
        return None
    if not cap.get("throttled"):
        return None
    return (f"the embedded emulator's cap of {cap.get('max_environments')} live environments "
            f"({'set by its config' if cap.get('source') == 'config' else 'derived from this machine'}) "
            f"refused {cap['throttled']} calls with 429: a limit of this machine, not AWS's account "
            "concurrency; see docs/emulator.md, Machine cap")


# -- Locust events ------------------------------------------------------------------

def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


# (flags, keyword arguments); every option also reads LOCUST_<NAME> and locust.conf
OPTIONS = (
    (("--affinity-json",), dict(metavar="PATH", help="write the affinity summary (users, rates, histogram, per-user rows) as JSON")),
    (("--affinity-min-hit-rate",), dict(metavar="X", type=_fraction, help="check: exit code 3 unless the median per-user max-share hit rate is at least X")),
    (("--affinity-min-warm-rate",), dict(metavar="X", type=_fraction, help="check: exit code 3 unless the median per-user warm-cache hit rate is at least X")),
    (("--affinity-max-cold-ratio",), dict(metavar="X", type=_non_negative, help="check: exit code 3 unless cold starts per valid reply are at most X")),
    (("--affinity-split-stats",), dict(action="store_true", default=False, help="split request rows in Locust's stats by outcome: [cold], [cache hit], [cache miss]")),
    (("--affinity-endpoint-url",), dict(metavar="URL", help="Invoke API endpoint for lambda:// hosts (LocalStack, a local emulator); default: AWS")),
    (("--affinity-sigv4",), dict(action="store_true", default=False, help="sign Function URL requests with SigV4 (auth type AWS_IAM; credentials and region from boto3's chain)")),
    (("--affinity-emulator-config",), dict(metavar="YAML", help="config file for the embedded emulator started when no --host is given (see docs/emulator.md)")),
    (("--affinity-function",), dict(metavar="NAME", default=DEFAULT_FUNCTION, help=f"function of the embedded emulator to target (default {DEFAULT_FUNCTION})")),
    (("--affinity-trace",), dict(metavar="PATH", help="write one CSV row per request (send/receive time, user, session, environment, cold, cache hit, valid); gzip when PATH ends in .gz; each worker writes PATH with .w<index> before its extension (docs/traces.md)")),
)


def add_arguments(parser) -> None:
    # Runs on a fresh parser each time (Locust re-parses for web UI pages), so
    # adding to it is idempotent; a parser that already has ours is left alone.
    if any("--affinity-json" in a.option_strings for a in parser._actions):
        return
    group = parser.add_argument_group(
        "lambda-affinity", "Per-user Lambda environment reuse (added by lambda_affinity). "
        "Checks set exit code 3 when not met.")
    for flags, kwargs in OPTIONS:
        env_var = "LOCUST_" + flags[0][2:].upper().replace("-", "_")
        group.add_argument(*flags, env_var=env_var, **kwargs)


def given_options() -> dict:
    """-u/-r/-t as given on the command line, locust.conf or LOCUST_* (None
    where not given), read before Locust applies its headless defaults."""
    return dict(STATE.given)


def on_init(environment, runner=None, web_ui=None, **_kw) -> None:
    # gevent's loop keeps the time of its last turn, and none ran while Python imported Locust, boto3 and the
    # locustfile (seconds on a busy machine): Locust's `-t` timer, started next from that stale clock, would end
    # the run that much early (a 3 s run lasted 0.6 s here, every Locust 2.20-2.47, Python 3.10 and 3.13).
    gevent.get_hub().loop.update_now()
    # Every role (worker, --processes child too) holds the user's AWS credentials: not readable by function code.
    make_undumpable()
    STATE.environment = environment
    STATE.given = {k: _option(k) for k in ("num_users", "spawn_rate", "run_time")}
    if isinstance(runner, WorkerRunner):
        return  # hosts come from the master; the emulator runs next to it
    if isinstance(runner, MasterRunner) and FINAL_MESSAGE not in runner.custom_messages:
        runner.register_message(FINAL_MESSAGE, on_final_message)
    if web_ui is not None:
        from . import webui

        webui.install(environment, web_ui)
    classes = _affinity_classes(environment)
    if not classes:
        return
    try:
        for cls in classes:
            check_host(cls, environment.host or cls.host)
        if not environment.host and any(c.host is None for c in classes):
            _start_emulator(environment, classes)
    except PluginConfigError as exc:
        logger.error("lambda-affinity: %s", exc)
        stop_emulator()
        sys.exit(1)


def on_test_start(environment, **_kw) -> None:
    # A new test (web UI "start" again) measures afresh.
    STATE.tracker.reset()
    STATE.numbers = itertools.count(1)
    STATE.run_token = os.urandom(3).hex()
    STATE.worker_problems = []
    runner = environment.runner
    options = environment.parsed_options
    _open_trace(environment)
    if isinstance(runner, MasterRunner):
        # The run's name travels to workers in every spawn message (parsed
        # options do), so a report of an earlier run arriving late is dropped.
        if options is not None:
            options.affinity_run = STATE.run_token
        STATE.aggregator.start(STATE.run_token)
        for client in runner.clients.ready + runner.clients.spawning + runner.clients.running:
            STATE.aggregator.worker(client.id, runner.get_worker_index(client.id))
    elif isinstance(runner, WorkerRunner):
        STATE.run = getattr(options, "affinity_run", None)
        STATE.final_sent = False
        hosts = getattr(options, "affinity_hosts", None) or {}
        for cls in _affinity_classes(environment):
            if cls.host is None and hosts.get(cls.affinity_transport):
                cls.host = hosts[cls.affinity_transport]  # the master's embedded emulator


# -- distributed runs: worker side --------------------------------------------------

def worker_rows() -> dict | None:
    """What a worker adds to a periodic report: rows changed and environment
    ids first seen since the last one (None: nothing new)."""
    return periodic_payload(STATE.tracker, STATE.run)


def on_report_to_master(client_id, data, **_kw) -> None:
    if STATE.run is None:
        return  # not in a run of this master (yet)
    payload = worker_rows()
    if payload is not None:
        data[REPORT_KEY] = payload


def send_final(runner) -> None:
    """The worker's full snapshot, once per run, when its test stops. Sent on
    the same connection before Locust's own last report, so the master has it
    before it hears that the worker stopped or quit."""
    if STATE.run is None or STATE.final_sent:
        return
    STATE.final_sent = True
    payload = final_payload(STATE.tracker, STATE.run)
    try:
        runner.send_message(FINAL_MESSAGE, payload)
    except RPCError as exc:
        logger.error("lambda-affinity: could not send the final snapshot (%s users) to the master: %s",
                     payload["final"]["users"], exc)


def on_test_stop(environment, **_kw) -> None:
    _close_trace()
    if isinstance(environment.runner, WorkerRunner):
        send_final(environment.runner)


# -- distributed runs: master side --------------------------------------------------

def merge_worker_rows(client_id: str, payload: Mapping) -> bool:
    """Fold one worker payload (periodic or final) into the master's view;
    False when it belongs to another run."""
    runner = getattr(STATE.environment, "runner", None)
    index = runner.get_worker_index(client_id) if isinstance(runner, MasterRunner) else None
    folded = STATE.aggregator.receive(client_id, payload, index)
    STATE.heard.set()
    return folded


def on_worker_report(client_id, data, **_kw) -> None:
    payload = data.get(REPORT_KEY)
    if payload is not None:
        merge_worker_rows(client_id, payload)
    STATE.aggregator.saw_stats(client_id)
    STATE.heard.set()


def on_final_message(environment, msg, **_kw) -> None:
    merge_worker_rows(msg.node_id, msg.data)


def _lost_workers(runner) -> set[str]:
    """Workers that will send nothing more: gone from Locust's list (stopped,
    quit, or dropped after missing heartbeats) or missing heartbeats now."""
    lost = set()
    for key in STATE.aggregator.workers:
        client = runner.clients.get(key)
        if client is None:
            STATE.aggregator.left(key)
            lost.add(key)
        elif client.state == STATE_MISSING:
            lost.add(key)
    return lost


def _dispatch_late(runner, client_id, msg) -> None:
    """A worker message read after Locust's own listener is gone (it stops
    reading when the master quits, 0.5 s after telling workers to quit).
    Locust's stats reports are applied too, so its request counts include
    the workers' last reports."""
    if msg.type == "stats":
        runner.environment.events.worker_report.fire(client_id=msg.node_id, data=msg.data)
    elif msg.type in runner.custom_messages:
        listener, _concurrent = runner.custom_messages[msg.type]
        listener(environment=runner.environment, msg=msg)
    elif msg.type in ("quit", "client_stopped"):
        STATE.aggregator.left(msg.node_id)
    elif msg.type == "exception":
        runner.log_exception(msg.node_id, msg.data["msg"], msg.data["traceback"])


def await_workers(runner, timeout: float) -> None:
    """Wait until every worker of the run has sent its final snapshot (and
    the Locust report after it), or is known lost, or `timeout` passes."""
    started = time.monotonic()
    deadline = started + timeout
    # runner.quit() kills Locust's message listener: then read the socket here
    pump = len(runner.greenlet) == 0
    while True:
        now = time.monotonic()
        remaining = deadline - now
        if not STATE.aggregator.outstanding(_lost_workers(runner)) or remaining <= 0:
            if now - started > 0.1:
                logger.info("lambda-affinity: waited %.1f s for the workers' final snapshots", now - started)
            return
        if not pump:
            STATE.heard.clear()
            STATE.heard.wait(min(remaining, 0.5))
            continue
        try:
            with gevent.Timeout(min(remaining, 0.5)):
                client_id, msg = runner.server.recv_from_client()
        except gevent.Timeout:
            continue
        except RPCError as exc:
            logger.debug("lambda-affinity: reading late worker messages: %s", exc)
            gevent.sleep(0.05)
            continue
        _dispatch_late(runner, client_id, msg)


def final_rows(environment) -> tuple[list[dict], int]:
    """Per-user rows and distinct environments for the whole run (so far,
    while it runs)."""
    if isinstance(environment.runner, MasterRunner):
        return STATE.aggregator.row_dicts(), STATE.aggregator.environments
    return STATE.tracker.rows(), STATE.tracker.environments


def current_doc(environment, rows: list[dict], envs: int) -> dict:
    """The summary document of `rows` (the --affinity-json schema); a
    master's also says how many workers took part and which were lost."""
    doc = summary.summarize(rows, envs)
    if isinstance(environment.runner, MasterRunner):
        doc["workers"] = STATE.aggregator.summary_of_workers()
    return doc


def thresholds() -> dict:
    return {name: _option(name.replace("-", "_")) for name, _, _ in summary.CHECKS}


def finish(environment) -> dict | None:
    """End of run (master or standalone): summary, files, checks. Returns the doc."""
    rows, envs = final_rows(environment)
    master = isinstance(environment.runner, MasterRunner)
    STATE.worker_problems = STATE.aggregator.problems() if master else []
    limits = thresholds()
    wanted = any(v is not None for v in limits.values()) or _option("affinity_json")
    if not rows and not wanted and not _affinity_classes(environment):
        return None  # the plugin was imported but nothing probed: stay silent
    doc = current_doc(environment, rows, envs)
    STATE.doc = doc
    failures, passes = summary.evaluate_checks(doc, limits)
    STATE.check_failures, STATE.check_passes = failures, passes
    STATE.written = []
    path = _option("affinity_json")
    if path:
        _write(path, json.dumps(doc, indent=1) + "\n")
    prefix = _option("csv_prefix")
    if prefix:
        _write(f"{prefix}_affinity.csv", summary.rows_csv(rows))
        _write(f"{prefix}_affinity_summary.csv", summary.summary_csv(doc))
    html_file = _option("html_file")
    if html_file and os.path.exists(html_file):
        # Locust wrote its report just before `quitting`; add our section to it.
        with open(html_file, encoding="utf-8") as fh:
            report = fh.read()
        notes = STATE.worker_problems + failures + passes
        _write(html_file, summary.inject_html_section(report, summary.render_html_section(doc, notes)))
    if failures:
        environment.process_exit_code = CHECK_EXIT_CODE
    return doc


def _write(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    STATE.written.append(path)


def on_quitting(environment, **_kw) -> None:
    runner = environment.runner
    try:
        if isinstance(runner, WorkerRunner):
            # SIGTERM on a worker: stop its users (test_stop sends the final
            # snapshot); after a normal stop the snapshot is already out.
            if runner.state in (STATE_RUNNING, STATE_SPAWNING):
                runner.stop()
            send_final(runner)
            return
        if runner is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING):
            # On SIGTERM Locust fires `quitting` while users still run: stop them
            # first (idempotent), so the summary is final and no call hits a
            # stopped emulator. On a master this tells the workers to stop.
            runner.stop()
        if isinstance(runner, MasterRunner):
            # Locust fires test_stop on a master before the workers' last
            # reports arrive: wait for the actual final snapshots, bounded.
            await_workers(runner, FINAL_WAIT_S + (environment.stop_timeout or 0))
        finish(environment)
    finally:
        _close_trace()
        stop_emulator()


def print_summary(**_kw) -> None:
    """After Locust's own tables: the affinity table, the seed's rates line, checks."""
    doc = STATE.doc
    if doc is None:
        return
    console.info("")
    for line in summary.render_table(doc).splitlines():
        console.info(line)
    if 0 < doc["users"] <= RATES_LINE_MAX_USERS:  # rows again only when the line is short
        console.info(summary.rates_line(final_rows(STATE.environment)[0]))
    for path in STATE.written:
        console.info(f"affinity: wrote {path}")
    for message in STATE.worker_problems + STATE.emulator_notes:
        logger.warning(message)
    for message in STATE.check_passes:
        console.info(message)
    for message in STATE.check_failures:
        logger.error(message)
    console.info("")


def _register() -> None:
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(on_init)
    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)
    events.report_to_master.add_listener(on_report_to_master)
    events.worker_report.add_listener(on_worker_report)
    events.quitting.add_listener(on_quitting)
    events.quit.add_listener(print_summary)


def main(argv: Iterable[str] | None = None) -> Any:
    """Run Locust's command line with this plugin loaded first, so `--help`
    lists the --affinity-* options next to Locust's own."""
    import locust.main

    sys.argv = ["locust", *(sys.argv[1:] if argv is None else argv)]
    return locust.main.main()


if __name__ == "__main__":
    # `python -m lambda_affinity.locust_plugin ...`: load the one real module
    # (its listeners registered once, even when the locustfile imports it too).
    from lambda_affinity import locust_plugin as _plugin

    sys.exit(_plugin.main())
else:
    _register()
