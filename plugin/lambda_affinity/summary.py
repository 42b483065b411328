"""Distributions across users, merging per-user rows, JSON/CSV/text rendering.

Everything here reads per-user rows (see tracker.ROW_FIELDS), so a Locust
run, a distributed master and the simulator all summarise the same way.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict

from .charts import render_svg
from .timeline import charts_of, duration_text, headline
from .tracker import ROW_FIELDS

STAT_KEYS = ("mean", "min", "p10", "p25", "p50", "p75", "p90", "max", "weighted")
PER_USER_KEYS = ("user", "requests", "max_share", "warm_hits", "environments", "cold_starts", "switches")
PER_USER_LIMIT = 10_000
BINS = 10


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def histogram(rates: Iterable[float]) -> list[int]:
    """Counts in 0.1-wide bins; 1.0 falls in the last bin."""
    bins = [0] * BINS
    for r in rates:
        # the epsilon keeps 0.3 (=2.9999... as a float ratio) in bin 3
        bins[min(int(r * BINS + 1e-9), BINS - 1)] += 1
    return bins


def distribution(rates: list[float], hits: int, total: int) -> dict | None:
    if not rates:
        return None
    s = sorted(rates)
    out: dict[str, float | None] = {"mean": sum(s) / len(s), "min": s[0]}
    for name, q in (("p10", 0.1), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p90", 0.9)):
        out[name] = percentile(s, q)
    out["max"] = s[-1]
    out["weighted"] = hits / total if total else None
    return out


class MissCost(TypedDict):
    """What the warm cache saves, per million valid replies: the document's
    optional `miss_cost` object (docs/sweep.md). A miss is a reply whose
    session was not in the environment's cache, so the handler paid for the
    lookup (a DynamoDB read, say); each hit saved one such miss. Money or
    time given as None stays None in the sums."""

    per_miss_ms: float | None
    per_miss_usd: float | None
    # The request-weighted warm-cache rate: hits / replies that carried a cache status.
    warm_cache_rate: float
    hits_per_million: float
    misses_per_million: float
    # Paid for by the hits (what a cache-less handler would have spent more)
    saved_ms_per_million: float | None
    saved_usd_per_million: float | None
    # Still spent on the misses
    spent_ms_per_million: float | None
    spent_usd_per_million: float | None
    # saved_ms_per_million / 1e6: the mean latency a reply gains from the cache
    saved_ms_per_request: float | None


MILLION = 1_000_000


def check_miss_cost(per_miss_ms: float | None, per_miss_usd: float | None) -> None:
    """Raise ValueError, naming the option, on a negative or non-finite cost
    (a command checks before it runs, not after)."""
    for value, option in ((per_miss_ms, "miss-cost-ms"), (per_miss_usd, "miss-cost-usd")):
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value < math.inf):
            raise ValueError(f"{option}: must be a finite number >= 0, got {value!r}")


def miss_cost(doc: Mapping, per_miss_ms: float | None = None, per_miss_usd: float | None = None) -> MissCost | None:
    """Time and money the warm cache saves per million replies, from the
    document's request-weighted warm-cache rate and the cost of one miss.

    None when neither cost is given, or when no reply carried a cache status
    (there is no rate to price). Raises ValueError on a negative or
    non-finite cost, naming the option (--miss-cost-ms, --miss-cost-usd).
    """
    check_miss_cost(per_miss_ms, per_miss_usd)
    rate = (doc.get("warm_cache_rate") or {}).get("weighted")
    if (per_miss_ms is None and per_miss_usd is None) or rate is None:
        return None
    hits = rate * MILLION
    misses = MILLION - hits

    def times(n: float, cost: float | None) -> float | None:
        return None if cost is None else n * cost

    saved_ms = times(hits, per_miss_ms)
    return MissCost(
        per_miss_ms=per_miss_ms,
        per_miss_usd=per_miss_usd,
        warm_cache_rate=rate,
        hits_per_million=hits,
        misses_per_million=misses,
        saved_ms_per_million=saved_ms,
        saved_usd_per_million=times(hits, per_miss_usd),
        spent_ms_per_million=times(misses, per_miss_ms),
        spent_usd_per_million=times(misses, per_miss_usd),
        saved_ms_per_request=None if saved_ms is None else saved_ms / MILLION,
    )


def miss_cost_line(cost: Mapping) -> str:
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


def summarize(
    rows: Iterable[Mapping],
    environments: int | None = None,
    per_user_limit: int = PER_USER_LIMIT,
    per_miss_ms: float | None = None,
    per_miss_usd: float | None = None,
) -> dict:
    """The `--affinity-json` / `simulate --json` document (design.md section 8),
    with `miss_cost` (see miss_cost) when a cost of a miss is given."""
    rows = list(rows)
    valid = [r for r in rows if r["requests"] > 0]
    rates = [r["max_count"] / r["requests"] for r in valid]
    cached = [r for r in valid if r["cache_known"] > 0]
    doc = {
        "users": len(rows),
        "requests": sum(r["requests"] for r in rows),
        "invalid": sum(r["invalid"] for r in rows),
        "environments": environments if environments is not None else max((r["environments"] for r in rows), default=0),
        "cold_starts": sum(r["cold_starts"] for r in rows),
        "hit_rate": distribution(rates, sum(r["max_count"] for r in valid), sum(r["requests"] for r in valid)),
        "warm_cache_rate": distribution(
            [r["warm_hits"] / r["cache_known"] for r in cached],
            sum(r["warm_hits"] for r in cached),
            sum(r["cache_known"] for r in cached),
        ),
        "histogram": histogram(rates),
    }
    if len(rows) <= per_user_limit:
        doc["per_user"] = [
            {
                "user": r["user"],
                "requests": r["requests"],
                "max_share": r["max_share"],
                "warm_hits": r["warm_hits"],
                "environments": r["environments"],
                "cold_starts": r["cold_starts"],
                "switches": r["switches"],
            }
            for r in rows
        ]
    cost = miss_cost(doc, per_miss_ms, per_miss_usd)
    if cost is not None:
        doc["miss_cost"] = cost
    return doc


def merge_rows(into: dict, rows: Iterable[Mapping]) -> None:
    """Fold full per-user rows into `into` (user -> row). A newer row for the
    same user replaces the older one: rows are snapshots, not deltas, so a
    repeated message never double counts."""
    for r in rows:
        missing = [k for k in ROW_FIELDS if k not in r]
        if missing:
            raise ValueError(f"affinity row lacks {', '.join(missing)}: {dict(r)!r}")
        into[r["user"]] = dict(r)


def rates_line(rows: Iterable[Mapping]) -> str:
    """The seed article's `rates: 0.63,0.38,...` line."""
    return "rates: " + ",".join(f"{r['max_count'] / r['requests']:.2f}" for r in rows if r["requests"])


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def render_table(doc: Mapping, title: str = "Lambda affinity") -> str:
    """The console summary: totals, both distributions, the histogram."""
    lines = [
        f"{title}: {doc['users']} users, {doc['requests']} valid replies, {doc['invalid']} invalid, "
        f"{doc['environments']} environments, {doc['cold_starts']} cold starts"
    ]
    header = f"{'rate':<16}" + "".join(f"{k:>9}" for k in STAT_KEYS)
    lines.append(header)
    for name, key in (("max-share hit", "hit_rate"), ("warm-cache hit", "warm_cache_rate")):
        dist = doc.get(key)
        cells = "".join(f"{_fmt(dist[k]) if dist else '-':>9}" for k in STAT_KEYS)
        lines.append(f"{name:<16}{cells}")
    total = sum(doc["histogram"]) or 1
    lines.append("per-user max-share histogram:")
    for i, n in enumerate(doc["histogram"]):
        bar = "#" * round(40 * n / total)
        lines.append(f"  {i / BINS:.1f}-{(i + 1) / BINS:.1f} {n:>7} {bar}")
    if doc.get("miss_cost"):
        lines.append(miss_cost_line(doc["miss_cost"]))
    return "\n".join(lines)


def rows_csv(rows: Iterable[Mapping]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(ROW_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in ROW_FIELDS})
    return buf.getvalue()


def summary_csv(doc: Mapping) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", *STAT_KEYS])
    for key in ("hit_rate", "warm_cache_rate"):
        dist = doc.get(key)
        w.writerow([key, *((dist[k] if dist else "") for k in STAT_KEYS)])
    w.writerow([])
    w.writerow(["users", "requests", "invalid", "environments", "cold_starts"])
    w.writerow([doc["users"], doc["requests"], doc["invalid"], doc["environments"], doc["cold_starts"]])
    w.writerow([])
    w.writerow(["bin", "users"])
    for i, n in enumerate(doc["histogram"]):
        w.writerow([f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}", n])
    if doc.get("miss_cost"):
        w.writerow([])
        w.writerow(list(MissCost.__annotations__))
        w.writerow(["" if doc["miss_cost"][k] is None else doc["miss_cost"][k] for k in MissCost.__annotations__])
    return buf.getvalue()


# -- CI checks ---------------------------------------------------------------

# (option, what is measured, comparison): the checks a run can fail. The
# measured value comes from the summary doc so the check reads the same
# numbers the report shows.
CHECKS = (
    ("affinity-min-hit-rate", "median per-user max-share hit rate", "min"),
    ("affinity-min-warm-rate", "median per-user warm-cache hit rate", "min"),
    ("affinity-max-cold-ratio", "cold starts per valid reply", "max"),
)


def check_value(doc: Mapping, option: str) -> float | None:
    """The measured value a check compares, or None when the run gives none."""
    if option == "affinity-min-hit-rate":
        return doc["hit_rate"]["p50"] if doc.get("hit_rate") else None
    if option == "affinity-min-warm-rate":
        return doc["warm_cache_rate"]["p50"] if doc.get("warm_cache_rate") else None
    if option == "affinity-max-cold-ratio":
        return doc["cold_starts"] / doc["requests"] if doc["requests"] else None
    raise ValueError(f"unknown affinity check {option!r}")


def evaluate_checks(doc: Mapping, thresholds: Mapping[str, float | None]) -> tuple[list[str], list[str]]:
    """Compare the run with the thresholds that are set (option -> value).

    Returns (failures, passes), one message each naming the check, the
    threshold and the measured value.
    """
    failures: list[str] = []
    passes: list[str] = []
    for option, what, kind in CHECKS:
        threshold = thresholds.get(option)
        if threshold is None:
            continue
        measured = check_value(doc, option)
        if measured is None:
            reason = "no valid reply" if not doc["requests"] else "no reply carried a cache status"
            failures.append(f"CHECK FAILED: --{option} {threshold:g}: {what} not measured ({reason})")
            continue
        ok = measured >= threshold if kind == "min" else measured <= threshold
        verdict = "passed" if ok else "FAILED"
        bound = "at least" if kind == "min" else "at most"
        message = (
            f"CHECK {verdict}: --{option} {threshold:g}: {what} was {measured:.3f}, {bound} {threshold:g} required"
        )
        (passes if ok else failures).append(message)
    return failures, passes


# -- HTML report section -----------------------------------------------------


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


def render_html_section(doc: Mapping, checks: Iterable[str] = (), points: Sequence = ()) -> str:
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
    for name, key in (("max-share hit", "hit_rate"), ("warm-cache hit", "warm_cache_rate")):
        dist = doc.get(key)
        cells = "".join(f"<td {cell}>{_fmt(dist[k]) if dist else '-'}</td>" for k in STAT_KEYS)
        rows.append(f"<tr><th {cell.replace('right', 'left')}>{name}</th>{cells}</tr>")
    header = "".join(f"<th {head}>{k}</th>" for k in STAT_KEYS)
    cold_ratio = doc["cold_starts"] / doc["requests"] if doc["requests"] else None
    totals = (
        f"{doc['users']} users, {doc['requests']} valid replies, {doc['invalid']} invalid, "
        f"{doc['environments']} environments, {doc['cold_starts']} cold starts "
        f"(cold ratio {_fmt(cold_ratio)})"
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
        + (f"<p>{html.escape(miss_cost_line(doc['miss_cost']))}</p>" if doc.get("miss_cost") else "")
        + '<div class="affinity-charts" style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-end">'
        f'<figure style="margin:0">{histogram_svg(list(doc["histogram"]))}</figure>{charts}</div>'
        + (f"<ul>{check_items}</ul>" if check_items else "")
        + "</section>"
    )


def inject_html_section(report: str, section: str) -> str:
    """Insert `section` at the end of a Locust HTML report's body. The report
    is a React page rendering into #root; static markup after it shows below
    Locust's own sections. The last </body> is the document's: the bundled
    script may contain the string too."""
    at = report.rfind("</body>")
    if at < 0:
        raise ValueError("not an HTML report: no </body>")
    return report[:at] + section + report[at:]
