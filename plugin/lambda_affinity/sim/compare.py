"""`lambda-affinity compare`: ways of running one function side by side, for one scenario.

A strategy is one named entry: what it changes in the scenario (its function's knobs, its shards).
The comparison is a sweep whose factor is the strategy (sim.sweep: the same runs, seeds shared
across strategies, statistics, files and charts), so a new strategy is one line in STRATEGIES.

From Python:

    from lambda_affinity.sim.compare import compare_plan
    from lambda_affinity.sim.simulate import Scenario

    points = compare_plan(Scenario(users=1000), runs=3).run()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ..core.summary import MissCostPrice
from .simulate import Scenario
from .sweep import NO_PRICE, Factor, Sweep, SweepError, Vary


def _quarter(s: Scenario) -> int:
    return max(1, s.users // 4)


def with_function(s: Scenario, **knobs: Any) -> Scenario:
    """`s` with its function's knobs changed (FunctionSpec checks them)."""
    return dataclasses.replace(s, function=dataclasses.replace(s.function, **knobs))


class Strategy(NamedTuple):
    name: str
    apply: Callable[[Scenario], Scenario]
    what: str  # for --help and the docs


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("on-demand", lambda s: s, "the function as the scenario has it"),
    Strategy(
        "provisioned",
        lambda s: with_function(s, provisioned_concurrency=_quarter(s)),
        "provisioned concurrency N = users/4: pre-initialised and kept, the calls past them spill over",
    ),
    Strategy(
        "managed-instances",
        lambda s: with_function(s, per_environment_max_concurrency=16),
        "Managed Instances, K = 16 calls per environment (the Python probe: a cache per process)",
    ),
    Strategy(
        "managed-instances-node",
        lambda s: with_function(s, per_environment_max_concurrency=16, runtime="nodejs22.x"),
        "the same on Node.js: one worker thread, so one cache per environment",
    ),
    Strategy(
        "reserved",
        lambda s: with_function(s, reserved_concurrency=_quarter(s)),
        "reserved concurrency N = users/4: fewer environments, the calls past N throttled",
    ),
    Strategy("shards", lambda s: dataclasses.replace(s, shards=4), "users hashed to K = 4 functions"),
)


def strategy_names() -> tuple[str, ...]:
    return tuple(s.name for s in STRATEGIES)


def pick(names: Sequence[str] | None = None) -> tuple[Strategy, ...]:
    """The strategies named (all, in STRATEGIES' order, when None); SweepError naming an unknown one."""
    if names is None:
        return STRATEGIES
    known = {s.name: s for s in STRATEGIES}
    out = []
    for name in names:
        if name not in known:
            raise SweepError(f"--strategies: {name!r} is not one of {', '.join(known)}")
        if known[name] in out:
            raise SweepError(f"--strategies: {name!r} is listed twice")
        out.append(known[name])
    if not out:
        raise SweepError("--strategies: name one at least")
    return tuple(out)


FACTOR = Factor("strategy", "text", strategy_names())


def compare_plan(
    base: Scenario,
    strategies: Sequence[Strategy] = STRATEGIES,
    *,
    runs: int = 3,
    base_seed: int = 1,
    price: MissCostPrice = NO_PRICE,
) -> Sweep:
    """A sweep over the strategies: `base` changed by each, each scenario checked (SweepError naming
    the strategy), `runs` runs each with the same seeds."""
    names = tuple(s.name for s in strategies)
    vary = Vary(FACTOR, names, f"strategy={','.join(names)}", numeric=False, log=False)
    scenarios = []
    for strategy in strategies:
        try:
            scenario = strategy.apply(base)
            scenario.validate()
        except ValueError as exc:  # every check's error is one (ConfigError, ScenarioError, ...)
            raise SweepError(f"strategy {strategy.name}: {exc}") from None
        scenarios.append(scenario)
    return Sweep(vary, tuple(scenarios), runs, base_seed, price)
