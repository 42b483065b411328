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
cannot tell those values apart, and the result says so (identify): where the
default is among them, the fit keeps the default rather than fit noise.

The search is coordinate-wise, so it costs tens of candidates, not the
product of every grid: keep-alive (only values the trace spans twice and
its observed reuse allows) with the default placement, then placement x busy
overhead at that keep-alive, then keep-alive again with the best placement.
The init delay is not searched: it is read from the trace (median duration of
cold calls minus that of warm ones). A stage's replays go to an executor at
once (sim/executors.py: here, worker processes or a cluster; each replay's seed
is fixed by `seed`, so the fit does not depend on where they ran), and
candidates are screened: successive halving on prefixes of a long trace, then
those clearly out stop after two replays (Search).

Each trace is one independent measurement starting with no environment (a
fresh emulator, or a function not called for a while): its users and
environments are kept apart from the other traces'.

Pure: it reads traces through calibrate_measure.py and replays through
simulate.py; calibrate_report.py says what a fit means (notes, JSON, table).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..core.summary import mean_sd
from ..core.tracker import Tracker
from ..platform import ModelConfig
from ..platform.config import DEFAULT_KEEP_ALIVE_S

# measure() and its types live in calibrate_measure; callers find them here too
from .calibrate_measure import PREFIX_ROWS, CalibrationError, Figures, Measurement, measure  # noqa: F401
from .executors import Executor, Serial
from .replay import replay
from .simulate import Scenario

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
# The candidates a search replays, about: keep-alive x2, placement x busy overhead, the profiles.
CANDIDATES_ABOUT = 2 * len(KEEP_ALIVES_S) + len(PLACEMENTS) * len(BUSY_OVERHEADS_S)
# Screening (Search): a candidate this many times further than the stage's best is out.
SCREEN_OUT = 3.0
# Successive halving on the prefixes (Search): each rung keeps the best quarter, and at least this many.
HALVING = 4
KEEP_AT_LEAST = 2


@dataclass
class Fit:
    """One candidate and how well it predicts the measurement."""

    model: ModelConfig
    distance: float
    predicted: dict  # statistic -> mean over the replays
    sd: dict  # statistic -> run-to-run sd over the replays
    z: dict  # statistic -> z-score
    replays: int = 0  # how many replays the figures come from (fewer when screened out)
    rows: int | None = None  # screened out on the first `rows` rows of each trace; None: on all
    screened: bool = False  # out before all its replays: its distance is not comparable with the others'

    def label(self) -> str:
        return describe(self.model)


@dataclass
class Calibration:
    measurement: Measurement
    fits: list  # every candidate tried, best first
    model: ModelConfig  # the fitted model: the best, with the prior where the trace cannot tell (verdicts)
    verdicts: list = field(default_factory=list)  # per searched parameter: can the trace tell its values apart
    chosen: Fit | None = None  # the fitted model's own candidate
    keep_alives: list = field(default_factory=list)  # the keep-alive grid searched

    @property
    def best(self) -> Fit:
        """The fitted model's candidate (the best fit when nothing is kept at its prior)."""
        return self.chosen or self.fits[0]


def describe(model: ModelConfig) -> str:
    place = f"partitioned x{model.routers}" if model.policy == "partitioned" else model.policy
    return f"{place}, busy {model.busy_overhead_s * 1000:g} ms, keep-alive {model.keep_alive_s:g} s"


# -- replaying candidates -------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayTask:
    """One replay of every trace through one candidate: the unit an executor runs.
    `seeds` has one seed per trace; replay j uses the same seeds for every
    candidate (common random numbers: candidates differ by the model, not the draw)."""

    scenario: Scenario
    seeds: tuple[int, ...]
    rows: int | None = None  # the first `rows` arrivals of each trace only (screening)


class Replayed(NamedTuple):
    """What one replay task gives back: the figures, and whether keep-alive reclaimed any environment
    (when none, a longer keep-alive, all else the same, replays the very same: see Search._replay)."""

    figures: Figures
    kept_all: bool


def replay_figures(arrivals: list, task: ReplayTask) -> Replayed:
    """The figures of one replay (an executor's task: `arrivals` is the shared per-trace arrivals)."""
    tracker = Tracker()
    many = len(arrivals) > 1
    reclaimed = 0
    for i, (trace, seed) in enumerate(zip(arrivals, task.seeds, strict=True)):
        if task.rows is not None:
            trace = trace[: task.rows]
        res = replay(trace, task.scenario, seed=seed, tracker=tracker, user_prefix=f"t{i}-" if many else "")
        reclaimed += res.keep_alive_retired
    return Replayed(Figures.of(tracker), reclaimed == 0)


def replay_seeds(seed: int, replays: int, traces: int) -> list[tuple[int, ...]]:
    """Replay j's seed for each trace, drawn in (replay, trace) order from `seed`."""
    base = random.Random(seed)
    return [tuple(base.getrandbits(64) for _ in range(traces)) for _ in range(replays)]


def predict(
    measurement: Measurement, scenario: Scenario, replays: int, seed: int, executor: Executor | None = None
) -> list[Figures]:
    """`replays` independent replays of every trace's arrivals through `scenario.model`."""
    tasks = [ReplayTask(scenario, s) for s in replay_seeds(seed, replays, len(measurement.arrivals))]
    return [r.figures for r in (executor or Serial()).map(replay_figures, tasks, shared=measurement.arrivals)]


def score(measured: Figures, predicted: list[Figures]) -> tuple[float, dict, dict, dict]:
    """(distance, predicted means, sds, z-scores) of one candidate."""
    means, sds, zs = {}, {}, {}
    for name in STATS:
        got = getattr(measured, name)
        values = [getattr(p, name) for p in predicted]
        if got is None or any(v is None for v in values):
            continue
        mean, sd = mean_sd(values)
        means[name], sds[name] = mean, sd
        zs[name] = (got - mean) / max(sd, SD_FLOOR[name])
    distance = math.sqrt(statistics.fmean(z * z for z in zs.values()))
    return distance, means, sds, zs


def keep_alive_grid(measurement: Measurement) -> list[float]:
    """Keep-alives the trace can speak to: no shorter than an observed reuse
    after idling, and the default plus those up to half the trace's span."""
    default = DEFAULT_KEEP_ALIVE_S
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


def default_replays(measurement: Measurement) -> int:
    return max(5, min(30, REPLAY_BUDGET // max(sum(len(a) for a in measurement.arrivals), 1)))


Progress = Callable[[int, int], None]  # (replays done, replays planned), the plan shrinking as candidates drop


def calibrate(
    measurement: Measurement,
    latency: str = "0",
    service: str | None = None,
    replays: int | None = None,
    seed: int = 1,
    executor: Executor | None = None,
    progress: Progress | None = None,
    screen: bool = True,
) -> Calibration:
    """Search the candidates (see the module doc); the fitted model keeps the
    defaults for what is not searched (lifetime, concurrency, scale-out), and
    for what the trace cannot tell apart (see identify)."""
    check_replays(replays)
    search = Search(measurement, latency, service or Scenario().service, replays or default_replays(measurement), seed)
    search.executor, search.progress, search.screen = executor or Serial(), progress, screen
    base = ModelConfig()
    if measurement.init_delay_s is not None:
        base = base.replace(init_delay_s=round(measurement.init_delay_s, 3))
    keep_alives = keep_alive_grid(measurement)
    # the plan, for the progress: three stages and the profiles identify() adds
    search.planned = CANDIDATES_ABOUT * search.replays * sum(map(len, measurement.arrivals))
    fit = search.best_of(base.replace(keep_alive_s=k) for k in keep_alives)
    fit = search.best_of(
        fit.model.replace(policy=p, routers=r, busy_overhead_s=b) for p, r in PLACEMENTS for b in BUSY_OVERHEADS_S
    )
    fit = search.best_of(fit.model.replace(keep_alive_s=k) for k in keep_alives)
    chosen, verdicts = identify(search, fit, keep_alives)
    fits = sorted(search.tried.values(), key=_rank)
    return Calibration(measurement, fits, chosen.model, verdicts=verdicts, chosen=chosen, keep_alives=keep_alives)


def _key(model: ModelConfig) -> tuple:
    """A candidate: what the search varies, the keep-alive last."""
    return (model.policy, model.routers, model.busy_overhead_s, model.keep_alive_s)


def _fixed(model: ModelConfig) -> float | None:
    """Its keep-alive, when every idle spell shares it (None: drawn per spell)."""
    return model.keep_alive.fixed


def _same_but_longer(model: ModelConfig, other: ModelConfig) -> bool:
    """`other` is `model` with a longer fixed keep-alive."""
    a, b = _fixed(model), _fixed(other)
    return a is not None and b is not None and b > a and other.replace(keep_alive_s=a) == model


def _the_same_runs(pending: dict[tuple, ModelConfig], model: ModelConfig, j: int) -> list[tuple]:
    """The pending replays `j` that are the very same run as `model`'s, which reclaimed nothing."""
    group = _key(model)[:3]
    return [p for p, m in pending.items() if p[1] == j and p[0][:3] == group and _same_but_longer(model, m)]


def _next_replays(pending: dict[tuple, ModelConfig], width: int) -> list[tuple]:
    """The (candidate, replay) pairs to replay now: per replay, of candidates differing only in the
    keep-alive, the shortest (the longer ones may turn out the very same run), and every other one;
    then the next shortest, and so on, while there are fewer than `width` (idle workers gain nothing
    by waiting: a replay that turns out the same as a shorter one's is that one's figures anyway)."""
    groups: dict[tuple, list[tuple]] = {}
    for p, m in pending.items():
        fixed = _fixed(m)
        groups.setdefault((p[0][:3], p[1]) if fixed is not None else p, []).append(p)
    ranked = [sorted(g, key=lambda p: _fixed(pending[p]) or 0.0) for g in groups.values()]
    batch: list[tuple] = []
    for rank in range(max(map(len, ranked))):
        if rank and len(batch) >= width:
            break
        batch += [g[rank] for g in ranked if rank < len(g)]
    return batch


class Search:
    """The candidates tried so far and how to try more: every candidate's
    replays go to the executor at once, a stage at a time.

    Screening (on by default): a stage's candidates first get two replays;
    those clearly out are not replayed further. Clearly out: a distance, with
    each statistic's sd taken as the largest any candidate of the stage showed
    (two replays' own sd can be small by luck), over SCREEN_OUT times the
    stage's best such distance and over 3 x CONSISTENT. The rest get all their
    replays, with the same seeds as without screening, so their figures are
    exactly those of the full search and the fit the same unless the best was
    screened out. A screened candidate is listed with its two replays."""

    def __init__(self, measurement: Measurement, latency: str, service: str, replays: int, seed: int) -> None:
        self.measurement, self.latency, self.service, self.replays = measurement, latency, service, replays
        self.seeds = replay_seeds(seed, replays, len(measurement.arrivals))
        self.tried: dict[tuple, Fit] = {}
        self.executor: Executor = Serial()
        self.progress: Progress | None = None
        self.screen = True
        self.planned = 0
        self.done = 0

    def best_of(self, models: Iterable[ModelConfig]) -> Fit:
        models = list(models)
        self.evaluate(models)
        return min((self.tried[_key(m)] for m in models), key=_rank)

    def evaluate(self, models: Iterable[ModelConfig], screen: bool = True) -> None:
        """Replays the candidates not tried yet; with screen=False, also those screened out before,
        and none of them is screened now (every one gets all its replays)."""
        new: dict[tuple, ModelConfig] = {}
        for m in models:
            fit = self.tried.get(_key(m))
            if fit is None or (fit.screened and not screen):
                new.setdefault(_key(m), m)
        todo = list(new.values())
        figures: dict[tuple, list[Figures]] = {k: [] for k in new}
        screen = screen and self.screen
        # successive halving on the prefixes, shortest first, while more than a few candidates are left
        for rows, head in sorted(self.measurement.rungs.items()) if screen else ():
            if len(todo) <= KEEP_AT_LEAST:
                break
            todo = self._screen(todo, self._replay(todo, range(2), rows), head, rows)
        if screen and self.replays > 2 and len(todo) > 2:
            firsts = self._replay(todo, range(2))
            todo = self._screen(todo, firsts, self.measurement.figures, None)
            for m in todo:
                figures[_key(m)] = firsts[_key(m)]
        if todo:
            start = len(figures[_key(todo[0])])
            for k, fs in self._replay(todo, range(start, self.replays)).items():
                figures[k] += fs
        for m in todo:
            distance, means, sds, zs = score(self.measurement.figures, figures[_key(m)])
            self.tried[_key(m)] = Fit(m, distance, means, sds, zs, self.replays)

    def within(self, model: ModelConfig, band: float) -> bool:
        """Whether one candidate is consistent (distance <= band), replayed only as far as that takes: with
        none to rank it against, a prefix rules it out at over SCREEN_OUT times the band; else, or when a
        screening left it unsure (a verdict never rests on a prefix), it gets all its replays."""
        key = _key(model)
        for rows, head in sorted(self.measurement.rungs.items()) if self.screen and key not in self.tried else ():
            scored = score(head, fs := self._replay([model], range(2), rows)[key])
            if scored[0] > SCREEN_OUT * band:
                self.tried[key] = Fit(model, *scored, replays=len(fs), rows=rows, screened=True)
                return False
        fit = self.tried.get(key)
        if fit is None or _unsure(fit, band):
            self.evaluate([model], screen=False)
        return self.tried[key].distance <= band

    def _replay(self, models: list[ModelConfig], which: range, rows: int | None = None) -> dict[tuple, list[Figures]]:
        """Replays `which` of each model. Candidates differing only in a fixed keep-alive go shortest
        first: a replay in which keep-alive reclaimed no environment is, with a longer keep-alive and
        the same seed, the very same run (nothing else depends on the keep-alive), so its figures stand
        for those of the longer ones, which are not replayed (exact: the figures are the same)."""
        size = sum(min(len(a), rows or len(a)) for a in self.measurement.arrivals)
        got: dict[tuple, dict[int, Figures]] = {_key(m): {} for m in models}
        pending = {(_key(m), j): m for m in models for j in which}
        while pending:
            batch = _next_replays(pending, self.executor.jobs)
            batch_models = [pending.pop(b) for b in batch]
            tasks = [
                ReplayTask(self._scenario(m), self.seeds[b[1]], rows) for b, m in zip(batch, batch_models, strict=True)
            ]
            results = self.executor.map(
                replay_figures, tasks, shared=self.measurement.arrivals, done=lambda _i: self._tick(size)
            )
            for (key, j), model, res in zip(batch, batch_models, results, strict=True):
                got[key][j] = res.figures
                if res.kept_all:
                    for other in _the_same_runs(pending, model, j):
                        del pending[other]
                        got[other[0]][j] = res.figures
                        self._tick(size)
        return {k: [fs[j] for j in which] for k, fs in got.items()}

    def _scenario(self, model: ModelConfig) -> Scenario:
        return Scenario(latency=self.latency, service=self.service, model=model)

    def _tick(self, rows: int) -> None:
        self.done += rows
        self.planned = max(self.planned, self.done)
        if self.progress is not None:
            self.progress(self.done, self.planned)

    def _screen(
        self, models: list[ModelConfig], figures: dict[tuple, list[Figures]], measured: Figures, rows: int | None
    ) -> list[ModelConfig]:
        """The candidates not clearly out; those out are listed as tried with these figures. On a
        prefix (`rows`), only the best quarter (HALVING) is kept, and at least KEEP_AT_LEAST."""
        widest: dict[str, float] = {}
        scores = {k: score(measured, fs) for k, fs in figures.items()}
        for _, _, sds, _ in scores.values():
            for name, sd in sds.items():
                widest[name] = max(widest.get(name, 0.0), sd)
        rough = {}
        for k, (_, means, _, _) in scores.items():
            zs = [(getattr(measured, n) - means[n]) / max(widest[n], SD_FLOOR[n]) for n in means]
            rough[k] = math.sqrt(statistics.fmean(z * z for z in zs))
        cut = max(SCREEN_OUT * min(rough.values()), 3 * CONSISTENT)
        keep = [m for m in models if rough[_key(m)] <= cut]
        if rows is not None:
            ranked = sorted(keep, key=lambda m: rough[_key(m)])
            keep = ranked[: max(KEEP_AT_LEAST, math.ceil(len(models) / HALVING))]
        kept = {_key(m) for m in keep}
        for m in models:
            if _key(m) not in kept:
                fs = figures[_key(m)]
                self.tried[_key(m)] = Fit(m, *scores[_key(m)], replays=len(fs), rows=rows, screened=True)
        self.planned -= (len(models) - len(keep)) * self.replays * sum(map(len, self.measurement.arrivals))
        return keep


# -- what the trace can tell --------------------------------------------------------------


@dataclass
class Verdict:
    """Whether the trace tells one parameter's values apart.

    `consistent`: the values whose candidate (the best fit with only this
    parameter changed) is consistent with the measurement (distance <=
    max(CONSISTENT, the best's)), the prior among them when the fitted model
    keeps it (judged at that model, identify); `told` when it does not, and then
    the best fit's value (`best`) is kept."""

    parameter: str
    best: Any
    prior: Any
    consistent: list
    told: bool

    @property
    def value(self) -> Any:
        return self.best if self.told else self.prior


# (name, the model's value, how to set it, the default)
PARAMETERS: tuple[tuple[str, Callable[[ModelConfig], Any], Callable[[ModelConfig, Any], ModelConfig]], ...] = (
    ("placement", lambda m: (m.policy, m.routers), lambda m, v: m.replace(policy=v[0], routers=v[1])),
    ("busy_overhead_s", lambda m: m.busy_overhead_s, lambda m, v: m.replace(busy_overhead_s=v)),
    ("keep_alive_s", lambda m: m.keep_alive_s, lambda m, v: m.replace(keep_alive_s=v)),
)


def identify(search: Search, best: Fit, keep_alives: list[float]) -> tuple[Fit, list[Verdict]]:
    """Per parameter, the profile around the best fit (only that parameter changed, every value of
    its grid) lists the values the trace cannot tell apart. The fitted model starts at the best fit
    and takes a parameter's prior where the model with it is consistent, judged at the model as it
    stands, parameter by parameter until a pass changes nothing: so it is one the trace supports,
    never a mix of verdicts made around different models (busy overhead's prior may be what makes
    placement's consistent). Returns its fit and the verdicts."""
    grids: dict[str, list] = {
        "placement": list(PLACEMENTS),
        "busy_overhead_s": list(BUSY_OVERHEADS_S),
        "keep_alive_s": keep_alives,
    }
    prior_model = ModelConfig()
    profiles = {name: [put(best.model, v) for v in grids[name]] for name, _, put in PARAMETERS}
    # one stage for the three profiles: the executor's workers stay busy across what would be three barriers
    search.evaluate(m for profile in profiles.values() for m in profile)
    band = max(CONSISTENT, best.distance)
    model, moved = best.model, True
    while moved:  # a parameter moves only to its prior: a pass per parameter at most, and one more
        moved = False
        for _, get, put in PARAMETERS:
            if get(model) != get(prior_model) and search.within(put(model, get(prior_model)), band):
                model, moved = put(model, get(prior_model)), True
    verdicts = []
    for name, get, _ in PARAMETERS:
        prior, kept = get(prior_model), get(model) == get(prior_model)
        near = [v for v, m in zip(grids[name], profiles[name], strict=True) if search.tried[_key(m)].distance <= band]
        consistent = [v for v in near if v != prior] + ([prior] if kept else [])
        verdicts.append(Verdict(name, get(best.model), prior, sorted(consistent, key=grids[name].index), not kept))
    search.evaluate([model], screen=False)
    return search.tried[_key(model)], verdicts


def _unsure(fit: Fit, band: float) -> bool:
    return fit.screened and fit.distance <= band


def _rank(fit: Fit) -> tuple:
    """Best first, those with all their replays before those screened out (a distance on a prefix
    or on two replays is not comparable); on a tie (candidates predicting alike) the one closest to
    the default model wins: the trace gives no reason to depart from it."""
    d = ModelConfig()
    m = fit.model
    departures = (
        ((m.policy, m.routers) != (d.policy, d.routers))
        + (m.busy_overhead_s != d.busy_overhead_s)
        + (m.keep_alive_s != d.keep_alive_s)
    )
    return (fit.screened, round(fit.distance, 3), departures)
