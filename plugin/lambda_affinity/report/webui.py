"""The "Affinity" tab in Locust's web UI: a live dashboard while the test runs.

Locust 2.x renders extra tabs from template args: `extended_tabs` (the tab),
`extended_tables` (a table in it) and `extended_csv_files` (links in the
"Download Data" tab). Its stock bundle renders tables only, so the
dashboard (headline figures, the histogram, time-series charts, a sortable
per-user table, downloads) is drawn by a script of ours, shipped in the
package (static/affinity.js; no CDN, works offline) and added to the index
page. While the tab is open it polls `affinity/dashboard.json`, puts the
dashboard where Locust renders the tab's (empty) table, and follows Locust's
light/dark theme.

Routes sit in a Blueprint under `--web-base-path` like Locust's own, and are
guarded by `web_ui.auth_required_if_enabled` (`--web-login`):

  affinity/json             the live summary (the --affinity-json document, SummaryDoc)
  affinity/csv              per-user rows (the --csv PREFIX_affinity.csv file, UserRow)
  affinity/summary.csv      distributions, totals, histogram
  affinity/endpoints.csv    per-endpoint rows (the --csv PREFIX_affinity_endpoints.csv file, EndpointRow)
  affinity/histogram.svg    the per-user max-share histogram
  affinity/timeline.json    the run's time series (TimelineJSON: TimelinePoint, oldest first) and whether it is final
  affinity/dashboard.json   what the tab draws, from one snapshot (Dashboard)
  affinity/static/NAME      the dashboard's script

docs/schema.md describes every JSON document and CSV file here, field by field.

Locust's own report route (stats/report, "Download Report") gets the
affinity section of the --html report.

What is shown comes from a LiveView: on a master, the rows aggregated from
all workers. This module knows nothing of Locust's runners.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Hashable
from dataclasses import asdict
from typing import Any, Protocol, TypedDict

from ..core import summary
from ..core.schema import EndpointRow, PerUser, SummaryDoc, UserRow
from . import render
from .timeline import CHARTS, ChartSpec, Figure, Timeline, headline

TAB_KEY = "affinity"
CACHE_S = 1.0  # the page polls every 2 s; a summary of 10 000 users takes ~10 ms
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_FILES = {"affinity.js": "text/javascript"}  # served by name only: no path from the URL reaches the disk


class LiveView(Protocol):
    """What the web UI reads from a run (the plugin provides it)."""

    def snapshot(self) -> tuple[SummaryDoc, list[UserRow]]:
        """The current summary document (the --affinity-json document) and its per-user rows."""

    def version(self) -> Hashable:
        """Changes whenever the snapshot may have changed in a way worth recomputing at once
        (a stop, a worker's message); the snapshot is also recomputed every CACHE_S."""

    def timeline(self) -> Timeline:
        """The run's time series so far (read only: `points`, oldest first, and `closed`)."""


class _Live:
    """The current snapshot, recomputed at most once per CACHE_S, and at once
    when the view's version changes (e.g. the runner's state: a page that
    sees "stopped" then gets the final numbers, never ones computed just
    before the stop)."""

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.lock = threading.Lock()
        self.at = -1e9
        self.seen: Hashable = None
        self.value: tuple[SummaryDoc, list[UserRow]] | None = None

    def get(self) -> tuple[SummaryDoc, list[UserRow]]:
        with self.lock:
            now = time.monotonic()
            version = self.view.version()
            if self.value is None or version != self.seen or now - self.at >= CACHE_S:
                self.value = self.view.snapshot()
                self.at, self.seen = now, version
            return self.value


class TimelineJSON(TypedDict):
    """affinity/timeline.json."""

    points: list[dict[str, Any]]  # timeline.TimelinePoint as dicts, oldest first
    final: bool  # the run is over and its last point in


class Dashboard(TypedDict):
    """affinity/dashboard.json: what the tab draws, from one snapshot."""

    headline: list[Figure]
    histogram: list[int]
    histogram_svg: str
    users: int
    per_user: list[PerUser] | None  # None where the document leaves them out
    per_endpoint: list[EndpointRow] | None  # None unless replies carried a wrapped function's headers
    points: list[dict[str, Any]]
    final: bool


class PageConfig(TypedDict):
    """window.lambdaAffinity: what the script knows before its first fetch."""

    tab: str
    charts: list[ChartSpec]
    poll_ms: int
    per_user_limit: int


def timeline_json(line: Timeline) -> TimelineJSON:
    return {"points": [asdict(p) for p in line.points], "final": line.closed}


def dashboard(doc: SummaryDoc, line: Timeline) -> Dashboard:
    """What the tab draws, from one snapshot: headline figures, the histogram
    (numbers and picture), per-user rows and the time series."""
    series = timeline_json(line)
    return {
        "headline": headline(doc),
        "histogram": list(doc["histogram"]),
        "histogram_svg": render.histogram_svg(list(doc["histogram"]), width=360, height=220),  # as the charts
        "users": doc["users"],
        "per_user": doc.get("per_user"),
        "per_endpoint": doc.get("per_endpoint"),
        "points": series["points"],
        "final": series["final"],
    }


def page_config() -> PageConfig:
    """What the script needs to know before its first fetch (put in the page as JSON)."""
    return {"tab": TAB_KEY, "charts": CHARTS, "poll_ms": 2000, "per_user_limit": summary.PER_USER_LIMIT}


def _page_snippet() -> str:
    # "</" cannot end the script early: JSON escapes it as "<\/"
    config = json.dumps(page_config()).replace("</", "<\\/")
    return f'<script>window.lambdaAffinity = {config};</script><script src="./affinity/static/affinity.js"></script>'


def install(web_ui, view: LiveView, web_base_path: str | None = None) -> None:
    """Add the tab, its routes and page script to Locust's web UI. Idempotent:
    the init event may fire again, and Flask refuses routes once serving."""
    from flask import Blueprint, Response, request

    web_ui.template_args["extended_tabs"] = [{"title": "Affinity", "key": TAB_KEY}]
    # The tab needs a table for Locust to render anything in it: the script
    # hides this one (it has no rows) and puts the dashboard in its place.
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": [{"key": "user", "title": "User"}]}]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./affinity/csv?download=1", "title": "Download affinity per-user CSV"},
        {"href": "./affinity/summary.csv?download=1", "title": "Download affinity summary CSV"},
        {"href": "./affinity/endpoints.csv?download=1", "title": "Download affinity per-endpoint CSV"},
        {"href": "./affinity/json?download=1", "title": "Download affinity JSON"},
        {"href": "./affinity/timeline.json?download=1", "title": "Download affinity timeline JSON"},
        {"href": "./affinity/histogram.svg", "title": "Affinity histogram (SVG)"},
    ]
    if getattr(web_ui, "_lambda_affinity", False):
        return
    web_ui._lambda_affinity = True

    live = _Live(view)
    bp = Blueprint("lambda_affinity", __name__, url_prefix=web_base_path or None)
    guard = web_ui.auth_required_if_enabled

    def send(body: str, mimetype: str, filename: str) -> Response:
        resp = Response(body, mimetype=mimetype)
        if request.args.get("download"):
            resp.headers["Content-Disposition"] = f"attachment; filename={filename}"
        resp.headers["Cache-Control"] = "no-store"  # live numbers: a browser must not show old ones
        return resp

    @bp.route("/affinity/json")
    @guard
    def affinity_json():
        return send(json.dumps(live.get()[0], indent=1), "application/json", "affinity.json")

    @bp.route("/affinity/csv")
    @guard
    def affinity_csv():
        return send(render.rows_csv(live.get()[1]), "text/csv", "affinity.csv")

    @bp.route("/affinity/summary.csv")
    @guard
    def affinity_summary_csv():
        return send(render.summary_csv(live.get()[0]), "text/csv", "affinity_summary.csv")

    @bp.route("/affinity/endpoints.csv")
    @guard
    def affinity_endpoints_csv():
        rows = live.get()[0].get("per_endpoint") or []
        return send(render.endpoints_csv(rows), "text/csv", "affinity_endpoints.csv")

    @bp.route("/affinity/histogram.svg")
    @guard
    def affinity_histogram():
        return send(render.histogram_svg(list(live.get()[0]["histogram"])), "image/svg+xml", "affinity.svg")

    @bp.route("/affinity/timeline.json")
    @guard
    def affinity_timeline():
        return send(json.dumps(timeline_json(view.timeline())), "application/json", "affinity_timeline.json")

    @bp.route("/affinity/dashboard.json")
    @guard
    def affinity_dashboard():
        return send(json.dumps(dashboard(live.get()[0], view.timeline())), "application/json", "dashboard.json")

    @bp.route("/affinity/static/<name>")
    @guard
    def affinity_static(name: str):
        mimetype = STATIC_FILES.get(name)
        if mimetype is None:
            return Response(f"no file {name!r} here", status=404, mimetype="text/plain")
        with open(os.path.join(STATIC_DIR, name), encoding="utf-8") as fh:
            resp = Response(fh.read(), mimetype=mimetype)
        resp.headers["Cache-Control"] = "no-cache"  # an upgraded plugin's script shows at the next load
        return resp

    web_ui.app.register_blueprint(bp)

    @web_ui.app.after_request
    def add_ours(resp):
        if resp.status_code != 200 or resp.mimetype != "text/html":
            return resp
        # Locust's own endpoints: "locust.NAME" in its Blueprint, plain "NAME" before it had one (2.20)
        if request.endpoint in ("locust.index", "index"):
            resp.set_data(render.inject_html_section(resp.get_data(as_text=True), _page_snippet()))
        elif request.endpoint in ("locust.stats_report", "stats_report"):
            # the report the web UI offers ("Download Report") gets the --html report's section
            section = render.render_html_section(live.get()[0], (), view.timeline().points)
            resp.set_data(render.inject_html_section(resp.get_data(as_text=True), section))
        return resp
