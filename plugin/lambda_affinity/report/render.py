"""The summary document rendered for people and files: console table, CSV, HTML, SVG.

Pure functions of the summary document (core.schema.SummaryDoc, from
core.summary.summarize) and per-user rows (core.schema.UserRow); the charts
come from report.charts. docs/schema.md describes both.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable, Mapping, Sequence

from ..core.schema import EndpointRow, MissCost, SummaryDoc, UserRow
from ..core.summary import BINS, STAT_KEYS
from ..core.tracker import ROW_FIELDS
from .charts import render_svg
from .timeline import DocumentError, TimelinePoint, charts_of, duration_text, headline

Stats = Mapping[str, object] | None  # a schema.Distribution, or None


def miss_cost_line(cost: MissCost) -> str:
    """One line for the console and the HTML report."""
    per = ", ".join(
        p
        for p in (
            f"{cost['per_miss_ms']:g} ms" if cost["per_miss_ms"] is not None else "",
            f"${cost['per_miss_usd']:.6g}" if cost["per_miss_usd"] is not None else "",
        )
        if p
    )
    saved = " and ".join(
        p
        for p in (
            duration_text(cost["saved_ms_per_million"] / 1000) if cost["saved_ms_per_million"] is not None else "",
            f"${cost['saved_usd_per_million']:,.2f}" if cost["saved_usd_per_million"] is not None else "",
        )
        if p
    )
    line = (
        f"cost of a miss {per}: per million replies the warm cache ({cost['warm_cache_rate']:.3f}) "
        f"saves {cost['hits_per_million']:,.0f} lookups, {saved}"
    )
    if cost["saved_ms_per_request"] is not None:
        line += f" ({cost['saved_ms_per_request']:.3g} ms per reply on average)"
    return line


def rates_line(rows: Iterable[UserRow]) -> str:
    """The seed article's `rates: 0.63,0.38,...` line."""
    return "rates: " + ",".join(f"{r['max_count'] / r['requests']:.2f}" for r in rows if r["requests"])


def _rates(doc: SummaryDoc, names: tuple[str, str] = ("max-share hit", "warm-cache hit")) -> list[tuple[str, Stats]]:
    """The two rate distributions (None when not measured), as `names` name them.
    Typed as mappings: a row reads them by the names in STAT_KEYS."""
    return [(names[0], doc.get("hit_rate")), (names[1], doc.get("warm_cache_rate"))]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def render_table(doc: SummaryDoc, title: str = "Lambda affinity") -> str:
    """The console summary: totals, both distributions, the histogram."""
    lines = [
        f"{title}: {doc['users']} users, {doc['requests']} valid replies, {doc['invalid']} invalid, "
        f"{doc['environments']} environments, {doc['cold_starts']} cold starts, "
        f"{doc['new_environment_calls']} new-environment calls"
    ]
    header = f"{'rate':<16}" + "".join(f"{k:>9}" for k in STAT_KEYS)
    lines.append(header)
    for name, dist in _rates(doc):
        cells = "".join(f"{_fmt(dist[k]) if dist else '-':>9}" for k in STAT_KEYS)
        lines.append(f"{name:<16}{cells}")
    total = sum(doc["histogram"]) or 1
    lines.append("per-user max-share histogram:")
    for i, n in enumerate(doc["histogram"]):
        bar = "#" * round(40 * n / total)
        lines.append(f"  {i / BINS:.1f}-{(i + 1) / BINS:.1f} {n:>7} {bar}")
    cost = doc.get("miss_cost")
    if cost:
        lines.append(miss_cost_line(cost))
    endpoints = doc.get("per_endpoint")
    if endpoints:
        lines.extend(endpoint_lines(endpoints))
    return "\n".join(lines)


ENDPOINT_LINES_MAX = 30  # the console's; the JSON, CSV and dashboard have every name
# The HTML section's columns after the name: (EndpointRow key, title)
ENDPOINT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("requests", "replies"),
    ("invalid", "invalid"),
    ("cold_starts", "cold"),
    ("new_environment_calls", "new env"),
    ("stay_rate", "stay"),
    ("warm_rate", "warm"),
)


def endpoint_lines(rows: Sequence[EndpointRow], limit: int = ENDPOINT_LINES_MAX) -> list[str]:
    """Per endpoint (Locust stats name): replies, cold starts, new-environment calls, how often the
    user kept its environment (stay) and found its session cached (warm)."""
    width = min(40, max(8, *(len(r["name"]) for r in rows[:limit])))
    lines = [
        "per endpoint (stay: same environment as the user's previous reply; warm: session cached):",
        f"  {'name':<{width}} {'replies':>8} {'invalid':>8} {'cold':>6} {'new env':>7} {'stay':>7} {'warm':>7}",
    ]
    for r in rows[:limit]:
        name = r["name"] if len(r["name"]) <= width else r["name"][: width - 1] + "~"
        lines.append(
            f"  {name:<{width}} {r['requests']:>8} {r['invalid']:>8} {r['cold_starts']:>6} "
            f"{r['new_environment_calls']:>7} {_fmt(r['stay_rate']):>7} {_fmt(r['warm_rate']):>7}"
        )
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more names in the JSON and CSV")
    return lines


# A cell a spreadsheet would read as a formula (OWASP, "CSV Injection"): text starting with one of these.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert(value: object) -> object:
    """A text cell made inert as OWASP advises: a leading single quote where it would start a formula
    (a user label or a stats name is the locustfile's, so anything). Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _dicts_csv(rows: Iterable[Mapping[str, object]], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    # csv quotes a field holding the line terminator, "\n", but not a bare CR, which readers take as a line end
    quoted = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n", quoting=csv.QUOTE_ALL)
    w.writeheader()
    for row in rows:
        cells = {k: "" if row[k] is None else inert(row[k]) for k in fields}
        (quoted if any("\r" in str(v) for v in cells.values()) else w).writerow(cells)
    return buf.getvalue()


def rows_csv(rows: Iterable[UserRow]) -> str:
    return _dicts_csv(rows, ROW_FIELDS)


def endpoints_csv(rows: Iterable[EndpointRow]) -> str:
    """PREFIX_affinity_endpoints.csv: one line per Locust stats name."""
    return _dicts_csv(rows, tuple(EndpointRow.__annotations__))


def summary_csv(doc: SummaryDoc) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", *STAT_KEYS])
    for key, dist in _rates(doc, ("hit_rate", "warm_cache_rate")):
        w.writerow([key, *((dist[k] if dist else "") for k in STAT_KEYS)])
    w.writerow([])
    totals = ("users", "requests", "invalid", "environments", "cold_starts", "new_environment_calls")
    w.writerow(totals)
    w.writerow([doc[k] for k in totals])  # type: ignore[literal-required]
    w.writerow([])
    w.writerow(["bin", "users"])
    for i, n in enumerate(doc["histogram"]):
        w.writerow([f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}", n])
    cost: Mapping[str, object] | None = doc.get("miss_cost")
    if cost:
        w.writerow([])
        w.writerow(list(MissCost.__annotations__))
        w.writerow(["" if cost[k] is None else cost[k] for k in MissCost.__annotations__])
    return buf.getvalue()


def histogram_svg(bins: list[int], width: int = 520, height: int = 220, title: str = "users per max-share bin") -> str:
    """A bar chart of the per-user histogram as a standalone SVG picture."""
    left, bottom, top, right = 40, 30, 20, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(bins) or 1
    bar_w = plot_w / len(bins)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}" '
        f'font-family="sans-serif" font-size="11">',
        f"<title>{html.escape(title)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" fill="#888">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" fill="#888">0</text>',
    ]
    for i, n in enumerate(bins):
        h = plot_h * n / peak
        x = left + i * bar_w
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
            f'fill="#3b82c4"><title>{i / BINS:.1f}-{(i + 1) / BINS:.1f}: {n} users</title></rect>'
        )
        if n:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle" '
                f'fill="#888">{n}</text>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
            f'fill="#888">{i / BINS:.1f}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 2}" text-anchor="middle" fill="#888">'
        f"per-user max-share hit rate</text></svg>"
    )
    return "".join(parts)


def render_html_section(doc: SummaryDoc, checks: Iterable[str] = (), points: Sequence[TimelinePoint] = ()) -> str:
    """The affinity section of an HTML report: the dashboard's headline
    figures, totals, both distributions, the histogram picture, the run's
    time series (timeline.TimelinePoint) as the dashboard's charts, and the
    check results. Self-contained markup with inline styles and SVG, readable
    on Locust's light and dark report themes (the charts draw in the text colour)."""
    figures = "".join(
        f'<div data-key="{f["key"]}" style="border:1px solid #8886;border-radius:6px;padding:8px 14px;min-width:120px">'
        f'<div style="font-size:24px">{_fmt(f["value"])}</div><div style="opacity:.75">{html.escape(f["label"])}</div>'
        "</div>"
        for f in headline(doc)
    )
    charts = "".join(f'<figure style="margin:0">{render_svg(c)}</figure>' for c in charts_of(points))
    cell = 'style="padding:4px 10px;text-align:right;border-bottom:1px solid #8884"'
    head = 'style="padding:4px 10px;text-align:right;border-bottom:1px solid #888"'
    rows = []
    for name, dist in _rates(doc):
        cells = "".join(f"<td {cell}>{_fmt(dist[k]) if dist else '-'}</td>" for k in STAT_KEYS)
        rows.append(f"<tr><th {cell.replace('right', 'left')}>{name}</th>{cells}</tr>")
    header = "".join(f"<th {head}>{k}</th>" for k in STAT_KEYS)
    cold_ratio = doc["cold_starts"] / doc["requests"] if doc["requests"] else None
    cost = doc.get("miss_cost")
    totals = (
        f"{doc['users']} users, {doc['requests']} valid replies, {doc['invalid']} invalid, "
        f"{doc['environments']} environments, {doc['cold_starts']} cold starts "
        f"(cold ratio {_fmt(cold_ratio)}), {doc['new_environment_calls']} new-environment calls"
    )
    check_items = "".join(f"<li>{html.escape(c)}</li>" for c in checks)
    return (
        '<section id="lambda-affinity" style="font-family:Roboto,Helvetica,Arial,sans-serif;'
        'max-width:1200px;margin:24px auto;padding:0 24px">'
        '<h2 style="font-weight:400">Lambda affinity</h2>'
        f'<div class="affinity-figures" style="display:flex;flex-wrap:wrap;gap:12px;margin-bottom:16px">{figures}</div>'
        f"<p>{html.escape(totals)}</p>"
        '<table style="border-collapse:collapse;margin-bottom:16px">'
        f"<tr><th {head.replace('right', 'left')}>rate</th>{header}</tr>{''.join(rows)}</table>"
        + (f"<p>{html.escape(miss_cost_line(cost))}</p>" if cost else "")
        + _endpoints_html(doc.get("per_endpoint") or [], cell, head)
        + '<div class="affinity-charts" style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-end">'
        f'<figure style="margin:0">{histogram_svg(list(doc["histogram"]))}</figure>{charts}</div>'
        + (f"<ul>{check_items}</ul>" if check_items else "")
        + "</section>"
    )


def _endpoints_html(rows: Sequence[EndpointRow], cell: str, head: str) -> str:
    """The per-endpoint table of the HTML section (every name, busiest first); empty without rows."""
    if not rows:
        return ""
    columns = ENDPOINT_COLUMNS
    header = "".join(f"<th {head}>{title}</th>" for _, title in columns)
    body = "".join(
        f"<tr><td {cell.replace('right', 'left')}>{html.escape(r['name'])}</td>"
        + "".join(f"<td {cell}>{_fmt(r[key])}</td>" for key, _ in columns)  # type: ignore[literal-required]
        + "</tr>"
        for r in rows
    )
    return (
        '<table class="affinity-endpoints" style="border-collapse:collapse;margin-bottom:16px">'
        '<caption style="text-align:left">per endpoint: stay = same environment as the user\'s previous reply, '
        "warm = session cached</caption>"
        f"<tr><th {head.replace('right', 'left')}>name</th>{header}</tr>{body}</table>"
    )


def inject_html_section(report: str, section: str) -> str:
    """Insert `section` at the end of a Locust HTML report's body. The report
    is a React page rendering into #root; static markup after it shows below
    Locust's own sections. The last </body> is the document's: the bundled
    script may contain the string too."""
    at = report.rfind("</body>")
    if at < 0:
        raise DocumentError("not an HTML report: no </body>")
    return report[:at] + section + report[at:]
