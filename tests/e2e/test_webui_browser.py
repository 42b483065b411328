"""The "Affinity" dashboard in a real browser: Debian's headless Chromium
driven by Playwright starts a run from Locust's web UI, opens the tab, and
watches the charts grow while the run goes; once it is over the figures must
equal the plugin's JSON endpoint, in Locust's light and dark themes.
Standalone and on a master with a worker, under --web-base-path. The HTML
report's section is read in Chromium too. Screenshots go to test-artifacts/
(or $AFFINITY_TEST_ARTIFACTS); their paths are printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

import pytest
from fixture_paths import LOCUSTFILES
from locust_runs import free_port

from lambda_affinity.report.timeline import duration_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium dials out at start, which
# a closed network refuses; the others keep a headless run lean.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BASE_PATH = "/lt"

LOCUSTFILE = str(LOCUSTFILES / "webui_probe.py")
# --web-login with a minimal auth setup (a session secret, a user loader that knows no one)
LOGIN_LOCUSTFILE = str(LOCUSTFILES / "webui_probe_login.py")


def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: install Debian's package (apt-get install chromium; "
            ".ci/run does) to run the web UI test"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install -e '.[test]'")
    return sync_playwright


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.2)


def artifact(name: str) -> str:
    """Where a screenshot goes: $AFFINITY_TEST_ARTIFACTS, else test-artifacts/ (git-ignored)."""
    folder = os.environ.get("AFFINITY_TEST_ARTIFACTS") or os.path.join(ROOT, "test-artifacts")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name)


def to_fixed(x: float, digits: int) -> str:
    """The dashboard's digits: Python's format, as the console and the HTML report print
    (affinity.js rounds exact ties to even too: tests/unit/test_dashboard_digits.py)."""
    return format(x, f".{digits}f")


def rate(dist, key: str) -> str:
    return "-" if dist is None else to_fixed(dist[key], 3)


def expected_figures(doc: dict) -> dict:
    """The headline figures as the page must show them, read from the --affinity-json document."""
    return {
        "users": str(doc["users"]),
        "mean_max_share": rate(doc["hit_rate"], "mean"),
        "median_max_share": rate(doc["hit_rate"], "p50"),
        "mean_warm_rate": rate(doc["warm_cache_rate"], "mean"),
        "environments": str(doc["environments"]),
        "cold_starts": str(doc["cold_starts"]),
        "new_environment_calls": str(doc["new_environment_calls"]),
        "requests": str(doc["requests"]),
        "invalid": str(doc["invalid"]),
        **savings(doc),
    }


def savings(doc: dict) -> dict:
    """The cost-of-a-miss figures, present when the run was given one."""
    cost = doc.get("miss_cost")
    if not cost:
        return {}
    out = {}
    if cost["saved_ms_per_million"] is not None:
        out["saved_time_per_million"] = duration_text(cost["saved_ms_per_million"] / 1000)
    if cost["saved_usd_per_million"] is not None:
        out["saved_usd_per_million"] = f"${cost['saved_usd_per_million']:,.2f}"
    return out


# The dashboard as the user sees it; colours as [r, g, b] of what is painted.
READ_DASHBOARD = """() => {
  const box = document.getElementById('lambda-affinity-dashboard');
  if (!box) return null;
  const rgb = s => s.match(/\\d+/g).slice(0, 3).map(Number);
  const dots = {};
  box.querySelectorAll('svg[data-chart]').forEach(svg => {
    const first = svg.querySelector('circle[data-series]');
    dots[svg.dataset.chart] = first ? svg.querySelectorAll(`circle[data-series="${first.dataset.series}"]`).length : 0;
  });
  const value = box.querySelector('.la-value');
  return {
    theme: box.dataset.theme,
    state: box.querySelector('.la-state').textContent,
    figures: Object.fromEntries([...box.querySelectorAll('.la-figure')].map(
      f => [f.dataset.key, f.querySelector('.la-value').textContent])),
    dots,
    lastRate: [...box.querySelectorAll('svg[data-chart=rates] circle[data-series=mean_max_share] title')]
      .map(t => t.textContent).pop() || null,
    histogram: [...box.querySelectorAll('[data-chart=histogram] rect title')].map(t => t.textContent),
    head: [...box.querySelectorAll('table.la-users th')].map(th => [th.dataset.key, th.getAttribute('aria-sort')]),
    rows: [...box.querySelectorAll('table.la-users tbody tr')].map(tr => [...tr.children].map(td => td.textContent)),
    text: value ? rgb(getComputedStyle(value).color) : null,
    background: rgb(getComputedStyle(document.body).backgroundColor),
    line: box.querySelector('path.la-s0') ? rgb(getComputedStyle(box.querySelector('path.la-s0')).stroke) : null,
  };
}"""


def contrast(a, b) -> float:
    """WCAG contrast ratio of two sRGB colours."""

    def lum(c):
        lin = [v / 255 / 12.92 if v <= 10 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def state_of(page, base: str) -> str:
    return json.loads(page.request.get(base + "stats/requests").text())["state"]


def check_theme(view: dict, theme: str) -> None:
    assert view["theme"] == theme, view["theme"]
    dark = sum(view["background"]) < 3 * 128
    assert dark == (theme == "dark"), (theme, view["background"])
    # the figures are readable on the page's own background, whichever it is
    assert contrast(view["text"], view["background"]) >= 4.5, (theme, view["text"], view["background"])
    assert contrast(view["line"], view["background"]) >= 3, (theme, view["line"], view["background"])


def wait_dashboard(page, base: str, timeout: float, ready) -> dict:
    """Read the dashboard until `ready(view, state)` holds; returns the last view."""
    deadline = time.monotonic() + timeout
    while True:
        state = state_of(page, base)  # the state first: a view read after "stopped" shows final numbers
        view = page.evaluate(READ_DASHBOARD)
        if view and ready(view, state):
            return view
        # what `ready` last compared the view with, when it keeps it (final: the JSON's figures and points)
        wanted = {k: getattr(ready, k) for k in ("doc", "points") if hasattr(ready, k)}
        if "doc" in wanted:
            wanted["figures"] = expected_figures(wanted.pop("doc"))
        if "points" in wanted:
            wanted["points"] = len(wanted["points"])
        assert time.monotonic() < deadline, f"state {state}; dashboard {view}; expected {wanted}"
        page.wait_for_timeout(250)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["standalone", "master"])
def test_affinity_dashboard_in_chromium(cluster_factory, tmp_path, mode):
    sync_playwright = browser()
    web_port = free_port()
    c = cluster_factory(
        [
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(web_port),
            "--web-base-path",
            BASE_PATH,
            "--affinity-json",
            "a.json",
            "--affinity-miss-cost-ms",
            "8",
            "--miss-cost-usd",
            "0.0000004",
        ],
        workers=1 if mode == "master" else 0,
        locustfile=LOCUSTFILE,
    )
    base = f"http://127.0.0.1:{web_port}{BASE_PATH}/"
    wait_http(base)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1000}, color_scheme="light")
            page.set_default_timeout(15_000)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            start_run(page, base, mode)
            # live: every chart draws points while the test runs, and more as it goes on
            watch_live(page, base)
            # over: the figures settle on the JSON endpoint's, the charts on the run's timeline
            view, doc, points = wait_final(page, base)
            check_final(page, view, doc, points, mode)
            # the per-user table: one row per user, worst max-share first; sortable; searchable
            check_user_table(page, view, doc)
            # Locust's theme switch: the dashboard follows at once, with the same numbers
            check_dark_theme(page, base, doc, mode)
            check_downloads(page, chromium, base, doc, points)
            # a new test from the web UI starts a new timeline and new numbers. The report pages above took the
            # focus: Locust's page may still show the "stopping" it saw before them, so look again
            second_run(page, base, points)
            assert errors == []
            doc = json.loads(page.request.get(base + "affinity/json").text())
        finally:
            chromium.close()
    # quitting writes the same numbers (the second test's) to --affinity-json
    c.master.send_signal(signal.SIGTERM)
    assert c.wait_master(30) == 0, c.text("master.err")[-3000:]
    check_quit(c, tmp_path, doc, mode)


def start_run(page, base: str, mode: str):
    """Locust's form starts a 5-user, 10 s run; the Affinity tab opens."""
    page.goto(base)
    if mode == "master":  # the form starts a run once the worker is in
        page.wait_for_function("() => document.body.innerText.includes('1')", timeout=15_000)
    page.fill("input[name=userCount]", "5")
    page.fill("input[name=spawnRate]", "5")
    page.click("text=Advanced options")
    page.fill("input[name=runTime]", "10s")
    page.click("button:has-text('Start')")
    page.click("[role=tab]:has-text('Affinity')")
    assert page.url.endswith("?tab=affinity"), page.url


def watch_live(page, base: str):
    """Every chart draws points while the test runs, and more as it goes on."""
    running = ("running", "spawning")
    first = wait_dashboard(page, base, 15, lambda v, s: s in running and min(v["dots"].values()) >= 1)
    assert set(first["dots"]) == {"rates", "environments", "cold_starts"}
    assert int(first["figures"]["users"]) >= 1 and first["state"] == "live"
    wait_dashboard(
        page,
        base,
        15,
        lambda v, s: s in running and all(v["dots"][chart] > n for chart, n in first["dots"].items()),
    )


def wait_final(page, base: str):
    """(view, JSON document, timeline points) once the run is over and the dashboard shows its final numbers."""

    def final(view, state):
        if state != "stopped":
            return False
        final.doc = json.loads(page.request.get(base + "affinity/json").text())
        timeline = json.loads(page.request.get(base + "affinity/timeline.json").text())
        final.points = timeline["points"]
        if not timeline["final"]:  # on a master, the last point waits for the worker's last rows
            return False
        # a point before the first reply (on a master, the first worker report) has no rate to draw
        rated = [pt for pt in final.points if pt["mean_max_share"] is not None]
        return (
            view["state"] == "run over: final numbers"
            and view["figures"] == expected_figures(final.doc)
            and view["dots"]
            == {"rates": len(rated), "environments": len(final.points), "cold_starts": len(final.points)}
        )

    view = wait_dashboard(page, base, 25, final)
    return view, final.doc, final.points


def check_final(page, view: dict, doc: dict, points: list, mode: str):
    """The final figures, the timeline adding up to them, the light theme (screenshot)."""
    assert doc["users"] == 5 and doc["requests"] > 5 and doc["invalid"] == 0
    # the timeline's last point holds the final numbers; its intervals add up to the totals
    assert view["lastRate"].endswith(": " + to_fixed(doc["hit_rate"]["mean"], 3)), view["lastRate"]
    assert sum(pt["cold_starts"] for pt in points) == doc["cold_starts"]
    assert sum(pt["new_environment_calls"] for pt in points) == doc["new_environment_calls"] == 0  # on-demand only
    assert sum(pt["valid"] for pt in points) == doc["requests"]
    assert points[-1]["environments"] == doc["environments"] and len(points) >= 4
    assert view["histogram"] == [f"{i / 10:.1f}-{(i + 1) / 10:.1f}: {n} users" for i, n in enumerate(doc["histogram"])]
    check_theme(view, "light")
    page.screenshot(path=artifact(f"dashboard-{mode}-light.png"), full_page=True)


def check_user_table(page, view: dict, doc: dict):
    """One row per user, worst max-share first; sortable; searchable."""
    per_user = {u["user"]: u for u in doc["per_user"]}
    assert sorted(r[0] for r in view["rows"]) == sorted(per_user)
    shares = [float(r[2]) for r in view["rows"]]
    assert shares == sorted(shares) and ["max_share", "ascending"] in view["head"]
    for r in view["rows"]:
        u = per_user[r[0]]
        assert r == [
            u["user"],
            str(u["requests"]),
            to_fixed(u["max_share"], 3),
            str(u["warm_hits"]),
            str(u["environments"]),
            str(u["cold_starts"]),
            str(u["new_environment_calls"]),
            str(u["switches"]),
        ]
    page.click("table.la-users th[data-key=requests]")
    page.click("table.la-users th[data-key=requests]")
    view = page.evaluate(READ_DASHBOARD)
    assert ["requests", "descending"] in view["head"]
    counts = [int(r[1]) for r in view["rows"]]
    assert counts == sorted(counts, reverse=True) == sorted((u["requests"] for u in per_user.values()), reverse=True)
    wanted = max(per_user)  # e.g. "u5": no other label contains it
    page.fill("#lambda-affinity-dashboard input[type=search]", wanted)
    view = page.evaluate(READ_DASHBOARD)
    assert [r[0] for r in view["rows"]] == [u for u in per_user if wanted in u]


def check_dark_theme(page, base: str, doc: dict, mode: str):
    """Locust's theme switch: the dashboard follows at once, with the same numbers (screenshot)."""
    page.click("header button:has(path[d^='M20 8.69V4h'])")
    view = wait_dashboard(page, base, 5, lambda v, s: v["theme"] == "dark")
    check_theme(view, "dark")
    assert view["figures"] == expected_figures(doc)
    assert view["lastRate"].endswith(": " + to_fixed(doc["hit_rate"]["mean"], 3))
    page.fill("#lambda-affinity-dashboard input[type=search]", "")
    page.screenshot(path=artifact(f"dashboard-{mode}-dark.png"), full_page=True)
    print(f"screenshots: {artifact(f'dashboard-{mode}-light.png')}, {artifact(f'dashboard-{mode}-dark.png')}")


def check_downloads(page, chromium, base: str, doc: dict, points: list):
    """The dashboard's links, Locust's Download Data tab, the web UI's report in both themes, the Statistics tab."""
    links = page.eval_on_selector_all("#lambda-affinity-dashboard a", "as => as.map(a => a.href)")
    assert links == [
        base + "affinity/json?download=1",
        base + "affinity/csv?download=1",
        base + "affinity/summary.csv?download=1",
        base + "affinity/timeline.json?download=1",
        base + "affinity/histogram.svg",
        base + "affinity/endpoints.csv?download=1",
    ]
    per_user_csv = page.request.get(base + "affinity/csv?download=1")
    assert per_user_csv.headers["content-disposition"] == "attachment; filename=affinity.csv"
    assert (
        per_user_csv.text().splitlines()[0].startswith("user,requests,max_count")
        and len(per_user_csv.text().splitlines()) == 6
    )
    page.click("[role=tab]:has-text('Download Data')")
    page.wait_for_selector("#lambda-affinity-dashboard", state="detached", timeout=3000)  # Affinity tab only
    for title in (
        "Download affinity per-user CSV",
        "Download affinity summary CSV",
        "Download affinity JSON",
        "Download affinity timeline JSON",
        "Affinity histogram (SVG)",
    ):
        assert page.locator(f"a:has-text('{title}')").count() == 1, title
    # the web UI's own report ("Download Report") has the --html report's section, in either theme
    for theme in ("light", "dark"):
        report = read_report(chromium, f"{base}stats/report?theme={theme}", theme)
        assert report["figures"] == expected_figures(doc)
        assert len(report["series"]["Environments and users / users"]) == len(points)
        assert sum(report["series"]["Cold starts per interval / cold starts"]) == doc["cold_starts"]
    # the Affinity tab's own table is hidden only beside the dashboard: Locust's tables show elsewhere
    page.click("[role=tab]:has-text('Statistics')")
    page.wait_for_selector(".MuiTableContainer-root", state="visible", timeout=3000)


def second_run(page, base: str, points: list):
    """A 2-user, 5 s run from the New button: a new timeline, after the first's."""
    page.bring_to_front()
    page.reload()
    page.click("button:has-text('New')")
    page.fill("input[name=userCount]", "2")
    page.fill("input[name=spawnRate]", "2")
    if not page.locator("input[name=runTime]").is_visible():
        page.click("text=Advanced options")
    page.fill("input[name=runTime]", "5s")
    page.click("button:has-text('Start')")
    page.click("[role=tab]:has-text('Affinity')")

    def again(view, state):
        if state != "stopped":
            return False
        timeline = json.loads(page.request.get(base + "affinity/timeline.json").text())
        again.points = timeline["points"]
        return (
            timeline["final"]
            and view["figures"]["users"] == "2"
            and view["dots"]["environments"] == len(again.points) > 0
            and again.points[0]["t"] > points[-1]["t"]
        )

    wait_dashboard(page, base, 30, again)
    assert again.points[-1]["t"] - (again.points[0]["t"] - again.points[0]["span_s"]) < 10


def check_quit(c, tmp_path, doc: dict, mode: str):
    """Quitting writes the same numbers (the second test's) to --affinity-json."""
    final_doc = json.loads((tmp_path / "a.json").read_text())
    assert final_doc["users"] == 2
    assert {k: v for k, v in final_doc.items() if k != "workers"} == {k: v for k, v in doc.items() if k != "workers"}
    if mode == "master":
        assert final_doc["workers"] == doc["workers"] == {"count": 1, "lost": []}
        assert all(u["user"].startswith("w0-u") for u in final_doc["per_user"])


READ_REPORT = """() => {
  const s = document.getElementById('lambda-affinity');
  const rgb = c => c.match(/\\d+/g).slice(0, 3).map(Number);
  const series = {};
  s.querySelectorAll('svg.la-chart g.series').forEach(g => {
    const chart = g.closest('svg').getAttribute('aria-label');
    series[chart + ' / ' + g.dataset.series] = [...g.querySelectorAll('circle')].map(c => Number(c.dataset.y));
  });
  return {
    figures: Object.fromEntries([...s.querySelectorAll('[data-key]')].map(
      f => [f.dataset.key, f.firstElementChild.textContent])),
    series,
    text: rgb(getComputedStyle(s).color),
    axis: rgb(getComputedStyle(s.querySelector('svg.la-chart text.x-tick')).fill),
    background: rgb(getComputedStyle(document.body).backgroundColor),
  };
}"""


def read_report(chromium, url: str, theme: str) -> dict:
    """The affinity section of a Locust HTML report as Chromium shows it; its
    text and axes must be readable on the report's background (`theme`)."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.wait_for_selector("#lambda-affinity svg.la-chart")
        report = page.evaluate(READ_REPORT)
        dark = sum(report["background"]) < 3 * 128
        assert dark == (theme == "dark"), (theme, report["background"])
        assert contrast(report["text"], report["background"]) >= 4.5, report
        assert contrast(report["axis"], report["background"]) >= 4.5, report
        name = re.sub(r"[^a-z0-9]+", "-", url.rsplit("/", 1)[-1])
        page.screenshot(path=artifact(f"report-{name}-{theme}.png"), full_page=True)
        return report
    finally:
        page.close()


@pytest.mark.slow
def test_html_report_has_the_dashboards_figures_and_charts(cluster_factory, tmp_path):
    sync_playwright = browser()
    c = cluster_factory(
        [
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "7s",
            "--html",
            "report.html",
            "--affinity-json",
            "a.json",
            "--miss-cost-ms",
            "8",
        ],
        workers=0,
        locustfile=LOCUSTFILE,
    )
    assert c.wait_master(60) == 0, c.text("master.err")[-3000:]
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["users"] == 4 and doc["requests"] > 4 and doc["miss_cost"]["per_miss_ms"] == 8
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # --html writes Locust's light report
            report = read_report(chromium, (tmp_path / "report.html").as_uri(), "light")
            assert report["figures"] == expected_figures(doc)
            series = report["series"]
            assert set(series) == {
                "Hit rates (per-user mean) / max-share",
                "Hit rates (per-user mean) / warm-cache",
                "Environments and users / environments",
                "Environments and users / users",
                "Cold starts per interval / cold starts",
                "Cold starts per interval / new-environment calls",
                "Cold starts per interval / invalid replies",
            }
            # a point every 2 s and a final one with the final numbers
            assert len(series["Environments and users / users"]) >= 3
            assert series["Hit rates (per-user mean) / max-share"][-1] == doc["hit_rate"]["mean"]
            assert series["Hit rates (per-user mean) / warm-cache"][-1] == doc["warm_cache_rate"]["mean"]
            assert series["Environments and users / environments"][-1] == doc["environments"]
            assert sum(series["Cold starts per interval / cold starts"]) == doc["cold_starts"]
            assert sum(series["Cold starts per interval / invalid replies"]) == doc["invalid"] == 0
            assert sum(series["Cold starts per interval / new-environment calls"]) == doc["new_environment_calls"] == 0
        finally:
            chromium.close()


def test_affinity_routes_respect_web_login(cluster_factory, tmp_path):
    web_port = free_port()
    cluster_factory(
        ["--web-host", "127.0.0.1", "--web-port", str(web_port), "--web-login"], workers=0, locustfile=LOGIN_LOCUSTFILE
    )
    base = f"http://127.0.0.1:{web_port}"
    wait_http(base + "/login")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for path in (
        "/affinity/json",
        "/affinity/csv",
        "/affinity/summary.csv",
        "/affinity/histogram.svg",
        "/affinity/timeline.json",
        "/affinity/dashboard.json",
        "/affinity/static/affinity.js",
        "/stats/requests",
    ):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(base + path, timeout=5)
        # anonymous: sent to the login page like Locust's own routes
        assert err.value.code == 302 and "/login" in err.value.headers["Location"], (path, err.value.code)
