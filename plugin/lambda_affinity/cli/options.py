"""Options more than one command takes, and the objects they become: the platform model
(ModelConfig, from `--model FILE` and the model options), the Scenario, the price of a miss.

Each is built once here, from the arguments, and handed down; the checks are the objects' own.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..core.summary import MissCostPrice
from ..files import InputFileError, read_text
from ..platform import POLICIES, ConfigError, FunctionSpec, ModelConfig
from ..platform.distributions import distribution_option, duration_option as duration
from ..platform.model_file import EMULATOR_KEYS, ModelFile, from_document, parse_yaml
from ..sim.simulate import FUNCTION, Scenario
from ..sim.trace import DEFAULT_MAX_DISORDER_S
from .managed_options import FUNCTION_FIELDS, MANAGED_MODEL_OPTIONS

# (option, ModelConfig field, type): model options default to None, so only
# those given override `--model FILE` (or the defaults).
MODEL_OPTIONS = (
    ("--policy", "policy", str),
    ("--routers", "routers", int),
    ("--router-policy", "router_policy", str),
    ("--init-delay", "init_delay_s", duration),
    ("--busy-overhead", "busy_overhead_s", duration),
    ("--keep-alive", "keep_alive_s", distribution_option),
    ("--max-lifetime", "max_lifetime_s", distribution_option),
    ("--proactive-replacement", "proactive_replacement", bool),
    ("--account-concurrency", "account_concurrency", int),
    ("--max-environments", "max_environments", int),
    ("--scale-limit", "scale_limit", int),
    ("--scale-window", "scale_window_s", duration),
    ("--restore-delay", "restore_delay", str),
) + MANAGED_MODEL_OPTIONS
# (option, FunctionSpec field, type): the function users call, as the emulator's config has it.
FUNCTION_OPTIONS = (
    ("--reserved", "reserved_concurrency", int),
    ("--provisioned", "provisioned_concurrency", int),
    ("--snapstart", "snapstart", bool),
)
# simulate option dest -> Scenario field, where they differ
SCENARIO_FIELDS = {"duration": "duration_s", "cache_ttl": "cache_ttl_s", "reserved": "function.reserved_concurrency"}


def add_random_seed(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    """--random-seed ("seed" alone is the article's experiment here); --seed,
    its earlier name, still works and is not listed."""
    p.add_argument("--random-seed", dest="seed", type=int, default=default, metavar="N", help=help)
    p.add_argument("--seed", dest="seed", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_max_disorder(p: argparse.ArgumentParser | argparse._ArgumentGroup, help: str) -> None:
    """--max-disorder S: how far out of send order a trace's rows may come (the readers' window)."""
    p.add_argument("--max-disorder", type=duration, default=DEFAULT_MAX_DISORDER_S, metavar="DURATION", help=help)


def add_model_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The platform model's options; returns their actions (a sweep may vary each)."""
    d = ModelConfig()
    g = p.add_argument_group(
        "platform model",
        "defaults: the calibrated model (docs/model.md), or --model FILE's; an option given here overrides either",
    )
    return [
        g.add_argument(
            "--model",
            metavar="FILE",
            help="a YAML file with a `model:` mapping: `lambda-affinity "
            "calibrate --out`'s, or an emulator config (docs/traces.md)",
        ),
        g.add_argument(
            "--policy", choices=POLICIES, help=f"placement of invocations on idle environments (default {d.policy})"
        ),
        g.add_argument("--routers", type=int, help=f"routers for the partitioned policy (default {d.routers})"),
        g.add_argument(
            "--router-policy",
            choices=("mru", "lru", "random"),
            help=f"placement inside each router (default {d.router_policy})",
        ),
        g.add_argument(
            "--init-delay",
            type=duration,
            metavar="DURATION",
            help=f"modelled cold-start delay (default {d.init_delay_s:g}; seconds, or 250ms, 1m...)",
        ),
        g.add_argument(
            "--busy-overhead",
            type=duration,
            metavar="DURATION",
            help=f"time an environment stays reserved after each reply (default {d.busy_overhead_s:g})",
        ),
        g.add_argument(
            "--keep-alive",
            type=distribution_option,
            metavar="DIST",
            help=f"idle keep-alive: a duration, or a distribution each idle spell draws from (300:900, "
            f"exp:10m) (default {d.keep_alive_s:g}, i.e. 10m)",
        ),
        g.add_argument(
            "--max-lifetime",
            type=distribution_option,
            metavar="DIST",
            help=f"maximum environment lifetime: a duration, or a distribution each environment draws "
            f"from (1h30m:2h30m) (default {d.max_lifetime_s:g}, i.e. 2h)",
        ),
        g.add_argument(
            "--proactive-replacement",
            action=argparse.BooleanOptionalAction,
            help="an environment reaching its maximum lifetime is replaced by one initialised ahead: the next "
            f"call is a new-environment call, not a cold start (default {'on' if d.proactive_replacement else 'off'})",
        ),
        g.add_argument(
            "--account-concurrency",
            type=int,
            help=f"account concurrency limit (default {d.account_concurrency})",
        ),
        g.add_argument(
            "--max-environments",
            type=int,
            default=None,
            help=f"cap on live environments (default {d.max_environments or 'none'})",
        ),
        g.add_argument(
            "--scale-limit",
            type=int,
            help=f"new environments per function per --scale-window (default {d.scale_limit})",
        ),
        g.add_argument(
            "--scale-window",
            type=duration,
            metavar="DURATION",
            help=f"window of --scale-limit (default {d.scale_window_s:g})",
        ),
        g.add_argument(
            "--restore-delay",
            metavar="DIST",
            help="SnapStart's restore, in place of the init delay, with --snapstart (default none: the init delay)",
        ),
    ]


def add_scenario_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """Synthetic users' options, shared by simulate and sweep; returns their
    actions (a sweep may vary each). Distributions have metavar DIST."""
    d = Scenario()
    return [
        p.add_argument("--users", type=int, default=d.users, help="simulated users"),
        p.add_argument(
            "--duration",
            type=duration,
            default=d.duration_s,
            metavar="DURATION",
            help="how long users keep sending: seconds, or 90s, 10m, 1h30m (default %(default)g)",
        ),
        p.add_argument(
            "--think",
            default=d.think,
            metavar="DIST",
            help="think time: A:B uniform, exp:MEAN, or a fixed duration; seconds, or with units: 5m:15m, "
            "exp:10m (default %(default)s)",
        ),
        p.add_argument("--burst", type=int, default=d.burst, help="requests per session (0: one endless session)"),
        p.add_argument(
            "--gap",
            default=d.gap,
            metavar="DIST",
            help="pause between sessions, same forms as --think (default %(default)s)",
        ),
        p.add_argument(
            "--start", choices=("together", "spread"), default=d.start, help="all users at t=0, or after a first think"
        ),
        p.add_argument(
            "--latency",
            metavar="DIST",
            help=f"network round trip, seconds (default {d.latency}; with --trace 0: its times are "
            "taken as arrivals at Lambda's front end; or --model FILE's network_latency)",
        ),
        p.add_argument(
            "--service",
            metavar="DIST",
            help=f"time on the environment per invocation, seconds (default {d.service}, or "
            "--model FILE's service_time)",
        ),
        *add_deploy_options(p),
    ]


def add_deploy_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """--deploy-every, --deploy-at: when the function is deployed (every later call on new environments)."""
    return [
        p.add_argument(
            "--deploy-every",
            default="",
            metavar="DIST",
            help="deploy the function at intervals drawn from DIST, same forms as --think (e.g. 1h, exp:30m): "
            "every later call lands on a new environment (docs/model.md, Deploys)",
        ),
        p.add_argument(
            "--deploy-at",
            default="",
            metavar="T,...",
            help="deploy the function at these times since the start (e.g. 30,5m)",
        ),
    ]


def add_function_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The function's knobs and the probe's cache, as the emulator's function config has them; returns
    their actions (a sweep may vary each)."""
    d = Scenario()
    g = p.add_argument_group("the function", "as the emulator's function config and the probe's environment set them")
    provisioned = g.add_argument(
        "--provisioned",
        type=int,
        default=0,
        metavar="N",
        help="provisioned concurrency: N environments initialised before the first call and kept; "
        "calls beyond them spill over to on-demand ones (default %(default)s)",
    )
    g.add_argument(
        "--snapstart",
        action="store_true",
        help="SnapStart: inits are restores of one snapshot (--restore-delay); not with --provisioned",
    )
    return [
        provisioned,
        g.add_argument(
            "--reserved",
            "--reserved-concurrency",
            type=int,
            metavar="N",
            help="the function's reserved concurrency (the emulator's reserved_concurrency): at most N calls "
            "in flight, the others throttled (default none)",
        ),
        g.add_argument(
            "--shards",
            type=int,
            default=d.shards,
            metavar="K",
            help="users hashed to K copies of the function, each with its own pool (and its own --reserved), "
            "under one account concurrency (docs/sweep.md)",
        ),
        g.add_argument(
            "--cache-size",
            type=int,
            default=d.cache_size,
            metavar="N",
            help="sessions the probe's cache keeps per environment (its AFFINITY_CACHE_SIZE)",
        ),
        g.add_argument(
            "--cache-ttl",
            type=duration,
            default=d.cache_ttl_s,
            metavar="DURATION",
            help="how long a cached session stays valid (its AFFINITY_CACHE_TTL_S): seconds, or 15m...",
        ),
    ]


def add_miss_cost_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "cost of a miss",
        "price the warm-cache rate: time and money the cache saves per million requests (docs/sweep.md)",
    )
    g.add_argument(
        "--miss-cost-ms",
        type=float,
        metavar="MS",
        help="time a cache miss costs the handler, ms (e.g. a DynamoDB read)",
    )
    g.add_argument("--miss-cost-usd", type=float, metavar="USD", help="money a cache miss costs, USD")


def read_model_file(path: str) -> ModelFile:
    """`--model FILE`: the model file format (platform.model_file), the same a calibrate --out
    writes and the emulator's config is; every error names --model and the file."""
    try:
        text = read_text(path)
    except InputFileError as exc:
        raise ConfigError(f"--model {exc}") from None
    try:
        data = parse_yaml(text)
        if isinstance(data, dict) and any(key in data for key in EMULATOR_KEYS):
            # An emulator config must be a valid one (its functions, code folders, port...), as the
            # emulator would read it, even though only its model and timings are used here.
            from ..emulator.config import config_from_mapping

            cfg = config_from_mapping(data, base_dir=os.path.dirname(os.path.abspath(path)), source=path)
            return ModelFile(cfg.model, cfg.network_latency, cfg.service_time)
        return from_document(data)
    except ConfigError as exc:
        raise ConfigError(f"--model {path}: {exc}") from None


def scenario_from_args(args: argparse.Namespace, trace: bool = False, model_path: str | None = None) -> Scenario:
    """The Scenario simulate's (and a sweep's base) options name; `model_path` instead of --model
    (a sweep varying the model file). --latency and --service: given, else the file's, else the defaults."""
    model_path = model_path if model_path is not None else args.model
    file = read_model_file(model_path) if model_path else ModelFile()
    given = {field: getattr(args, flag[2:].replace("-", "_")) for flag, field, _ in MODEL_OPTIONS}
    d = Scenario()
    return Scenario(
        users=args.users,
        duration_s=args.duration,
        think=args.think,
        burst=args.burst,
        gap=args.gap,
        start=args.start,
        latency=args.latency or file.network_latency or ("0" if trace else d.latency),
        service=args.service or file.service_time or d.service,
        deploy_every=args.deploy_every,
        deploy_at=args.deploy_at,
        model=file.model.replace(**{k: v for k, v in given.items() if v is not None}),
        cache_size=args.cache_size,
        cache_ttl_s=args.cache_ttl,
        shards=args.shards,
        function=function_from_args(args, d.function.name),
    )


def function_from_args(args: argparse.Namespace, name: str = FUNCTION) -> FunctionSpec:
    """The function users call, as the function options describe it; a bad value's message names its option."""
    flags = {**{flag: field for flag, field, _ in FUNCTION_OPTIONS}, **FUNCTION_FIELDS}
    given = {field: getattr(args, flag[2:].replace("-", "_"), None) for flag, field in flags.items()}
    try:
        return FunctionSpec(name, **{k: v for k, v in given.items() if v is not None})
    except ConfigError as exc:
        message = str(exc)
        for flag, field in flags.items():
            message = message.replace(field, flag)
        raise ConfigError(message) from None


def price_from_args(args: argparse.Namespace) -> MissCostPrice:
    return MissCostPrice(args.miss_cost_ms, args.miss_cost_usd)


def warn(command: str, message: str | None) -> None:
    """A warning on stderr: the result stands, but the user should know."""
    if message:
        print(f"lambda-affinity {command}: warning: {message}", file=sys.stderr)
