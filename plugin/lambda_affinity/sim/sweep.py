"""`lambda-affinity sweep`: one factor of a simulated scenario varied over a
list or a range, several runs per point, and the rates against the factor.

The factor spec (`--vary`), the seeds, the cost estimate, the aggregation and
the CSV / JSON / chart renderings are here; the options and how one becomes a
Scenario are simulate's (cli.py), so a sweep point is exactly the `simulate`
run its options name. docs/sweep.md describes the spec and the files.

Spec grammar (NAME is a simulate option without its dashes, `-` or `_`):

    NAME=V1,V2,...             a list (any factor: numbers, distributions, policies, model files)
    NAME=START..STOP:step:S    START, START+S, ... up to STOP (numeric factors)
    NAME=START..STOP:lin:N     N values evenly spaced, both ends included
    NAME=START..STOP:log:N     N values evenly spaced on a log scale (START > 0); the chart's x axis is log
    NAME=START..STOP           integer factors only: every integer (step 1)

An integer factor's range values are rounded, repeats dropped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from ..core.summary import MissCost, miss_cost, summarize
from ..platform.distributions import parse_distribution
from ..report import charts
from .simulate import Scenario, run

MAX_POINTS = 50
KINDS = ("int", "float", "distribution", "text")


@dataclass(frozen=True)
class Factor:
    """An option a sweep may vary: its name as typed (`keep-alive`), its
    value kind and, for a choice, the allowed values. `kind` decides what a
    spec may say: ranges for int, float and distribution (fixed seconds)."""

    name: str
    kind: str
    choices: tuple[str, ...] | None = None


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


class SpecError(ValueError):
    pass


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


def _range_number(text: str, what: str, where: str) -> float:
    return _finite_number(text, where, f"range {what} ")


def _finite_number(text: str, where: str, what: str = "") -> float:
    """`text` as a finite float; SpecError naming `where` (and `what`, e.g. "range start ") if not."""
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{where}: {what}{text!r} is not a number") from None
    if not math.isfinite(value):
        raise SpecError(f"{where}: {what}{text!r} is not a finite number")
    return value


def _parse_range(body: str, factor: Factor, where: str) -> tuple[list, bool]:
    """The range's values, and whether they are log-spaced."""
    forms = "START..STOP:step:S, START..STOP:lin:N or START..STOP:log:N"
    bounds, _, form = body.partition(":")
    lo_text, _, hi_text = bounds.partition("..")
    if ".." in hi_text:
        raise SpecError(f"{where}: one '..' per range ({forms})")
    lo, hi = _range_number(lo_text.strip(), "START", where), _range_number(hi_text.strip(), "STOP", where)
    if not lo < hi:
        raise SpecError(f"{where}: range START must be below STOP, got {lo:g}..{hi:g}")
    if not form:
        if factor.kind != "int":
            raise SpecError(f"{where}: say how to step through the range: {forms}")
        mode, arg = "step", "1"
    else:
        mode, colon, arg = form.partition(":")
        if not colon or mode not in ("step", "lin", "log"):
            raise SpecError(f"{where}: {form!r} is not a range form: {forms}")
    if mode == "step":
        step = _range_number(arg, "step", where)
        if step <= 0:
            raise SpecError(f"{where}: range step must be > 0, got {arg}")
        count = math.floor((hi - lo) / step + 1e-9) + 1
        if count > MAX_POINTS:
            raise SpecError(f"{where}: {count} points; at most {MAX_POINTS} (a larger step, or :log:N)")
        raw = [lo + i * step for i in range(count)]
    else:
        try:
            count = int(arg)
        except ValueError:
            raise SpecError(f"{where}: range point count {arg!r} is not a whole number") from None
        if not 2 <= count <= MAX_POINTS:
            raise SpecError(f"{where}: range point count must be 2..{MAX_POINTS}, got {count}")
        if mode == "lin":
            raw = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
        else:
            if lo <= 0:
                raise SpecError(f"{where}: a log range needs START > 0, got {lo:g}")
            a, b = math.log10(lo), math.log10(hi)
            raw = [10 ** (a + (b - a) * i / (count - 1)) for i in range(count)]
            raw[0], raw[-1] = lo, hi  # exactly the ends, not 10**log10(x)
    values: list = []
    for r in raw:
        if factor.kind == "int":
            v: Any = round(r)
        else:
            v = round(r, 9)  # 0.30000000000000004 -> 0.3 in files and labels
            if factor.kind == "distribution":
                v = f"{v:g}"
        v = _convert(str(v), factor, where) if factor.kind == "distribution" else v
        if v not in values:
            values.append(v)
    return values, mode == "log"


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


def _field(row: RunRow, key: str) -> Any:
    """A run's field by a name known only at run time (a TypedDict wants literals)."""
    return row[key]  # type: ignore[literal-required]


def measure(
    value: Any, scenario: Scenario, run_index: int, seed: int, per_miss_ms: float | None, per_miss_usd: float | None
) -> RunRow:
    res = run(scenario, seed=seed)
    doc = summarize(res.tracker.rows(), res.tracker.environments, per_user_limit=0)
    hit, warm = doc["hit_rate"], doc["warm_cache_rate"]
    cost: MissCost | None = miss_cost(doc, per_miss_ms, per_miss_usd)
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


def sweep(
    vary: Vary,
    scenarios: Sequence[Scenario],
    runs: int,
    base_seed: int,
    per_miss_ms: float | None = None,
    per_miss_usd: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[PointResult]:
    """Every point (one scenario per value of `vary`) `runs` times."""
    if runs < 1:
        raise ValueError("runs: must be >= 1")
    if len(scenarios) != len(vary.values):
        raise ValueError(f"{len(scenarios)} scenarios for {len(vary.values)} values")
    seeds = run_seeds(base_seed, runs)
    started = time.perf_counter()
    out: list[PointResult] = []
    for i, (value, label, scenario) in enumerate(zip(vary.values, vary.labels, scenarios, strict=True), 1):
        rows = []
        for r, seed in enumerate(seeds):
            rows.append(measure(value, scenario, r, seed, per_miss_ms, per_miss_usd))
            if progress:
                progress(
                    f"point {i}/{len(scenarios)} {vary.factor.name}={label}, run {r + 1}/{runs}: "
                    f"{rows[-1]['requests']} requests; {time.perf_counter() - started:.1f} s so far"
                )
        keys = [k for k, _ in METRICS] + [k for k, _, _ in SAVINGS] + ["environments", "max_share_p50"]
        out.append(
            PointResult(
                value=value, label=label, runs=rows, stats={k: stats([_field(row, k) for row in rows]) for k in keys}
            )
        )
    return out


# -- files -------------------------------------------------------------------

CSV_FIELDS = ("factor",) + tuple(RunRow.__annotations__)


def to_csv(vary: Vary, points: Sequence[PointResult]) -> str:
    """One row per point and run (the spread is computed from these)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for p in points:
        for row in p["runs"]:
            w.writerow(
                [vary.factor.name, *("" if _field(row, k) is None else _field(row, k) for k in RunRow.__annotations__)]
            )
    return buf.getvalue()


def to_json(
    vary: Vary,
    points: Sequence[PointResult],
    *,
    runs: int,
    base_seed: int,
    spread: str,
    scenario: Mapping[str, Any],
    cost: Cost,
    per_miss_ms: float | None,
    per_miss_usd: float | None,
) -> str:
    """The whole sweep; no wall-clock figure in it, so one seed gives one file."""
    doc = {
        "factor": vary.factor.name,
        "spec": vary.spec,
        "values": list(vary.values),
        "labels": list(vary.labels),
        "runs": runs,
        "base_seed": base_seed,
        "seeds": run_seeds(base_seed, runs),
        "spread": spread,
        "scenario": dict(scenario),
        "cost": dict(cost),
        "miss_cost": (
            {"per_miss_ms": per_miss_ms, "per_miss_usd": per_miss_usd}
            if per_miss_ms is not None or per_miss_usd is not None
            else None
        ),
        "points": list(points),
    }
    return json.dumps(doc, indent=1) + "\n"


def _point(x: float, st: Stats | None, spread: str, scale: float = 1.0) -> charts.Point | None:
    if st is None:
        return None
    mean = st["mean"] * scale
    if spread == "sd":
        return charts.Point(x, mean, mean - st["sd"] * scale, mean + st["sd"] * scale)
    return charts.Point(x, mean, st["min"] * scale, st["max"] * scale)


def _x_axis(vary: Vary) -> tuple[charts.Axis, list[float]]:
    if vary.numeric:
        return charts.Axis(vary.factor.name, log=vary.log), [float(v) for v in vary.values]
    return charts.Axis(vary.factor.name, categories=list(vary.labels)), [float(i) for i in range(len(vary.values))]


def _spread_words(spread: str, runs: int) -> str:
    return f"{'mean +- sd' if spread == 'sd' else 'min..max'} over {runs} runs"


def rates_chart(vary: Vary, points: Sequence[PointResult], title: str, spread: str, runs: int) -> charts.Chart:
    """Max-share, warm-cache rate and cold starts per request against the factor."""
    x_axis, xs = _x_axis(vary)
    series = []
    for key, name in METRICS:
        pts = [_point(x, p["stats"][key], spread) for x, p in zip(xs, points, strict=True)]
        series.append(
            charts.Series(name, [p for p in pts if p is not None], dashed=key == "cold_per_request", line=vary.numeric)
        )
    return charts.Chart(
        title,
        series,
        x=x_axis,
        y=charts.Axis(f"rate ({_spread_words(spread, runs)})", lo=0, hi=1),
        spread="band" if vary.numeric else "whiskers",
    )


def savings_charts(vary: Vary, points: Sequence[PointResult], spread: str, runs: int) -> list[charts.Chart]:
    """Time and money the warm cache saves per million requests, when a miss cost was given."""
    x_axis, xs = _x_axis(vary)
    charted = []
    for key, name, scale in SAVINGS:
        pts = [_point(x, p["stats"][key], spread, scale) for x, p in zip(xs, points, strict=True)]
        if any(pts):
            charted.append(
                charts.Chart(
                    f"{name} ({_spread_words(spread, runs)})",
                    [charts.Series(name, [p for p in pts if p is not None], line=vary.numeric)],
                    x=x_axis,
                    y=charts.Axis(name, lo=0),
                    height=280,
                    spread="band" if vary.numeric else "whiskers",
                )
            )
    return charted


def _cell(st: Stats | None, spread: str, fmt: str, scale: float = 1.0) -> str:
    if st is None:
        return "-"
    if spread == "sd":
        return f"{st['mean'] * scale:{fmt}} \u00b1 {st['sd'] * scale:{fmt}}"
    return f"{st['mean'] * scale:{fmt}} ({st['min'] * scale:{fmt}}..{st['max'] * scale:{fmt}})"


def _columns(points: Sequence[PointResult]) -> list[tuple[str, str, str, float]]:
    """(stats key, heading, format, scale) of the table columns; the priced ones only when priced."""
    cols = [(k, name, ".3f", 1.0) for k, name in METRICS] + [("environments", "environments", ",.0f", 1.0)]
    cols += [
        (k, name, ",.0f" if k.endswith("ms_per_million") else ",.2f", scale)
        for k, name, scale in SAVINGS
        if any(p["stats"][k] for p in points)
    ]
    return cols


def html_report(
    vary: Vary, points: Sequence[PointResult], chart: charts.Chart, description: str, spread: str, runs: int
) -> str:
    cols = _columns(points)
    how = "mean \u00b1 sd" if spread == "sd" else "mean (min..max)"
    header = [vary.factor.name] + [f"{name}, {how}" for _, name, _, _ in cols]
    rows = [[p["label"]] + [_cell(p["stats"][k], spread, fmt, scale) for k, _, fmt, scale in cols] for p in points]
    items: list = [description, chart]
    items += savings_charts(vary, points, spread, runs)
    items += [
        charts.Markup(f"<h2>Per point, over {runs} runs</h2>"),
        charts.html_table(header, rows),
        "sweep.csv holds every run; sweep.json the same with the scenario, the seeds and these statistics.",
    ]
    return charts.html_page(chart.title, items)


def render_points(vary: Vary, points: Sequence[PointResult], spread: str = "minmax") -> str:
    """The console table: each metric's mean and spread over runs."""
    cols = _columns(points)
    cells = [[p["label"]] + [_cell(p["stats"][k], spread, fmt, scale) for k, _, fmt, scale in cols] for p in points]
    heads = [vary.factor.name] + [name for _, name, _, _ in cols]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(heads)]
    return "\n".join("  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)) for row in [heads] + cells)
