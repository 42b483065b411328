"""The files and the console table of a sweep: sweep.csv, sweep.json, the charts of sweep.html and
sweep.svg (docs/sweep.md). Pure: text in, text out; the command writes the files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.schema import Reproduce
from ..core.summary import MissCostPrice
from ..platform.config import FunctionSpec
from ..platform.managed import default_cache_scope
from ..report import charts
from .simulate import Scenario
from .sweep import METRICS, RUN_COLUMNS, SAVINGS, Cost, Factor, PointResult, Stats, Vary, run_field, run_seeds

# what sweep_files returns, in this order
SWEEP_FILES = ("sweep.csv", "sweep.json", "sweep.html", "sweep.svg")
CSV_FIELDS = ("factor",) + RUN_COLUMNS


def to_csv(vary: Vary, points: Sequence[PointResult]) -> str:
    """One row per point and run (the spread is computed from these)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for p in points:
        for row in p["runs"]:
            cells = (run_field(row, k) for k in RUN_COLUMNS)
            w.writerow([vary.factor.name, *("" if c is None else c for c in cells)])
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
    price: MissCostPrice | None = None,
    reproduce: Reproduce | None = None,
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
            {"per_miss_ms": price.per_miss_ms, "per_miss_usd": price.per_miss_usd} if price and price.given else None
        ),
        "points": list(points),
    }
    if reproduce is not None:
        doc["reproduce"] = reproduce
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


def _some(st: Stats | None) -> bool:
    return st is not None and st["max"] > 0


def _columns(points: Sequence[PointResult]) -> list[tuple[str, str, str, float]]:
    """(stats key, heading, format, scale) of the table columns; the priced ones only when priced."""
    cols = [(k, name, ".3f", 1.0) for k, name in METRICS] + [("environments", "environments", ",.0f", 1.0)]
    # calls refused (reserved concurrency, account limit, scale rate): only when some run had any
    cols += (
        [("invalid", "throttled calls", ",.0f", 1.0)] if any(_some(p["stats"].get("invalid")) for p in points) else []
    )
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


def sweep_files(
    vary: Vary,
    points: Sequence[PointResult],
    *,
    description: str,
    runs: int,
    base_seed: int,
    spread: str,
    scenario: Mapping[str, Any],
    cost: Cost,
    price: MissCostPrice | None = None,
    reproduce: Reproduce | None = None,
    title: str | None = None,
) -> dict[str, str]:
    """{file name: text} of the four files a sweep writes; `title` the chart's (default: the sweep's)."""
    chart = rates_chart(vary, points, title or f"lambda-affinity sweep: {vary.factor.name}", spread, runs)
    texts = (
        to_csv(vary, points),
        to_json(
            vary,
            points,
            runs=runs,
            base_seed=base_seed,
            spread=spread,
            scenario=scenario,
            cost=cost,
            price=price,
            reproduce=reproduce,
        ),
        html_report(vary, points, chart, description, spread, runs),
        # a file viewed on its own (an <img>, GitHub's dark mode) has no page colour to take: paint a light one
        charts.render_svg(chart, theme="light") + "\n",
    )
    return dict(zip(SWEEP_FILES, texts, strict=True))


def describe(vary: Vary, base: Scenario, runs: int, base_seed: int, model_source: str | None = None) -> str:
    """The sweep in a sentence: the factor's values, then the rest of the scenario (the factor left out)."""
    m = base.model
    routers = f" ({m.routers} routers, {m.router_policy} in each)" if m.policy == "partitioned" else ""
    parts = (
        ("users", f"{base.users} users"),
        ("duration_s", f"{base.duration_s:g} s"),
        ("think", f"think {base.think}"),
        ("burst", f"bursts of {base.burst} with gap {base.gap}" if base.burst else ""),
        ("start", f"start {base.start}"),
        ("latency", f"round trip {base.latency}"),
        ("service", f"service {base.service}"),
        ("deploy_every", f"a deploy every {base.deploy_every}" if base.deploy_every else ""),
        ("deploy_at", f"deploys at {base.deploy_at}" if base.deploy_at else ""),
        ("model.policy", f"policy {m.policy}{routers}"),
        ("model.keep_alive_s", f"keep-alive {_seconds(m.keep_alive_s)}"),
        ("model.busy_overhead_s", f"busy overhead {m.busy_overhead_s:g} s"),
        ("model", f"--model {model_source}" if model_source else ""),
        *_managed_parts(base.function),
        ("function.reserved_concurrency", _given("reserved", base.function.reserved_concurrency)),
        ("function.provisioned_concurrency", _given("provisioned", base.function.provisioned_concurrency, 0)),
        ("shards", f"{base.shards} shards" if base.shards != 1 else ""),
        ("cache_size", _given("cache size", base.cache_size, Scenario.cache_size)),
        ("cache_ttl_s", _given("cache TTL", base.cache_ttl_s, Scenario.cache_ttl_s, " s")),
    )
    rest = ", ".join(text for field, text in parts if text and field != vary.factor.field)
    return f"{vary.factor.name} = {', '.join(vary.labels)}; {rest}. {runs} runs per point (base seed {base_seed})."


def _seconds(value: float | str) -> str:
    """A duration field's value in a sentence: `600 s`, or a distribution's text (`300:900`)."""
    return value if isinstance(value, str) else f"{value:g} s"


def _managed_parts(f: FunctionSpec) -> tuple:
    """A Managed Instances function's knobs, as describe() words them (none for on-demand)."""
    k = f.per_environment_max_concurrency
    if k is None:
        return ()
    return (
        ("function.per_environment_max_concurrency", f"Managed Instances, K {k}"),
        ("function.cache_scope", f"a cache per {f.cache_scope or default_cache_scope(f.runtime)}"),
        ("function.runtime", f"runtime {f.runtime}" if f.runtime else ""),
    )


def _given(name: str, value: Any, default: Any = None, unit: str = "") -> str:
    """`name value` for the description, when the value is not the default (the seed's text unchanged)."""
    return "" if value == default else f"{name} {value:g}{unit}"


def scenario_doc(base: Scenario, factor: Factor) -> dict:
    """The base Scenario as sweep.json's `scenario`: each point has its own value of the factor, so
    the base's is left out."""
    doc = dataclasses.asdict(base)
    part, dot, name = factor.field.partition(".")
    if dot:  # model.keep_alive_s, function.provisioned_concurrency
        doc[part].pop(name)
    else:
        doc.pop(factor.field, None)
    return doc
