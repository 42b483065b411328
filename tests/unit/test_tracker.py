"""Tracker: exact, hand-computed tallies; the bounded counter table; worker -> master rows."""

import random
import tracemalloc

import pytest

from lambda_affinity.core.summary import merge_rows, summarize
from lambda_affinity.core.tracker import ROW_FIELDS, Tracker


def test_hand_computed_user():
    t = Tracker()
    # env   A     A      B     A      C     B
    # cold  T     F      T     F      T     F
    # hit   F     T      F     T      F     None (a bare reply: no cache status)
    replies = [
        ("A", True, False),
        ("A", False, True),
        ("B", True, False),
        ("A", False, True),
        ("C", True, False),
        ("B", None, None),
    ]
    maxes = []
    for env, cold, hit in replies:
        maxes.append(t.record("u1", env, cold, hit).max_count)
    assert maxes == [1, 2, 2, 3, 3, 3]  # the running maximum, never rescanned
    row = t.row("u1")
    assert row == {
        "user": "u1",
        "requests": 6,
        "max_count": 3,
        "max_share": 0.5,
        "warm_hits": 2,
        "cache_known": 5,
        "environments": 3,
        "cold_starts": 3,
        "new_environment_calls": 0,
        # A->A no, A->B, B->A, A->C, C->B
        "switches": 4,
        "invalid": 0,
    }
    assert t.users["u1"].warm_rate == 2 / 5
    assert set(row) == set(ROW_FIELDS)
    assert t.environments == 3


def test_alternating_between_two_warm_environments():
    # README, "Metrics": max-share 0.5 but a warm-cache rate near 1
    t = Tracker()
    t.record("u", "A", True, False)
    t.record("u", "B", True, False)
    for i in range(98):
        t.record("u", "AB"[i % 2], False, True)
    tally = t.users["u"]
    assert tally.max_share == 0.5
    assert tally.warm_rate == 98 / 100
    assert tally.switches == 99
    assert tally.cold_starts == 2


def test_invalid_replies_count_but_never_enter_a_rate():
    t = Tracker()
    t.record_invalid("u")
    assert t.row("u")["max_share"] is None and t.row("u")["requests"] == 0
    t.record("u", "A", False, True)
    t.record_invalid("u")
    row = t.row("u")
    assert (row["requests"], row["invalid"], row["max_share"], row["warm_hits"]) == (1, 2, 1.0, 1)


def test_environments_are_shared_across_users():
    t = Tracker()
    t.record("u1", "A")
    t.record("u2", "A")
    t.record("u2", "B")
    assert t.environments == 2
    assert [t.row(u)["environments"] for u in ("u1", "u2")] == [1, 2]
    assert list(t.env_ids()) == ["A", "B"]


def test_space_saving_hand_computed():
    t = Tracker(max_envs=2)
    for env in "AAB":
        t.record("u", env)
    assert t.users["u"].overflow is None
    # C arrives with the table full: it takes B's counter (the smallest, 1) plus one
    t.record("u", "C")
    tally = t.users["u"]
    assert tally.overflow is not None
    assert {t.env_id(e): c for e, c in tally.env_counts().items()} == {"A": 2, "C": 2}
    assert (tally.max_count, tally.environments) == (2, 3)
    # D: the smallest counter is 2 (A or C) -> D gets 3, an over-estimate by 2 <= n/k = 5/2
    t.record("u", "D")
    counts = {t.env_id(e): c for e, c in tally.env_counts().items()}
    assert sorted(counts.values()) == [2, 3] and counts["D"] == 3
    assert (tally.max_count, tally.requests, tally.environments) == (3, 5, 4)
    assert tally.switches == 3


def reference_counts(stream):
    exact = {}
    for e in stream:
        exact[e] = exact.get(e, 0) + 1
    return exact


@pytest.mark.parametrize("seed", range(5))
def test_space_saving_guarantees_on_random_streams(seed):
    rng = random.Random(seed)
    k = 8
    t = Tracker(max_envs=k)
    stream = [f"e{min(int(rng.paretovariate(0.8)), 60)}" for _ in range(3000)]
    for i, e in enumerate(stream):
        t.record("u", e)
        if i % 97 == 0:
            check_space_saving(t, stream[: i + 1], k)
    check_space_saving(t, stream, k)


def check_space_saving(t, stream, k):
    tally = t.users["u"]
    exact = reference_counts(stream)
    counts = {t.env_id(e): c for e, c in tally.env_counts().items()}
    n = len(stream)
    assert len(counts) == min(k, len(exact))
    assert sum(counts.values()) == n  # space-saving keeps the total
    assert tally.max_count == max(counts.values())
    for env, c in counts.items():
        assert exact[env] <= c <= exact[env] + n / k
    top_env = max(exact, key=exact.get)
    if exact[top_env] > n / k:  # a heavy hitter is always monitored
        assert top_env in counts
    assert tally.environments >= len(exact)
    assert tally.requests == n
    o = tally.overflow
    if o is not None:  # the array stays sorted and its index consistent
        assert o.cnt == sorted(o.cnt)
        assert all(o.ids[p] == e for e, p in o.pos.items())
        for c, end in o.block_end.items():
            assert o.cnt[end] == c and (end + 1 == len(o.cnt) or o.cnt[end + 1] > c)


def test_below_the_bound_counts_are_exact():
    rng = random.Random(3)
    t = Tracker()
    stream = [f"e{rng.randrange(40)}" for _ in range(2000)]
    for e in stream:
        t.record("u", e)
    exact = reference_counts(stream)
    assert {t.env_id(e): c for e, c in t.users["u"].env_counts().items()} == exact
    assert t.users["u"].max_count == max(exact.values())
    assert t.users["u"].environments == len(exact)


def memory_per_user(n_envs, requests, users):
    t = Tracker()
    for e in range(n_envs):  # intern first: the shared table is not per-user memory
        t.record("warmup", f"env-{e}")
    rng = random.Random(n_envs)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for u in range(users):
            key = f"user-{u:06d}"
            for _ in range(requests):
                t.record(key, f"env-{min(int(rng.paretovariate(0.7)), n_envs - 1)}", False, True)
        t.take_changed()
        return (tracemalloc.get_traced_memory()[0] - base) / users
    finally:
        tracemalloc.stop()


def test_memory_per_user_is_small_and_bounded():
    few = memory_per_user(5, 50, 200)
    many = memory_per_user(2000, 3000, 5)
    far_more = memory_per_user(20000, 6000, 3)
    assert few < 1024
    assert many < 12 * 1024
    assert far_more < 12 * 1024  # ten times the environments, no more memory


def test_worker_rows_merge_on_master_as_snapshots():
    w1, w2 = Tracker(), Tracker()
    w1.record("w1-u1", "A", True, False)
    w1.record("w1-u1", "A", False, True)
    w2.record("w2-u1", "B", True, False)
    master = {}
    merge_rows(master, w1.take_changed())
    merge_rows(master, w2.take_changed())
    assert w1.take_changed() == []  # nothing changed since
    w1.record("w1-u1", "C", True, False)
    changed = w1.take_changed()
    assert [r["user"] for r in changed] == ["w1-u1"]
    merge_rows(master, changed)
    merge_rows(master, changed)  # a repeated snapshot never double counts
    assert master["w1-u1"]["requests"] == 3 and master["w1-u1"]["max_count"] == 2
    doc = summarize(master.values(), environments=3)
    assert (doc["users"], doc["requests"], doc["cold_starts"]) == (2, 4, 3)
    assert doc["hit_rate"]["weighted"] == (2 + 1) / (3 + 1)
    assert w1.take_new_envs() == ["A", "C"] and w1.take_new_envs() == []
    assert w2.take_new_envs() == ["B"]


def test_reset_and_bad_bound():
    t = Tracker()
    t.record("u", "A")
    t.reset()
    assert (t.users, t.environments, t.take_changed(), t.take_new_envs()) == ({}, 0, [], [])
    with pytest.raises(ValueError, match="max_envs must be >= 1"):
        Tracker(max_envs=0)
