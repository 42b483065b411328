"""Old import path of report/charts.py, kept for existing scripts."""

from .report.charts import Axis, Chart, Markup, Point, Series, html_page, html_table, render_svg

__all__ = ["Axis", "Chart", "Markup", "Point", "Series", "html_page", "html_table", "render_svg"]
