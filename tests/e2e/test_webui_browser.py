"""The "Affinity" tab in a real browser: Debian's headless Chromium driven by
Playwright starts a run from Locust's web UI, opens the tab, and reads the
table while it fills and once the run is over; the numbers must equal the
plugin's JSON endpoint. Standalone and on a master with a worker, under
--web-base-path. A screenshot is saved in artifacts/ (its path is printed).
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from fixture_paths import LOCUSTFILES
from locust_runs import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium dials out at start, which
# a closed network refuses; the others keep a headless run lean.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BASE_PATH = "/lt"

LOCUSTFILE = str(LOCUSTFILES / "webui_probe.py")
# --web-login with a minimal auth setup (a session secret, a user loader that knows no one)
LOGIN_LOCUSTFILE = str(LOCUSTFILES / "webui_probe_login.py")


def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: install Debian's package (apt-get install chromium; "
                    ".ci/run does) to run the web UI test")
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


def read_table(page) -> dict:
    """The Affinity tab's table as {(section, item): {column title: text}}."""
    cells = page.evaluate("""() => {
        const t = document.querySelector('table');
        if (!t) return null;
        const head = [...t.querySelectorAll('thead th')].map(th => th.innerText.trim());
        return [head, [...t.querySelectorAll('tbody tr')].map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()))];
    }""")
    if not cells:
        return {}
    head, rows = cells
    return {(r[0], r[1]): dict(zip(head, r)) for r in rows if len(r) == len(head)}


def num(text: str):
    return None if text == "" else float(text) if "." in text else int(text)


def mismatches(table: dict, doc: dict) -> list[str]:
    """Where the table disagrees with the JSON document (empty: equal)."""
    out = []

    def check(key, column, expected):
        got = num(table.get(key, {}).get(column, ""))
        if got != expected:
            out.append(f"{key} {column}: table {got!r}, JSON {expected!r}")

    for item, field in (("users", "users"), ("valid replies", "requests"), ("invalid replies", "invalid"),
                        ("environments", "environments"), ("cold starts", "cold_starts")):
        check(("totals", item), "Value", doc[field])
    for item, field in (("max-share hit rate", "hit_rate"), ("warm-cache hit rate", "warm_cache_rate")):
        for k in ("mean", "min", "p10", "p25", "p50", "p75", "p90", "max", "weighted"):
            check(("distribution", item), k, round(doc[field][k], 3) if doc[field] else None)
    for i, n in enumerate(doc["histogram"]):
        check(("histogram", f"max-share {i / 10:.1f}-{(i + 1) / 10:.1f}"), "Value", n)
    per_user = {u["user"]: u for u in doc["per_user"]}
    listed = {sec: [k[1] for k in table if k[0] == sec] for sec in ("worst users", "best users")}
    for section, users in listed.items():
        for user in users:
            u = per_user[user]
            check((section, user), "Value", round(u["max_share"], 3))
            for column, field in (("Requests", "requests"), ("Environments", "environments"),
                                  ("Cold starts", "cold_starts")):
                check((section, user), column, u[field])
    shares = sorted(u["max_share"] for u in per_user.values() if u["requests"])
    if not listed["worst users"] or max(per_user[u]["max_share"] for u in listed["worst users"]) > \
            shares[len(listed["worst users"]) - 1]:
        out.append(f"worst users {listed['worst users']} are not the lowest max-shares {shares}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["standalone", "master"])
def test_affinity_tab_in_chromium(cluster_factory, tmp_path, mode):  # noqa: F811 (fixture)
    sync_playwright = browser()
    web_port = free_port()
    c = cluster_factory(["--web-host", "127.0.0.1", "--web-port", str(web_port), "--web-base-path", BASE_PATH,
                         "--affinity-json", "a.json"], workers=1 if mode == "master" else 0, locustfile=LOCUSTFILE)
    base = f"http://127.0.0.1:{web_port}{BASE_PATH}/"
    wait_http(base)
    shot = os.path.join(ROOT, "artifacts", f"webui-affinity-{mode}.png")
    os.makedirs(os.path.dirname(shot), exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            page.goto(base)
            if mode == "master":  # the form starts a run once the worker is in
                page.wait_for_function("() => document.body.innerText.includes('1')", timeout=15_000)
            page.fill("input[name=userCount]", "4")
            page.fill("input[name=spawnRate]", "4")
            page.click("text=Advanced options")
            page.fill("input[name=runTime]", "6s")
            page.click("button:has-text('Start')")
            page.click("[role=tab]:has-text('Affinity')")
            assert page.url.endswith("?tab=affinity"), page.url
            # live: valid replies show up while the test runs
            deadline = time.monotonic() + 15
            while True:
                table = read_table(page)
                live = num(table.get(("totals", "valid replies"), {}).get("Value", "") or "0")
                state = json.loads(page.request.get(base + "stats/requests").text())["state"]
                if live and state in ("running", "spawning"):
                    break
                assert time.monotonic() < deadline, f"no live numbers in the tab (state {state}, table {table})"
                page.wait_for_timeout(300)
            # over: the table settles on the JSON endpoint's numbers
            deadline = time.monotonic() + 25
            while True:
                # the state first: numbers read after "stopped" are final
                state = json.loads(page.request.get(base + "stats/requests").text())["state"]
                doc = json.loads(page.request.get(base + "affinity/json").text())
                table = read_table(page)
                diff = mismatches(table, doc)
                if state == "stopped" and not diff:
                    break
                assert time.monotonic() < deadline, f"state {state}; table differs from JSON: {diff}"
                page.wait_for_timeout(500)
            assert doc["users"] == 4 and doc["requests"] > 4 and doc["invalid"] == 0
            # the picture, reachable from the tab, drawn from the same numbers
            # the picture on screen shows the final numbers too (one title per bar)
            expected = [f"{i / 10:.1f}-{(i + 1) / 10:.1f}: {n} users" for i, n in enumerate(doc["histogram"])]
            page.wait_for_function(
                "exp => JSON.stringify([...document.querySelectorAll('#lambda-affinity-extras-picture rect title')]"
                ".map(t => t.textContent)) === JSON.stringify(exp)", arg=expected, timeout=10000)
            svg = page.request.get(base + "affinity/histogram.svg")
            assert svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text()
            links = page.eval_on_selector_all("#lambda-affinity-extras a", "as => as.map(a => a.href)")
            assert links == [base + "affinity/histogram.svg", base + "affinity/json",
                             base + "affinity/csv?download=1", base + "affinity/summary.csv?download=1"]
            per_user = page.request.get(base + "affinity/csv?download=1")
            assert per_user.headers["content-disposition"] == "attachment; filename=affinity.csv"
            assert per_user.text().splitlines()[0].startswith("user,requests,max_count") and \
                len(per_user.text().splitlines()) == 5
            page.screenshot(path=shot, full_page=True)
            print(f"screenshot: {shot}")
            page.click("[role=tab]:has-text('Download Data')")
            page.wait_for_selector("#lambda-affinity-extras", state="detached", timeout=3000)  # Affinity tab only
            for title in ("Download affinity per-user CSV", "Download affinity summary CSV",
                          "Download affinity JSON", "Affinity histogram (SVG)"):
                assert page.locator(f"a:has-text('{title}')").count() == 1, title
        finally:
            chromium.close()
    # quitting writes the same numbers to --affinity-json
    c.master.send_signal(signal.SIGTERM)
    assert c.wait_master(30) == 0, c.text("master.err")[-3000:]
    final = json.loads((tmp_path / "a.json").read_text())
    assert {k: v for k, v in final.items() if k != "workers"} == {k: v for k, v in doc.items() if k != "workers"}
    if mode == "master":
        assert final["workers"] == doc["workers"] == {"count": 1, "lost": []}
        assert all(u["user"].startswith("w0-u") for u in final["per_user"])


def test_affinity_routes_respect_web_login(cluster_factory, tmp_path):  # noqa: F811 (fixture)
    web_port = free_port()
    cluster_factory(["--web-host", "127.0.0.1", "--web-port", str(web_port), "--web-login"], workers=0,
                    locustfile=LOGIN_LOCUSTFILE)
    base = f"http://127.0.0.1:{web_port}"
    wait_http(base + "/login")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for path in ("/affinity/json", "/affinity/csv", "/affinity/summary.csv", "/affinity/histogram.svg",
                 "/stats/requests"):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(base + path, timeout=5)
        # anonymous: sent to the login page like Locust's own routes
        assert err.value.code == 302 and "/login" in err.value.headers["Location"], (path, err.value.code)
