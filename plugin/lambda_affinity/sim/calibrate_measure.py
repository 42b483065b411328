"""What calibration compares against: the traces read into their figures
(sim.calibrate fits a model to them). Pure but for reading the traces."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ..core.summary import summarize
from ..core.tracker import Tracker
from ..errors import LambdaAffinityError
from .trace import DEFAULT_MAX_DISORDER_S, ReadStats, TraceRow, read_rows, truncation_warning

# Screening first replays this many rows of each trace (a prefix: what the platform did with the
# first requests does not depend on those after), when a trace holds twice as many.
PREFIX_ROWS = 100_000


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
    # The figures of the first PREFIX_ROWS rows of each trace, when a trace holds twice as many (screening)
    head_figures: Figures | None = None


# -- the measurement ---------------------------------------------------------------------


def measure(paths: list[str], max_disorder_s: float = DEFAULT_MAX_DISORDER_S) -> Measurement:
    """Read the traces (each one independent measurement) into what calibration needs."""
    if not paths:
        raise CalibrationError("no trace given")
    tracker, head = Tracker(), Tracker()  # all rows; the first PREFIX_ROWS of each trace
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
            early = len(trace_arrivals) <= PREFIX_ROWS
            if not row.valid:
                tracker.record_invalid(label)
                if early:
                    head.record_invalid(label)
                continue
            assert row.env_id is not None  # read_rows rejects a valid row without one
            env = prefix + row.env_id
            tracker.record(label, env, row.cold, row.cache_hit)
            if early:
                head.record(label, env, row.cold, row.cache_hit)
            cache_known = cache_known or row.cache_hit is not None
            min_keep_alive = max(min_keep_alive, _observe(row, env, last_seen, cold_d, warm_d))
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
        head_figures=Figures.of(head) if max(map(len, arrivals)) >= 2 * PREFIX_ROWS and head.environments else None,
        users=len(rows),
        requests=sum(r["requests"] for r in rows),
        invalid=sum(r["invalid"] for r in rows),
        span_s=span,
        init_delay_s=init,
        min_keep_alive_s=min_keep_alive,
        cache_known=cache_known,
        warnings=warnings,
    )


def _observe(row: TraceRow, env: str, last_seen: dict, cold_d: list, warm_d: list) -> float:
    """Notes when the row's environment is free again and how long the call took (cold or
    warm); returns how long the environment had been idle when the row was sent."""
    idle = _idle_before(row, last_seen.get(env))
    if row.recv is not None:
        last_seen[env] = max(last_seen.get(env, row.recv), row.recv)
        if row.cold is not None:
            (cold_d if row.cold else warm_d).append(row.recv - row.send)
    return idle


def _idle_before(row: TraceRow, free_since: float | None) -> float:
    """How long the row's environment had been idle when the row was sent
    (0 when unknown, or when it was reused while another call still ran)."""
    if free_since is None or row.cold:
        return 0.0
    return max(0.0, row.send - free_since)
