"""Environments that die at random, and proactive replacement (docs/model.md), in the platform model
under a fake clock: R1 and R2 (issue 19) as the simulator's model holds them, exactly. The same in
the emulator, with real processes: tests/e2e/test_emulator_random_lifetimes.py."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from lambda_affinity.cli import build_parser, sweep as cli_sweep
from lambda_affinity.cli.options import scenario_from_args
from lambda_affinity.platform import DEAD, IDLE, INITIALIZING, FunctionSpec, ModelConfig, Platform
from lambda_affinity.platform.environment import Start
from lambda_affinity.platform.scheduler import DEPLOY, KEEP_ALIVE, LIFETIME
from lambda_affinity.sim.simulate import Scenario, run
from lambda_affinity.sim.sweep import SpecError, parse_vary, points

ONE_FUNCTION = (FunctionSpec("f"),)


def make(seed=0, **model):
    """A platform (MRU placement) and the lists on_retire and on_preinit fill (an init made ahead is
    done at once, as the simulator has it)."""
    retired, made_ahead = [], []

    def preinit(env):
        made_ahead.append(env)
        p.initialized(env, env.created_at)

    p = Platform(
        ModelConfig(policy="mru", **model),
        ONE_FUNCTION,
        rng=random.Random(seed),
        on_retire=lambda env, why: retired.append((env, why)),
        on_preinit=preinit,
    )
    return p, retired, made_ahead


def run_one(p, t):
    lease = p.acquire("f", t)
    if lease.cold:
        p.ready(lease.env, t)
    p.release(lease.env, t)
    return lease


def idle_from_zero(p, n):
    """n environments made by n simultaneous first calls at t=0, all idle from t=0."""
    leases = [p.acquire("f", 0.0) for _ in range(n)]
    for lease in leases:
        p.ready(lease.env, 0.0)
        p.release(lease.env, 0.0)
    return [lease.env for lease in leases]


# -- the options ----------------------------------------------------------------
def test_a_constant_in_any_form_is_kept_as_seconds_and_a_distribution_as_its_text():
    assert ModelConfig(keep_alive_s="10m").keep_alive_s == 600.0
    assert ModelConfig(keep_alive_s="fixed:5m", max_lifetime_s="2h").max_lifetime_s == 7200.0
    m = ModelConfig(keep_alive_s=" 300:900 ", max_lifetime_s="exp:2h")
    assert (m.keep_alive_s, m.max_lifetime_s) == ("300:900", "exp:2h")
    assert (m.keep_alive.lowest, m.keep_alive.mean, m.max_lifetime.mean) == (300.0, 600.0, 7200.0)
    assert m.replace(keep_alive_s="1m:3m").keep_alive.mean == 120.0
    assert ModelConfig.from_mapping({"keep_alive_s": "5m:15m", "max_lifetime_s": 3600}).keep_alive.lowest == 300.0


def test_defaults_are_the_documented_constants_and_replacement_is_on():
    m = ModelConfig()
    assert (m.keep_alive_s, m.max_lifetime_s, m.proactive_replacement) == (600.0, 7200.0, True)


# -- R1: keep-alive as a distribution: gradual loss --------------------------------
def test_r1_uniform_keep_alive_loses_idle_environments_gradually():
    """R1: keep-alive 300:900 (uniform), 200 environments idle from t=0: the share still alive is
    0.75 +- 0.1 at 450 s and 0.25 +- 0.1 at 750 s (a constant keep-alive keeps all, then none)."""
    p, retired, _ = make(seed=1, keep_alive_s="300:900")
    envs = idle_from_zero(p, 200)
    assert p.expire(299.9) == 0
    p.expire(450.0)
    assert abs(len(p.live) / 200 - 0.75) <= 0.1
    p.expire(750.0)
    assert abs(len(p.live) / 200 - 0.25) <= 0.1
    p.expire(900.0)
    assert not p.live and all(why == KEEP_ALIVE for _, why in retired) and len(retired) == len(envs)


def test_r1_each_idle_spell_draws_its_own_keep_alive():
    """Per idle spell, not per environment: the same environment, idle again, gets a new deadline."""
    p, _, _ = make(seed=3, keep_alive_s="100:200")
    env = run_one(p, 0.0).env
    spells = set()
    for t in range(1, 40):
        assert run_one(p, float(t)).env is env
        assert 100.0 <= env.expires_at - t <= 200.0
        spells.add(env.expires_at - t)
    assert len(spells) == 39


def test_r1_the_emulators_timer_always_knows_the_next_keep_alive_end():
    """With deadlines drawn per idle spell, a reused environment may draw a shorter one than its
    queued entry: next_deadline() is still the earliest deadline, and expire(t) retires exactly the
    idle environments whose keep-alive ended by t (checked against a brute-force count)."""
    rng = random.Random(7)
    p, retired, _ = make(seed=8, keep_alive_s="0:30", max_lifetime_s="1h:2h")
    busy, now = [], 0.0
    for _ in range(5000):
        now += rng.expovariate(2.0)
        if busy and rng.random() < 0.5:
            p.release(busy.pop(rng.randrange(len(busy))), now)
        else:
            lease = p.acquire("f", now)
            if lease.cold:
                p.ready(lease.env, now)
            busy.append(lease.env)
        idle = [e for e in p.live.values() if e.state == IDLE]
        deadline = p.next_deadline()
        if idle:
            assert deadline is not None and deadline <= min(e.expires_at for e in idle)
        if rng.random() < 0.1:
            due = {e.id for e in idle if e.expires_at <= now}
            before = len(retired)
            p.expire(now)
            assert {e.id for e, why in retired[before:] if why == KEEP_ALIVE} == due
        idle = [e for e in p.live.values() if e.state == IDLE]
        assert all(e.queued_at is not None and e.queued_at <= e.expires_at for e in idle)
    assert len(p._idle_heap) <= 2 * len(p.live) + 10  # one entry per environment, or about


def test_drawing_keep_alives_and_lifetimes_leaves_placement_as_it_was():
    """Keep-alive and lifetime draws use a generator of their own: with one seed, runs whose only
    difference is a keep-alive nothing reaches place every call alike (a sweep compares like with
    like), and a constant draws nothing at all."""
    rows = []
    for keep_alive, lifetime in ((600.0, 7200.0), ("300:900", 7200.0), ("5m:15m", "1h:3h")):
        model = ModelConfig(keep_alive_s=keep_alive, max_lifetime_s=lifetime)
        rows.append(run(Scenario(users=5, duration_s=30, model=model), seed=4).tracker.rows())
    assert rows[0] == rows[1] == rows[2]
    p, _, _ = make(keep_alive_s=600.0)
    run_one(p, 0.0)
    state = p._draws.getstate()
    env = run_one(p, 1.0).env
    assert p._draws.getstate() == state and env.expires_at == 601.0


# -- R2: lifetime as a distribution: retirements spread out ---------------------------
def retirements_per_minute(**model) -> Counter:
    """100 environments made at t=0, each called once a minute for 3 hours (so none idles out):
    the number retiring at the end of their lifetime, minute by minute."""
    p, retired, _ = make(seed=2, keep_alive_s=600.0, **model)
    idle_from_zero(p, 100)
    per_minute: Counter = Counter()
    for minute in range(1, 181):
        before = len(retired)
        now = minute * 60.0
        leases = [p.acquire("f", now) for _ in range(100)]
        for lease in leases:
            if lease.cold:
                p.ready(lease.env, now)
            p.release(lease.env, now + 0.01)
        per_minute[minute] = sum(why == LIFETIME for _, why in retired[before:])
    return per_minute


def test_r2_jittered_lifetimes_never_retire_many_together():
    """R2: lifetime 1h30m:2h30m: in no minute do more than 10 % of 100 environments created
    together reach their lifetime; with the constant 2 h all 100 go in the same minute."""
    jittered = retirements_per_minute(max_lifetime_s="1h30m:2h30m")
    assert sum(jittered.values()) >= 90 and max(jittered.values()) <= 10
    constant = retirements_per_minute(max_lifetime_s=7200.0)
    assert max(constant.values()) == 100


def test_each_environment_draws_its_lifetime_once():
    p, _, _ = make(seed=4, max_lifetime_s="1h:2h")
    envs = idle_from_zero(p, 50)
    assert all(3600.0 <= e.retire_at <= 7200.0 for e in envs) and len({e.retire_at for e in envs}) == 50


# -- proactive replacement ---------------------------------------------------------
def serial_user(hours: float, **model):
    """One user calling every 1.5 s for `hours`: the platform and each call's Start."""
    p, retired, made_ahead = make(**model)
    starts = []
    t = 0.0
    while t < hours * 3600:
        lease = p.acquire("f", t)
        if lease.cold:
            p.ready(lease.env, t + 0.25)
        p.release(lease.env, t + 0.3)
        starts.append(lease.start)
        t += 1.5
    return p, retired, made_ahead, starts


def test_proactive_replacement_turns_the_cold_start_after_a_lifetime_into_a_new_environment_call():
    """A busy environment reaching its 2 h lifetime: without replacement the next call waits for an
    init (a cold start); with it, the call lands on an environment initialised ahead: no wait, but
    new (empty cache), counted in new_environment_calls."""
    p, retired, _, starts = serial_user(2.5, proactive_replacement=False)
    assert starts.count(Start.COLD) == 2 and p.cold_starts == 2 and p.new_environment_calls == 0
    p, retired, made_ahead, starts = serial_user(2.5)
    assert starts.count(Start.COLD) == 1 and starts.count(Start.NEW_ENVIRONMENT) == 1
    assert (p.cold_starts, p.new_environment_calls, p.warm_starts) == (1, 1, len(starts) - 2)
    assert [why for _, why in retired] == [LIFETIME] and len(made_ahead) == 1
    first_new = starts.index(Start.NEW_ENVIRONMENT)
    assert 7200 <= first_new * 1.5 < 7200 + 1.5  # the first call after the old one's lifetime ended


def test_the_replacement_starts_its_init_ahead_and_takes_calls_when_its_predecessor_retires():
    p, retired, made_ahead = make(keep_alive_s=1000.0, max_lifetime_s=100.0)
    old = run_one(p, 0.0).env
    assert p.next_deadline() == 75.0  # a quarter of its lifetime ahead (less than REPLACEMENT_LEAD_S)
    p.expire(75.0)
    [new] = made_ahead
    assert new.state == INITIALIZING and new.created_at == 75.0 and p.idle_count("f") == 1
    assert run_one(p, 95.0).env is old  # still the old one's until its lifetime ends
    assert p.next_deadline() == 100.0
    assert p.expire(100.0) == 1 and retired == [(old, LIFETIME)]
    assert new.state == IDLE and new.idle_since == 100.0
    lease = p.acquire("f", 101.0)
    assert lease.env is new and lease.start is Start.NEW_ENVIRONMENT and lease.init_delay_s == 0.0
    assert not lease.cold


def test_replacement_does_not_depend_on_expire_being_called():
    """The simulator calls expire at most once a minute: lifetime events are handled in time order
    by whatever the model is asked next."""
    p, retired, made_ahead = make(keep_alive_s=1000.0, max_lifetime_s=100.0)
    old = run_one(p, 0.0).env
    lease = p.acquire("f", 150.0)
    assert lease.start is Start.NEW_ENVIRONMENT and lease.env is made_ahead[0]
    assert retired == [(old, LIFETIME)] and lease.env.idle_since == 100.0


def test_a_quarter_of_a_short_lifetime_ahead():
    p, _, _ = make(keep_alive_s=1000.0, max_lifetime_s=2.0)
    run_one(p, 0.0)
    assert p.next_deadline() == 1.5


def test_a_busy_environment_hands_over_at_its_lifetime_and_retires_when_its_call_ends():
    p, retired, made_ahead = make(keep_alive_s=1000.0, max_lifetime_s=100.0)
    old = p.acquire("f", 0.0).env
    p.ready(old, 0.0)
    p.expire(100.0)
    [new] = made_ahead
    assert new.state == IDLE and old.state != DEAD  # busy: not cut short
    other = p.acquire("f", 101.0)
    assert other.env is new and other.start is Start.NEW_ENVIRONMENT
    p.release(old, 102.0)
    assert retired == [(old, LIFETIME)]


def test_an_environment_idled_out_before_its_lifetime_is_not_replaced():
    p, retired, made_ahead = make(keep_alive_s=5.0, max_lifetime_s=100.0)
    old = run_one(p, 0.0).env
    p.acquire("f", 200.0)  # nothing asked the model in between
    assert made_ahead == []
    assert retired[0] == (old, KEEP_ALIVE)
    assert p.new_environment_calls == 0 and p.cold_starts == 2


def test_replacement_respects_the_cap_on_live_environments():
    p, retired, made_ahead = make(keep_alive_s=1000.0, max_lifetime_s=100.0, max_environments=1)
    run_one(p, 0.0)
    p.expire(100.0)
    assert made_ahead == [] and retired[0][1] == LIFETIME
    assert p.acquire("f", 101.0).cold


# -- preinitialize (what provisioned concurrency and replacement share) -----------------------
def test_preinitialize_makes_an_idle_initialised_environment_whose_first_call_is_a_new_environment_call():
    p, _, made_ahead = make()
    env = p.preinitialize(p.functions["f"], 5.0)
    assert made_ahead == [env] and env.state == IDLE and env.invocations == 0
    assert p.cold_starts == 0 and p.in_flight("f") == 0 and p.idle_count("f") == 1
    first = p.acquire("f", 6.0)
    assert first.env is env and first.start is Start.NEW_ENVIRONMENT
    p.release(env, 6.1)
    assert p.acquire("f", 7.0).start is Start.WARM
    assert (p.cold_starts, p.new_environment_calls, p.warm_starts) == (0, 1, 1)


def test_ready_leaves_an_environment_initialised_ahead_alone():
    p, _, _ = make()
    env = p.preinitialize(p.functions["f"], 0.0)
    p.ready(env, 0.1)
    assert env.state == IDLE


@pytest.mark.parametrize("value", ["1h", 3600, "fixed:1h"])
def test_constant_lifetimes_in_every_form_behave_alike(value):
    p, retired, _ = make(keep_alive_s=10_000.0, max_lifetime_s=value, proactive_replacement=False)
    env = run_one(p, 0.0).env
    assert env.retire_at == 3600.0
    assert p.expire(3600.0) == 1 and retired == [(env, LIFETIME)]


# -- the command line: simulate's and sweep's options, the same names ------------------
@pytest.mark.parametrize("command", [["simulate"], ["sweep", "--vary", "users=1", "--out", "unused"]])
def test_simulate_and_sweep_take_distributions_and_the_switch(command):
    args = build_parser().parse_args(
        [*command, "--keep-alive", "300:900", "--max-lifetime", "exp:2h", "--no-proactive-replacement"]
    )
    model = scenario_from_args(args).model
    assert (model.keep_alive_s, model.max_lifetime_s, model.proactive_replacement) == ("300:900", "exp:2h", False)
    args = build_parser().parse_args([*command, "--keep-alive", "fixed:10m", "--proactive-replacement"])
    model = scenario_from_args(args).model
    assert (model.keep_alive_s, model.proactive_replacement) == (600.0, True)
    assert scenario_from_args(build_parser().parse_args(command)).model == ModelConfig()


def test_a_bad_distribution_option_names_the_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--keep-alive", "300:9x"])
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith(
            "lambda-affinity simulate: error: argument --keep-alive: '300:9x' is not a distribution: cannot read '9x'"
        )
    )


def sweep_factors():
    args = build_parser().parse_args(["sweep", "--vary", "users=1", "--out", "unused"])
    return {name: factor for name, (factor, _) in cli_sweep._sweep_factors(args.factor_actions).items()}


@pytest.mark.parametrize(
    "spec, values, numeric",
    [
        ("keep-alive=10m,300:900,exp:10m", (600.0, "300:900", "exp:10m"), False),
        ("keep-alive=5m..15m:lin:3", (300.0, 600.0, 900.0), True),
        ("max-lifetime=1h30m:2h30m,2h", ("1h30m:2h30m", 7200.0), False),
        ("max_lifetime_s=1h..3h:step:1h", (3600.0, 7200.0, 10800.0), True),
        ("proactive-replacement=on,off", (True, False), False),
    ],
)
def test_a_sweep_varies_keep_alive_lifetime_and_replacement(spec, values, numeric):
    vary = parse_vary(spec, sweep_factors())
    assert vary.values == values and vary.numeric is numeric
    scenarios = points(vary, Scenario())  # each value a model the platform takes
    assert [Platform(s.model, ONE_FUNCTION) for s in scenarios]
    field = vary.factor.field.removeprefix("model.")
    assert [getattr(s.model, field) for s in scenarios] == list(values)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("keep-alive=10m,1:2:3", "'1:2:3' is not a distribution: A:B takes two durations"),
        ("keep-alive=10x", "'10x' is not a duration"),
        ("proactive-replacement=maybe", "'maybe' is not on or off (proactive-replacement is a switch)"),
        ("proactive-replacement=on..off", "proactive-replacement takes a list, not a range"),
    ],
)
def test_bad_sweeps_of_them_say_what_is_wrong(spec, message):
    with pytest.raises(SpecError) as exc:
        parse_vary(spec, sweep_factors())
    assert message in str(exc.value)


def test_a_deploy_retires_a_replacement_made_ahead_for_the_old_version():
    p, retired, made_ahead = make(keep_alive_s=1000.0, max_lifetime_s=100.0)
    old = run_one(p, 0.0).env
    p.expire(75.0)
    [new] = made_ahead
    p.deploy("f", 80.0)
    assert {(e, why) for e, why in retired} == {(old, DEPLOY), (new, DEPLOY)}
    p.expire(100.0)
    assert new.state == DEAD and p.acquire("f", 101.0).cold


def test_an_environment_draining_after_a_deploy_gets_no_proactive_replacement():
    """Proactive replacement meets deploys: an old version's environment still running its call when its
    lifetime's notice comes retires once the call ends; nothing is made ahead to take over from it."""
    p, retired, made_ahead = make(keep_alive_s=1000.0, max_lifetime_s=100.0)
    old = run_one(p, 0.0).env
    assert p.acquire("f", 70.0).env is old
    p.deploy("f", 72.0)  # old drains
    p.expire(80.0)  # past its notice (a quarter of its lifetime ahead: 75)
    assert made_ahead == []
    p.release(old, 85.0)
    assert retired == [(old, DEPLOY)] and p.live == {}


def test_a_replacement_whose_init_ends_late_takes_calls_once_it_is_done():
    """In the emulator the replacement's init is a real process: done after its predecessor's
    lifetime ends, it takes calls from then, not before."""
    pending = []
    p = Platform(
        ModelConfig(policy="mru", keep_alive_s=1000.0, max_lifetime_s=100.0), ONE_FUNCTION, on_preinit=pending.append
    )
    old = run_one(p, 0.0).env
    p.expire(100.0)
    [new] = pending
    assert old.state == DEAD and new.state == INITIALIZING and p.idle_count("f") == 0
    p.initialized(new, 100.5)
    assert new.state == IDLE and p.acquire("f", 101.0).start is Start.NEW_ENVIRONMENT


def test_provisioned_environments_are_replaced_by_their_pool_not_proactively():
    p = Platform(
        ModelConfig(policy="mru", keep_alive_s=10.0, max_lifetime_s=100.0),
        (FunctionSpec("f", provisioned_concurrency=2),),
        rng=random.Random(1),
    )
    first = p.provision(0.0)
    assert p.next_deadline() == 100.0  # no keep-alive for them, no replacement ahead
    p.expire(100.0)
    assert all(e.state == DEAD for e in first) and p.retired == {LIFETIME: 2}
    now_live = p.environments("f")
    assert len(now_live) == 2 and all(e.provisioned and e.state == IDLE for e in now_live)
