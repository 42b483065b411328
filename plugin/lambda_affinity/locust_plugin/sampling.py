"""The run's time series (timeline.Timeline) in a standalone or master
Locust process: a point every TIMELINE_S while a test runs, and a last one
with the final numbers (on a master, once the workers' final rows are in)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent

from ..core.schema import SummaryDoc
from ..report.timeline import Timeline

logger = logging.getLogger("lambda_affinity")

TIMELINE_S = 2.0  # the dashboard's charts and the HTML report take a point this often
# A point summarises every user (on a master, after unpacking the workers'
# rows): with many users the sampler spaces its points so that it takes at
# most this share of one core, instead of starving the run it measures.
MAX_CPU_SHARE = 0.02


class TimelineSampler:
    """Samples `summarize()` (the summary document now) into a Timeline."""

    def __init__(self, summarize: Callable[[], SummaryDoc], interval_s: float = TIMELINE_S) -> None:
        self.summarize = summarize
        self.interval_s = interval_s
        self.timeline = Timeline()
        self._sampler: Any = None
        self._waiter: Any = None  # a master's wait for its workers' final rows
        self.started = False  # only where something shows the timeline (the plugin decides)

    def start(self) -> None:
        """A new test: a new timeline (a wait for the last run's workers is dropped with its timeline)."""
        self._kill()
        self.timeline = Timeline(start=time.time())
        self.started = True
        self._sampler = gevent.spawn(self._sample)

    def _sample(self) -> None:
        wait = self.interval_s
        while True:
            gevent.sleep(wait)
            started = time.thread_time()
            self.add()
            wait = max(self.interval_s, (time.thread_time() - started) / MAX_CPU_SHARE)

    def add(self, doc: SummaryDoc | None = None, last: bool = False) -> None:
        line = self.timeline
        if line.closed or not self.started:
            return  # never started: no point to take, nor a summary to compute for it
        if doc is None:
            doc = self.summarize()
        try:
            (line.close if last else line.add)(time.time(), doc)
        except ValueError as exc:  # e.g. a reset mid-run: the dashboard loses a point, the run goes on
            logger.warning("lambda-affinity: timeline point dropped: %s", exc)

    def close(self, doc: SummaryDoc | None = None) -> None:
        """The run's last point, once per run, with the final numbers."""
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.kill(block=False)
        self.add(doc, last=True)

    def close_when(self, settled: Callable[[], bool], wake: Any, timeout: float) -> None:
        """Close once `settled()` (a master: every worker's final rows in or
        lost), checked whenever `wake` (a gevent Event) is set, bounded by
        `timeout`: a master's workers send their last rows after test_stop."""

        def wait() -> None:
            deadline = time.monotonic() + timeout
            while not settled() and time.monotonic() < deadline:
                wake.clear()
                wake.wait(0.5)
            self.close()

        self._waiter = gevent.spawn(wait)

    def _kill(self) -> None:
        for greenlet in (self._sampler, self._waiter):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._sampler = self._waiter = None
