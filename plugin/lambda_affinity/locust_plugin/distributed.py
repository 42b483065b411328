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

What it costs the master (bench/distributed.py): a row is a `WireRow`, a
tuple that packs as a msgpack array (no keys; `max_share` is derived), and
the master holds it as the list msgpack gives back; a payload's rows
and environment ids travel as msgpack blobs inside Locust's message, so
Locust decodes each as a single bytes object and the unpacking is ours,
measured in `Aggregator.cpu_s`. The master only appends a periodic payload
to its worker's queue, and unpacks the queue when someone reads the rows (the
web UI, at most once a second) or when the worker never sends its final
snapshot; a final snapshot replaces the queue unread. A headless run thus
unpacks each user's row once, however long it runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict, cast

import msgpack

from ..core.endpoints import EndpointTracker, add_tables, rows_of, table_size
from ..core.schema import EndpointRow, UserRow, Workers
from ..core.tracker import Tracker


class WireRow(NamedTuple):
    """A row on the wire: schema.UserRow without max_share (max_count /
    requests, derived again by unpack_row), in UserRow's order."""

    user: str
    requests: int
    max_count: int
    warm_hits: int
    cache_known: int
    environments: int
    cold_starts: int
    switches: int
    invalid: int


WIRE_FIELDS: tuple[str, ...] = WireRow._fields
_REQUESTS = WIRE_FIELDS.index("requests")
_INVALID = WIRE_FIELDS.index("invalid")
# Periodic payloads a worker may have waiting before the master unpacks them:
# unpacking is deferred (a final snapshot usually supersedes them unread), but
# a long headless run must not hold hours of reports.
MAX_QUEUED = 16


class Totals(TypedDict):
    """What a worker recorded in a run, sent with its final snapshot."""

    users: int
    requests: int
    invalid: int


class Payload(TypedDict, total=False):
    """Ours in a worker's message: `rows` and `envs` are msgpack blobs (packed
    WireRows, environment ids); `endpoints` the worker's whole per-endpoint
    table (core.endpoints; small: one entry per stats name) when it changed;
    `final` only in the final snapshot."""

    run: str | None
    rows: bytes
    envs: bytes
    endpoints: bytes
    final: Totals


def pack_rows(rows: Iterable[UserRow]) -> list[WireRow]:
    return [
        WireRow(
            r["user"],
            r["requests"],
            r["max_count"],
            r["warm_hits"],
            r["cache_known"],
            r["environments"],
            r["cold_starts"],
            r["switches"],
            r["invalid"],
        )
        for r in rows
    ]


def unpack_row(values: Sequence[Any]) -> UserRow:
    """A row as unpacked from the wire (a list in WireRow's order) back to a UserRow."""
    w = WireRow._make(values)
    return {
        "user": w.user,
        "requests": w.requests,
        "max_count": w.max_count,
        "max_share": w.max_count / w.requests if w.requests else None,
        "warm_hits": w.warm_hits,
        "cache_known": w.cache_known,
        "environments": w.environments,
        "cold_starts": w.cold_starts,
        "switches": w.switches,
        "invalid": w.invalid,
    }


def blob(items: Sequence[Any]) -> bytes:
    """Packed rows or environment ids as one msgpack blob (see the module doc)."""
    return msgpack.packb(items)


def unblob(data: bytes) -> list:
    return msgpack.unpackb(data, use_list=True)


def periodic_payload(tracker: Tracker, run: str | None, endpoints: EndpointTracker | None = None) -> Payload | None:
    """Rows changed and environments first seen since the last call (and the
    endpoint table if it changed); None when there is nothing new (the report
    then carries nothing of ours)."""
    rows = tracker.take_changed()
    envs = tracker.take_new_envs()
    table = endpoints.take_changed() if endpoints is not None else None
    if not rows and not envs and table is None:
        return None
    payload: Payload = {"run": run, "rows": blob(pack_rows(rows)), "envs": blob(envs)}
    if table is not None:
        payload["endpoints"] = blob(table)
    return payload


def final_payload(tracker: Tracker, run: str | None, endpoints: EndpointTracker | None = None) -> Payload:
    """Everything the worker recorded in this run, once, when it stops: a
    periodic report lost on the way cannot leave a gap, and `totals` let the
    master verify that what it holds for this worker is exactly this."""
    tracker.take_changed()
    tracker.take_new_envs()
    rows = tracker.rows()
    payload: Payload = {
        "run": run,
        "rows": blob(pack_rows(rows)),
        "envs": blob(list(tracker.env_ids())),
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
        "queue",
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
        self.table: dict[str, list] = {}  # user -> latest row (a WireRow as msgpack's list), as unpacked so far
        self.queue: list[Mapping] = []  # periodic payloads not unpacked yet, oldest first
        self.endpoints: list = []  # the worker's latest per-endpoint table (core.endpoints)

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
        out: Totals = {"users": len(self.table), "requests": 0, "invalid": 0}
        for values in self.table.values():
            out["requests"] += values[_REQUESTS]
            out["invalid"] += values[_INVALID]
        return out


class Aggregator:
    """The master's view of a distributed run: each worker's rows, the
    distinct environment ids, and each worker's state."""

    def __init__(self) -> None:
        self.run: str | None = None
        self.envs: set[str] = set()
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

    def worker(self, key: str, index: int | None = None) -> WorkerState:
        w = self.workers.get(key)
        if w is None:
            w = self.workers[key] = WorkerState(key, index)
        elif index is not None:
            w.index = index
        return w

    def receive(self, key: str, payload: Mapping, index: int | None = None, now: float | None = None) -> bool:
        """Take one payload from worker `key`; False when it belongs to
        another run (dropped)."""
        started = time.thread_time()
        try:
            if payload.get("run") != self.run:
                self.dropped += 1
                return False
            self.messages += 1
            w = self.worker(key, index)
            w.reports += 1
            w.last_report = time.monotonic() if now is None else now
            if "endpoints" in payload:
                table = unblob(payload["endpoints"])
                if table_size(table) >= table_size(w.endpoints):  # a snapshot: never go back to an older one
                    w.endpoints = table
            final = payload.get("final")
            if final is None:
                w.queue.append(payload)
                if len(w.queue) > MAX_QUEUED:
                    self._fold(w)  # bounded memory in long headless runs
            else:
                # the full snapshot supersedes every periodic payload before it
                w.queue = []
                w.table = {values[0]: values for values in unblob(payload["rows"])}
                self.envs.update(unblob(payload["envs"]))
                w.final = cast(Totals, dict(final))  # compared with held() as it came
                w.stats_after_final = False
            self.version += 1
            return True
        finally:
            self.cpu_s += time.thread_time() - started

    def fold(self) -> None:
        """Unpack every queued periodic payload into its worker's table."""
        started = time.thread_time()
        for w in self.workers.values():
            if w.queue:
                self._fold(w)
        self.cpu_s += time.thread_time() - started

    def _fold(self, w: WorkerState) -> None:
        table = w.table
        for payload in w.queue:
            for values in unblob(payload["rows"]):
                old = table.get(values[0])
                if old is not None and old[_REQUESTS] + old[_INVALID] > values[_REQUESTS] + values[_INVALID]:
                    continue  # an older snapshot than the one held: keep the newer
                table[values[0]] = values
            self.envs.update(unblob(payload["envs"]))
        w.queue = []

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

    def row_dicts(self) -> list[UserRow]:
        """Per-user rows, by worker index, then in each
        worker's own order (the order its users started)."""
        self.fold()
        workers = sorted(self.workers.values(), key=lambda w: (w.index is None, w.index or 0, w.key))
        return [unpack_row(values) for w in workers for values in w.table.values()]

    def endpoint_rows(self) -> list[EndpointRow]:
        """Per-endpoint rows: every worker's table, summed per name."""
        return rows_of(add_tables(w.endpoints for w in self.workers.values()))

    @property
    def environments(self) -> int:
        self.fold()
        return len(self.envs)

    def problems(self, now: float | None = None) -> list[str]:
        """One message per worker whose data is not known complete: no final
        payload (lost or too late: what it sent before is kept), or a final
        that disagrees with the rows held (never expected: said if it does)."""
        self.fold()
        now = time.monotonic() if now is None else now
        out = []
        for w in sorted(self.workers.values(), key=lambda w: (w.index is None, w.index or 0, w.key)):
            held = w.held()
            kept = f"{held['users']} users, {held['requests']} valid replies, {held['invalid']} invalid"
            if w.final is None:
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
