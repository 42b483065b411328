"""The platform model's knobs, with AWS-like defaults.

One dataclass so the emulator's YAML, the simulator's command line and the
tests all speak the same names. Validation lives here so every driver gives
the same precise message for a bad value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import LambdaAffinityError
from .distributions import (
    Distribution,
    DistributionError,
    parse_distribution,
    parse_duration,
    parse_duration_or_distribution,
)
from .managed_runtimes import CACHE_SCOPES, MAX_ENV_CONCURRENCY, MAX_EXECUTION_ENVIRONMENTS, runtime_problem

POLICIES = ("mru", "lru", "random", "partitioned")

# AWS: idle environments are reclaimed after about 10 minutes (since 2019) and
# busy ones are replaced about every 2 hours.
DEFAULT_KEEP_ALIVE_S = 600.0
DEFAULT_MAX_LIFETIME_S = 7200.0
# Each router holds an idle pool; more routers than environments means nothing.
MAX_ROUTERS = 10_000
# Whole numbers past this (2**53) lose their value as floats, which the model's rates are computed in.
MAX_WHOLE = 2**53
# AWS's default account concurrency.
DEFAULT_ACCOUNT_CONCURRENCY = 1000
# AWS (scaling behaviour, 2023 onward): per function at most 1,000 new
# execution environments every 10 seconds, refilled continuously.
DEFAULT_SCALE_LIMIT = 1000
DEFAULT_SCALE_WINDOW_S = 10.0
# Fields that take a distribution (`300:900`, `exp:10m`) as well as a duration: each environment draws its own.
DISTRIBUTION_FIELDS = ("keep_alive_s", "max_lifetime_s")


class ConfigError(LambdaAffinityError, ValueError):
    """A model option is missing, of the wrong type or out of range."""


@dataclass
class ModelConfig:
    # Placement of an invocation onto an idle environment: see docs/model.md
    # for what each policy predicts and why this one is the default.
    policy: str = "partitioned"
    # Routers for the `partitioned` policy (a random one is asked first).
    routers: int = 2
    # Placement used by each router inside its own idle pool.
    router_policy: str = "mru"
    # Modelled cold-start (init) delay, seconds. The emulator adds it on top of
    # the real process start so the model, not the machine, sets the cost.
    init_delay_s: float = 0.25
    # How long an environment stays reserved after each reply before it can
    # take another call (the platform's own hand-off: the runtime's next
    # /next, the worker telling placement it is idle). It decides how often
    # overlapping calls spill onto other environments: docs/model.md.
    busy_overhead_s: float = 0.0
    # Seconds, or a distribution's text (`300:900`, `exp:10m`): an environment draws a keep-alive
    # for each idle spell and a maximum lifetime when it is made (docs/model.md, "Environments that
    # die at random"). A constant is kept as a float, whatever form it was given in.
    keep_alive_s: float | str = DEFAULT_KEEP_ALIVE_S
    max_lifetime_s: float | str = DEFAULT_MAX_LIFETIME_S
    # An environment reaching its maximum lifetime is replaced by one initialised ahead, so the next
    # call meets an empty cache without waiting for an init (AWS docs, "proactive initialization").
    proactive_replacement: bool = True
    account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY
    # Scale-out limit per function: at most `scale_limit` new environments in
    # any `scale_window_s`, refilled continuously; beyond it a call is throttled.
    scale_limit: int = DEFAULT_SCALE_LIMIT
    scale_window_s: float = DEFAULT_SCALE_WINDOW_S
    # Machine-safe cap on live environments (all functions). None: no cap.
    max_environments: int | None = None
    # Managed Instances' scaler (platform/managed.py): how often it acts, and the utilisation of the
    # environments' concurrency slots it steers to. AWS documents neither value: ours, docs/model.md.
    managed_scale_interval_s: float = 60.0
    managed_target_utilisation: float = 0.8
    # SnapStart's restore, in place of the init, for functions with `snapstart`: a distribution
    # (seconds, 0.2, 0.1:0.3, exp:0.2). None: the init delay (AWS publishes no restore time: docs/model.md).
    restore_delay: str | float | None = None

    def __post_init__(self) -> None:
        for name in DISTRIBUTION_FIELDS:
            setattr(self, name, _constant_or_text(name, getattr(self, name)))
        self.validate()

    @property
    def keep_alive(self) -> Distribution:
        """The keep-alive each idle spell draws from."""
        return parse_distribution(self.keep_alive_s, "keep_alive_s")

    @property
    def max_lifetime(self) -> Distribution:
        """The maximum lifetime each new environment draws from."""
        return parse_distribution(self.max_lifetime_s, "max_lifetime_s")

    def validate(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy: {self.policy!r} is not one of {', '.join(POLICIES)}")
        if self.router_policy not in ("mru", "lru", "random"):
            raise ConfigError(f"router_policy: {self.router_policy!r} is not one of mru, lru, random")
        _check_int("routers", self.routers, minimum=1, maximum=MAX_ROUTERS)
        _check_number("init_delay_s", self.init_delay_s, minimum=0)
        _check_number("busy_overhead_s", self.busy_overhead_s, minimum=0)
        _check_int("scale_limit", self.scale_limit, minimum=1)
        _check_number("scale_window_s", self.scale_window_s, minimum=0, exclusive=True)
        _check_duration_or_distribution("keep_alive_s", self.keep_alive_s, exclusive=False)
        _check_duration_or_distribution("max_lifetime_s", self.max_lifetime_s, exclusive=True)
        if not isinstance(self.proactive_replacement, bool):
            raise ConfigError(f"proactive_replacement: expected true or false, got {self.proactive_replacement!r}")
        _check_int("account_concurrency", self.account_concurrency, minimum=1)
        if self.max_environments is not None:
            _check_int("max_environments", self.max_environments, minimum=1)
        _check_number("managed_scale_interval_s", self.managed_scale_interval_s, minimum=0, exclusive=True)
        _check_number("managed_target_utilisation", self.managed_target_utilisation, minimum=0, exclusive=True)
        if self.managed_target_utilisation > 1:
            raise ConfigError(f"managed_target_utilisation: must be <= 1, got {self.managed_target_utilisation!r}")
        if self.restore_delay is not None:
            _check_distribution("restore_delay", self.restore_delay)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "model") -> ModelConfig:
        """Build from a YAML/JSON mapping; unknown keys are errors, not ignored."""
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown option (known: {', '.join(sorted(names))})")
        try:
            # Seconds as YAML numbers, or the options' duration text ("10m", "2h").
            for name, value in data.items():
                if name.endswith("_s") and isinstance(value, str) and name not in DISTRIBUTION_FIELDS:
                    data[name] = parse_duration(value, name)
            return cls(**data)
        except (ConfigError, DistributionError) as exc:
            raise ConfigError(f"{where}.{exc}") from None

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class FunctionSpec:
    """What the platform needs to know about one function."""

    name: str
    reserved_concurrency: int | None = None
    version: str = "$LATEST"
    extra: dict = field(default_factory=dict)
    # Lambda Managed Instances (platform/managed.py): set, an environment takes up to this many
    # invocations at once and the function scales on utilisation, never per call. None: on-demand.
    per_environment_max_concurrency: int | None = None
    # AWS's FunctionScalingConfig (Managed Instances only); None: AWS's default (3, no upper bound).
    min_execution_environments: int | None = None
    max_execution_environments: int | None = None
    # Which memory a call's module-level state lives in: environment | worker | process; None: the
    # runtime's own (managed.default_cache_scope). `runtime` as Lambda names it (python3.13, nodejs22.x).
    cache_scope: str | None = None
    runtime: str | None = None
    # Node's worker threads per environment (AWS_LAMBDA_NODEJS_WORKER_COUNT); None: one per vCPU (1).
    worker_count: int | None = None
    # Environments initialised before any call and kept (no keep-alive reclaim); calls beyond them
    # spill over to on-demand environments (docs/model.md, "Provisioned concurrency").
    provisioned_concurrency: int = 0
    # Inits are restores of one snapshot, taken once (docs/model.md, "SnapStart").
    snapstart: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("name: must be a non-empty string")
        if self.reserved_concurrency is not None:
            _check_int("reserved_concurrency", self.reserved_concurrency, minimum=0)
        _check_managed(self)
        _check_pools(self)


def _check_managed(spec: FunctionSpec) -> None:
    """Managed Instances' knobs: AWS's ranges, and only with per_environment_max_concurrency."""
    k = spec.per_environment_max_concurrency
    if k is not None:
        _check_int("per_environment_max_concurrency", k, minimum=1, maximum=MAX_ENV_CONCURRENCY)
    for name in ("min_execution_environments", "max_execution_environments", "cache_scope", "worker_count"):
        if getattr(spec, name) is not None and k is None:
            raise ConfigError(f"{name}: applies to Managed Instances only: set per_environment_max_concurrency too")
    low, high = spec.min_execution_environments, spec.max_execution_environments
    for name, value in (("min_execution_environments", low), ("max_execution_environments", high)):
        if value is not None:
            _check_int(name, value, minimum=0, maximum=MAX_EXECUTION_ENVIRONMENTS)
    if low is not None and high is not None and low > high:
        raise ConfigError(f"min_execution_environments: {low} is above max_execution_environments {high}")
    if spec.cache_scope is not None and spec.cache_scope not in CACHE_SCOPES:
        raise ConfigError(f"cache_scope: {spec.cache_scope!r} is not one of {', '.join(CACHE_SCOPES)}")
    if spec.worker_count is not None:
        _check_int("worker_count", spec.worker_count, minimum=1, maximum=MAX_ENV_CONCURRENCY)
    problem = runtime_problem(spec.runtime) if k is not None and spec.runtime is not None else None
    if problem:
        raise ConfigError(f"runtime: {problem}")


def _check_pools(spec: FunctionSpec) -> None:
    """Provisioned concurrency and SnapStart, as AWS allows them together with reserved concurrency."""
    _check_int("provisioned_concurrency", spec.provisioned_concurrency, minimum=0)
    reserved = spec.reserved_concurrency
    if reserved is not None and spec.provisioned_concurrency > reserved:
        # AWS refuses it: the provisioned environments are part of the function's concurrency
        raise ConfigError(
            f"provisioned_concurrency: {spec.provisioned_concurrency} is more than "
            f"reserved_concurrency {reserved}; it must be at most that"
        )
    if not isinstance(spec.snapstart, bool):
        raise ConfigError(f"snapstart: expected true or false, got {spec.snapstart!r}")
    if spec.per_environment_max_concurrency is not None and (spec.provisioned_concurrency or spec.snapstart):
        # AWS: Managed Instances functions are started ahead and scaled on utilisation; they take neither
        raise ConfigError(
            "provisioned_concurrency, snapstart: not offered on Managed Instances (per_environment_max_concurrency)"
        )
    if spec.snapstart and spec.provisioned_concurrency:
        raise ConfigError("snapstart: AWS does not offer SnapStart with provisioned concurrency; use one or the other")


def snapstart_runtime_problem(runtime: str) -> str | None:
    """Why AWS does not offer SnapStart on `runtime` (python3.N, nodejsN.x, javaN), or None: it does
    on Java 11+ and Python 3.12+ (AWS docs, "Improving startup performance with Lambda SnapStart")."""
    if runtime.startswith("python3."):
        minor = runtime[len("python3.") :]
        if minor.isdigit() and int(minor) >= 12:
            return None
        return f"SnapStart is offered on Python 3.12 and later, not {runtime}"
    if runtime.startswith("java"):
        return None
    return f"SnapStart is offered on Java 11+, Python 3.12+ and .NET 8+, not {runtime}"


def _check_distribution(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{name}: expected a duration or a distribution (0.2, 0.1:0.3, exp:0.2), got {value!r}")
    try:
        parse_distribution(value, name)
    except DistributionError as exc:
        raise ConfigError(str(exc)) from None


def _constant_or_text(name: str, value: Any) -> Any:
    """A distribution field's text as parse_duration_or_distribution keeps it; anything but text is left
    for validate() to check (its messages for numbers, booleans, lists)."""
    if not isinstance(value, str):
        return value
    try:
        return parse_duration_or_distribution(value, name)
    except DistributionError as exc:
        raise ConfigError(str(exc)) from None


def _check_duration_or_distribution(name: str, value: Any, exclusive: bool) -> None:
    """A number >= 0 (> 0 with `exclusive`), or a distribution's text (with `exclusive`, one of mean > 0)."""
    if not isinstance(value, str):
        _check_number(name, value, minimum=0, exclusive=exclusive)
        return
    try:
        dist = parse_distribution(value, name)
    except DistributionError as exc:
        raise ConfigError(str(exc)) from None
    if exclusive and not dist.mean > 0:
        raise ConfigError(f"{name}: must be > 0, got {value!r}")


def _check_number(name: str, value: Any, minimum: float, exclusive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        # NaN passes every comparison below; infinity would stall timers
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    if value < minimum or (exclusive and value == minimum):
        op = ">" if exclusive else ">="
        raise ConfigError(f"{name}: must be {op} {minimum}, got {value!r}")


def _check_int(name: str, value: Any, minimum: int, maximum: int = MAX_WHOLE) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value!r}")
    if value > maximum:
        raise ConfigError(
            f"{name}: must be <= {maximum}, got {value if value.bit_length() < 100 else 'a larger number'}"
        )


def _finite(value: int | float) -> bool:
    """Whether `value` is a float that is not NaN or infinite (an int past a float's range is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:  # an int of hundreds of digits
        return False
