"""Old import path of the summary: statistics now in core/summary.py, renderings in report/render.py."""

from .core.summary import evaluate_checks, merge_rows, miss_cost, summarize
from .report.render import rates_line, render_html_section, render_table, rows_csv, summary_csv

__all__ = [
    "evaluate_checks",
    "merge_rows",
    "miss_cost",
    "rates_line",
    "render_html_section",
    "render_table",
    "rows_csv",
    "summarize",
    "summary_csv",
]
