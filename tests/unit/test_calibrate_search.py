"""calibrate's search: screening keeps the exhaustive search's fit, the prior is kept where
the trace cannot tell, and pooled runs fold together as if recorded in one tracker."""

from __future__ import annotations

import random

import pytest
from simulated_traces import simulated_trace

from lambda_affinity.core.tracker import Tracker
from lambda_affinity.platform import ModelConfig
from lambda_affinity.sim import calibrate, calibrate_measure, calibrate_report
from lambda_affinity.sim.executors import Serial
from lambda_affinity.sim.simulate import Scenario, run, run_many

TRUE = ModelConfig(policy="mru", routers=1, keep_alive_s=20.0, busy_overhead_s=0.0)


class _Seen(Serial):
    """Runs here, noting the rows each task replays."""

    def __init__(self) -> None:
        self.rows: set = set()
        self.tasks = 0

    def map(self, fn, tasks, shared=None, done=None):
        self.rows.update(t.rows for t in tasks)
        self.tasks += len(tasks)
        return super().map(fn, tasks, shared, done)


def test_screening_keeps_the_exhaustive_fit(tmp_path, monkeypatch):
    """Screened on a prefix, then on two replays, the search fits what the full search fits, with
    the same figures for every candidate it kept, and replays fewer."""
    monkeypatch.setattr(calibrate_measure, "PREFIX_ROWS", 1000)  # the rungs are read where measure() runs
    path = simulated_trace(tmp_path / "t.csv", TRUE, users=50, span=150.0, gap=6.0, seed=3)
    m = calibrate.measure([path])
    assert 1000 in m.rungs and m.requests > 2000
    full = calibrate.calibrate(m, service="0.05", replays=3, screen=False)
    seen = _Seen()
    quick = calibrate.calibrate(m, service="0.05", replays=3, executor=seen)
    assert quick.model == full.model and quick.model.policy == "mru"
    kept = {calibrate._key(f.model): f for f in quick.fits if f.replays == 3}
    assert kept and all(
        f.distance == kept[calibrate._key(f.model)].distance
        for f in full.fits
        if f.replays and calibrate._key(f.model) in kept
    )
    assert 1000 in seen.rows and None in seen.rows  # screened on the prefix first
    assert sum(f.replays for f in quick.fits) < sum(f.replays for f in full.fits)


class _PerRung(Serial):
    """Runs here, noting which candidates each prefix (rows) replays."""

    def __init__(self) -> None:
        self.candidates: dict = {}

    def map(self, fn, tasks, shared=None, done=None):
        for t in tasks:
            self.candidates.setdefault(t.rows, set()).add(calibrate._key(t.scenario.model))
        return super().map(fn, tasks, shared, done)


def test_successive_halving_keeps_a_quarter_per_rung(tmp_path, monkeypatch):
    """Each prefix keeps the best quarter of the candidates (at least 2) for the next, longer one; the
    candidates screened out rank after every one that got all its replays (a prefix's distance is not
    comparable with the whole trace's), and the fit is the true placement."""
    monkeypatch.setattr(calibrate_measure, "PREFIX_ROWS", 500)
    monkeypatch.setattr(calibrate_measure, "RUNG_FACTOR", 2)
    path = simulated_trace(tmp_path / "t.csv", TRUE, users=50, span=150.0, gap=6.0, seed=3)
    m = calibrate.measure([path])
    assert sorted(m.rungs) == [500, 1000] and m.requests >= 2000
    search = calibrate.Search(m, "0", "0.05", 3, 7)
    search.executor = seen = _PerRung()
    models = [
        TRUE.replace(policy=p, routers=r, busy_overhead_s=b) for p, r in calibrate.PLACEMENTS for b in (0.0, 0.02)
    ]
    best = search.best_of(models)
    assert len(seen.candidates[500]) == len(models) == 12
    assert len(seen.candidates[1000]) <= max(calibrate.KEEP_AT_LEAST, 12 // calibrate.HALVING) < 12
    assert seen.candidates[1000] <= seen.candidates[500] and seen.candidates[None] <= seen.candidates[1000]
    ranked = sorted(search.tried.values(), key=calibrate._rank)
    complete = [f for f in ranked if not f.screened]
    assert complete and ranked[: len(complete)] == complete and all(f.replays == 3 for f in complete)
    assert all(f.rows in (500, 1000, None) and f.replays == 2 for f in ranked[len(complete) :])
    assert not best.screened and (best.model.policy, best.model.routers) == ("mru", 1)


@pytest.mark.parametrize("workers", [1, 4])
def test_a_keep_alive_that_reclaims_nothing_stands_for_the_longer_ones(tmp_path, workers):
    """Exact: a candidate differing only in a longer keep-alive is not replayed when the shorter one
    reclaimed no environment in that replay; its figures are what replaying it gives. With more
    workers than shortest keep-alives, the next shortest go along (idle workers gain nothing by waiting)."""
    path = simulated_trace(tmp_path / "t.csv", TRUE, users=50, span=150.0, gap=6.0, seed=3)
    m = calibrate.measure([path])
    search = calibrate.Search(m, "0", "0.05", 3, 7)
    search.executor, search.screen = _Seen(), False
    search.executor.jobs = workers
    models = [ModelConfig(keep_alive_s=k) for k in (1.0, 5.0, 60.0, 300.0, 900.0)]
    search.evaluate(models)
    assert search.executor.tasks < 3 * len(models)  # 1 s reclaims, 900 s is not replayed
    means = set()
    for model in models:
        direct = calibrate.predict(m, Scenario(latency="0", service="0.05", model=model), 3, 7)
        fit = search.tried[calibrate._key(model)]
        assert (fit.predicted, fit.sd) == calibrate.score(m.figures, direct)[1:3]
        means.add(fit.predicted["cold_starts"])
    assert len(means) > 1  # the keep-alive mattered for the short ones


def test_a_short_trace_keeps_the_prior_where_it_cannot_tell(tmp_path):
    """15 s of 6 users of the default model: the closest candidate (here random placement, busy 10 ms,
    keep-alive 5 s: noise) is not the fit; every parameter stays at the default, and the result says so."""
    path = simulated_trace(tmp_path / "t.csv", ModelConfig(), users=6, span=15.0, gap=8.0, seed=5)
    result = calibrate.calibrate(calibrate.measure([path]), service="0.05")
    assert result.fits[0].model.keep_alive_s == 5.0  # the closest, by chance
    d = ModelConfig()
    assert (result.model.policy, result.model.routers, result.model.busy_overhead_s, result.model.keep_alive_s) == (
        d.policy,
        d.routers,
        d.busy_overhead_s,
        d.keep_alive_s,
    )
    doc = calibrate_report.to_json(result)
    keep_alive = doc["parameters"]["keep_alive_s"]
    assert keep_alive == {"fitted": 600.0, "closest": 5.0, "prior": 600.0, "consistent": [5.0, 600.0], "told": False}
    assert not doc["parameters"]["placement"]["told"]
    notes = " | ".join(doc["notes"])
    assert (
        "the trace cannot tell apart keep-alive: 5 s, 600 s (all within distance 2): it stays 600 s (the default)"
        in (notes)
    )
    assert "keep-alive: 600 s (cannot tell: the prior kept; consistent: 5 s, 600 s)" in calibrate_report.render(result)


def test_pooled_runs_fold_as_one_tracker():
    scenario = Scenario(users=5, duration_s=20, think="0:2")
    one = Tracker()
    base = random.Random(9)
    for r in range(3):
        run(scenario, seed=base.getrandbits(64), tracker=one, user_prefix=f"r{r}-")
    pooled, totals = run_many(scenario, runs=3, seed=9)
    assert pooled.rows() == one.rows() and pooled.environments == one.environments
    assert list(pooled.env_ids()) == list(one.env_ids()) and totals["invocations"] == sum(
        r["requests"] for r in one.rows()
    )


def test_absorb_refuses_a_user_in_both():
    a, b = Tracker(), Tracker()
    a.record("u", "e1")
    b.record("u", "e2")
    try:
        a.absorb(b)
    except ValueError as exc:
        assert "'u' is in both" in str(exc)
    else:
        raise AssertionError("absorbed a user twice")


def test_a_verdict_does_not_rest_on_a_prefix(tmp_path):
    """The prior's candidate screened out on a prefix with a distance that does not rule it out is
    replayed in full before the verdict; one that the prefix rules out is not."""
    path = simulated_trace(tmp_path / "t.csv", TRUE, users=20, span=60.0, gap=6.0, seed=3)
    m = calibrate.measure([path])
    search = calibrate.Search(m, "0", "0.05", 3, 7)
    best = search.best_of([TRUE])
    near, far = TRUE.replace(keep_alive_s=600.0), TRUE.replace(keep_alive_s=1.0)  # 600 s: the prior
    for model, distance in ((near, 0.5), (far, 50.0)):
        search.tried[calibrate._key(model)] = calibrate.Fit(model, distance, {}, {}, {}, 2, 500, screened=True)
    calibrate.identify(search, best, [1.0, 20.0, 600.0])
    assert not search.tried[calibrate._key(near)].screened and search.tried[calibrate._key(near)].replays == 3
    assert search.tried[calibrate._key(far)].screened and search.tried[calibrate._key(far)].distance == 50.0


def test_each_verdict_is_judged_at_the_model_it_changes(tmp_path):
    """A 15 s emulator trace (partitioned x2, busy 0): the best is mru at busy 5 ms, where partitioned
    x2 is far (3.4); the busy overhead cannot be told, so its prior 0 ms is kept, and there partitioned
    x2 is consistent (1.6): placement keeps its prior too, rather than a mix judged nowhere."""
    path = simulated_trace(tmp_path / "t.csv", TRUE, users=10, span=15.0, gap=6.0, seed=3)
    search = calibrate.Search(calibrate.measure([path]), "0", "0.05", 3, 7)
    distances = {
        ("mru", 1, 0.005): 0.1,
        ("mru", 1, 0.0): 0.4,
        ("mru", 1, 0.01): 0.8,
        ("partitioned", 2, 0.0): 1.6,
        ("partitioned", 2, 0.005): 3.4,
    }
    for policy, routers in calibrate.PLACEMENTS:
        for busy in calibrate.BUSY_OVERHEADS_S:
            model = ModelConfig(policy=policy, routers=routers, busy_overhead_s=busy, keep_alive_s=600.0)
            distance = distances.get((policy, routers, busy), 5.0)
            search.tried[calibrate._key(model)] = calibrate.Fit(model, distance, {}, {}, {}, 3)
    best = search.tried[("mru", 1, 0.005, 600.0)]
    chosen, verdicts = calibrate.identify(search, best, [600.0])
    assert calibrate._key(chosen.model) == ("partitioned", 2, 0.0, 600.0) and chosen.distance == 1.6
    placement, busy, _ = verdicts
    assert not placement.told and placement.consistent == [("mru", 1), ("partitioned", 2)]
    assert not busy.told and busy.consistent == [0.0, 0.005, 0.01]  # around the best fit, as listed
    assert (placement.best, busy.best) == (("mru", 1), 0.005)  # the closest values, as the notes say


def test_one_candidate_is_ruled_out_on_a_prefix_or_replayed_in_full(tmp_path, monkeypatch):
    """Search.within, the check of a prior at the model as it stands: a candidate far off on the first
    prefix stops there (two replays, listed as screened on it); a near one gets all its replays."""
    monkeypatch.setattr(calibrate_measure, "PREFIX_ROWS", 500)
    monkeypatch.setattr(calibrate_measure, "RUNG_FACTOR", 2)
    path = simulated_trace(tmp_path / "t.csv", TRUE, users=50, span=150.0, gap=6.0, seed=3)
    search = calibrate.Search(calibrate.measure([path]), "0", "0.05", 3, 7)
    search.executor = seen = _PerRung()
    far = TRUE.replace(policy="random", keep_alive_s=0.5)
    assert not search.within(far, calibrate.CONSISTENT)
    fit = search.tried[calibrate._key(far)]
    assert (fit.screened, fit.rows, fit.replays) == (True, 500, 2) and fit.distance > 3 * calibrate.CONSISTENT
    assert seen.candidates == {500: {calibrate._key(far)}}
    assert search.within(TRUE, calibrate.CONSISTENT)
    fit = search.tried[calibrate._key(TRUE)]
    assert not fit.screened and fit.replays == 3 and fit.rows is None and None in seen.candidates
