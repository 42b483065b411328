"""Old import path of the summary: statistics now in core/summary.py, renderings in report/render.py."""

from __future__ import annotations

from .core.schema import (
    MissCost,
)
from .core.summary import (
    BINS,
    CHECKS,
    MILLION,
    PER_USER_KEYS,
    PER_USER_LIMIT,
    STAT_KEYS,
    MissCostPrice,
    check_value,
    distribution,
    evaluate_checks,
    histogram,
    merge_rows,
    miss_cost,
    percentile,
    summarize,
)
from .report.render import (
    histogram_svg,
    inject_html_section,
    miss_cost_line,
    rates_line,
    render_html_section,
    render_table,
    rows_csv,
    summary_csv,
)


def check_miss_cost(per_miss_ms: float | None, per_miss_usd: float | None) -> None:
    """The old check of a miss's price: MissCostPrice checks itself now (MissCostError names the option)."""
    MissCostPrice(per_miss_ms, per_miss_usd)


__all__ = [
    "check_miss_cost",
    "MissCost",
    "BINS",
    "CHECKS",
    "MILLION",
    "PER_USER_KEYS",
    "PER_USER_LIMIT",
    "STAT_KEYS",
    "check_value",
    "distribution",
    "evaluate_checks",
    "histogram",
    "merge_rows",
    "miss_cost",
    "percentile",
    "summarize",
    "histogram_svg",
    "inject_html_section",
    "miss_cost_line",
    "rates_line",
    "render_html_section",
    "render_table",
    "rows_csv",
    "summary_csv",
]
