"""What the affinity dashboard and the HTML report read from a run: the
headline figures of a summary document, and a bounded time series of them.

Pure: no I/O, no Locust. The plugin samples the run's summary document
(core.schema.SummaryDoc, docs/schema.md) every few seconds into a Timeline;
the web UI serves it as JSON and draws it live, the HTML report draws it
static. Both draw the charts named in CHARTS, so the two always agree on
what is plotted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from ..core.schema import SummaryDoc
from ..errors import LambdaAffinityError
from .charts import Axis, Chart, Point, Series

DEFAULT_MAX_POINTS = 240  # a 2 s sampling keeps full resolution for 8 minutes, then halves


class Figure(TypedDict):
    """One headline figure: `kind` "rate" (0..1, or None when not measured),
    "count", or "text" (already formatted)."""

    key: str
    label: str
    value: float | int | str | None
    kind: str


class DocumentError(LambdaAffinityError, ValueError):
    """A file or document given as an affinity report is not one (a summary, a Locust HTML report)."""


def _need(doc: Mapping, key: str):
    try:
        return doc[key]
    except KeyError:
        raise DocumentError(f"not an affinity summary document: no {key!r} key") from None


def _stat(doc: Mapping, key: str, stat: str) -> float | None:
    dist = _need(doc, key)  # None when nothing was measured
    return None if dist is None else dist[stat]


def duration_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds:,.1f} s"


def _savings(doc: SummaryDoc) -> tuple[tuple[str, str, str, str], ...]:
    """What the warm cache saves per million replies, when a cost of a miss
    was given (summary.miss_cost): figures of kind "text", formatted here once
    for the dashboard and the report."""
    cost = doc.get("miss_cost")
    if not cost:
        return ()
    saved_ms, saved_usd = cost["saved_ms_per_million"], cost["saved_usd_per_million"]
    out = []
    if saved_ms is not None:
        out.append(
            ("saved_time_per_million", "Time the cache saves per 1M replies", duration_text(saved_ms / 1000), "text")
        )
    if saved_usd is not None:
        out.append(("saved_usd_per_million", "Money the cache saves per 1M replies", f"${saved_usd:,.2f}", "text"))
    return tuple(out)


def headline(doc: SummaryDoc) -> list[Figure]:
    """The dashboard's and the report's headline figures, in display order."""
    figures = (
        ("users", "Users", _need(doc, "users"), "count"),
        ("mean_max_share", "Mean max-share", _stat(doc, "hit_rate", "mean"), "rate"),
        ("median_max_share", "Median max-share", _stat(doc, "hit_rate", "p50"), "rate"),
        ("mean_warm_rate", "Mean warm-cache rate", _stat(doc, "warm_cache_rate", "mean"), "rate"),
        ("environments", "Environments", _need(doc, "environments"), "count"),
        ("cold_starts", "Cold starts", _need(doc, "cold_starts"), "count"),
        ("new_environment_calls", "New-environment calls", _need(doc, "new_environment_calls"), "count"),
        ("requests", "Valid replies", _need(doc, "requests"), "count"),
        ("invalid", "Invalid replies", _need(doc, "invalid"), "count"),
        *_savings(doc),
    )
    return [Figure(key=k, label=label, value=v, kind=kind) for k, label, v, kind in figures]


@dataclass(frozen=True)
class TimelinePoint:
    """The run at time `t` (epoch seconds). Gauges are as of `t`; the
    interval counts cover the `span_s` seconds that end at `t`. JSON-able
    with dataclasses.asdict."""

    t: float
    span_s: float
    users: int
    mean_max_share: float | None
    median_max_share: float | None
    mean_warm_rate: float | None
    environments: int  # distinct environments seen so far
    cold_starts: int  # in the interval
    valid: int  # valid replies in the interval
    invalid: int  # invalid replies in the interval
    new_environment_calls: int = 0  # in the interval: first calls on environments initialised ahead
    samples: int = 1  # how many samples the point stands for (more once the timeline has halved)


class ChartSeries(TypedDict):
    field: str
    label: str


class ChartSpec(TypedDict):
    """A chart of the timeline: `y_max` 1.0 for rates, None to fit the data."""

    key: str
    title: str
    series: list[ChartSeries]
    y_max: float | None


CHARTS: list[ChartSpec] = [
    ChartSpec(
        key="rates",
        title="Hit rates (per-user mean)",
        y_max=1.0,
        series=[
            ChartSeries(field="mean_max_share", label="max-share"),
            ChartSeries(field="mean_warm_rate", label="warm-cache"),
        ],
    ),
    ChartSpec(
        key="environments",
        title="Environments and users",
        y_max=None,
        series=[ChartSeries(field="environments", label="environments"), ChartSeries(field="users", label="users")],
    ),
    ChartSpec(
        key="cold_starts",
        title="Cold starts per interval",
        y_max=None,
        series=[
            ChartSeries(field="cold_starts", label="cold starts"),
            ChartSeries(field="new_environment_calls", label="new-environment calls"),
            ChartSeries(field="invalid", label="invalid replies"),
        ],
    ),
]


class Timeline:
    """At most `max_points` points. When full, neighbouring points merge in
    pairs (the resolution halves) and each new point then gathers as many
    samples as an old one, so the spacing stays even and memory bounded
    however long the run. The newest sample is always shown at once: it is
    merged into the last point, which moves forward in time. `close` adds
    the run's last point and ends the timeline: a reader then knows it holds
    the final numbers."""

    def __init__(self, start: float | None = None, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if max_points < 2:
            raise ValueError(f"a timeline needs room for at least 2 points, got max_points={max_points}")
        self.max_points = max_points
        self.start = start
        self.stride = 1  # samples per point
        self.points: list[TimelinePoint] = []
        self._totals = (0, 0, 0, 0)  # cumulative cold starts, valid, invalid, new-environment calls at the last sample
        self._last_t = start
        self.closed = False

    def add(self, t: float, doc: SummaryDoc) -> TimelinePoint:
        """Take a sample of the summary document `doc` at time `t`; returns the point it went into."""
        if self.closed:
            raise ValueError("the timeline is closed: its run is over")
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"timeline sample at {t} is earlier than the previous one at {self._last_t}")
        totals = (
            _need(doc, "cold_starts"),
            _need(doc, "requests"),
            _need(doc, "invalid"),
            _need(doc, "new_environment_calls"),
        )
        if any(now < before for now, before in zip(totals, self._totals, strict=True)):
            raise ValueError(
                f"cumulative counts (cold starts, valid, invalid, new-environment calls) went down from {self._totals} "
                f"to {totals}: a new run needs a new timeline"
            )
        cold, valid, invalid, fresh = (now - before for now, before in zip(totals, self._totals, strict=True))
        span = 0.0 if self._last_t is None else t - self._last_t
        point = TimelinePoint(
            t=t,
            span_s=span,
            users=_need(doc, "users"),
            mean_max_share=_stat(doc, "hit_rate", "mean"),
            median_max_share=_stat(doc, "hit_rate", "p50"),
            mean_warm_rate=_stat(doc, "warm_cache_rate", "mean"),
            environments=_need(doc, "environments"),
            cold_starts=cold,
            valid=valid,
            invalid=invalid,
            new_environment_calls=fresh,
        )
        self._totals, self._last_t = totals, t
        if self.points and self.points[-1].samples < self.stride:
            point = _merge(self.points[-1], point)
            self.points[-1] = point
        else:
            self.points.append(point)
            if len(self.points) > self.max_points:
                self._halve()
                point = self.points[-1]
        return point

    def close(self, t: float, doc: SummaryDoc) -> TimelinePoint:
        """The run's last sample: `add`, then no more."""
        try:
            return self.add(t, doc)
        finally:
            self.closed = True

    def _halve(self) -> None:
        self.stride *= 2
        pts = self.points
        merged = [_merge(pts[i], pts[i + 1]) for i in range(0, len(pts) - 1, 2)]
        if len(pts) % 2:
            merged.append(pts[-1])  # gathers samples until it stands for as many as the rest
        self.points = merged


def _merge(older: TimelinePoint, newer: TimelinePoint) -> TimelinePoint:
    """One point for two neighbours: gauges as of the newer, interval counts summed."""
    return TimelinePoint(
        t=newer.t,
        span_s=older.span_s + newer.span_s,
        users=newer.users,
        mean_max_share=newer.mean_max_share,
        median_max_share=newer.median_max_share,
        mean_warm_rate=newer.mean_warm_rate,
        environments=newer.environments,
        cold_starts=older.cold_starts + newer.cold_starts,
        valid=older.valid + newer.valid,
        invalid=older.invalid + newer.invalid,
        new_environment_calls=older.new_environment_calls + newer.new_environment_calls,
        samples=older.samples + newer.samples,
    )


# A time axis's tick spacings, seconds: the dashboard's (static/affinity.js TIME_STEPS), so both show round times.
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)


def clock(seconds: float) -> str:
    """A time axis label, exact to the millisecond: 45s, 2.5s, 1:30, 1:02.5, 1:00:00."""
    total = round(seconds, 3)
    if total < 60:
        return f"{total:g}s"
    whole = int(total)
    frac = round(total - whole, 3)
    h, m, r = whole // 3600, whole % 3600 // 60, whole % 60
    sec = f"{r:02d}" + (f"{frac:.3f}".rstrip("0")[1:] if frac else "")
    return f"{h}:{m:02d}:{sec}" if h else f"{m}:{sec}"


def charts_of(points: Sequence[TimelinePoint], width: int = 400, height: int = 260) -> list[Chart]:
    """CHARTS as static charts (charts.py) of `points`, time in seconds since the run started."""
    start = points[0].t - points[0].span_s if points else 0.0
    out = []
    for spec in CHARTS:
        # later series dashed, as on the dashboard: told apart where lines coincide
        series = [
            Series(
                s["label"],
                [Point(p.t - start, getattr(p, s["field"])) for p in points if getattr(p, s["field"]) is not None],
                dashed=i > 0,
            )
            for i, s in enumerate(spec["series"])
        ]
        y = Axis(lo=0, hi=spec["y_max"] or 4)  # counts: at least 0..4, so the ticks are whole numbers
        out.append(
            Chart(
                title=spec["title"],
                series=series,
                width=width,
                height=height,
                x=Axis("time since start", lo=0, tick_format=clock, steps=TIME_STEPS),
                y=y,
            )
        )
    return out
