"""The "Affinity" tab in Locust's web UI, live while the test runs.

Locust 2.x renders extra tabs from template args: `extended_tabs` (the tab),
`extended_tables` (its columns) and `extended_csv_files` (links in the
"Download Data" tab); the rows come from an `extended_stats` list in the
`/stats/requests` JSON the page polls every 2 s, which an `after_request`
hook adds here. The stock bundle renders tables only, so the picture of the
per-user distribution (summary.histogram_svg) and the downloads are routes
of our own, linked from the tab by a small script added to the index page.

Routes sit in a Blueprint under `--web-base-path` like Locust's own, and are
guarded by `web_ui.auth_required_if_enabled` (`--web-login`):

  affinity/json             the live summary (the --affinity-json document)
  affinity/csv              per-user rows (the --csv PREFIX_affinity.csv file)
  affinity/summary.csv      distributions, totals, histogram
  affinity/histogram.svg    the per-user max-share histogram

On a master the same tab shows the rows aggregated from all workers.
"""
from __future__ import annotations

import heapq
import json
import threading
import time
from typing import Callable, Hashable, Mapping, Protocol

from . import summary

TAB_KEY = "affinity"
TOP_USERS = 5   # worst and best users shown in the tab
CACHE_S = 1.0   # the page polls every 2 s; a summary of 10 000 users takes ~10 ms

# (key, title) of the tab's columns; a row fills the ones that apply to it.
# No "name" key: Locust's table sorts by `name` unless told otherwise, and the
# rows' own order (totals, distributions, histogram, users) is the readable one.
COLUMNS = (
    ("section", "Section"), ("item", "Item"), ("value", "Value"), ("requests", "Requests"),
    ("environments", "Environments"), ("cold_starts", "Cold starts"),
    *((k, k) for k in summary.STAT_KEYS),
)


def _r(v):
    return round(v, 3) if isinstance(v, float) else v


def table_rows(doc: Mapping, rows: list[Mapping], top: int = TOP_USERS) -> list[dict]:
    """The tab's rows: totals, both distributions, the histogram, and the
    `top` worst and best users by max-share hit rate (among equals, the
    less measured user counts as worse: it is the less reassuring)."""
    out = [{"section": "totals", "item": name, "value": value} for name, value in (
        ("users", doc["users"]), ("valid replies", doc["requests"]), ("invalid replies", doc["invalid"]),
        ("environments", doc["environments"]), ("cold starts", doc["cold_starts"]),
        ("cold starts per valid reply", _r(doc["cold_starts"] / doc["requests"]) if doc["requests"] else None),
    )]
    for name, key in (("max-share hit rate", "hit_rate"), ("warm-cache hit rate", "warm_cache_rate")):
        dist = doc.get(key)
        row = {"section": "distribution", "item": name}
        if dist:
            row.update({k: _r(dist[k]) for k in summary.STAT_KEYS})
        out.append(row)
    for i, n in enumerate(doc["histogram"]):
        out.append({"section": "histogram", "item": f"max-share {i / summary.BINS:.1f}-{(i + 1) / summary.BINS:.1f}",
                    "value": n})
    measured = [r for r in rows if r["requests"]]
    # with few users, half are worst and the other half best: no one twice
    k = min(top, max(1, len(measured) // 2))
    worst = heapq.nsmallest(k, measured, key=lambda r: (r["max_share"], r["requests"]))
    shown = {r["user"] for r in worst}
    best = heapq.nlargest(k, (r for r in measured if r["user"] not in shown),
                          key=lambda r: (r["max_share"], r["requests"]))
    for section, picked in (("worst users", worst), ("best users", best)):
        out.extend({"section": section, "item": r["user"], "value": _r(r["max_share"]), "requests": r["requests"],
                    "environments": r["environments"], "cold_starts": r["cold_starts"]} for r in picked)
    return out


# Shows the picture and the downloads above the tab's table while the tab is
# open. Polls (cheap) rather than hooking React, whose internals change.
_SCRIPT = """<script>
(function () {
  var ID = "lambda-affinity-extras", shown = null, drawn = 0;
  function open() { return new URLSearchParams(location.search).get("tab") === "%(tab)s"; }
  function tick() {
    var box = document.getElementById(ID), table = document.querySelector(".MuiTableContainer-root");
    if (!open() || !table) { if (box) box.remove(); return; }
    if (!box) {
      box = document.createElement("div");
      box.id = ID;
      box.style.cssText = "display:flex;flex-wrap:wrap;align-items:flex-end;gap:24px;margin:8px 0 16px";
      box.innerHTML = '<div id="' + ID + '-picture" role="img" aria-label="per-user max-share histogram" ' +
        'style="background:#fff;border-radius:4px;max-width:100%%;line-height:0"></div>' +
        '<div style="font-family:Roboto,Helvetica,Arial,sans-serif;line-height:2">' +
        '<a href="./affinity/histogram.svg" target="_blank">histogram (SVG)</a><br>' +
        '<a href="./affinity/json">affinity JSON</a><br>' +
        '<a href="./affinity/csv?download=1">per-user CSV</a><br>' +
        '<a href="./affinity/summary.csv?download=1">summary CSV</a></div>';
      shown = null;
    }
    if (box.nextSibling !== table) table.parentNode.insertBefore(box, table);
    if (table.innerText !== shown) {  // new numbers in the table: redraw the picture with them
      shown = table.innerText;
      var asked = ++drawn;
      // Inline, not an <img>: the picture on screen is then the one fetched
      // last, and a late answer to an older fetch cannot overwrite it.
      fetch("./affinity/histogram.svg", {cache: "no-store"}).then(function (r) { return r.text(); })
        .then(function (svg) {
          var pic = document.getElementById(ID + "-picture");
          if (pic && asked === drawn) pic.innerHTML = svg;
        });
    }
  }
  setInterval(tick, 500);
})();
</script>""" % {"tab": TAB_KEY}


class _Live:
    """The current summary, recomputed at most once per CACHE_S, and at once
    when `key()` changes (the runner's state: a page that sees "stopped" then
    gets the final numbers, never ones computed just before the stop)."""

    def __init__(self, compute: Callable[[], tuple[dict, list[dict]]], key: Callable[[], object]) -> None:
        self.compute = compute
        self.key = key
        self.lock = threading.Lock()
        self.at = -1e9
        self.seen: object = None
        self.value: tuple[dict, list[dict]] | None = None

    def get(self) -> tuple[dict, list[dict]]:
        with self.lock:
            now = time.monotonic()
            key = self.key()
            if self.value is None or key != self.seen or now - self.at >= CACHE_S:
                self.value = self.compute()
                self.at, self.seen = now, key
            return self.value


class LiveView(Protocol):
    """What the tab shows: the plugin object implements it."""

    def snapshot(self) -> tuple[dict, list[dict]]:
        """The summary document (--affinity-json schema) and per-user rows, now."""
        ...

    def version(self) -> Hashable:
        """Changes whenever the snapshot may have changed."""
        ...


def install(web_ui, view: LiveView, web_base_path: str | None = None) -> None:
    """Add the tab, its routes and hooks to Locust's web UI. Idempotent: the
    init event may fire again, and Flask refuses routes once serving."""
    from flask import Blueprint, Response, request

    web_ui.template_args["extended_tabs"] = [{"title": "Affinity", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./affinity/csv?download=1", "title": "Download affinity per-user CSV"},
        {"href": "./affinity/summary.csv?download=1", "title": "Download affinity summary CSV"},
        {"href": "./affinity/json?download=1", "title": "Download affinity JSON"},
        {"href": "./affinity/histogram.svg", "title": "Affinity histogram (SVG)"},
    ]
    if getattr(web_ui, "_lambda_affinity", False):
        return
    web_ui._lambda_affinity = True

    live = _Live(view.snapshot, view.version)
    bp = Blueprint("lambda_affinity", __name__, url_prefix=web_base_path or None)
    guard = web_ui.auth_required_if_enabled

    def send(body: str, mimetype: str, filename: str) -> Response:
        resp = Response(body, mimetype=mimetype)
        if request.args.get("download"):
            resp.headers["Content-Disposition"] = f"attachment; filename={filename}"
        return resp

    @bp.route("/affinity/json")
    @guard
    def affinity_json():
        return send(json.dumps(live.get()[0], indent=1), "application/json", "affinity.json")

    @bp.route("/affinity/csv")
    @guard
    def affinity_csv():
        return send(summary.rows_csv(live.get()[1]), "text/csv", "affinity.csv")

    @bp.route("/affinity/summary.csv")
    @guard
    def affinity_summary_csv():
        return send(summary.summary_csv(live.get()[0]), "text/csv", "affinity_summary.csv")

    @bp.route("/affinity/histogram.svg")
    @guard
    def affinity_histogram():
        resp = send(summary.histogram_svg(list(live.get()[0]["histogram"])), "image/svg+xml", "affinity.svg")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    web_ui.app.register_blueprint(bp)

    @web_ui.app.after_request
    def extend(resp):
        endpoint = request.endpoint
        if endpoint == "locust.request_stats" and resp.status_code == 200 and resp.is_json:
            # Locust memoizes this response for 2 s: replace our key, never append
            data = resp.get_json()
            doc, rows = live.get()
            data["extended_stats"] = [{"key": TAB_KEY, "data": table_rows(doc, rows)}]
            resp.set_data(json.dumps(data))
        elif endpoint == "locust.index" and resp.status_code == 200 and resp.mimetype == "text/html":
            resp.set_data(summary.inject_html_section(resp.get_data(as_text=True), _SCRIPT))
        return resp
