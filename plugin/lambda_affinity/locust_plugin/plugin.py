"""The plugin object: one per Locust process (standalone, master or worker),
created when Locust initialises its Environment and held for it; its
listeners are its methods, added to that Environment's events.

It is given its collaborators: the tracker (this process's users), a role
for distributed runs (roles.py), the embedded emulator (embedded.py), the
trace (tracing.py) and the end-of-run outputs (outputs.py). Each can be
built and tested without Locust running.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import signal
import sys
import weakref
from collections.abc import Hashable
from typing import Any

import gevent

from ..core import summary
from ..core.hosts import PluginConfigError, Transport, check_host, transport_of
from ..core.reply import Observation, ProbeReplyError, parse_reply
from ..core.reproduce import reproduce
from ..core.schema import EndpointRow, SummaryDoc, UserRow, user_label
from ..core.tracker import Tracker
from ..emulator.containment import make_undumpable
from ..report.timeline import Timeline
from . import adapter
from .adapter import Role
from .embedded import EmbeddedEmulator, name_rows
from .header_users import HeaderTally
from .options import DEFAULT_SESSION_HEADER, AffinityOptions, GivenLoad
from .outputs import CHECK_EXIT_CODE, RunReport, print_report, write_outputs
from .roles import FINAL_MESSAGE, FINAL_WAIT_S, MasterRole, WorkerRole
from .sampling import TimelineSampler
from .tracing import TraceRecorder

logger = logging.getLogger("lambda_affinity")

SESSION_HEADER = DEFAULT_SESSION_HEADER


class AffinityPlugin:
    """lambda-affinity in one Locust process."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.tracker = Tracker()
        self.trace = TraceRecorder()
        self.headers = HeaderTally(self)  # any other user class's replies from a wrapped function
        self.numbers = itertools.count(1)
        self.run_token = os.urandom(3).hex()
        self.given = GivenLoad.of(self.options)
        self.worker: WorkerRole | None = None
        self.master: MasterRole | None = None
        self.emulator: EmbeddedEmulator | None = None
        self.report: RunReport | None = None
        self.sampler = TimelineSampler(lambda: self.snapshot()[0])  # standalone and master
        self._label_prefix = ""
        self.has_web_ui = False
        self.started = False  # a test started in this process (Locust's SIGTERM handler is in place by then)
        self.quitting = False  # on_quitting is under way (a second one only cuts the wait short)
        self.finished = False  # finish() ran: the outputs are written once
        self._early_sigterm: Any = None

    # -- what the plugin reads of Locust -------------------------------------------

    @property
    def options(self) -> AffinityOptions:
        """Read afresh: a worker takes the master's options with every spawn message."""
        return AffinityOptions.of(getattr(self.environment, "parsed_options", None))

    @property
    def role(self) -> Role:
        return adapter.role_of(getattr(self.environment, "runner", None))

    def affinity_classes(self) -> list[Any]:
        return [c for c in (self.environment.user_classes or []) if transport_of(c) is not None]

    # -- wiring ------------------------------------------------------------------------

    def listen(self, events: Any) -> None:
        events.test_start.add_listener(self.on_test_start)
        events.test_stopping.add_listener(self.on_test_stopping)
        events.test_stop.add_listener(self.on_test_stop)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.worker_report.add_listener(self.on_worker_report)
        events.quitting.add_listener(self.on_quitting)
        events.quit.add_listener(self.on_quit)
        events.request.add_listener(self.headers.on_request)

    def on_init(self, runner: Any = None, web_ui: Any = None) -> None:
        """Locust built the runner (and web UI): set the role up, check the
        hosts and start the embedded emulator when no host is given."""
        adapter.refresh_clock()
        # Every role (worker, --processes child too) holds the user's AWS credentials: not readable by function code.
        make_undumpable()
        role = adapter.role_of(runner)
        self.headers.install(self.environment.user_classes or [])
        if role is Role.WORKER:
            self.worker = WorkerRole(self.tracker, self.headers.endpoints)
            self._label_prefix = f"w{adapter.worker_index(runner)}-"
            return  # hosts come from the master; the emulator runs next to it
        if role is Role.MASTER:
            self.master = MasterRole()
            adapter.register_message_once(runner, FINAL_MESSAGE, self.on_final_message)
            if getattr(self.environment.parsed_options, "headless", False):
                # A headless master waits for --expect-workers before Locust
                # installs its SIGTERM handler: a SIGTERM then would kill it
                # without a word or an output. Until the test starts, ours quits cleanly.
                self._early_sigterm = gevent.signal_handler(signal.SIGTERM, self._sigterm_before_start)
        self.has_web_ui = web_ui is not None
        if web_ui is not None:
            from ..report import webui

            webui.install(web_ui, self, self.options.web_base_path)
        classes = self.affinity_classes()
        # Any other user class without a host runs against the emulator's Function URL of
        # --affinity-function when an emulator config is given: your app, wrapped, locally first.
        plain = [c for c in self.plain_classes() if c.host is None] if self.options.affinity_emulator_config else []
        if not classes and not plain:
            return
        try:
            for cls in classes:
                host = self.environment.host or cls.host
                check_host(cls, host)
                preflight = getattr(cls, "affinity_preflight", None)
                if host and preflight is not None:
                    preflight(host, self.options)
            if not self.environment.host and (plain or any(c.host is None for c in classes)):
                self._start_emulator(classes, plain)
        except PluginConfigError as exc:
            logger.error("lambda-affinity: %s", exc)
            self.stop_emulator()
            sys.exit(1)

    def plain_classes(self) -> list[Any]:
        """User classes other than ours (HttpUser, FastHttpUser...)."""
        return [c for c in (self.environment.user_classes or []) if transport_of(c) is None]

    def _start_emulator(self, classes: list[Any], plain: list[Any] | None = None) -> None:
        options = self.options
        self.emulator = EmbeddedEmulator(options.affinity_function, options.affinity_emulator_config)
        transports = {t for t in map(transport_of, classes) if t is not None}
        if plain:
            transports.add(Transport.FUNCTION_URL)
        hosts = self.emulator.start(transports)
        if plain:
            # HttpUser and FastHttpUser join host + "/path" as is: no trailing slash, or every path starts "//"
            hosts[Transport.FUNCTION_URL] = hosts[Transport.FUNCTION_URL].rstrip("/")
        for cls in classes:
            transport = transport_of(cls)
            if cls.host is None and transport is not None:
                cls.host = hosts[transport]
                name_rows(cls, transport, options.affinity_function)
        for cls in plain or []:
            cls.host = hosts[Transport.FUNCTION_URL]
        if len(hosts) == 1:
            # one host for all: it also travels to workers in every spawn message
            self.environment.host = next(iter(hosts.values()))
        parsed = self.environment.parsed_options
        if parsed is not None:
            # per user kind, for workers (parsed options travel in spawn messages too)
            parsed.affinity_hosts = {k.value: v for k, v in hosts.items()}

    def stop_emulator(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()

    # -- users' identity and their replies -------------------------------------------

    def attach(self, user: Any) -> str:
        """Give a Locust user its stable label (the row key) and session key
        (sent to the function). Idempotent; returns the label."""
        label = getattr(user, "affinity_user", None)
        if label is None:
            label = self._label_prefix + user_label(next(self.numbers))
            user.affinity_user = label
            # the token keeps two runs against one warm deployment from sharing cache entries
            user.affinity_session = f"{label}-{self.run_token}"
            self.tracker.register(label)
        return label

    def user_stopping(self, user: Any) -> None:
        """Locust stops `user`: on a worker, mid-run, it will be started again
        elsewhere (rebalancing) or not at all (a ramp-down); either way its row
        is a partial user, kept apart by the master."""
        label = getattr(user, "affinity_user", None)
        if label is not None and self.worker is not None and adapter.stopping_users_mid_run(self.environment.runner):
            self.worker.stopped_mid_run(label)

    def label(self, user: Any) -> str:
        return user if isinstance(user, str) else self.attach(user)

    def record(
        self, user: Any, obs: Observation | None, sent_at: float | None = None, received_at: float | None = None
    ) -> None:
        """Count one reply for `user` (a Locust user or a label): valid when `obs` is given, else a failed call."""
        label = self.label(user)
        session = "" if isinstance(user, str) else getattr(user, "affinity_session", "")
        self.tally(label, session, obs, sent_at, received_at)

    def tally(
        self, label: str, session: str, obs: Observation | None, sent_at: float | None, received_at: float | None
    ) -> None:
        """Count one reply of an attached user (its label and session): the
        tracker's row, and a trace row with --affinity-trace. Our own users call
        this directly, every reply, without the label lookup of `record`."""
        if obs is None:
            self.tracker.record_invalid(label)
        else:
            self.tracker.record(label, obs.env_id, obs.cold, obs.cache_hit, obs.new_environment)
        if self.trace.active:
            self.trace.row(label, session, sent_at, obs, received_at)

    def record_reply(self, user: Any, reply: Any, sent_at: float | None = None) -> Observation:
        try:
            obs = parse_reply(reply)
        except ProbeReplyError:
            self.record(user, None, sent_at)
            raise
        self.record(user, obs, sent_at)
        return obs

    # -- a test ------------------------------------------------------------------------

    def on_test_start(self, environment: Any = None, **_kw: Any) -> None:
        # A new test (web UI "start" again) measures afresh.
        self.started = True
        if self._early_sigterm is not None:
            self._early_sigterm.cancel()  # Locust's own handler is in place now
            self._early_sigterm = None
        worker, run = self.worker, getattr(self.environment.parsed_options, "affinity_run", None)
        if worker is not None and worker.run is not None and run == worker.run:
            worker.resume()  # the same master run, started again on this worker
            return
        self.tracker.reset()
        self.headers.reset()
        self.numbers = itertools.count(1)
        self.run_token = os.urandom(3).hex()
        runner = self.environment.runner
        parsed = self.environment.parsed_options
        role = adapter.role_of(runner)
        if role is not Role.WORKER and (self.has_web_ui or self.options.html_file):
            # only where something shows it (the dashboard, the --html report): a
            # point summarises every user, which a headless master would else pay for
            self.sampler.start()
        if role is Role.MASTER:
            self.trace.close()  # the master runs no users: its workers write the rows
        else:
            self.trace.open(self.options.affinity_trace, adapter.worker_index(runner) if role is Role.WORKER else None)
        if self.master is not None:
            # The run's name travels to workers in every spawn message (parsed
            # options do), so a report of an earlier run arriving late is dropped.
            if parsed is not None:
                parsed.affinity_run = self.run_token
            self.master.begin(self.run_token, adapter.connected_workers(runner))
        elif self.worker is not None:
            self.worker.begin(getattr(parsed, "affinity_run", None))
            self._take_master_hosts(parsed)

    def _take_master_hosts(self, parsed: Any) -> None:
        """A worker's user classes without a host target the master's embedded emulator."""
        hosts = getattr(parsed, "affinity_hosts", None) or {}
        for cls in self.affinity_classes():
            transport = transport_of(cls)
            if cls.host is None and transport is not None and hosts.get(transport.value):
                cls.host = hosts[transport.value]
                name_rows(cls, transport, getattr(parsed, "affinity_function", None))
        url = hosts.get(Transport.FUNCTION_URL.value)
        for cls in self.plain_classes():
            if cls.host is None and url and self.options.affinity_emulator_config:
                cls.host = url.rstrip("/")

    def on_test_stopping(self, environment: Any = None, **_kw: Any) -> None:
        """Before Locust stops a test's users: on a worker, who is running now."""
        if self.worker is not None:
            users = adapter.running_users(self.environment.runner)
            self.worker.stopping(label for u in users if (label := getattr(u, "affinity_user", None)) is not None)

    def on_test_stop(self, environment: Any = None, **_kw: Any) -> None:
        self.trace.close()
        runner = self.environment.runner
        if self.worker is not None:
            self.worker.send_final(runner)
        elif self.master is not None:
            master = self.master
            self.sampler.close_when(
                lambda: master.settled(runner),
                master.heard,
                FINAL_WAIT_S + (self.environment.stop_timeout or 0),
            )
        else:
            self.sampler.close()  # a standalone run's users are stopped: its rows are final

    def on_report_to_master(self, client_id: str = "", data: dict | None = None, **_kw: Any) -> None:
        if self.worker is not None and data is not None:
            self.worker.add_to_report(data, getattr(self.environment.parsed_options, "affinity_run", None))

    def on_worker_report(self, client_id: str = "", data: dict | None = None, **_kw: Any) -> None:
        if self.master is not None and data is not None:
            self.master.on_report(client_id, data, self._worker_index(client_id))

    def on_final_message(self, environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        if self.master is not None and msg is not None:
            self.master.receive(msg.node_id, msg.data, self._worker_index(msg.node_id))

    def _worker_index(self, client_id: str) -> int | None:
        runner = self.environment.runner
        return runner.get_worker_index(client_id) if adapter.role_of(runner) is Role.MASTER else None

    # -- the results -------------------------------------------------------------------

    def rows(self) -> tuple[list[UserRow], int]:
        """Per-user rows and distinct environments for the whole run (so far, while it runs)."""
        if self.master is not None:
            return self.master.aggregator.row_dicts(), self.master.aggregator.environments
        return self.tracker.rows(), self.tracker.environments

    def endpoint_rows(self) -> list[EndpointRow]:
        """Per-endpoint rows (replies of a wrapped function, by Locust stats name) for the whole run so far."""
        if self.master is not None:
            return self.master.aggregator.endpoint_rows()
        return self.headers.endpoints.rows()

    def snapshot(self) -> tuple[SummaryDoc, list[UserRow]]:
        """The summary document (the --affinity-json document) and the rows it
        sums; a master's also says how many workers took part and which were lost."""
        rows, envs = self.rows()
        options = self.options
        restarted: list[UserRow] = []
        if self.master is not None:
            moved = self.master.aggregator.restarted()
            if moved:
                restarted = [r for r in rows if r["user"] in moved]
                rows = [r for r in rows if r["user"] not in moved]
        doc = summary.summarize(
            rows,
            envs,
            per_miss_ms=options.affinity_miss_cost_ms,
            per_miss_usd=options.affinity_miss_cost_usd,
            restarted=restarted,
        )
        endpoints = self.endpoint_rows()
        if endpoints:
            doc["per_endpoint"] = endpoints
        if self.master is not None:
            doc["workers"] = self.master.aggregator.summary_of_workers()
        # the plugin's options and Locust's load (users, spawn rate, run time), and on the embedded emulator
        # its platform model and modelled timings: a Locust run has no seed
        emulator = self.emulator
        recorded = {**dataclasses.asdict(options), **(emulator.timings if emulator is not None else {})}
        doc["reproduce"] = reproduce("locust", None, recorded, model=emulator.model if emulator else None)
        return doc, rows

    def version(self) -> Hashable:
        """Changes whenever the snapshot may have: the runner's state (a page
        that sees "stopped" then gets the final numbers), and on a master
        every message of ours."""
        runner = self.environment.runner
        return getattr(runner, "state", None), self.master.aggregator.version if self.master is not None else None

    def timeline(self) -> Timeline:
        return self.sampler.timeline

    def finish(self) -> RunReport | None:
        """End of run (master or standalone): summary, files, checks. Once."""
        if self.finished:
            return self.report
        self.finished = True
        options = self.options
        doc, rows = self.snapshot()
        asked = any(v is not None for v in options.thresholds().values()) or options.affinity_json
        if not rows and not asked and not self.affinity_classes():
            return None  # the plugin was imported but nothing probed: stay silent
        problems = self.master.aggregator.problems() if self.master is not None else []
        self.sampler.close(doc)
        self.report = write_outputs(doc, rows, options, problems, self.sampler.timeline.points)
        if self.report.failed:
            self.environment.process_exit_code = CHECK_EXIT_CODE
        return self.report

    def _sigterm_before_start(self) -> None:
        """SIGTERM to a headless master still waiting for its workers: what
        Locust's own handler does later in a run (quitting, then quit, exit)."""
        if self.started or self.quitting:
            return
        logger.info("lambda-affinity: got SIGTERM before the test started: writing the outputs and quitting")
        env = self.environment
        env.events.quitting.fire(environment=env, reverse=True)
        code = env.process_exit_code if env.process_exit_code is not None else 0
        env.events.quit.fire(exit_code=code)
        sys.exit(code)

    def on_quitting(self, environment: Any = None, **_kw: Any) -> None:
        if self.quitting:
            # A second quit (SIGTERM while the first waits for the workers'
            # final snapshots): write what is in now; the first then ends.
            if self.master is not None:
                self.master.stop_waiting = True
                self.master.heard.set()
            if self.worker is None:
                self.finish()
            return
        self.quitting = True
        runner = self.environment.runner
        try:
            if self.worker is not None:
                # SIGTERM on a worker: stop its users (test_stop sends the final
                # snapshot); after a normal stop the snapshot is already out.
                if adapter.is_running(runner):
                    runner.stop()
                self.worker.send_final(runner)
                return
            if adapter.is_running(runner):
                # On SIGTERM Locust fires `quitting` while users still run: stop
                # them first (idempotent), so the summary is final and no call
                # hits a stopped emulator. On a master this tells the workers to stop.
                runner.stop()
            if self.master is not None:
                # Locust fires test_stop on a master before the workers' last
                # reports arrive: wait for the actual final snapshots, bounded.
                self.master.await_workers(runner, FINAL_WAIT_S + (self.environment.stop_timeout or 0))
            self.finish()
        finally:
            self.trace.close()
            self.stop_emulator()

    def on_quit(self, **_kw: Any) -> None:
        if self.report is not None:
            print_report(self.report, self.emulator.notes if self.emulator is not None else ())


def outcome_name(base: str, obs: Observation) -> str:
    """The request name in Locust's stats split by outcome (--affinity-split-stats)."""
    outcome = obs.outcome
    return f"{base} [{outcome}]" if outcome else base


# -- one plugin per Environment ------------------------------------------------------

_PLUGINS: weakref.WeakKeyDictionary[Any, AffinityPlugin] = weakref.WeakKeyDictionary()
_current: AffinityPlugin | None = None


def plugin_for(environment: Any) -> AffinityPlugin:
    """The Environment's plugin, created (and its listeners added) on first
    use: at Locust's `init`, or by a user built in a bare Environment."""
    global _current
    plugin = _PLUGINS.get(environment)
    if plugin is None:
        plugin = _PLUGINS[environment] = AffinityPlugin(environment)
        plugin.listen(environment.events)
        _current = plugin
    return plugin


def current() -> AffinityPlugin | None:
    """The plugin of this process's latest Environment (Locust has one per
    process): for calls that name a user by label, not by Locust user."""
    return _current
