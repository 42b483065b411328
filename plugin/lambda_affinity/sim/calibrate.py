"""Fit the platform model to a measurement: `lambda-affinity calibrate TRACE...`.

A trace with env_ids (the plugin's `--affinity-trace`, on AWS or anywhere)
says what happened; replaying its arrivals through a candidate model says what
that model predicts for the very same requests. The candidate whose
predictions match best is kept.

What is compared, per candidate, over `replays` independent replays: the mean,
p10 and p90 of the per-user max-share, the mean warm-cache rate (when the
trace has cache status), the environments and the cold starts. Each is a
z-score, (measured - predicted mean) / predicted run-to-run sd, since the
measurement is one draw of the same random process; a candidate's distance is
the root mean square of its z-scores. Below 2 a candidate is consistent with
the measurement; when consistent candidates differ in a parameter, the trace
cannot tell those values apart, and the result says so.

The search is coordinate-wise, so it costs tens of candidates, not the
product of every grid: keep-alive (only values the trace spans twice and
its observed reuse allows) with the default placement, then placement x busy
overhead at that keep-alive, then keep-alive again with the best placement.
The init delay is not searched: it is read from the trace (median duration of
cold calls minus that of warm ones).

Each trace is one independent measurement starting with no environment (a
fresh emulator, or a function not called for a while): its users and
environments are kept apart from the other traces'.

Pure: it reads traces through trace.py and replays through simulate.py.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field

from ..core.summary import summarize
from ..core.tracker import Tracker
from ..errors import LambdaAffinityError
from ..platform import ModelConfig, model_file
from .simulate import Scenario, replay
from .trace import DEFAULT_MAX_DISORDER_S, ReadStats, TraceRow, read_rows, truncation_warning

# (policy, routers): the placements compared. partitioned with 1 router is mru.
PLACEMENTS = (("mru", 1), ("partitioned", 2), ("partitioned", 3), ("partitioned", 4), ("lru", 1), ("random", 1))
BUSY_OVERHEADS_S = (0.0, 0.005, 0.01, 0.02, 0.05)
KEEP_ALIVES_S = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0)
STATS = ("mean_max_share", "p10_max_share", "p90_max_share", "warm_cache_rate", "environments", "cold_starts")
# An sd floor per statistic: a prediction that never varies (e.g. exactly 10
# cold starts) must not make a difference of one an infinite distance.
SD_FLOOR = {
    "mean_max_share": 0.01,
    "p10_max_share": 0.01,
    "p90_max_share": 0.01,
    "warm_cache_rate": 0.01,
    "environments": 1.0,
    "cold_starts": 1.0,
}
CONSISTENT = 2.0
# Below these the result warns that the trace is too small to tell much.
FEW_USERS = 10
FEW_REQUESTS = 200
# Replays per candidate: enough for a stable sd, bounded in total work.
REPLAY_BUDGET = 100_000


class CalibrationError(LambdaAffinityError, ValueError):
    """The traces cannot be calibrated against (no valid rows, no env_ids)."""


@dataclass(frozen=True)
class Figures:
    """The compared statistics of one run (measured or replayed)."""

    mean_max_share: float
    p10_max_share: float
    p90_max_share: float
    warm_cache_rate: float | None
    environments: int
    cold_starts: int

    @classmethod
    def of(cls, tracker: Tracker) -> Figures:
        doc = summarize(tracker.rows(), tracker.environments, per_user_limit=0)
        hit, warm = doc["hit_rate"], doc["warm_cache_rate"]
        if hit is None:
            raise CalibrationError("no valid replies: nothing to compare")
        return cls(
            hit["mean"], hit["p10"], hit["p90"], warm["mean"] if warm else None, doc["environments"], doc["cold_starts"]
        )


@dataclass
class Fit:
    """One candidate and how well it predicts the measurement."""

    model: ModelConfig
    distance: float
    predicted: dict  # statistic -> mean over the replays
    sd: dict  # statistic -> run-to-run sd over the replays
    z: dict  # statistic -> z-score

    def label(self) -> str:
        return describe(self.model)


@dataclass
class Measurement:
    """The traces, as replay and comparison need them."""

    paths: list
    arrivals: list  # per trace: [(send, user), ...] in send order
    figures: Figures
    users: int
    requests: int
    invalid: int
    span_s: float
    init_delay_s: float | None  # estimated from cold vs warm durations, None when the trace cannot say
    min_keep_alive_s: float  # an environment was reused after this long idle: keep-alive is at least this
    cache_known: bool
    warnings: list = field(default_factory=list)  # e.g. a trace cut short by a killed writer


@dataclass
class Calibration:
    measurement: Measurement
    fits: list  # every candidate tried, best first
    model: ModelConfig  # the fitted model
    notes: list = field(default_factory=list)

    @property
    def best(self) -> Fit:
        return self.fits[0]


def describe(model: ModelConfig) -> str:
    place = f"partitioned x{model.routers}" if model.policy == "partitioned" else model.policy
    return f"{place}, busy {model.busy_overhead_s * 1000:g} ms, keep-alive {model.keep_alive_s:g} s"


# -- the measurement ---------------------------------------------------------------------


def measure(paths: list[str], max_disorder_s: float = DEFAULT_MAX_DISORDER_S) -> Measurement:
    """Read the traces (each one independent measurement) into what calibration needs."""
    if not paths:
        raise CalibrationError("no trace given")
    tracker = Tracker()
    arrivals = []
    cold_d: list[float] = []  # reply times of cold and of warm calls, in seconds
    warm_d: list[float] = []
    span = 0.0
    min_keep_alive = 0.0
    cache_known = False
    warnings = []
    for i, path in enumerate(paths):
        prefix = f"t{i}-" if len(paths) > 1 else ""
        stats = ReadStats()
        trace_arrivals = []
        last_seen: dict[str, float] = {}  # env -> when its last call ended
        for row in read_rows(path, max_disorder_s, stats):
            trace_arrivals.append((row.send, row.user))
            label = prefix + row.user
            if not row.valid:
                tracker.record_invalid(label)
                continue
            assert row.env_id is not None  # read_rows rejects a valid row without one
            env = prefix + row.env_id
            tracker.record(label, env, row.cold, row.cache_hit)
            cache_known = cache_known or row.cache_hit is not None
            min_keep_alive = max(min_keep_alive, _idle_before(row, last_seen.get(env)))
            if row.recv is not None:
                last_seen[env] = max(last_seen.get(env, row.recv), row.recv)
                if row.cold is not None:
                    (cold_d if row.cold else warm_d).append(row.recv - row.send)
        if not trace_arrivals:
            raise CalibrationError(f"{path}: no rows")
        arrivals.append(trace_arrivals)
        span = max(span, stats.span_s)
        cut = truncation_warning(path, stats)
        if cut:
            warnings.append(cut)
    rows = tracker.rows()
    if not tracker.environments:
        raise CalibrationError(f"{', '.join(paths)}: no valid row names an environment: calibration needs env_ids")
    init = None
    if cold_d and warm_d:
        init = max(0.0, statistics.median(cold_d) - statistics.median(warm_d))
    return Measurement(
        paths=list(paths),
        arrivals=arrivals,
        figures=Figures.of(tracker),
        users=len(rows),
        requests=sum(r["requests"] for r in rows),
        invalid=sum(r["invalid"] for r in rows),
        span_s=span,
        init_delay_s=init,
        min_keep_alive_s=min_keep_alive,
        cache_known=cache_known,
        warnings=warnings,
    )


def _idle_before(row: TraceRow, free_since: float | None) -> float:
    """How long the row's environment had been idle when the row was sent
    (0 when unknown, or when it was reused while another call still ran)."""
    if free_since is None or row.cold:
        return 0.0
    return max(0.0, row.send - free_since)


# -- replaying candidates -------------------------------------------------------------------


def predict(measurement: Measurement, scenario: Scenario, replays: int, seed: int) -> list[Figures]:
    """`replays` independent replays of every trace's arrivals through `scenario.model`."""
    base = random.Random(seed)
    out = []
    many = len(measurement.arrivals) > 1
    for _ in range(replays):
        tracker = Tracker()
        for i, arrivals in enumerate(measurement.arrivals):
            replay(arrivals, scenario, seed=base.getrandbits(64), tracker=tracker, user_prefix=f"t{i}-" if many else "")
        out.append(Figures.of(tracker))
    return out


def score(measured: Figures, predicted: list[Figures]) -> tuple[float, dict, dict, dict]:
    """(distance, predicted means, sds, z-scores) of one candidate."""
    means, sds, zs = {}, {}, {}
    for name in STATS:
        got = getattr(measured, name)
        values = [getattr(p, name) for p in predicted]
        if got is None or any(v is None for v in values):
            continue
        mean = statistics.fmean(values)
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        means[name], sds[name] = mean, sd
        zs[name] = (got - mean) / max(sd, SD_FLOOR[name])
    distance = math.sqrt(statistics.fmean(z * z for z in zs.values()))
    return distance, means, sds, zs


def keep_alive_grid(measurement: Measurement) -> list[float]:
    """Keep-alives the trace can speak to: no shorter than an observed reuse
    after idling, and the default plus those up to half the trace's span."""
    default = ModelConfig().keep_alive_s
    # A keep-alive shows only when the trace holds an idle that long and the
    # requests after it: half the span at most.
    grid = [k for k in KEEP_ALIVES_S if measurement.min_keep_alive_s <= k <= measurement.span_s / 2]
    if default not in grid:
        grid.append(default)
    return sorted(grid)


def check_replays(replays: int | None) -> None:
    """A run-to-run spread needs two replays; None lets calibrate() pick 5-30 by trace size."""
    if replays is not None and replays < 2:
        raise CalibrationError("replays: must be >= 2 (a run-to-run spread needs two)")


def calibrate(
    measurement: Measurement, latency: str = "0", service: str | None = None, replays: int | None = None, seed: int = 1
) -> Calibration:
    """Search the candidates (see the module doc); the fitted model keeps the
    defaults for what is not searched (lifetime, concurrency, scale-out)."""
    service = service or Scenario().service
    rows = sum(len(a) for a in measurement.arrivals)
    check_replays(replays)
    replays = replays or max(5, min(30, REPLAY_BUDGET // max(rows, 1)))
    base = ModelConfig()
    if measurement.init_delay_s is not None:
        base = base.replace(init_delay_s=round(measurement.init_delay_s, 3))
    tried: dict[tuple, Fit] = {}

    def evaluate(model: ModelConfig) -> Fit:
        key = (model.policy, model.routers, model.busy_overhead_s, model.keep_alive_s)
        if key not in tried:
            scenario = Scenario(latency=latency, service=service, model=model)
            distance, means, sds, zs = score(measurement.figures, predict(measurement, scenario, replays, seed))
            tried[key] = Fit(model, distance, means, sds, zs)
        return tried[key]

    def best_of(models) -> Fit:
        return min((evaluate(m) for m in models), key=_rank)

    keep_alives = keep_alive_grid(measurement)
    fit = best_of(base.replace(keep_alive_s=k) for k in keep_alives)
    fit = best_of(
        fit.model.replace(policy=p, routers=r, busy_overhead_s=b) for p, r in PLACEMENTS for b in BUSY_OVERHEADS_S
    )
    fit = best_of(fit.model.replace(keep_alive_s=k) for k in keep_alives)
    fits = sorted(tried.values(), key=_rank)
    return Calibration(measurement, fits, fits[0].model, _notes(measurement, fits, keep_alives))


def _rank(fit: Fit) -> tuple:
    """Best first; on a tie (candidates predicting alike) the one closest to
    the default model wins: the trace gives no reason to depart from it."""
    d = ModelConfig()
    m = fit.model
    departures = (
        ((m.policy, m.routers) != (d.policy, d.routers))
        + (m.busy_overhead_s != d.busy_overhead_s)
        + (m.keep_alive_s != d.keep_alive_s)
    )
    return (round(fit.distance, 3), departures)


def _notes(m: Measurement, fits: list[Fit], keep_alives: list[float]) -> list[str]:
    notes = list(m.warnings)
    best = fits[0]
    if best.distance > CONSISTENT:
        notes.append(
            f"no candidate is consistent with the measurement (best distance {best.distance:.2f} > "
            f"{CONSISTENT:g}): the model may lack what this platform does, or --latency/--service differ "
            "from the measured conditions"
        )
    consistent = [f for f in fits if f.distance <= max(CONSISTENT, best.distance)]
    for name, key, show in (
        (
            "placement",
            lambda mo: (mo.policy, mo.routers),
            lambda v: v[0] if v[0] != "partitioned" else f"{v[0]} x{v[1]}",
        ),
        ("busy overhead", lambda mo: mo.busy_overhead_s, lambda v: f"{v * 1000:g} ms"),
        ("keep-alive", lambda mo: mo.keep_alive_s, lambda v: f"{v:g} s"),
    ):
        values = sorted({key(f.model) for f in consistent})
        if len(values) > 1:
            notes.append(
                f"the trace cannot tell apart {name}: {', '.join(show(v) for v in values)} (all within "
                f"distance {CONSISTENT:g})"
            )
    if m.users < FEW_USERS:
        notes.append(
            f"only {m.users} users: per-user rates of so few users vary a lot run to run; "
            f"measure with at least {FEW_USERS}"
        )
    if m.requests < FEW_REQUESTS:
        notes.append(f"only {m.requests} valid replies: run longer or with more users for a sharper fit")
    if len(keep_alives) == 1:
        notes.append(
            f"the trace spans {m.span_s:.0f} s, too short to tell the keep-alive: it stays "
            f"{keep_alives[0]:g} s (the default)"
        )
    if m.init_delay_s is None:
        notes.append("no cold and warm durations to compare: init_delay_s stays the default")
    return notes


# -- output ---------------------------------------------------------------------------------


def model_mapping(model: ModelConfig) -> dict:
    """The fitted keys, as `model:` in an emulator config or `simulate --model`."""
    return {
        "policy": model.policy,
        "routers": model.routers,
        "router_policy": model.router_policy,
        "busy_overhead_s": model.busy_overhead_s,
        "keep_alive_s": model.keep_alive_s,
        "init_delay_s": model.init_delay_s,
    }


def to_yaml(result: Calibration) -> str:
    """The fit as a model file (platform.model_file): what `calibrate --out` writes."""
    m, best = result.measurement, result.best
    head = [
        f"lambda-affinity calibrate: fitted to {', '.join(m.paths)}",
        f"{m.users} users, {m.requests} valid replies, {m.span_s:.0f} s; distance {best.distance:.2f} "
        f"(RMS of z-scores; <= {CONSISTENT:g} is consistent with the measurement)",
        "Use it as `lambda-affinity simulate --model FILE`, as an emulator config, or with --affinity-emulator-config.",
    ]
    head += [f"note: {n}" for n in result.notes]
    return model_file.to_text(model_mapping(result.model), head)


def to_json(result: Calibration) -> dict:
    m = result.measurement
    return {
        "model": model_mapping(result.model),
        "measured": {
            **vars(m.figures),
            "users": m.users,
            "requests": m.requests,
            "invalid": m.invalid,
            "span_s": m.span_s,
            "init_delay_s": m.init_delay_s,
            "min_keep_alive_s": m.min_keep_alive_s,
        },
        "candidates": [
            {"model": model_mapping(f.model), "distance": f.distance, "predicted": f.predicted, "sd": f.sd, "z": f.z}
            for f in result.fits
        ],
        "notes": result.notes,
    }


def render(result: Calibration, limit: int = 12) -> str:
    m, fig = result.measurement, result.measurement.figures
    warm = "n/a" if fig.warm_cache_rate is None else f"{fig.warm_cache_rate:.3f}"
    lines = [
        f"Measured: {m.users} users, {m.requests} valid replies, {m.invalid} invalid, {m.span_s:.1f} s; "
        f"max-share mean {fig.mean_max_share:.3f} (p10 {fig.p10_max_share:.3f}, p90 {fig.p90_max_share:.3f}), "
        f"warm-cache {warm}, {fig.environments} environments, {fig.cold_starts} cold starts",
        f"{'candidate':44s} {'distance':>8s} {'max-share':>9s} {'warm':>6s} {'envs':>7s} {'cold':>7s}",
    ]
    for f in result.fits[:limit]:
        p = f.predicted
        w = p.get("warm_cache_rate")
        lines.append(
            f"{f.label():44s} {f.distance:8.2f} {p['mean_max_share']:9.3f} "
            f"{'n/a' if w is None else format(w, '.3f'):>6s} {p['environments']:7.1f} {p['cold_starts']:7.1f}"
        )
    if len(result.fits) > limit:
        lines.append(f"... {len(result.fits) - limit} more candidates (--json lists them all)")
    lines.append(f"fitted: {describe(result.model)}, init delay {result.model.init_delay_s:g} s")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)
