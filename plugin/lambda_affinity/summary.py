"""Distributions across users, merging per-user rows, JSON/CSV/text rendering.

Everything here reads per-user rows (see tracker.ROW_FIELDS), so a Locust
run, a distributed master and the simulator all summarise the same way.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Iterable, Mapping

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
    out = {"mean": sum(s) / len(s), "min": s[0]}
    for name, q in (("p10", 0.1), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p90", 0.9)):
        out[name] = percentile(s, q)
    out["max"] = s[-1]
    out["weighted"] = hits / total if total else None
    return out


def summarize(rows: Iterable[Mapping], environments: int | None = None, per_user_limit: int = PER_USER_LIMIT) -> dict:
    """The `--affinity-json` / `simulate --json` document (design.md section 8)."""
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
            sum(r["warm_hits"] for r in cached), sum(r["cache_known"] for r in cached),
        ),
        "histogram": histogram(rates),
    }
    if len(rows) <= per_user_limit:
        doc["per_user"] = [
            {"user": r["user"], "requests": r["requests"], "max_share": r["max_share"], "warm_hits": r["warm_hits"],
             "environments": r["environments"], "cold_starts": r["cold_starts"], "switches": r["switches"]}
            for r in rows
        ]
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
    lines = [f"{title}: {doc['users']} users, {doc['requests']} valid replies, {doc['invalid']} invalid, "
             f"{doc['environments']} environments, {doc['cold_starts']} cold starts"]
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
    return buf.getvalue()
