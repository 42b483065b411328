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

Distributed mode (issue 5) builds on `worker_rows()` / `merge_worker_rows()`:
per-user rows are snapshots, so a repeated or late message never double counts.
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
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, unquote

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from . import summary
from .probe import Observation, ProbeReplyError, parse_reply
from .tracker import Tracker

logger = logging.getLogger("lambda_affinity")
console = logging.getLogger("locust.stats_logger")  # Locust's own channel for its end-of-run tables

CHECK_EXIT_CODE = 3  # locust-plugins' convention for a failed check
RATES_LINE_MAX_USERS = 50
SESSION_HEADER = "x-affinity-session"
DEFAULT_FUNCTION = "probe"


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
        # master side: user -> latest row snapshot, and distinct environment ids
        self.merged: dict[str, dict] = {}
        self.merged_envs: set[str] = set()
        self.doc: dict | None = None
        self.check_failures: list[str] = []
        self.check_passes: list[str] = []
        self.written: list[str] = []
        # -u/-r/-t as the user gave them (Locust fills in 1 user, 1/s later)
        self.given: dict = {}


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


def record_reply(user, reply) -> Observation:
    """Parse one probe reply (bytes, str or decoded JSON) and record it for
    `user` (a Locust user or a label). Raises ProbeReplyError, after counting
    it, when the reply is not a valid probe reply: report it as a failure."""
    label = _label(user)
    try:
        obs = parse_reply(reply)
    except ProbeReplyError:
        STATE.tracker.record_invalid(label)
        raise
    STATE.tracker.record(label, obs.env_id, obs.cold, obs.cache_hit)
    return obs


def record_invalid(user) -> None:
    """Count a failed call (HTTP error, throttle, function error) for `user`."""
    STATE.tracker.record_invalid(_label(user))


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
    from .emulator.process import EmulatorProcess

    function = _option("affinity_function", DEFAULT_FUNCTION)
    config = _option("affinity_emulator_config")
    emu = EmulatorProcess(config_path=config)
    emu.__enter__()
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
    logger.info("Embedded Lambda emulator started (Invoke API %s); the run targets %s", emu.endpoint,
                " and ".join(hosts[k] for k in sorted(kinds)))


def stop_emulator() -> None:
    emu, STATE.emulator = STATE.emulator, None
    if emu is not None:
        emu.stop()


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


def on_init(environment, runner=None, **_kw) -> None:
    STATE.environment = environment
    STATE.given = {k: _option(k) for k in ("num_users", "spawn_rate", "run_time")}
    if isinstance(runner, WorkerRunner):
        return  # hosts come from the master; the emulator runs next to it
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
    STATE.merged.clear()
    STATE.merged_envs.clear()
    STATE.numbers = itertools.count(1)
    STATE.run_token = os.urandom(3).hex()


def worker_rows() -> dict:
    """What a worker sends its master: changed per-user rows and new env ids."""
    return {"rows": STATE.tracker.take_changed(), "envs": STATE.tracker.take_new_envs()}


def merge_worker_rows(data: Mapping) -> None:
    """Fold one worker message (see worker_rows) into the master's view."""
    summary.merge_rows(STATE.merged, data.get("rows", ()))
    STATE.merged_envs.update(data.get("envs", ()))


def final_rows(environment) -> tuple[list[dict], int]:
    """Per-user rows and distinct environments for the whole run."""
    if isinstance(environment.runner, MasterRunner):
        return list(STATE.merged.values()), len(STATE.merged_envs)
    return STATE.tracker.rows(), STATE.tracker.environments


def thresholds() -> dict:
    return {name: _option(name.replace("-", "_")) for name, _, _ in summary.CHECKS}


def finish(environment) -> dict | None:
    """End of run (master or standalone): summary, files, checks. Returns the doc."""
    rows, envs = final_rows(environment)
    if isinstance(environment.runner, MasterRunner) and not rows:
        logger.warning("lambda-affinity: no per-user rows reached this master: aggregating workers' rows "
                       "is not wired yet, so run the plugin standalone (no --master/--processes) for now")
    limits = thresholds()
    wanted = any(v is not None for v in limits.values()) or _option("affinity_json")
    if not rows and not wanted and not _affinity_classes(environment):
        return None  # the plugin was imported but nothing probed: stay silent
    doc = summary.summarize(rows, envs)
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
        _write(html_file, summary.inject_html_section(report, summary.render_html_section(doc, failures + passes)))
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
        if runner is not None and not isinstance(runner, (MasterRunner, WorkerRunner)):
            # On SIGTERM Locust fires `quitting` while users still run: stop them
            # first (idempotent), so the summary is final and no call hits a
            # stopped emulator.
            runner.stop()
        if not isinstance(runner, WorkerRunner):
            finish(environment)
    finally:
        stop_emulator()


def print_summary(**_kw) -> None:
    """After Locust's own tables: the affinity table, the seed's rates line, checks."""
    doc = STATE.doc
    if doc is None:
        return
    console.info("")
    for line in summary.render_table(doc).splitlines():
        console.info(line)
    rows, _ = final_rows(STATE.environment)
    if 0 < len(rows) <= RATES_LINE_MAX_USERS:
        console.info(summary.rates_line(rows))
    for path in STATE.written:
        console.info(f"affinity: wrote {path}")
    for message in STATE.check_passes:
        console.info(message)
    for message in STATE.check_failures:
        logger.error(message)
    console.info("")


def _register() -> None:
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(on_init)
    events.test_start.add_listener(on_test_start)
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
