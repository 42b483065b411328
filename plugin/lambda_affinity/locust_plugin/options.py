"""The plugin's command-line options and a typed view of them.

Every option also reads `LOCUST_<NAME>` and Locust's config files, the way
Locust's own options do. Locust re-parses (for web UI pages, and a worker
takes the master's values with every spawn message), so options are read
through `AffinityOptions.of(...)` when needed, never cached for a run.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from typing import Any

from ..core import summary
from ..core.headers import SessionSourceError, check_header_name, parse_session_source
from . import adapter

DEFAULT_FUNCTION = "probe"
DEFAULT_SESSION_HEADER = "x-affinity-session"  # probe_lambda.handler.SESSION_HEADER, the wrapper's default too


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
    if not 0 <= value < math.inf:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _header_name(text: str) -> str:
    try:
        return check_header_name(text)
    except SessionSourceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _session_from(text: str) -> str:
    try:
        kind, name = parse_session_source(text)
    except SessionSourceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{kind}:{name}"


_CHECK = "check: exit code 3 unless"
# (flags, keyword arguments)
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--affinity-json",),
        dict(metavar="PATH", help="write the affinity summary (users, rates, histogram, per-user rows) as JSON"),
    ),
    (
        ("--affinity-min-hit-rate",),
        dict(metavar="X", type=_fraction, help=f"{_CHECK} the median per-user max-share hit rate is at least X"),
    ),
    (
        ("--affinity-min-warm-rate",),
        dict(metavar="X", type=_fraction, help=f"{_CHECK} the median per-user warm-cache hit rate is at least X"),
    ),
    (
        ("--affinity-max-cold-ratio",),
        dict(metavar="X", type=_non_negative, help=f"{_CHECK} cold starts per valid reply are at most X"),
    ),
    (
        ("--affinity-split-stats",),
        dict(
            action="store_true",
            default=False,
            help="split request rows in Locust's stats by outcome: [cold], [new environment], [cache hit], "
            "[cache miss]",
        ),
    ),
    (
        ("--affinity-endpoint-url",),
        dict(
            metavar="URL", help="Invoke API endpoint for lambda:// hosts (LocalStack, a local emulator); default: AWS"
        ),
    ),
    (
        ("--affinity-sigv4",),
        dict(
            action="store_true",
            default=False,
            help="sign Function URL requests with SigV4 (auth type AWS_IAM; credentials and region from boto3's chain)",
        ),
    ),
    (
        ("--affinity-emulator-config",),
        dict(
            metavar="YAML",
            help="config file for the embedded emulator started when no --host is given (see docs/emulator.md)",
        ),
    ),
    (
        ("--affinity-function",),
        dict(
            metavar="NAME",
            default=DEFAULT_FUNCTION,
            help=f"function of the embedded emulator to target (default {DEFAULT_FUNCTION})",
        ),
    ),
    (
        ("--affinity-miss-cost-ms", "--miss-cost-ms"),
        dict(
            metavar="MS",
            type=_non_negative,
            help="what one cache miss costs in time (e.g. a DynamoDB read): the summary then says what the warm "
            "cache saves per million requests",
        ),
    ),
    (
        ("--affinity-miss-cost-usd", "--miss-cost-usd"),
        dict(metavar="USD", type=_non_negative, help="what one cache miss costs in money (e.g. 0.00000025)"),
    ),
    (
        ("--affinity-trace",),
        dict(
            metavar="PATH",
            help="write one CSV row per request (send/receive time, user, session, environment, cold, cache hit, "
            "valid); gzip when PATH ends in .gz; each worker writes PATH with .w<index> before its extension "
            "(docs/traces.md)",
        ),
    ),
    (
        ("--affinity-session-header",),
        dict(
            metavar="NAME",
            type=_header_name,
            default=DEFAULT_SESSION_HEADER,
            help="header in which the plugin sends each user's session key to a wrapped function "
            f"(any user class; default {DEFAULT_SESSION_HEADER}; docs/own-function.md)",
        ),
    ),
    (
        ("--affinity-session-from",),
        dict(
            metavar="cookie:NAME|header:NAME",
            type=_session_from,
            help="the session key is the user's own cookie or header (the wrapper's AFFINITY_SESSION_FROM): "
            "the plugin then sends none",
        ),
    ),
)
FIRST_FLAG = OPTIONS[0][0][0]


def env_var(flag: str) -> str:
    return "LOCUST_" + flag[2:].upper().replace("-", "_")


def add_arguments(parser: Any) -> None:
    """Add the options to Locust's parser. Runs on a fresh parser each time
    Locust parses; a parser that already has them is left alone."""
    if adapter.parser_has_option(parser, FIRST_FLAG):
        return
    group = parser.add_argument_group(
        "lambda-affinity",
        "Per-user Lambda environment reuse (added by lambda_affinity). Checks set exit code 3 when not met.",
    )
    for flags, kwargs in OPTIONS:
        group.add_argument(*flags, env_var=env_var(flags[0]), **kwargs)


@dataclass(frozen=True)
class AffinityOptions:
    """The plugin's options plus the Locust options it reads, as parsed."""

    affinity_json: str | None = None
    affinity_min_hit_rate: float | None = None
    affinity_min_warm_rate: float | None = None
    affinity_max_cold_ratio: float | None = None
    affinity_split_stats: bool = False
    affinity_endpoint_url: str | None = None
    affinity_sigv4: bool = False
    affinity_emulator_config: str | None = None
    affinity_function: str = DEFAULT_FUNCTION
    affinity_trace: str | None = None
    affinity_miss_cost_ms: float | None = None
    affinity_miss_cost_usd: float | None = None
    affinity_session_header: str = DEFAULT_SESSION_HEADER
    affinity_session_from: str | None = None
    # Locust's own
    num_users: int | None = None
    spawn_rate: float | None = None
    run_time: int | None = None
    csv_prefix: str | None = None
    html_file: str | None = None
    web_base_path: str | None = None

    @classmethod
    def of(cls, parsed: Any) -> AffinityOptions:
        """From Locust's parsed options (an argparse Namespace, or None in a
        bare Environment: every option at its default)."""
        if parsed is None:
            return cls()
        defaults = cls()
        return cls(**{f.name: getattr(parsed, f.name, getattr(defaults, f.name)) for f in fields(cls)})

    def thresholds(self) -> dict[str, float | None]:
        """The CI checks, by option name (summary.CHECKS)."""
        return {name: getattr(self, name.replace("-", "_")) for name, _, _ in summary.CHECKS}


@dataclass(frozen=True)
class GivenLoad:
    """-u/-r/-t as the user gave them (None where not given), read before
    Locust fills in its headless defaults (1 user, 1/s)."""

    num_users: int | None = None
    spawn_rate: float | None = None
    run_time: int | None = None

    @classmethod
    def of(cls, options: AffinityOptions) -> GivenLoad:
        return cls(options.num_users, options.spawn_rate, options.run_time)
