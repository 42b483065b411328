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
# first requests does not depend on those after), when a trace holds twice as many; then 3 and 9
# times as many (successive halving's rungs: each keeps about a quarter of the candidates).
PREFIX_ROWS = 100_000
RUNG_FACTOR = 3
RUNGS = 3


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
    # rows -> the figures of the first `rows` rows of each trace, for the prefixes (PREFIX_ROWS x 1, 3, 9)
    # that some trace holds twice over: the rungs screening replays, shortest first
    rungs: dict[int, Figures] = field(default_factory=dict)


# -- the measurement ---------------------------------------------------------------------


class _Reading:
    """What measure() gathers row by row over every trace: the trackers (all rows, and the first
    rows of each trace per rung) and what the rows' timing says of init delay and keep-alive."""

    def __init__(self) -> None:
        self.tracker = Tracker()
        self.heads = {PREFIX_ROWS * RUNG_FACTOR**k: Tracker() for k in range(RUNGS)}  # rows -> first rows of each
        self.longest_head = max(self.heads)
        self.cold_d: list[float] = []  # reply times of cold and of warm calls, in seconds
        self.warm_d: list[float] = []
        self.min_keep_alive = 0.0
        self.cache_known = False

    def row(self, row: TraceRow, n: int, prefix: str, last_seen: dict[str, float]) -> None:
        """The trace's `n`th row (from 1); `prefix` keeps the traces' users and environments apart."""
        label = prefix + row.user
        early = [t for rows, t in self.heads.items() if n <= rows] if n <= self.longest_head else []
        if not row.valid:
            for t in (self.tracker, *early):
                t.record_invalid(label)
            return
        assert row.env_id is not None  # read_rows rejects a valid row without one
        env = prefix + row.env_id
        for t in (self.tracker, *early):
            t.record(label, env, row.cold, row.cache_hit)
        self.cache_known = self.cache_known or row.cache_hit is not None
        self.min_keep_alive = max(self.min_keep_alive, _observe(row, env, last_seen, self.cold_d, self.warm_d))

    def rungs(self, longest: int) -> dict[int, Figures]:
        """The prefixes that the longest trace holds twice over, and their figures."""
        return {rows: Figures.of(t) for rows, t in self.heads.items() if longest >= 2 * rows and t.environments}


def measure(paths: list[str], max_disorder_s: float = DEFAULT_MAX_DISORDER_S) -> Measurement:
    """Read the traces (each one independent measurement) into what calibration needs."""
    if not paths:
        raise CalibrationError("no trace given")
    reading = _Reading()
    arrivals = []
    span = 0.0
    warnings = []
    for i, path in enumerate(paths):
        prefix = f"t{i}-" if len(paths) > 1 else ""
        stats = ReadStats()
        trace_arrivals = []
        last_seen: dict[str, float] = {}  # env -> when its last call ended
        for row in read_rows(path, max_disorder_s, stats):
            trace_arrivals.append((row.send, row.user))
            reading.row(row, len(trace_arrivals), prefix, last_seen)
        if not trace_arrivals:
            raise CalibrationError(f"{path}: no rows")
        arrivals.append(trace_arrivals)
        span = max(span, stats.span_s)
        cut = truncation_warning(path, stats)
        if cut:
            warnings.append(cut)
    tracker = reading.tracker
    rows = tracker.rows()
    if not tracker.environments:
        raise CalibrationError(f"{', '.join(paths)}: no valid row names an environment: calibration needs env_ids")
    init = None
    if reading.cold_d and reading.warm_d:
        init = max(0.0, statistics.median(reading.cold_d) - statistics.median(reading.warm_d))
    return Measurement(
        paths=list(paths),
        arrivals=arrivals,
        figures=Figures.of(tracker),
        rungs=reading.rungs(max(map(len, arrivals))),
        users=len(rows),
        requests=sum(r["requests"] for r in rows),
        invalid=sum(r["invalid"] for r in rows),
        span_s=span,
        init_delay_s=init,
        min_keep_alive_s=reading.min_keep_alive,
        cache_known=reading.cache_known,
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
