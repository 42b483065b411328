"""Worker -> master aggregation without Locust: exact totals, snapshots, runs, lost workers."""

import random

import msgpack
import pytest

from lambda_affinity.core import summary
from lambda_affinity.core.tracker import ROW_FIELDS, Tracker
from lambda_affinity.locust_plugin.distributed import (
    WIRE_FIELDS,
    Aggregator,
    blob,
    final_payload,
    pack_columns,
    pack_rows,
    periodic_payload,
    unpack_row,
)
from lambda_affinity.locust_plugin.wire import column_rows, env_digest, pack_digests, unpack_digests


def play(tracker, label, rng, n, envs):
    for _ in range(n):
        if rng.random() < 0.1:
            tracker.record_invalid(label)
        else:
            tracker.record(label, rng.choice(envs), rng.random() < 0.05, rng.choice((True, False, None)))


def test_wire_rows_round_trip_to_tracker_rows():
    t = Tracker()
    rng = random.Random(3)
    for u in range(5):
        t.register(f"w0-u{u + 1}")
        play(t, f"w0-u{u + 1}", rng, u * 7, ["A", "B", "C"])
    rows = t.rows()
    packed = pack_rows(rows)
    assert all(len(p) == len(WIRE_FIELDS) for p in packed)
    # what goes through Locust's msgpack comes back as the same rows, max_share derived
    assert [unpack_row(v) for v in msgpack.unpackb(msgpack.packb(packed))] == rows
    # and so do they in columns, as they travel
    assert [unpack_row(v) for v in column_rows(msgpack.unpackb(msgpack.packb(pack_columns(packed))))] == rows
    assert list(unpack_row(packed[0])) == list(ROW_FIELDS) and rows[0]["max_share"] is None


def test_master_totals_equal_what_every_worker_recorded():
    rng = random.Random(7)
    shared = [f"env-{i}" for i in range(30)]  # workers share environments: count them once
    workers = {f"client-{w}": Tracker() for w in range(3)}
    agg = Aggregator()
    agg.start("run-1")
    sent_rows = 0
    for _interval in range(6):
        for w, (key, t) in enumerate(workers.items()):
            for u in rng.sample(range(1, 41), 15):  # only some users active in an interval
                label = f"w{w}-u{u}"
                t.register(label)
                play(t, label, rng, rng.randint(1, 5), shared)
            payload = periodic_payload(t, "run-1")
            sent_rows += len(column_rows(payload["cols"]))
            assert agg.receive(key, msgpack.unpackb(msgpack.packb(payload)), index=w)
    for w, (key, t) in enumerate(workers.items()):
        agg.receive(key, final_payload(t, "run-1"), index=w)
        agg.saw_stats(key)
    expected = [r for t in workers.values() for r in t.rows()]
    assert sorted(map(tuple, (r.values() for r in agg.row_dicts()))) == sorted(
        map(tuple, (r.values() for r in expected))
    )
    distinct = set().union(*(t.env_ids() for t in workers.values()))
    assert agg.environments == len(distinct) < sum(t.environments for t in workers.values())
    # rows come out by worker index, then in each worker's own order
    assert summary.summarize(agg.row_dicts(), agg.environments) == summary.summarize(expected, len(distinct))
    assert agg.outstanding() == [] and agg.problems() == []
    assert sent_rows < 6 * 3 * 40  # periodic payloads carried changed users only


def test_only_changed_rows_and_new_envs_are_sent():
    t = Tracker()
    t.record("w0-u1", "A")
    t.record("w0-u2", "B")
    first = periodic_payload(t, "r")
    assert sorted(v[0] for v in column_rows(first["cols"])) == ["w0-u1", "w0-u2"]
    assert unpack_digests(first["envh"]).tolist() == [env_digest("A"), env_digest("B")]
    assert periodic_payload(t, "r") is None  # nothing new: the report carries nothing of ours
    t.record("w0-u2", "A")
    again = periodic_payload(t, "r")
    assert [v[0] for v in column_rows(again["cols"])] == ["w0-u2"] and again["envh"] == b""
    final = final_payload(t, "r")
    assert [v[0] for v in column_rows(final["cols"])] == ["w0-u1", "w0-u2"] and unpack_digests(
        final["envh"]
    ).tolist() == [env_digest("A"), env_digest("B")]
    assert final["final"] == {"users": 2, "requests": 3, "invalid": 0}
    assert periodic_payload(t, "r") is None  # the final snapshot took everything


def test_repeated_late_and_foreign_messages_never_double_count():
    t = Tracker()
    agg = Aggregator()
    agg.start("now")
    t.record("w0-u1", "A")
    early = periodic_payload(t, "now")
    t.record("w0-u1", "A")
    t.record("w0-u1", "B")
    late = periodic_payload(t, "now")
    agg.receive("c0", late)
    agg.receive("c0", late)  # repeated
    agg.receive("c0", early)  # an older snapshot arriving after a newer one
    assert agg.row_dicts() == t.rows() and agg.row_dicts()[0]["requests"] == 3
    # a report of another run (a previous test in the web UI) is dropped
    stale = Tracker()
    stale.record("w0-u9", "Z")
    assert not agg.receive("c0", periodic_payload(stale, "before"))
    assert agg.dropped == 1 and [r["user"] for r in agg.row_dicts()] == ["w0-u1"] and agg.environments == 2
    agg.start("next")
    assert agg.row_dicts() == [] and agg.environments == 0 and agg.workers == {}


def test_lost_worker_is_reported_and_its_rows_are_kept():
    agg = Aggregator()
    agg.start("r")
    alive, dead = Tracker(), Tracker()
    alive.record("w0-u1", "A")
    dead.record("w1-u1", "B")
    dead.record("w1-u1", "B")
    agg.receive("alive-id", periodic_payload(alive, "r"), index=0, now=100.0)
    agg.receive("dead-id", periodic_payload(dead, "r"), index=1, now=100.0)
    dead.record("w1-u1", "C")  # recorded after its last report: never reaches the master
    agg.worker("silent-id", 2)  # connected, never reported
    alive.record("w0-u1", "A")
    agg.receive("alive-id", final_payload(alive, "r"), index=0, now=103.0)
    # the final payload is in, Locust's stats report after it not yet
    assert sorted(w.key for w in agg.outstanding()) == ["alive-id", "dead-id", "silent-id"]
    agg.saw_stats("alive-id")
    assert sorted(w.key for w in agg.outstanding()) == ["dead-id", "silent-id"]
    assert [w.key for w in agg.outstanding(lost=["dead-id", "silent-id"])] == []
    assert agg.problems(now=104.0) == [
        "lambda-affinity: worker 1 (dead-id) sent no final report (lost or stopped too late); kept what it sent "
        "until then: 1 users, 2 valid replies, 0 invalid (its last report came 4.0 s before the end)",
        "lambda-affinity: worker 2 (silent-id) sent no final report (lost or stopped too late); kept what it sent "
        "until then: 0 users, 0 valid replies, 0 invalid (it sent no report)",
    ]
    assert {r["user"]: r["requests"] for r in agg.row_dicts()} == {"w0-u1": 2, "w1-u1": 2}
    assert agg.summary_of_workers() == {
        "count": 3,
        "lost": [{"index": 1, "id": "dead-id"}, {"index": 2, "id": "silent-id"}],
    }


def test_a_worker_that_left_after_its_final_payload_is_settled():
    agg = Aggregator()
    agg.start("r")
    t = Tracker()
    t.record("w0-u1", "A")
    agg.receive("c", final_payload(t, "r"), index=0)
    agg.left("c")  # quit without a stats report after it (SIGTERM on the worker)
    assert agg.outstanding() == []


def test_a_final_that_disagrees_with_the_rows_held_is_said():
    agg = Aggregator()
    agg.start("r")
    t = Tracker()
    t.record("w0-u1", "A")
    payload = final_payload(t, "r")
    payload["final"] = {"users": 1, "requests": 2, "invalid": 0}
    agg.receive("c", payload, index=0)
    assert agg.problems() == [
        "lambda-affinity: worker 0 (c) recorded 1 users, 2 valid replies, 0 invalid, but "
        "this master holds 1 users, 1 valid replies, 0 invalid"
    ]


def test_rows_come_out_by_worker_index_then_in_the_workers_order():
    agg = Aggregator()
    agg.start("r")
    for key, index, labels in (("b", 1, ["w1-u2", "w1-u1"]), ("a", 0, ["w0-u1", "w0-u10", "w0-u2"])):
        t = Tracker()
        for label in labels:
            t.register(label)
        agg.receive(key, final_payload(t, "r"), index=index)
    assert [r["user"] for r in agg.row_dicts()] == ["w0-u1", "w0-u10", "w0-u2", "w1-u2", "w1-u1"]


def test_aggregation_cpu_is_accounted():
    t = Tracker()
    for u in range(2000):
        t.record(f"w0-u{u}", f"e{u % 50}")
    agg = Aggregator()
    agg.start("r")
    agg.receive("c", periodic_payload(t, "r"))
    assert agg.cpu_s > 0 and agg.messages == 1


def test_periodic_payloads_are_unpacked_only_when_read_and_a_final_one_supersedes_them():
    t = Tracker()
    agg = Aggregator()
    agg.start("r")
    t.record("w0-u1", "A")
    agg.receive("c", periodic_payload(t, "r"), index=0)
    w = agg.workers["c"]
    assert len(w.queue) == 1 and w.table == {}  # kept as received
    assert [r["requests"] for r in agg.row_dicts()] == [1] and w.queue == []  # a read (the web UI) unpacks
    t.record("w0-u1", "B")
    t.record("w0-u2", "B")
    agg.receive("c", periodic_payload(t, "r"), index=0)
    agg.receive("c", final_payload(t, "r"), index=0)
    assert w.pending_final is not None and len(w.queue) == 1 and w.final == {"users": 2, "requests": 3, "invalid": 0}
    # the final, unpacked when read (once, at the end of a headless run), supersedes the queue unread
    assert agg.row_dicts() == t.rows() and agg.environments == 2 and w.queue == [] and w.pending_final is None


def test_queued_periodic_payloads_stay_bounded_in_a_long_run(monkeypatch):
    from lambda_affinity.locust_plugin import distributed

    monkeypatch.setattr(distributed, "MAX_QUEUED_BYTES", 2000)  # a few reports' worth here
    t = Tracker()
    agg = Aggregator()
    agg.start("r")
    for i in range(200):  # hours of reports, nobody reading
        t.record(f"w0-u{i % 7}", f"E{i % 5}")
        agg.receive("c", periodic_payload(t, "r"), index=0)
        w = agg.workers["c"]
        assert w.queued_bytes <= 2000 and w.queued_bytes == sum(len(p["cols"]) + len(p["envh"]) + 64 for p in w.queue)
    assert agg.row_dicts() == t.rows() and agg.environments == 5


# -- malformed payloads and rows: each rejected alone, reported once per worker, the rest kept -----------------


def _worker_with_rows(n_users=3, requests=4):
    t = Tracker()
    for u in range(1, n_users + 1):
        for _ in range(requests):
            t.record(f"w0-u{u}", "A")
    return t


def _good_row(user="w0-u9", requests=2):
    return [user, requests, requests, 0, 0, 1, 1, 0, 0, 0]


# rows check_row refuses that columns can carry (their counts are whole numbers >= 0): a label that is not one,
# counts that cannot be together
BAD_COLUMN_ROWS = [
    [None, 1, 1, 0, 0, 1, 1, 0, 0, 0],  # no label
    ["", 1, 1, 0, 0, 1, 1, 0, 0, 0],  # an empty label
    [7, 1, 1, 0, 0, 1, 1, 0, 0, 0],  # a number for a label
    ["x" * 300, 1, 1, 0, 0, 1, 1, 0, 0, 0],  # too long a label
    ["w0-u9", 1, 5, 0, 0, 1, 1, 0, 0, 0],  # max_count > requests
    ["w0-u9", 1, 1, 3, 1, 1, 1, 0, 0, 0],  # warm_hits > cache_known
    ["w0-u9", 1, 1, 0, 3, 1, 1, 0, 0, 0],  # cache_known > requests
    ["w0-u9", 1, 1, 0, 0, 4, 1, 0, 0, 0],  # environments > requests
    ["w0-u9", 2, 1, 0, 0, 2, 2, 1, 0, 0],  # cold starts + new-environment calls > requests
]


def _columns(labels, *counts):
    """A rows blob put together by hand: labels, then count columns as given."""
    return msgpack.packb([labels, *counts])


_ONE = (1).to_bytes(1, "little")
BAD_COLUMNS = [  # blobs of rows that are not columns: rejected whole
    b"\xc1garbage",  # 0xc1 is never valid msgpack
    pack_columns([_good_row()]) + b"\x00",  # trailing bytes
    "rows as text",
    blob({"a": 1}),
    blob([]),
    _columns(["w0-u9"], *[_ONE] * 8),  # a count column short
    _columns(["w0-u9"], *[_ONE] * 10),  # one too many
    _columns(["w0-u9"], *[_ONE] * 8, b"\x01\x00\x00"),  # 3 bytes a number
    _columns(["w0-u9", "w0-u8"], *[_ONE] * 9),  # one number for two labels
    _columns(["w0-u9"], *[_ONE] * 8, [1]),  # a list, not bytes
    _columns(["w0-u9"], *[_ONE] * 8, -1),
    _columns("w0-u9", *[_ONE] * 9),  # labels not a list
    blob([_good_row(), _good_row("w0-u8")]),  # one list per row: an older worker's
]


def test_malformed_rows_are_rejected_alone_and_reported_once_per_worker():
    t = _worker_with_rows()
    agg = Aggregator()
    agg.start("r")
    good = column_rows(periodic_payload(t, "r")["cols"])
    bad_rows = pack_columns([*good[:2], *BAD_COLUMN_ROWS, good[2]])
    agg.receive("c0", {"run": "r", "cols": bad_rows, "envh": pack_digests(["A"])}, index=0)
    agg.receive(
        "c0", {"run": "r", "cols": pack_columns([BAD_COLUMN_ROWS[1], _good_row()]), "envh": pack_digests([])}, index=0
    )
    rows = agg.row_dicts()  # never raises: the web UI and the sampler read this while the run goes
    assert sorted(r["user"] for r in rows) == ["w0-u1", "w0-u2", "w0-u3", "w0-u9"]
    assert agg.environments == 1
    (line,) = agg.problems()
    assert "worker 0 (c0) sent 0 malformed payloads and 10 malformed rows, rejected (the first: a row's user" in line
    assert "; it sent no final report; kept everything else: 4 users, 14 valid replies" in line


def test_every_row_the_columns_can_carry_is_checked_as_check_row_does():
    from lambda_affinity.locust_plugin.wire import MalformedError, check_row, row_table, unpack_columns

    rng = random.Random(11)
    labels = ["w0-u1", "w0-u2", "", "x" * 300, "x" * 256, 3, None]
    rows = [[rng.choice(labels)] + [rng.choice((0, 1, 2, 3, 300, 70_000)) for _ in range(9)] for _ in range(5000)]
    bad: list = []
    table = row_table(unpack_columns(pack_columns(rows)), bad)
    want_bad, want_table = [], {}
    for row in rows:
        try:
            check_row(row)
            want_table[row[0]] = tuple(row)  # a label repeated: its last row
        except MalformedError:
            want_bad.append(tuple(row))
    assert bad == want_bad and 0 < len(bad) < len(rows)
    assert table == want_table and len(table) == 3  # "w0-u1", "w0-u2", "x" * 256


def test_counts_of_every_width_travel_exactly():
    rows = [["w0-u1", 2**63, 2**32, 2**16, 2**32, 255, 256, 0, 2**40, 65_535]]
    assert column_rows(pack_columns(rows)) == rows
    assert column_rows(pack_columns([])) == []


def test_malformed_periodic_payloads_are_rejected_whole_and_the_rest_kept():
    t = _worker_with_rows()
    agg = Aggregator()
    agg.start("r")
    agg.receive("c0", msgpack.unpackb(msgpack.packb(periodic_payload(t, "r"))), index=0)
    bad_payloads = [
        ["not", "a", "mapping"],
        "text",
        *({"run": "r", "cols": cols, "envh": pack_digests([])} for cols in BAD_COLUMNS),
        {"run": "r", "cols": pack_columns([]), "envh": b"\x01\x02\x03"},
        {"run": "r", "cols": pack_columns([]), "envh": pack_digests([]), "restarted": "w0-u1"},
        {"run": "r", "rows": blob([_good_row()]), "envh": pack_digests([])},  # an older worker's payload
    ]
    for bad in bad_payloads:
        agg.receive("c0", bad, index=0)
        assert sorted(r["user"] for r in agg.row_dicts()) == ["w0-u1", "w0-u2", "w0-u3"]
    (line,) = agg.problems()
    assert line.startswith(f"lambda-affinity: worker 0 (c0) sent {len(bad_payloads)} malformed payloads and 0 ")


def test_an_older_workers_payload_is_refused_with_why():
    agg = Aggregator()
    agg.start("r")
    agg.receive("c0", {"run": "r", "rows": blob([_good_row()]), "envh": pack_digests([])}, index=0)
    (line,) = agg.problems()
    assert "its rows are one list per row, as a worker of an older lambda-affinity sends them: run the same" in line
    agg.start("r")
    agg.receive("c0", {"run": "r", "cols": blob([_good_row()]), "envh": pack_digests([])}, index=0)
    assert "as a worker of an older lambda-affinity sends them" in agg.problems()[0]


def test_a_bad_final_payload_keeps_the_workers_earlier_rows():
    t = _worker_with_rows()
    agg = Aggregator()
    agg.start("r")
    agg.receive("c0", periodic_payload(t, "r"), index=0)
    before = agg.row_dicts()
    for bad_final in (
        {**final_payload(t, "r"), "cols": b"\xc1"},
        {**final_payload(t, "r"), "final": {"users": "three"}},
        {**final_payload(t, "r"), "envh": None},
    ):
        assert not agg.receive("c0", bad_final, index=0)  # told at once
        assert agg.row_dicts() == before
    # one that looks like a list of rows but is cut short: found when read, and the earlier rows still stand
    assert agg.receive("c0", {**final_payload(t, "r"), "cols": b"\x93\x01"}, index=0)
    assert agg.row_dicts() == before
    assert agg.workers["c0"].final is None
    # nor do columns that are not: each refused at once or found when read
    for cols in BAD_COLUMNS:
        agg.receive("c0", {**final_payload(t, "r"), "cols": cols}, index=0)
        assert agg.row_dicts() == before and agg.workers["c0"].final is None
    (line,) = agg.problems()
    assert f"sent {4 + len(BAD_COLUMNS)} malformed payloads" in line
    assert "the first: final snapshot: its rows are not a msgpack list" in line
    # a good final after them still counts whole
    assert agg.receive("c0", final_payload(t, "r"), index=0)
    assert agg.row_dicts() == t.rows()


def test_a_final_payload_with_a_bad_row_keeps_its_good_rows():
    t = _worker_with_rows()
    agg = Aggregator()
    agg.start("r")
    final = final_payload(t, "r")
    rows = column_rows(final["cols"])
    assert agg.receive("c0", {**final, "cols": pack_columns([rows[0], BAD_COLUMN_ROWS[4], rows[1], rows[2]])}, index=0)
    assert agg.row_dicts() == t.rows()
    (line,) = agg.problems()  # one line: the rejection, not also a disagreement
    assert "sent 0 malformed payloads and 1 malformed rows" in line and "no final report" not in line


def test_restarted_users_are_kept_out_of_users_and_rates_but_in_the_totals():
    t = Tracker()
    for _ in range(10):
        t.record("w0-u1", "A")
    t.record("w0-u2", "B", True)  # a short-lived user Locust stopped when it moved users between workers
    agg = Aggregator()
    agg.start("r")
    agg.receive("c0", periodic_payload(t, "r", ["w0-u2"]), index=0)
    assert agg.restarted() == {"w0-u2"}
    agg.receive("c0", final_payload(t, "r", ["w0-u2"]), index=0)
    rows = agg.row_dicts()
    kept = [r for r in rows if r["user"] not in agg.restarted()]
    moved = [r for r in rows if r["user"] in agg.restarted()]
    doc = summary.summarize(kept, agg.environments, restarted=moved)
    assert doc["users"] == 1 and doc["restarted_users"] == 1
    assert doc["requests"] == 11 and doc["cold_starts"] == t.rows()[0]["cold_starts"] + 1
    assert doc["hit_rate"]["mean"] == 1.0 and [u["user"] for u in doc["per_user"]] == ["w0-u1"]
    assert "restarted_users" not in summary.summarize(kept, agg.environments)


def test_a_worker_follows_a_test_the_master_restarts_while_its_users_run():
    """Locust stops a test whose workers all miss heartbeats and starts it again when they come back; the
    workers' users keep running and their test_start does not fire. Before, every row was dropped as another
    run's: the master held 0 replies where Locust counted 15 707."""
    from lambda_affinity.locust_plugin.roles import REPORT_KEY, WorkerRole

    t = Tracker()
    worker = WorkerRole(t)
    worker.begin("run1")
    t.record("w0-u1", "A")
    agg = Aggregator()
    agg.start("run2")  # the master's new run, as the spawn messages now name it
    data: dict = {}
    worker.add_to_report(data, "run2")
    # the rows start afresh, as Locust's master cleared its statistics
    assert data == {} and worker.run == "run2" and t.rows() == []
    t.record("w0-u1", "A")
    worker.add_to_report(data, "run2")
    assert agg.receive("c0", data[REPORT_KEY], index=0)
    assert [r["requests"] for r in agg.row_dicts()] == [1]


def test_the_fast_row_test_agrees_with_the_one_that_says_why():
    from lambda_affinity.locust_plugin.wire import MalformedError, check_row, is_row

    rng = random.Random(5)
    values = [0, 0, 1, 1, 2, 3, -1, 1.0, True, None, "x"]
    seen = {True: 0, False: 0}
    for _ in range(20_000):
        v = [rng.choice(["w0-u1", "w0-u1", "", "x" * 300, 3])] + [rng.choice(values) for _ in range(9)]
        if rng.random() < 0.05:
            v = v[: rng.randrange(10)]
        try:
            check_row(v)
            ok = True
        except MalformedError:
            ok = False
        assert is_row(v) is ok, v
        seen[ok] += 1
    assert seen[True] > 0 and seen[False] > 0
    assert is_row(_good_row()) and not is_row(tuple(_good_row()))


def test_an_older_workers_row_is_refused_with_why():
    from lambda_affinity.locust_plugin.wire import MalformedError, check_row

    with pytest.raises(MalformedError, match=r"a row has 9 fields, a worker of an older lambda-affinity's"):
        check_row(["w0-u1", 2, 2, 0, 0, 1, 1, 0, 0])


def test_a_worker_running_again_in_the_same_run_after_its_final_snapshot_goes_on():
    """Locust's master stops a test whose workers all missed heartbeats, then its dispatch starts them again,
    with no new test on the master (its statistics go on). Before, the first final snapshot (often empty)
    stood and every row after it was dropped: 0 users where Locust counted 8 025 requests."""
    from lambda_affinity.locust_plugin.roles import REPORT_KEY, WorkerRole

    t = Tracker()
    worker = WorkerRole(t)
    worker.begin("run1")
    agg = Aggregator()
    agg.start("run1")
    t.record("w0-u1", "A")
    sent = []

    class Runner:
        def send_message(self, name, payload):
            sent.append(payload)

    worker.send_final(Runner())
    agg.receive("c0", sent[-1], index=0)
    agg.saw_stats("c0")
    assert agg.outstanding() == []
    worker.resume()
    t.record("w0-u1", "B")
    t.record("w0-u2", "B")
    data: dict = {}
    worker.add_to_report(data, "run1")
    agg.receive("c0", data[REPORT_KEY], index=0)
    assert [w.key for w in agg.outstanding()] == ["c0"]  # a new final is due
    assert sorted(r["requests"] for r in agg.row_dicts()) == [1, 2]
    worker.send_final(Runner())
    agg.receive("c0", sent[-1], index=0)
    assert agg.row_dicts() == t.rows() and agg.problems() == []
    # the user of before the restart was stopped mid-run: apart from the run's users
    assert agg.restarted() == {"w0-u1"}


def test_users_not_running_when_the_test_stops_are_kept_apart_though_their_stop_went_unseen():
    """On a machine too loaded, Locust's master marks workers missing, hands their users to others and, when
    they come back, lowers their counts; a newer spawn message kills the greenlet that was stopping users, so
    some stops are never seen. 8 workers x 5,000 users: 44,750 users, none kept apart, for 40,000 spawned.
    The users running when the test begins to stop are the run's; every other one was stopped mid-run."""
    from lambda_affinity.locust_plugin.roles import WorkerRole

    t = Tracker()
    worker = WorkerRole(t)
    worker.begin("run1")
    for label in ("w0-u1", "w0-u2", "w0-u3", "w0-u4"):
        t.record(label, "A")
    worker.stopped_mid_run("w0-u4")  # a stop that was seen
    worker.stopping(["w0-u2"])
    sent = []

    class Runner:
        def send_message(self, name, payload):
            sent.append(payload)

    worker.send_final(Runner())
    agg = Aggregator()
    agg.start("run1")
    assert agg.receive("c0", sent[-1], index=0)
    assert agg.restarted() == {"w0-u1", "w0-u3", "w0-u4"} and sorted(sent[-1]["restarted"]) == sorted(agg.restarted())
    assert agg.problems() == []
    # a test stopped and started again in the same run: the snapshot of before no longer holds
    worker.resume()
    assert worker.running_at_stop is None


def test_a_final_snapshot_is_held_as_its_columns_until_newer_rows_follow_it():
    t = _worker_with_rows()
    agg = Aggregator()
    agg.start("r")
    agg.receive("c0", final_payload(t, "r"), index=0)
    agg.saw_stats("c0")
    w = agg.workers["c0"]
    assert agg.row_dicts() == t.rows() and w.base is not None and w.table == {}
    assert w.held() == w.final == {"users": 3, "requests": 12, "invalid": 0} and agg.problems() == []
    # the worker runs again (WorkerRole.resume): its rows go on from the final snapshot's
    t.record("w0-u2", "B")
    t.record("w0-u4", "B")
    agg.receive("c0", periodic_payload(t, "r"), index=0)
    assert agg.row_dicts() == t.rows() and w.base is None and list(w.table) == ["w0-u1", "w0-u2", "w0-u3", "w0-u4"]


def test_a_final_snapshot_with_a_label_twice_keeps_its_last_row_as_a_table_did():
    from lambda_affinity.locust_plugin.wire import all_rows, unpack_columns

    rows = [_good_row("w0-u1", 2), _good_row("w0-u2", 3), _good_row("w0-u1", 5)]
    assert not all_rows(unpack_columns(pack_columns(rows))) and all_rows(unpack_columns(pack_columns(rows[1:])))
    agg = Aggregator()
    agg.start("r")
    final = {"users": 3, "requests": 10, "invalid": 0}
    agg.receive("c0", {"run": "r", "cols": pack_columns(rows), "envh": pack_digests(["A"]), "final": final}, index=0)
    assert [(r["user"], r["requests"]) for r in agg.row_dicts()] == [("w0-u1", 5), ("w0-u2", 3)]
    (line,) = agg.problems()  # never sent by a worker: said as a disagreement, as before
    assert "recorded 3 users, 10 valid replies, 0 invalid, but this master holds 2 users, 8 valid" in line


def test_environment_ids_travel_as_digests_and_are_counted_once_across_workers():
    ids = ["2020/03/27/[$LATEST]ab", "2020/03/27/[$LATEST]cd", "\udcff odd", ""]
    assert unpack_digests(pack_digests(ids)).tolist() == [env_digest(e) for e in ids]
    assert len({env_digest(e) for e in ids}) == 4 and pack_digests([]) == b""
    agg = Aggregator()
    agg.start("r")
    for w, seen in enumerate((["A", "B"], ["B", "C"])):
        t = Tracker()
        for env in seen:
            t.record(f"w{w}-u1", env)
        agg.receive(f"c{w}", final_payload(t, "r"), index=w)
    assert agg.environments == 3 and agg.problems() == []


def test_malformed_or_older_environment_ids_are_rejected_with_their_payload():
    t = _worker_with_rows()
    agg = Aggregator()
    agg.start("r")
    periodic = periodic_payload(t, "r")
    agg.receive("c0", periodic, index=0)
    for bad in ({"envh": b"\x01" * 9}, {"envh": "text"}, {"envh": None}):
        agg.receive("c0", {**periodic, **bad}, index=0)
        assert not agg.receive("c0", {**final_payload(t, "r"), **bad}, index=0)  # a final's: refused at once
    older = {k: v for k, v in periodic.items() if k != "envh"}
    agg.receive("c0", {**older, "envs": blob(["A"])}, index=0)
    assert agg.environments == 1 and [r["requests"] for r in agg.row_dicts()] == [4, 4, 4]
    (line,) = agg.problems()
    assert "sent 7 malformed payloads" in line
    assert "the first: final snapshot: its environment ids are not 8-byte" in line
    agg.start("r")
    agg.receive("c0", {**older, "envs": blob(["A"])}, index=0)
    assert "its environment ids are a list, as a worker of an older lambda-affinity sends them" in agg.problems()[0]
