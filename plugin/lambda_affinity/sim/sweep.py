"""`lambda-affinity sweep`: one factor of a simulated scenario varied over a
list or a range, several runs per point, and the rates against the factor.

From Python, without the command line:

    from lambda_affinity.sim.simulate import Scenario
    from lambda_affinity.sim.sweep import Factor, Sweep, parse_vary

    keep_alive = Factor("keep-alive", "duration", field="model.keep_alive_s")
    vary = parse_vary("keep-alive=0..10m:lin:4", {"keep-alive": keep_alive})
    points = Sweep.over(vary, Scenario(users=20), runs=3).run()

The factor spec (`--vary`), the points' scenarios, the seeds, the cost
estimate and the aggregation are here; the files are sweep_files'. The
command (cli/sweep.py) builds the base Scenario from simulate's options, so a
sweep point is exactly the `simulate` run its options name. docs/sweep.md
describes the spec and the files.

The spec grammar is sweep_spec's.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

from ..core.schema import FunctionRow
from ..core.summary import MissCost, MissCostPrice, mean_sd, miss_cost, summarize
from ..errors import LambdaAffinityError
from ..platform.distributions import parse_distribution
from .executors import Executor, Serial, heaviest_first
from .functions import function_rows
from .simulate import Scenario, run
from .sweep_spec import (  # noqa: F401 -- re-exported: the spec's names were imported from here
    KINDS,
    MAX_POINTS,
    RANGE_FORMS,
    Factor,
    SpecError,
    SweepError,
    Vary,
    parse_vary,
)

# -- the points ----------------------------------------------------------------


def scenario_at(base: Scenario, factor: Factor, value: Any) -> Scenario:
    """`base` with the factor's field set to `value` (not validated: points() does)."""
    part, dot, name = factor.field.partition(".")
    if dot:  # a field of the model (model.keep_alive_s) or of the function (function.provisioned_concurrency)
        return dataclasses.replace(base, **{part: dataclasses.replace(getattr(base, part), **{name: value})})
    if not factor.field:
        raise SweepError(f"factor {factor.name!r} names no Scenario field: give points() its own `at`")
    return dataclasses.replace(base, **{factor.field: value})


def points(vary: Vary, base: Scenario, at: Callable[[Any], Scenario] | None = None) -> list[Scenario]:
    """One validated Scenario per value of `vary`: `at(value)` when given (the command reads a
    model file there), else `base` with the factor's field set. SweepError naming the bad point."""
    out = []
    for value, label in zip(vary.values, vary.labels, strict=True):
        try:
            scenario = at(value) if at is not None else scenario_at(base, vary.factor, value)
            scenario.validate()
        except LambdaAffinityError as exc:
            raise SweepError(f"--vary {vary.factor.name}={label}: {exc}") from None
        out.append(scenario)
    return out


# -- running -----------------------------------------------------------------


def run_seeds(base_seed: int, runs: int) -> list[int]:
    """Run r's seed, the same at every point (common random numbers: a
    difference between points is the factor's, not the draw's)."""
    rng = random.Random(base_seed)
    return [rng.getrandbits(64) for _ in range(runs)]


class Cost(TypedDict):
    points: int
    runs: int
    # runs x the sum over points of users x duration
    user_seconds: float
    # an estimate from the mean think, gap, round trip and service time
    invocations: int


def estimate_cost(scenarios: Sequence[Scenario], runs: int) -> Cost:
    user_seconds = invocations = 0.0
    for s in scenarios:
        mean = {k: parse_distribution(getattr(s, k), k).mean for k in ("think", "gap", "latency", "service")}
        per_request = (
            mean["latency"]
            + mean["service"]
            + ((mean["think"] * (s.burst - 1) + mean["gap"]) / s.burst if s.burst else mean["think"])
        )
        user_seconds += s.users * s.duration_s
        # a user sends at t=0 and then once per cycle until the duration ends
        invocations += s.users * (1 + s.duration_s / per_request if per_request > 0 else math.inf)
    return Cost(
        points=len(scenarios),
        runs=runs,
        user_seconds=runs * user_seconds,
        invocations=int(runs * invocations) if math.isfinite(invocations) else -1,
    )


class _RunRow(TypedDict):
    value: Any
    run: int
    seed: int
    users: int
    requests: int
    invalid: int
    environments: int
    cold_starts: int  # calls that waited for an init
    new_environment_calls: int  # first calls on environments initialised ahead (no wait, empty cache)
    max_share: float | None  # mean over users of the per-user max-share
    max_share_p50: float | None
    warm_cache_rate: float | None  # mean over users of the per-user warm-cache rate
    warm_cache_weighted: float | None  # hits / replies with a cache status
    cold_per_request: float | None
    saved_ms_per_million: float | None
    saved_usd_per_million: float | None


class RunRow(_RunRow, total=False):
    """One simulated run of one point: a row of sweep.csv (and of sweep.json, with `functions`)."""

    functions: list[FunctionRow]  # per shard, when the scenario has several (--shards K); not in the CSV


# sweep.csv's columns (but the factor's name): every run's figures, not the per-shard lists
RUN_COLUMNS = tuple(k for k in RunRow.__annotations__ if k != "functions")


# The charted metrics: (RunRow key, legend name).
METRICS = (
    ("max_share", "max-share (mean over users)"),
    ("warm_cache_rate", "warm-cache rate (mean over users)"),
    ("cold_per_request", "cold starts per request"),
)
# The priced metrics, when a miss cost is given: (RunRow key, legend name, chart scale).
SAVINGS = (
    ("saved_ms_per_million", "seconds saved per million requests", 1e-3),
    ("saved_usd_per_million", "USD saved per million requests", 1.0),
)
SPREADS = ("minmax", "sd")


class Stats(TypedDict):
    mean: float
    sd: float  # sample standard deviation across runs (0 with one run)
    min: float
    max: float
    n: int  # runs that gave a value


class PointResult(TypedDict):
    value: Any
    label: str
    runs: list[RunRow]
    stats: dict[str, Stats | None]


def stats(values: Sequence[float | None]) -> Stats | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    mean, sd = mean_sd(vals)
    return Stats(
        mean=mean,
        sd=sd,
        min=min(vals),
        max=max(vals),
        n=len(vals),
    )


def run_field(row: RunRow, key: str) -> Any:
    """A run's field by a name known only at run time (a TypedDict wants literals)."""
    return row[key]  # type: ignore[literal-required]


def measure(value: Any, scenario: Scenario, run_index: int, seed: int, price: MissCostPrice | None = None) -> RunRow:
    """One run of one point, summarised to a row."""
    res = run(scenario, seed=seed)
    doc = summarize(res.tracker.rows(), res.tracker.environments, per_user_limit=0)
    hit, warm = doc["hit_rate"], doc["warm_cache_rate"]
    cost: MissCost | None = miss_cost(doc, price.per_miss_ms, price.per_miss_usd) if price else None
    row = RunRow(
        value=value,
        run=run_index,
        seed=seed,
        users=doc["users"],
        requests=doc["requests"],
        invalid=doc["invalid"],
        environments=doc["environments"],
        cold_starts=doc["cold_starts"],
        new_environment_calls=doc["new_environment_calls"],
        max_share=hit["mean"] if hit else None,
        max_share_p50=hit["p50"] if hit else None,
        warm_cache_rate=warm["mean"] if warm else None,
        warm_cache_weighted=warm["weighted"] if warm else None,
        cold_per_request=doc["cold_starts"] / doc["requests"] if doc["requests"] else None,
        saved_ms_per_million=cost["saved_ms_per_million"] if cost else None,
        saved_usd_per_million=cost["saved_usd_per_million"] if cost else None,
    )
    if res.functions:
        row["functions"] = function_rows(res.functions, res.function_throttled)
    return row


NO_PRICE = MissCostPrice()  # misses not priced


def check_runs(runs: int) -> None:
    if runs < 1:
        raise SweepError("runs: must be >= 1")


def check_cost(cost: Cost, max_invocations: float) -> None:
    """SweepError when the estimate is over `max_invocations` (or unbounded: -1)."""
    if not 0 <= cost["invocations"] <= max_invocations:
        raise SweepError(
            f"about {cost['invocations']:,.0f} invocations estimated, over --max-invocations "
            f"{max_invocations:,.0f}: fewer points, runs or users, a shorter --duration, "
            "or a higher --max-invocations"
        )


@dataclass(frozen=True)
class Sweep:
    """A sweep ready to run: the factor's values, one scenario per value, the runs per point, the
    base seed (run r's seed is the same at every point) and the price of a miss, if any."""

    vary: Vary
    scenarios: tuple[Scenario, ...]
    runs: int = 3
    base_seed: int = 1
    price: MissCostPrice = NO_PRICE

    def __post_init__(self) -> None:
        check_runs(self.runs)
        if len(self.scenarios) != len(self.vary.values):
            raise SweepError(f"{len(self.scenarios)} scenarios for {len(self.vary.values)} values")

    @classmethod
    def over(
        cls,
        vary: Vary,
        base: Scenario,
        *,
        runs: int = 3,
        base_seed: int = 1,
        price: MissCostPrice = NO_PRICE,
        at: Callable[[Any], Scenario] | None = None,
    ) -> Sweep:
        """`base` at each value of `vary` (see points())."""
        check_runs(runs)
        return cls(vary, tuple(points(vary, base, at)), runs, base_seed, price)

    def cost(self) -> Cost:
        return estimate_cost(self.scenarios, self.runs)

    def run(self, progress: Callable[[str], None] | None = None, executor: Executor | None = None) -> list[PointResult]:
        """Every point `runs` times, on `executor` (default: here; the same results on any);
        `progress` hears a line as each run ends."""
        started, name, n, labels = time.perf_counter(), self.vary.factor.name, len(self.scenarios), self.vary.labels
        seeds = run_seeds(self.base_seed, self.runs)
        tasks = [
            MeasureTask(v, s, r, seed, self.price)
            for v, s in zip(self.vary.values, self.scenarios, strict=True)
            for r, seed in enumerate(seeds)
        ]

        def heard(i: int) -> None:
            if progress:
                point, r = divmod(i, self.runs)
                progress(
                    f"point {point + 1}/{n} {name}={labels[point]}, run {r + 1}/{self.runs}; "
                    f"{time.perf_counter() - started:.1f} s so far"
                )

        # a point's runs cost about its invocations (users 1..1000 differ a thousandfold)
        weights = [_weight(estimate_cost([t.scenario], 1)["invocations"]) for t in tasks]
        rows: list[RunRow] = heaviest_first(executor or Serial(), measure_task, tasks, weights, done=heard)
        keys = (
            [k for k, _ in METRICS]
            + [k for k, _, _ in SAVINGS]
            + ["environments", "max_share_p50", "new_environment_calls", "invalid"]
        )
        out: list[PointResult] = []
        for i, (value, label) in enumerate(zip(self.vary.values, labels, strict=True)):
            point_rows = rows[i * self.runs : (i + 1) * self.runs]
            stats_ = {k: stats([run_field(row, k) for row in point_rows]) for k in keys}
            out.append(PointResult(value=value, label=label, runs=point_rows, stats=stats_))
        return out


class MeasureTask(NamedTuple):
    """One run of one point: an executor's task."""

    value: Any
    scenario: Scenario
    run: int
    seed: int
    price: MissCostPrice


def _weight(invocations: int) -> float:
    return math.inf if invocations < 0 else invocations  # -1: unbounded (no think time)


def measure_task(_shared: None, task: MeasureTask) -> RunRow:
    return measure(*task)
