"""Old import path of report/charts.py, kept for existing scripts (docs/sweep.md documents it)."""

from __future__ import annotations

from .report.charts import (
    PALETTE,
    SPREADS,
    THEMES,
    Axis,
    Chart,
    Layout,
    Markup,
    Point,
    Series,
    escape,
    format_number,
    html_page,
    html_table,
    layout,
    linear_ticks,
    log_ticks,
    render_svg,
)

__all__ = [
    "PALETTE",
    "SPREADS",
    "THEMES",
    "Axis",
    "Chart",
    "Layout",
    "Markup",
    "Point",
    "Series",
    "escape",
    "format_number",
    "html_page",
    "html_table",
    "layout",
    "linear_ticks",
    "log_ticks",
    "render_svg",
]
