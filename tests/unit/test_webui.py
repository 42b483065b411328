"""webui.py against Locust's real web UI app (Flask's test client, no server
or browser): the routes read any LiveView, the script is served by name only,
and the pages get our additions. The browser tests are in test_webui_browser.py."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import pytest
from locust import User
from locust.env import Environment

from lambda_affinity.core import summary
from lambda_affinity.core.endpoints import EndpointTracker
from lambda_affinity.core.tracker import Tracker
from lambda_affinity.report import render, webui
from lambda_affinity.report.timeline import Timeline, headline


class TrackerView:
    """A LiveView over one tracker and timeline: what a plugin provides, without Locust's runners."""

    def __init__(self) -> None:
        self.tracker = Tracker()
        self.endpoints = EndpointTracker()
        self.line = Timeline(start=0.0)
        self.changes = 0

    def snapshot(self) -> tuple[dict, list[dict]]:
        rows = self.tracker.rows()
        doc = summary.summarize(rows, self.tracker.environments)
        if self.endpoints.counts:
            doc["per_endpoint"] = self.endpoints.rows()
        return doc, rows

    def version(self):
        return self.changes

    def timeline(self) -> Timeline:
        return self.line


class Nobody(User):
    pass


@pytest.fixture
def served(monkeypatch):
    # Locust's web UI parses the process's command line for its form: give it a Locust one, not pytest's
    monkeypatch.setattr(sys, "argv", ["locust"])
    env = Environment(user_classes=[Nobody])
    env.create_local_runner()
    web_ui = env.create_web_ui("127.0.0.1", 0, delayed_start=True)  # --web-base-path: in the browser tests
    view = TrackerView()
    webui.install(web_ui, view, None)
    webui.install(web_ui, view, None)  # Locust's init may fire again: no second set of routes
    yield web_ui.app.test_client(), view
    env.runner.quit()


def test_dashboard_json_is_one_snapshot_of_the_view(served):
    client, view = served
    for i in range(6):
        view.tracker.record(f"u{i % 2}", "A" if i % 3 else "B", cold=i < 2, cache_hit=i > 1)
        (view.line.close if i == 5 else view.line.add)(2.0 * (i + 1), view.snapshot()[0])
    view.changes += 1  # the view says its numbers changed: no cached snapshot is served
    got = client.get("/affinity/dashboard.json")
    assert got.status_code == 200 and got.headers["Cache-Control"] == "no-store"
    data = got.get_json()
    doc = view.snapshot()[0]
    assert data["headline"] == headline(doc) and data["histogram"] == doc["histogram"]
    assert data["per_user"] == doc["per_user"] and data["users"] == 2
    assert data["per_endpoint"] is None  # no wrapped function's replies
    assert data["histogram_svg"] == render.histogram_svg(doc["histogram"], width=360, height=220)
    assert data["points"] == [asdict(p) for p in view.line.points] and len(data["points"]) == 6
    assert data["final"] is True
    timeline = client.get("/affinity/timeline.json?download=1")
    assert timeline.get_json() == {"points": data["points"], "final": True}
    assert timeline.headers["Content-Disposition"] == "attachment; filename=affinity_timeline.json"
    assert json.loads(client.get("/affinity/json").data) == doc


def test_per_endpoint_rows_are_served_as_the_dashboard_and_a_csv(served):
    client, view = served
    view.endpoints.record("login", cold=True, cache_hit=None, stayed=None)
    view.endpoints.record("/items/[id]", cold=False, cache_hit=True, stayed=True)
    view.endpoints.record("/items/[id]", cold=False, cache_hit=False, stayed=False)
    view.changes += 1
    rows = view.snapshot()[0]["per_endpoint"]
    assert client.get("/affinity/dashboard.json").get_json()["per_endpoint"] == rows
    got = client.get("/affinity/endpoints.csv?download=1")
    assert got.headers["Content-Disposition"] == "attachment; filename=affinity_endpoints.csv"
    assert got.data.decode() == render.endpoints_csv(rows)
    lines = got.data.decode().splitlines()
    assert lines[0].startswith("name,requests,invalid,cold_starts") and lines[1].startswith("/items/[id],2,0,0,0,1,2,")


def test_the_script_is_served_by_name_only(served):
    client, _ = served
    script = client.get("/affinity/static/affinity.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert b"lambda-affinity-dashboard" in script.data
    for name in ("nope.js", "__init__.py", "webui.py"):
        assert client.get(f"/affinity/static/{name}").status_code == 404, name
    for name in ("..%2Fwebui.py", "../webui.py", "%2e%2e%2fwebui.py"):
        # routed elsewhere, or nowhere (Locust answers 404, or 500 in 2.20): never a file of ours
        got = client.get(f"/affinity/static/{name}")
        assert got.status_code != 200 and b"def install" not in got.data, name


def test_pages_get_the_script_and_the_report_section(served):
    client, view = served
    view.tracker.record("u1", "A", cold=True)
    page = client.get("/").get_data(as_text=True)
    config = page[page.index("window.lambdaAffinity = ") + len("window.lambdaAffinity = ") :]
    config = json.loads(config[: config.index(";</script>")])
    assert config == json.loads(json.dumps(webui.page_config()))
    assert config["charts"][0]["series"][0]["field"] == "mean_max_share"
    assert '<script src="./affinity/static/affinity.js"></script>' in page
    report = client.get("/stats/report").get_data(as_text=True)
    assert report.count('<section id="lambda-affinity"') == 1 and 'data-key="users"' in report
