"""A worker's and a master's part in a distributed run (Locust's --master /
--worker). The rows themselves travel and merge in ..distributed (pure);
this is who sends what when, and how long a quitting master waits.

A worker sends the per-user rows that changed with each of Locust's periodic
reports, and a full snapshot when its test stops; the master folds them in
and writes every output at `quitting`, once the workers' final snapshots are
in or a bounded wait is over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import gevent
from gevent.event import Event
from locust.exception import RPCError

from ..core.endpoints import EndpointTracker
from ..core.tracker import Tracker
from . import adapter
from .distributed import Aggregator, final_payload, periodic_payload

logger = logging.getLogger("lambda_affinity")

FINAL_MESSAGE = "lambda_affinity_final"  # a worker's full snapshot when its test stops
REPORT_KEY = "lambda_affinity"  # our part of Locust's periodic worker report
# How long a quitting master waits for workers' final snapshots, on top of
# Locust's --stop-timeout (workers stop their users first). Workers reply
# within milliseconds; the bound only matters for a worker that hangs.
FINAL_WAIT_S = 10.0
# A worker still to send its final snapshot (or Locust's report after it) that
# is still heard from (Locust's heartbeats come every second) is waited for
# past that, up to this much more:
# on a loaded machine, a worker that Locust's dispatch gave tens of thousands
# of users (after marking the others missing) took longer than FINAL_WAIT_S
# to stop them and send its final snapshot, and without it the users Locust
# had stopped on it could not be told apart (bench/distributed.py --workers 8).
LIVE_WAIT_S = 60.0
HEARD_S = 3.0  # heard from within this: alive (Locust marks a worker missing after 3 s without a heartbeat)


class WorkerRole:
    """A worker's side: its tracker's rows, sent to the master of its run."""

    def __init__(self, tracker: Tracker, endpoints: EndpointTracker | None = None) -> None:
        self.tracker = tracker
        self.endpoints = endpoints
        self.run: str | None = None  # the master's run this worker takes part in
        self.final_sent = False
        self.restarted: list[str] = []  # users Locust stopped mid-run, in this run
        self._restarted_sent = 0  # how many of them periodic reports carried so far
        self.running_at_stop: set[str] | None = None  # users running when the test began to stop

    def begin(self, run: str | None) -> None:
        self.run = run
        self.final_sent = False
        self.restarted = []
        self._restarted_sent = 0
        self.running_at_stop = None

    def resume(self) -> None:
        """Locust started this worker's test again within the same master run:
        after stopping a test whose workers all missed heartbeats, the master's
        dispatch goes on and starts them again, with no new test on the master,
        whose statistics go on too. So do the rows; a new final snapshot follows.
        The users of before were stopped mid-run and others started in their
        place: they are kept apart as restarted, as rebalancing's are."""
        self.final_sent = False
        self.running_at_stop = None
        known = set(self.restarted)
        self.restarted.extend(str(label) for label in self.tracker.users if label not in known)

    def stopped_mid_run(self, label: str) -> None:
        """Locust stopped this user while the run goes on (its worker's count
        was lowered): the master keeps its row apart from the run's users."""
        self.restarted.append(label)

    def stopping(self, running: Iterable[str]) -> None:
        """The test begins to stop, with these users running: they are the
        run's users. Every other user this worker had was stopped mid-run,
        whether or not its stop was seen (on a machine too loaded, Locust's
        master marks workers missing and hands their users to others, and a
        newer spawn message kills the greenlet that was stopping users)."""
        self.running_at_stop = set(running)

    def add_to_report(self, data: dict, run: str | None = None) -> None:
        """What a worker adds to Locust's periodic report: rows changed and
        environment ids first seen since the last one (nothing when none).
        `run`: the master's run named in its latest spawn message."""
        if run is not None and self.run is not None and run != self.run:
            # The master started a new test while this worker's users kept
            # running (Locust restarts a test whose workers all went missing
            # and came back): the master dropped the old run and cleared its
            # statistics; so do we, else every row would be dropped as another run's.
            self.tracker.reset()
            self.begin(run)
        if self.run is None:
            return  # not in a run of this master (yet)
        new = self.restarted[self._restarted_sent :]
        self._restarted_sent = len(self.restarted)
        payload = periodic_payload(self.tracker, self.run, new, self.endpoints)
        if payload is not None:
            data[REPORT_KEY] = payload

    def send_final(self, runner: Any) -> None:
        """The full snapshot, once per run. Sent on the same connection before
        Locust's own last report, so the master has it before it hears that
        the worker stopped or quit."""
        if self.run is None or self.final_sent:
            return
        self.final_sent = True
        if self.running_at_stop is not None:
            known = set(self.restarted)
            self.restarted.extend(
                str(label) for label in self.tracker.users if label not in self.running_at_stop and label not in known
            )
        payload = final_payload(self.tracker, self.run, self.restarted, self.endpoints)
        self._restarted_sent = len(self.restarted)  # the final carries them all
        try:
            runner.send_message(FINAL_MESSAGE, payload)
        except RPCError as exc:
            logger.error(
                "lambda-affinity: could not send the final snapshot (%s users) to the master: %s",
                payload["final"]["users"],
                exc,
            )


class MasterRole:
    """A master's side: every worker's rows, and the wait for their last ones."""

    def __init__(self) -> None:
        self.aggregator = Aggregator()
        self.heard = Event()  # set on every message of ours: wakes the final wait
        self.stop_waiting = False  # a second quit (SIGTERM during the wait): write what is in now

    def begin(self, run: str, workers: Iterable[tuple[str, int | None]]) -> None:
        self.aggregator.start(run)
        for key, index in workers:
            self.aggregator.worker(key, index)

    def receive(self, client_id: str, payload: Any, index: int | None) -> bool:
        """Fold one worker payload (periodic or final); False when it belongs to
        another run or is malformed (rejected, reported once at the end)."""
        folded = self.aggregator.receive(client_id, payload, index)
        self.heard.set()
        return folded

    def on_report(self, client_id: str, data: Mapping, index: int | None) -> None:
        payload = data.get(REPORT_KEY)
        if payload is not None:
            self.receive(client_id, payload, index)
        self.aggregator.saw_stats(client_id)
        self.heard.set()

    def lost_workers(self, runner: Any, heard: Mapping[str, float] | None = None, now: float = 0.0) -> set[str]:
        """Workers without a final snapshot that will send nothing more: gone
        from Locust's list, or missing heartbeats now. A worker whose final
        snapshot is in is waited for until Locust's report after it arrives
        (bounded by the wait): on a loaded machine a worker misses heartbeats
        and still reports, and Locust's reports carry request counts since the
        previous one, so giving up on it early left Locust's total short of ours.
        `heard` (client id -> when this master last read a message of it, once
        Locust's listener is gone and its list no longer changes): a worker
        Locust marked missing but heard from within HEARD_S is not lost."""
        lost = set()
        for key, w in self.aggregator.workers.items():
            if w.final is not None:
                continue
            unheard = heard is None or now - heard.get(key, float("-inf")) > HEARD_S
            if adapter.worker_gone(runner, key) or (adapter.worker_missing(runner, key) and unheard):
                lost.add(key)
        return lost

    def settled(self, runner: Any, heard: Mapping[str, float] | None = None, now: float = 0.0) -> bool:
        """Every worker of the run has sent its final snapshot (and the Locust
        report after it), or is known lost (see lost_workers)."""
        return not self.aggregator.outstanding(self.lost_workers(runner, heard, now))

    def still_heard(self, runner: Any, heard: Mapping[str, float] | None, now: float) -> bool:
        """Some worker still to be heard from (its final snapshot, or Locust's
        report after it) is alive: heard from within HEARD_S (`heard`: client
        id -> when, while this master reads the messages itself), or, while
        Locust's listener reads them (`heard` None), not gone from Locust's
        list nor marked missing."""
        for key, w in self.aggregator.workers.items():
            if w.settled or w.gone:
                continue
            if heard is not None:
                if now - heard.get(key, float("-inf")) <= HEARD_S:
                    return True
            elif not (adapter.worker_gone(runner, key) or adapter.worker_missing(runner, key)):
                return True
        return False

    def await_workers(self, runner: Any, timeout: float) -> None:
        """Wait until every worker of the run has sent its final snapshot (and
        the Locust report after it), or is known lost, or `timeout` passes;
        past it, up to LIVE_WAIT_S more while a worker still to be heard from
        is heard from (still_heard)."""
        started = time.monotonic()
        deadline = started + timeout
        # runner.quit() kills Locust's message listener: then read the socket here
        pump = adapter.message_listener_stopped(runner)
        # client id -> when its latest message came, read here; every worker
        # counts as heard when the wait starts (Locust's list stopped with its listener)
        heard: dict[str, float] | None = dict.fromkeys(self.aggregator.workers, started) if pump else None
        while True:
            now = time.monotonic()
            overtime = now >= deadline and now < started + timeout + LIVE_WAIT_S
            if overtime and self.still_heard(runner, heard, now):
                deadline = now + 0.5
            remaining = deadline - now
            if self.settled(runner, heard, now) or remaining <= 0 or self.stop_waiting:
                if now - started > 0.1:
                    logger.info("lambda-affinity: waited %.1f s for the workers' final snapshots", now - started)
                return
            if not pump:
                self.heard.clear()
                self.heard.wait(min(remaining, 0.5))
                continue
            try:
                with gevent.Timeout(min(remaining, 0.5)):
                    client_id, msg = adapter.receive_late_message(runner)
            except gevent.Timeout:
                continue
            except RPCError as exc:
                logger.debug("lambda-affinity: reading late worker messages: %s", exc)
                gevent.sleep(0.05)
                continue
            if heard is not None:
                heard[client_id] = time.monotonic()
            adapter.dispatch_late_message(runner, msg, self.aggregator.left)
