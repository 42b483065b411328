"""Worker -> master aggregation of per-user rows. Pure Python, no Locust import
(locust_plugin/roles.py wires it to Locust's messages).

A worker sends, with each of Locust's periodic reports, the rows of the users
that changed since its last report plus the environment ids it saw first
since then (`periodic_payload`), and one full snapshot when its test stops
(`final_payload`). The master keeps them in an `Aggregator`.

Rows are snapshots, not deltas: a repeated or late message never double
counts, and a row never goes back to an older snapshot (a user's requests and
invalid replies only grow within a run). Every payload names its run (the
master's token, sent to workers with the spawn message), so a report from a
previous run that arrives late is dropped instead of mixed in.

What it costs the master (bench/distributed.py): rows travel in columns
(`wire.pack_columns`: the labels, then one array of unsigned integers per
count, so the counts unpack by array.frombytes and are whole numbers >= 0 by
construction), environment ids as 64-bit digests (`wire.pack_digests`: the
master only counts the distinct ones), both as bytes inside Locust's message,
so Locust decodes each as a single bytes object and the unpacking is ours,
measured in `Aggregator.cpu_s`. The master only appends a periodic payload
to its worker's queue, and unpacks the queue when someone reads the rows (the
web UI, at most once a second) or when the worker never sends its final
snapshot; a final snapshot replaces the queue unread, and when every row of
it checks it is held as its columns (a table of rows is made only if newer
rows follow it). A headless run thus unpacks each user's row once, however
long it runs.

Nothing a worker sends can break the master: each payload and each row is
checked where it is unpacked (`wire.all_rows`, and `check_row` for why), a malformed one is rejected
alone and counted for its worker (one line per worker in `problems()`), and
everything else is kept. A final snapshot that cannot be read leaves the
worker's earlier rows as they were.

Users that Locust stops while the run goes on (a spawn message lowered the
worker's count: rebalancing after a worker went missing or came back, or a
ramp-down) are named in `restarted`: the master keeps their rows apart
(`restarted_users` in the summary), outside `users` and the per-user rates.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..core.endpoints import COUNT_FIELDS, EndpointTracker, add_tables, rows_of, table_size
from ..core.schema import EndpointRow, UserRow, Workers
from ..core.tracker import Tracker
from .wire import (  # noqa: F401 -- re-exported: the wire's names were imported from here
    MAX_LABEL,
    WIRE_FIELDS,
    Columns,
    MalformedError,
    Payload,
    Totals,
    WireRow,
    all_rows,
    blob,
    check_blob_head,
    check_labels,
    check_row,
    check_totals,
    env_digest,
    is_row,
    pack_columns,
    pack_digests,
    pack_rows,
    row_table,
    unblob,
    unblob_checked,
    unpack_columns,
    unpack_digests,
    unpack_row,
)

_REQUESTS = WIRE_FIELDS.index("requests")
_INVALID = WIRE_FIELDS.index("invalid")
# How much of a worker's periodic payloads may wait before the master unpacks
# them: unpacking is deferred (a final snapshot usually supersedes them
# unread), but a long headless run must not hold hours of reports. Counted in
# bytes of blobs, not payloads: a 45 s run of 5 000 users a worker queues about
# 2 MB, which then costs nothing to drop; unpacking 8 MB of rows takes ~0.3 s.
MAX_QUEUED_BYTES = 8 << 20


def periodic_payload(
    tracker: Tracker, run: str | None, restarted: Sequence[str] = (), endpoints: EndpointTracker | None = None
) -> Payload | None:
    """Rows changed and environments first seen since the last call, the
    users Locust stopped mid-run since then, and the endpoint table if it
    changed; None when there is nothing new (the report then carries nothing
    of ours)."""
    rows = tracker.take_changed()
    envs = tracker.take_new_envs()
    table = endpoints.take_changed() if endpoints is not None else None
    if not rows and not envs and not restarted and table is None:
        return None
    payload: Payload = {"run": run, "cols": pack_columns(pack_rows(rows)), "envh": pack_digests(envs)}
    if restarted:
        payload["restarted"] = list(restarted)
    if table is not None:
        payload["endpoints"] = blob(table)
    return payload


def final_payload(
    tracker: Tracker, run: str | None, restarted: Sequence[str] = (), endpoints: EndpointTracker | None = None
) -> Payload:
    """Everything the worker recorded in this run, once, when it stops: a
    periodic report lost on the way cannot leave a gap, and `totals` let the
    master verify that what it holds for this worker is exactly this."""
    tracker.take_changed()
    tracker.take_new_envs()
    rows = tracker.rows()
    payload: Payload = {
        "run": run,
        "cols": pack_columns(pack_rows(rows)),
        "envh": pack_digests(tracker.env_ids()),
        "restarted": list(restarted),
        "final": totals(rows),
    }
    if endpoints is not None:
        endpoints.take_changed()
        payload["endpoints"] = blob(endpoints.table())
    return payload


def totals(rows: Iterable[UserRow]) -> Totals:
    out: Totals = {"users": 0, "requests": 0, "invalid": 0}
    for r in rows:
        out["users"] += 1
        out["requests"] += r["requests"]
        out["invalid"] += r["invalid"]
    return out


def _size(payload: Mapping) -> int:
    """A queued payload's blobs, in bytes (what holding it costs)."""
    rows, envs = payload.get("cols"), payload.get("envh")
    return (len(rows) if type(rows) is bytes else 0) + (len(envs) if type(envs) is bytes else 0) + 64


def _blob(payload: Mapping, key: str, old_key: str, old_form: str) -> Any:
    """A payload's blob under `key`; a worker of an older version, which sent `old_key` instead, is told apart."""
    if key not in payload and old_key in payload:
        raise MalformedError(
            f"its {old_form}, as a worker of an older lambda-affinity sends them: "
            "run the same version on master and workers"
        )
    return payload.get(key)


def _columns_blob(payload: Mapping) -> Any:
    return _blob(payload, "cols", "rows", "rows are one list per row")


def _digests_blob(payload: Mapping) -> Any:
    return _blob(payload, "envh", "envs", "environment ids are a list")


def row_error(values: Any) -> MalformedError:
    """Why `values` (not a row: is_row said so) was rejected."""
    try:
        check_row(values)
    except MalformedError as exc:
        return exc
    return MalformedError(f"not a row: {str(values)[:80]}")


class WorkerState:
    """What the master knows of one worker in the current run."""

    __slots__ = (
        "key",
        "index",
        "reports",
        "last_report",
        "final",
        "stats_after_final",
        "gone",
        "table",
        "base",
        "queue",
        "queued_bytes",
        "pending_final",
        "restarted",
        "bad_rows",
        "bad_payloads",
        "first_bad",
        "endpoints",
    )

    def __init__(self, key: str, index: int | None) -> None:
        self.key = key
        self.index = index
        self.reports = 0  # payloads of ours received in this run
        self.last_report: float | None = None  # monotonic time of the last one
        self.final: Totals | None = None  # the worker's own totals, once its final payload is in
        self.stats_after_final = False  # Locust's stats report that follows the final one is in too
        self.gone = False  # the worker said it quits, or it stopped
        self.table: dict[str, tuple] = {}  # user -> latest row (in WireRow's order), as unpacked so far
        # the final snapshot's rows as they came, all checked, when every one was a row: held as columns
        # (no tuple a row), made a table only if periodic rows follow it (the worker running again)
        self.base: Columns | None = None
        self.queue: list[Mapping] = []  # periodic payloads not unpacked yet, oldest first
        self.queued_bytes = 0  # the queue's blobs, in bytes
        self.pending_final: Mapping | None = None  # the final snapshot, not unpacked yet
        self.restarted: set[str] = set()  # users Locust stopped mid-run (rebalancing, ramp-down)
        self.bad_rows = 0  # malformed rows rejected
        self.bad_payloads = 0  # malformed payloads rejected whole
        self.first_bad = ""  # what the first of them was, for the one line that reports them
        self.endpoints: list = []  # the worker's latest per-endpoint table (core.endpoints)

    def reject(self, error: MalformedError, rows: int = 0) -> None:
        if rows:
            self.bad_rows += rows
        else:
            self.bad_payloads += 1
        if not self.first_bad:
            self.first_bad = str(error)

    @property
    def name(self) -> str:
        return f"worker {self.index} ({self.key})" if self.index is not None else f"worker {self.key}"

    @property
    def settled(self) -> bool:
        """Nothing more of this run will come from it: its final payload is
        in, and either Locust's report after it (so Locust's request counts
        for it are complete too) or the worker has left."""
        return self.final is not None and (self.stats_after_final or self.gone)

    def held(self) -> Totals:
        """Totals of the rows held for this worker (unpack the queue first)."""
        if self.base is not None:
            counts = self.base.counts
            return {
                "users": len(self.base.labels),
                "requests": sum(counts[_REQUESTS - 1]),
                "invalid": sum(counts[_INVALID - 1]),
            }
        out: Totals = {"users": len(self.table), "requests": 0, "invalid": 0}
        for values in self.table.values():
            out["requests"] += values[_REQUESTS]
            out["invalid"] += values[_INVALID]
        return out

    def rows(self) -> Iterable[tuple]:
        """The rows held, in the worker's order (unpack the queue first)."""
        return self.base.rows() if self.base is not None else self.table.values()

    def make_table(self) -> dict[str, tuple]:
        """The rows held as a table (user -> row), to fold newer rows in."""
        if self.base is not None:
            self.table = dict(zip(self.base.labels, self.base.rows(), strict=True))
            self.base = None
        return self.table


class Aggregator:
    """The master's view of a distributed run: each worker's rows, the
    distinct environment ids, and each worker's state."""

    def __init__(self) -> None:
        self.run: str | None = None
        self.envs: set[int] = set()  # the digests of the distinct environment ids (wire.env_digest)
        self.workers: dict[str, WorkerState] = {}
        self.dropped = 0  # payloads of another run
        self.messages = 0
        # CPU of this thread spent receiving and unpacking payloads (thread, not
        # process: zmq's I/O threads run meanwhile); bench/distributed.py reads it
        self.cpu_s = 0.0
        self.version = 0  # bumped on every change, for caches of derived views

    def start(self, run: str | None) -> None:
        """A new run: forget the previous one."""
        self.run = run
        self.envs = set()
        self.workers = {}
        self.dropped = 0
        self.version += 1

    @staticmethod
    def _take_endpoints(w: WorkerState, data: Any) -> None:
        """A worker's endpoint table, a snapshot: never go back to an older one; a malformed one is
        rejected alone, like a bad row."""
        try:
            table = unblob_checked(data, "endpoints")
            for entry in table:
                if type(entry) is not list or len(entry) != 1 + len(COUNT_FIELDS) or type(entry[0]) is not str:
                    raise MalformedError(f"an endpoint entry is not [name, {len(COUNT_FIELDS)} counts]")
                if not all(type(v) is int and v >= 0 for v in entry[1:]):
                    raise MalformedError(f"endpoint {entry[0][:MAX_LABEL]!r} has counts that are not whole numbers")
        except MalformedError as exc:
            w.reject(exc)
            return
        if table_size(table) >= table_size(w.endpoints):
            w.endpoints = table

    def worker(self, key: str, index: int | None = None) -> WorkerState:
        w = self.workers.get(key)
        if w is None:
            w = self.workers[key] = WorkerState(key, index)
        elif index is not None:
            w.index = index
        return w

    def receive(self, key: str, payload: Any, index: int | None = None, now: float | None = None) -> bool:
        """Take one payload from worker `key`; False when it belongs to
        another run (dropped) or is malformed (rejected, counted for the worker)."""
        started = time.thread_time()
        try:
            if type(payload) is not dict:
                self.worker(key, index).reject(MalformedError("a payload is not a mapping"))
                return False
            if payload.get("run") != self.run:
                self.dropped += 1
                return False
            self.messages += 1
            w = self.worker(key, index)
            w.reports += 1
            w.last_report = time.monotonic() if now is None else now
            if "endpoints" in payload:
                self._take_endpoints(w, payload["endpoints"])
            self.version += 1
            if "final" not in payload:
                if w.final is not None:
                    # running again after its final snapshot (WorkerRole.resume):
                    # that snapshot is no longer the last; the rows go on from it
                    self._fold(w)
                    w.final = None
                    w.stats_after_final = False
                w.queue.append(payload)
                w.queued_bytes += _size(payload)
                if w.queued_bytes > MAX_QUEUED_BYTES:
                    self._fold(w)  # bounded memory in long headless runs
                return True
            try:
                final = check_totals(payload["final"])
                check_blob_head(_columns_blob(payload), "rows")
                unpack_digests(_digests_blob(payload))
                check_labels(payload.get("restarted", []), "restarted users")
            except MalformedError as exc:
                # unreadable: what the worker sent before stays as it was
                w.reject(MalformedError(f"final snapshot: {exc}"))
                return False
            # unpacked when the rows are read, and then it supersedes every
            # periodic payload before it (kept till then: see _fold)
            w.pending_final = payload
            w.final = final  # compared with held() as it came
            w.stats_after_final = False
            return True
        finally:
            self.cpu_s += time.thread_time() - started

    @staticmethod
    def _rows(w: WorkerState, columns: Columns) -> dict[str, tuple]:
        """user -> row of `columns`, each malformed row rejected alone."""
        bad: list[tuple] = []
        table = row_table(columns, bad)
        for values in bad:
            w.reject(row_error(list(values)), rows=1)
        return table

    def fold(self) -> None:
        """Unpack every queued periodic payload into its worker's table."""
        started = time.thread_time()
        for w in self.workers.values():
            if w.queue or w.pending_final is not None:
                self._fold(w)
        self.cpu_s += time.thread_time() - started

    def _fold(self, w: WorkerState) -> None:
        if w.pending_final is not None and self._take_final(w):
            return
        table = w.make_table() if w.queue else w.table
        queue, w.queue = w.queue, []
        w.queued_bytes = 0
        for payload in queue:
            try:
                columns = unpack_columns(_columns_blob(payload), "rows")
                envs = unpack_digests(_digests_blob(payload))
                restarted = check_labels(payload.get("restarted", []), "restarted users")
            except MalformedError as exc:
                w.reject(MalformedError(f"periodic report: {exc}"))
                continue
            for user, values in self._rows(w, columns).items():
                old = table.get(user)
                if old is not None and old[_REQUESTS] + old[_INVALID] > values[_REQUESTS] + values[_INVALID]:
                    continue  # an older snapshot than the one held: keep the newer
                table[user] = values
            self.envs.update(envs)
            w.restarted.update(restarted)

    def _take_final(self, w: WorkerState) -> bool:
        """Unpack the worker's final snapshot into its table; False (and the
        periodic payloads are folded instead) when it cannot be read."""
        payload, w.pending_final = w.pending_final, None
        if payload is None:
            return False
        try:
            columns = unpack_columns(_columns_blob(payload), "rows")
            envs = unpack_digests(_digests_blob(payload))
        except MalformedError as exc:
            w.reject(MalformedError(f"final snapshot: {exc}"))
            w.final = None
            return False
        w.queue = []
        w.queued_bytes = 0
        if all_rows(columns):
            w.table, w.base = {}, columns
        else:
            w.table, w.base = self._rows(w, columns), None
        self.envs.update(envs)
        w.restarted.update(payload.get("restarted", []))
        return True

    def saw_stats(self, key: str) -> None:
        """Locust's own stats report from `key` arrived (it follows our final
        payload on the same connection when the worker quits)."""
        w = self.workers.get(key)
        if w is not None and w.final is not None:
            w.stats_after_final = True

    def left(self, key: str) -> None:
        w = self.workers.get(key)
        if w is not None:
            w.gone = True

    def outstanding(self, lost: Iterable[str] = ()) -> list[WorkerState]:
        """Workers still to be heard from, leaving out those known lost."""
        lost = set(lost)
        return [w for w in self.workers.values() if not w.settled and w.key not in lost]

    def _by_index(self) -> list[WorkerState]:
        return sorted(self.workers.values(), key=lambda w: (w.index is None, w.index or 0, w.key))

    def row_dicts(self) -> list[UserRow]:
        """Per-user rows, by worker index, then in each
        worker's own order (the order its users started)."""
        self.fold()
        return [unpack_row(values) for w in self._by_index() for values in w.rows()]

    def restarted(self) -> set[str]:
        """Users Locust stopped mid-run, on every worker."""
        self.fold()
        return set().union(*(w.restarted for w in self.workers.values()))

    def endpoint_rows(self) -> list[EndpointRow]:
        """Per-endpoint rows: every worker's table, summed per name."""
        return rows_of(add_tables(w.endpoints for w in self.workers.values()))

    @property
    def environments(self) -> int:
        self.fold()
        return len(self.envs)

    def problems(self, now: float | None = None) -> list[str]:
        """One message per worker whose data is not known complete: malformed
        payloads or rows rejected (what else it sent is kept), no final payload
        (lost or too late: what it sent before is kept), or a final that
        disagrees with the rows held (never expected: said if it does)."""
        self.fold()
        now = time.monotonic() if now is None else now
        out = []
        for w in self._by_index():
            held = w.held()
            kept = f"{held['users']} users, {held['requests']} valid replies, {held['invalid']} invalid"
            if w.bad_rows or w.bad_payloads:
                lost = "; it sent no final report" if w.final is None else ""
                out.append(
                    f"lambda-affinity: {w.name} sent {w.bad_payloads} malformed payloads and {w.bad_rows} malformed "
                    f"rows, rejected (the first: {w.first_bad}){lost}; kept everything else: {kept}"
                )
            elif w.final is None:
                when = (
                    f"its last report came {now - w.last_report:.1f} s before the end"
                    if w.last_report is not None
                    else "it sent no report"
                )
                out.append(
                    f"lambda-affinity: {w.name} sent no final report (lost or stopped too late); "
                    f"kept what it sent until then: {kept} ({when})"
                )
            elif held != w.final:
                out.append(
                    f"lambda-affinity: {w.name} recorded {w.final['users']} users, {w.final['requests']} "
                    f"valid replies, {w.final['invalid']} invalid, but this master holds {kept}"
                )
        return out

    def summary_of_workers(self) -> Workers:
        """For the JSON document: how many workers took part, which sent no final payload."""
        lost = sorted(
            (w for w in self.workers.values() if w.final is None), key=lambda w: (w.index is None, w.index or 0)
        )
        return {"count": len(self.workers), "lost": [{"index": w.index, "id": w.key} for w in lost]}
