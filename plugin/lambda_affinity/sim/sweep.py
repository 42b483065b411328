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

Spec grammar (NAME is a simulate option without its dashes, `-` or `_`):

    NAME=V1,V2,...             a list (any factor: numbers, distributions, policies, model files)
    NAME=START..STOP:step:S    START, START+S, ... up to STOP (numeric factors)
    NAME=START..STOP:lin:N     N values evenly spaced, both ends included
    NAME=START..STOP:log:N     N values evenly spaced on a log scale (START > 0); the chart's x axis is log
    NAME=START..STOP           integer factors only: every integer (step 1)

An integer factor's range values are rounded, repeats dropped.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

from ..core.summary import MissCost, MissCostPrice, miss_cost, summarize
from ..errors import LambdaAffinityError
from ..platform.distributions import DurationError, parse_distribution, parse_duration
from .executors import Executor, Serial
from .simulate import Scenario, run

MAX_POINTS = 50
KINDS = ("int", "float", "duration", "distribution", "text")


@dataclass(frozen=True)
class Factor:
    """An option a sweep may vary: its name as typed (`keep-alive`), its
    value kind and, for a choice, the allowed values. `kind` decides what a
    spec may say: ranges for int, float, duration (seconds, or with units: 10m) and
    distribution (fixed durations).
    `field` is the Scenario field a value sets: `users`, `duration_s`, a
    model field as `model.keep_alive_s`, or `model` (a ModelConfig value)."""

    name: str
    kind: str
    choices: tuple[str, ...] | None = None
    field: str = ""


@dataclass(frozen=True)
class Vary:
    """A parsed `--vary`: the factor and its values (int, float or str, as
    the option takes them), in the order given."""

    factor: Factor
    values: tuple[Any, ...]
    spec: str
    # whether the values are numbers (a numeric x axis) and the spec asked for log spacing
    numeric: bool
    log: bool

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(_label(v) for v in self.values)


def _label(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class SweepError(LambdaAffinityError, ValueError):
    """A sweep that cannot run: a bad point, too few runs, a cost over the limit."""


class SpecError(SweepError):
    """A `--vary` spec that does not parse; the message names the spec and what is wrong in it."""


def parse_vary(spec: str, factors: Mapping[str, Factor]) -> Vary:
    """`NAME=VALUES` -> Vary. `factors` maps every accepted name (aliases
    too) to its Factor. Raises SpecError, a ValueError naming the spec and
    what is wrong in it."""
    where = f"--vary {spec!r}"
    name, eq, body = spec.partition("=")
    name = name.strip()
    if not eq or not name:
        raise SpecError(f"{where}: expected NAME=VALUES, e.g. users=1,10,100 or users=1..1000:log:7")
    factor = factors.get(name) or factors.get(name.replace("_", "-"))
    if factor is None:
        known = sorted({f.name for f in factors.values()})
        raise SpecError(f"{where}: unknown factor {name!r} (one of: {', '.join(known)})")
    body = body.strip()
    if not body:
        raise SpecError(f"{where}: no values after '='")
    if ".." in body and factor.kind != "text":
        values, log = _parse_range(body, factor, where)
    else:
        if ".." in body:
            raise SpecError(f"{where}: {factor.name} takes a list, not a range (e.g. {factor.name}=A,B)")
        values, log = _parse_list(body, factor, where), False
    if len(values) > MAX_POINTS:
        raise SpecError(f"{where}: {len(values)} points; at most {MAX_POINTS}")
    numeric = all(isinstance(v, (int, float)) for v in values) or (
        factor.kind == "distribution" and all(_is_number(v) for v in values)
    )
    return Vary(factor, tuple(values), spec, numeric, log)


def _is_number(text: Any) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _convert(text: str, factor: Factor, where: str) -> Any:
    if factor.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise SpecError(f"{where}: {text!r} is not a whole number ({factor.name} takes one)") from None
    if factor.kind == "float":
        return _finite_number(text, where)
    if factor.kind == "duration":
        return _duration(text, where)
    if factor.kind == "distribution":
        try:
            parse_distribution(text, factor.name)
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
        return text
    if factor.choices is not None and text not in factor.choices:
        raise SpecError(f"{where}: {text!r} is not one of {', '.join(factor.choices)}")
    return text


def _parse_list(body: str, factor: Factor, where: str) -> list:
    values: list = []
    for i, item in enumerate(body.split(","), 1):
        item = item.strip()
        if not item:
            raise SpecError(f"{where}: value {i} is empty")
        value = _convert(item, factor, where)
        if value in values:
            raise SpecError(f"{where}: {item!r} is listed twice")
        values.append(value)
    return values


def _range_number(text: str, what: str, where: str, factor: Factor) -> float:
    if factor.kind in ("duration", "distribution"):  # seconds, or with units (10m)
        return _duration(text, where, f"range {what} ")
    return _finite_number(text, where, f"range {what} ")


def _duration(text: str, where: str, what: str = "") -> float:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise SpecError(f"{where}: {what}{exc}") from None


def _finite_number(text: str, where: str, what: str = "") -> float:
    """`text` as a finite float; SpecError naming `where` (and `what`, e.g. "range start ") if not."""
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{where}: {what}{text!r} is not a number") from None
    if not math.isfinite(value):
        raise SpecError(f"{where}: {what}{text!r} is not a finite number")
    return value


RANGE_FORMS = "START..STOP:step:S, START..STOP:lin:N or START..STOP:log:N"


def _parse_range(body: str, factor: Factor, where: str) -> tuple[list, bool]:
    """The range's values, and whether they are log-spaced."""
    bounds, _, form = body.partition(":")
    lo_text, _, hi_text = bounds.partition("..")
    if ".." in hi_text:
        raise SpecError(f"{where}: one '..' per range ({RANGE_FORMS})")
    lo = _range_number(lo_text.strip(), "START", where, factor)
    hi = _range_number(hi_text.strip(), "STOP", where, factor)
    if not lo < hi:
        raise SpecError(f"{where}: range START must be below STOP, got {lo:g}..{hi:g}")
    mode, arg = _range_form(form, factor, where)
    raw = _stepped(lo, hi, arg, where, factor) if mode == "step" else _spaced(lo, hi, mode, arg, where)
    return _range_values(raw, factor, where), mode == "log"


def _range_form(form: str, factor: Factor, where: str) -> tuple[str, str]:
    """(step | lin | log, its argument); an integer factor's bare range steps by 1."""
    if not form:
        if factor.kind != "int":
            raise SpecError(f"{where}: say how to step through the range: {RANGE_FORMS}")
        return "step", "1"
    mode, colon, arg = form.partition(":")
    if not colon or mode not in ("step", "lin", "log"):
        raise SpecError(f"{where}: {form!r} is not a range form: {RANGE_FORMS}")
    return mode, arg


def _stepped(lo: float, hi: float, arg: str, where: str, factor: Factor) -> list[float]:
    step = _range_number(arg, "step", where, factor)
    if step <= 0:
        raise SpecError(f"{where}: range step must be > 0, got {arg}")
    count = math.floor((hi - lo) / step + 1e-9) + 1
    if count > MAX_POINTS:
        raise SpecError(f"{where}: {count} points; at most {MAX_POINTS} (a larger step, or :log:N)")
    return [lo + i * step for i in range(count)]


def _spaced(lo: float, hi: float, mode: str, arg: str, where: str) -> list[float]:
    """N values from lo to hi, evenly spaced (lin) or evenly on a log scale (log)."""
    try:
        count = int(arg)
    except ValueError:
        raise SpecError(f"{where}: range point count {arg!r} is not a whole number") from None
    if not 2 <= count <= MAX_POINTS:
        raise SpecError(f"{where}: range point count must be 2..{MAX_POINTS}, got {count}")
    if mode == "lin":
        return [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    if lo <= 0:
        raise SpecError(f"{where}: a log range needs START > 0, got {lo:g}")
    a, b = math.log10(lo), math.log10(hi)
    raw = [10 ** (a + (b - a) * i / (count - 1)) for i in range(count)]
    raw[0], raw[-1] = lo, hi  # exactly the ends, not 10**log10(x)
    return raw


def _range_values(raw: list[float], factor: Factor, where: str) -> list:
    """The factor's values for the range's numbers: integers rounded, repeats dropped."""
    values: list = []
    for r in raw:
        v: Any
        if factor.kind == "int":
            v = round(r)
        else:
            v = round(r, 9)  # 0.30000000000000004 -> 0.3 in files and labels
        if factor.kind == "distribution":
            v = _convert(f"{v:g}", factor, where)
        if v not in values:
            values.append(v)
    return values


# -- the points ----------------------------------------------------------------


def scenario_at(base: Scenario, factor: Factor, value: Any) -> Scenario:
    """`base` with the factor's field set to `value` (not validated: points() does)."""
    if factor.field.startswith("model."):
        return dataclasses.replace(base, model=base.model.replace(**{factor.field[len("model.") :]: value}))
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


class RunRow(TypedDict):
    """One simulated run of one point: a row of sweep.csv."""

    value: Any
    run: int
    seed: int
    users: int
    requests: int
    invalid: int
    environments: int
    cold_starts: int
    max_share: float | None  # mean over users of the per-user max-share
    max_share_p50: float | None
    warm_cache_rate: float | None  # mean over users of the per-user warm-cache rate
    warm_cache_weighted: float | None  # hits / replies with a cache status
    cold_per_request: float | None
    saved_ms_per_million: float | None
    saved_usd_per_million: float | None


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
    return Stats(
        mean=statistics.fmean(vals),
        sd=statistics.stdev(vals) if len(vals) > 1 else 0.0,
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
    return RunRow(
        value=value,
        run=run_index,
        seed=seed,
        users=doc["users"],
        requests=doc["requests"],
        invalid=doc["invalid"],
        environments=doc["environments"],
        cold_starts=doc["cold_starts"],
        max_share=hit["mean"] if hit else None,
        max_share_p50=hit["p50"] if hit else None,
        warm_cache_rate=warm["mean"] if warm else None,
        warm_cache_weighted=warm["weighted"] if warm else None,
        cold_per_request=doc["cold_starts"] / doc["requests"] if doc["requests"] else None,
        saved_ms_per_million=cost["saved_ms_per_million"] if cost else None,
        saved_usd_per_million=cost["saved_usd_per_million"] if cost else None,
    )


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

        rows: list[RunRow] = (executor or Serial()).map(measure_task, tasks, done=heard)
        keys = [k for k, _ in METRICS] + [k for k, _, _ in SAVINGS] + ["environments", "max_share_p50"]
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


def measure_task(_shared: None, task: MeasureTask) -> RunRow:
    return measure(*task)
