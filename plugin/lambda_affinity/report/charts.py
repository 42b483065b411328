"""SVG line charts and self-contained HTML pages, with no dependency and no I/O.

Used by `lambda-affinity sweep` (rates against a factor), and meant for the
HTML report and the web UI's static charts too. A chart is data:

    from lambda_affinity.report.charts import Axis, Chart, Point, Series, render_svg, html_page

    chart = Chart(
        title="max-share against users",
        x=Axis("users", log=True), y=Axis("rate", lo=0, hi=1),
        series=[Series("max-share", [Point(1, 1.0, low=1.0, high=1.0), Point(10, 0.42, low=0.38, high=0.47)])],
    )
    svg = render_svg(chart)                # an <svg> element, inline in HTML or a file of its own
    page = html_page("Sweep", [chart])     # a whole HTML page, no external resource

Colours: `theme="auto"` (the default) draws axes, grid and text in
`currentColor`, so the chart takes the text colour of the page it is
embedded in (Locust's light and dark themes both); "light" and "dark" paint
their own background and text, for a file viewed on its own (an <img> in a
README has no page colour to inherit). The series palette is mid-tone, legible
on white and on near-black.

Every point carries its data as `data-x`, `data-y`, `data-low`, `data-high`
attributes (and a <title> tooltip), so a test or a script can read back what
was drawn. All text is escaped.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Mid-tone colours (Okabe-Ito-like, darkened or lightened to ~4:1 contrast
# against both #fff and #1b1b1b), so one palette serves both themes.
PALETTE = ("#3b82c4", "#e07b39", "#2ca58d", "#c0508b", "#8c6bc8", "#b08f2a", "#5b9bd5", "#d9534f")

THEMES = ("auto", "light", "dark")
# (background, text) of the themes that paint their own; "auto" paints none.
_THEME_COLOURS = {"light": ("#ffffff", "#222222"), "dark": ("#1b1b1b", "#dddddd")}
SPREADS = ("band", "whiskers")

# Characters XML 1.0 does not allow even escaped: a series name with one would
# make the SVG unparseable, so they are dropped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Point:
    """One observation: `y` at `x`, with an optional spread `low`..`high`
    (min..max over runs, or mean - sd..mean + sd: the caller decides)."""

    x: float
    y: float
    low: float | None = None
    high: float | None = None


@dataclass
class Series:
    """A named line. `color` None takes the next palette colour; `dashed`
    tells series apart where colour cannot (print, colour blindness);
    `line` False draws the points alone (categories have no in-between)."""

    name: str
    points: Sequence[Point] = ()
    color: str | None = None
    dashed: bool = False
    markers: bool = True
    line: bool = True


@dataclass
class Axis:
    """An axis. The drawn range covers the data and at least `lo`..`hi` when
    given (so rates can keep 0..1). `log` takes base-10 steps (values must be
    > 0). `categories` makes it categorical: point x is the index of its
    category. `tick_format` turns a tick value into its label; `steps` are the
    tick spacings allowed (the first giving at most 6 intervals; a time axis
    takes 1 s, 2 s, 5 s, ..., 1 h), else 1, 2, 2.5 or 5 x 10^k."""

    label: str = ""
    log: bool = False
    lo: float | None = None
    hi: float | None = None
    categories: Sequence[str] | None = None
    tick_format: Callable[[float], str] | None = None
    steps: Sequence[float] | None = None


@dataclass
class Chart:
    title: str
    series: Sequence[Series]
    x: Axis = field(default_factory=Axis)
    y: Axis = field(default_factory=Axis)
    width: int = 640
    height: int = 380
    # How a point's low..high shows: a shaded band along the line, or a bar at each point.
    spread: str = "band"


@dataclass(frozen=True)
class Layout:
    """Where the plot area is (pixels) and what range each axis shows; `px`
    and `py` map data to pixels."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_log: bool
    y_log: bool

    def px(self, x: float) -> float:
        return self.left + self.width * _fraction(x, self.x_range, self.x_log)

    def py(self, y: float) -> float:
        return self.top + self.height * (1 - _fraction(y, self.y_range, self.y_log))


def _fraction(v: float, bounds: tuple[float, float], log: bool) -> float:
    lo, hi = bounds
    if log:
        v, lo, hi = math.log10(v), math.log10(lo), math.log10(hi)
    return (v - lo) / (hi - lo)


def escape(text: object) -> str:
    """Text safe inside an XML/HTML element or a quoted attribute."""
    return html.escape(_XML_INVALID.sub("", str(text)), quote=True)


def format_number(v: float) -> str:
    """A tick label: 0.25, 3, 1000, 20k, 1.5M."""
    if v == 0:
        return "0"
    a = abs(v)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if a >= scale:
            return f"{v / scale:.3g}{suffix}"
    if a >= 1 and float(v).is_integer():
        return str(int(v))
    return f"{v:.3g}"


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag * (1 + 1e-9):
            return m * mag
    return 10 * mag


def linear_ticks(
    lo: float, hi: float, target: int = 5, steps: Sequence[float] | None = None
) -> tuple[float, float, list[float]]:
    """A nice range covering lo..hi and its ticks (1, 2, 2.5 or 5 x 10^k apart, or the first of `steps`
    that gives at most target + 1 intervals)."""
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    if steps:
        step = next((s for s in steps if (hi - lo) / s <= target + 1 + 1e-9), steps[-1])
    else:
        step = _nice_step(hi - lo, target)
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    n = round((stop - start) / step)
    # round() keeps 0.30000000000000004 out of labels and data-* attributes
    ticks = [round(start + i * step, 12) for i in range(n + 1)]
    return ticks[0], ticks[-1], ticks


def log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Whole decades covering lo..hi; 2 and 5 between them when it spans
    three decades or fewer, so a short range still has several labels."""
    if lo <= 0:
        raise ValueError(f"a log axis needs values > 0, got {format_number(lo)}")
    a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    if a == b:
        b += 1
    mults = (1, 2, 5) if b - a <= 3 else (1,)
    ticks = [round(m * 10.0**e, 12) for e in range(a, b + 1) for m in mults if m * 10.0**e <= 10.0**b]
    return 10.0**a, 10.0**b, ticks


def _finite(*vs) -> bool:
    return all(v is not None and math.isfinite(v) for v in vs)


def _axis_ticks(axis: Axis, values: list[float], what: str) -> tuple[float, float, list[tuple[float, str]]]:
    """The range an axis shows and its (value, label) ticks."""
    if axis.categories is not None:
        n = max(len(axis.categories), 1)
        return -0.5, n - 0.5, [(float(i), str(c)) for i, c in enumerate(axis.categories)]
    bounds = [v for v in (axis.lo, axis.hi) if v is not None]
    vals = values + bounds
    if axis.log:
        bad = [v for v in vals if v <= 0]
        if bad:
            raise ValueError(f"{what} axis {axis.label!r} is logarithmic: {format_number(bad[0])} is not > 0")
        lo, hi, ticks = log_ticks(min(vals, default=1.0), max(vals, default=10.0))
    else:
        lo, hi, ticks = linear_ticks(min(vals, default=0.0), max(vals, default=1.0), steps=axis.steps)
    fmt = axis.tick_format or format_number
    return lo, hi, [(t, fmt(t)) for t in ticks]


# Rough text width at font-size 12 (no font metrics without a renderer).
def _text_width(text: str, size: float = 12) -> float:
    return len(text) * size * 0.56


def _legend_rows(chart: Chart, width: float) -> list[list[tuple[int, float]]]:
    """Legend entries (series index, x offset) wrapped to the chart's width."""
    rows: list[list[tuple[int, float]]] = [[]]
    x = 0.0
    for i, s in enumerate(chart.series):
        w = 28 + _text_width(s.name) + 18
        if rows[-1] and x + w > width:
            rows.append([])
            x = 0.0
        rows[-1].append((i, x))
        x += w
    return rows if rows[0] else []


def layout(chart: Chart) -> Layout:
    """The plot area and axis ranges `render_svg` uses for this chart."""
    return _frame(chart)[0]


def _frame(chart: Chart) -> tuple[Layout, list[tuple[float, str]], list[tuple[float, str]]]:
    """The layout and the (value, label) ticks of x and y."""
    xs = [v for s in chart.series for p in s.points if _finite(p.x, p.y) for v in (p.x,)]
    ys = [
        v
        for s in chart.series
        for p in s.points
        if _finite(p.x, p.y)
        for v in (p.y, p.low, p.high)
        if v is not None and math.isfinite(v)
    ]
    x_lo, x_hi, x_ticks = _axis_ticks(chart.x, xs, "x")
    y_lo, y_hi, y_ticks = _axis_ticks(chart.y, ys, "y")
    label_w = max((_text_width(label) for _, label in y_ticks), default=0)
    left = 24 + label_w + (18 if chart.y.label else 0)
    legend = _legend_rows(chart, chart.width - left - 16)
    top = 34 + 18 * len(legend)
    bottom = 26 + (18 if chart.x.label else 0)
    lay = Layout(
        left,
        top,
        chart.width - left - 16,
        max(chart.height - top - bottom, 10),
        (x_lo, x_hi),
        (y_lo, y_hi),
        chart.x.log and chart.x.categories is None,
        chart.y.log and chart.y.categories is None,
    )
    return lay, x_ticks, y_ticks


def render_svg(chart: Chart, theme: str = "auto") -> str:
    """The chart as one <svg> element (a file of its own, or inline in HTML).

    Raises ValueError on an unknown theme or spread, or a value <= 0 on a
    log axis. Points with a non-finite x or y are left out; a chart with no
    point draws its axes and says "no data".
    """
    if theme not in THEMES:
        raise ValueError(f"theme: {theme!r} is not one of {', '.join(THEMES)}")
    if chart.spread not in SPREADS:
        raise ValueError(f"spread: {chart.spread!r} is not one of {', '.join(SPREADS)}")
    lay, x_ticks, y_ticks = _frame(chart)
    w, h = chart.width, chart.height
    bg, fg = _THEME_COLOURS.get(theme, (None, "currentColor"))
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="la-chart" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{escape(chart.title)}" '
            f'font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif" '
            f'font-size="12" fill="{fg}" color="{fg}">'
        ),
        f"<title>{escape(chart.title)}</title>",
    ]
    if bg:
        out.append(f'<rect class="background" width="{w}" height="{h}" fill="{bg}"/>')
    out.append(
        f'<text class="title" x="{w / 2:.1f}" y="20" text-anchor="middle" font-size="14" '
        f'font-weight="600">{escape(chart.title)}</text>'
    )
    out += _axes_svg(chart, lay, x_ticks, y_ticks)
    out += _legend_svg(chart, lay)
    drawn = 0
    for i, s in enumerate(chart.series):
        part, n = _series_svg(s, _colour(s, i), lay, chart.spread)
        out.append(part)
        drawn += n
    if not drawn:
        out.append(
            f'<text class="no-data" x="{lay.left + lay.width / 2:.1f}" y="{lay.top + lay.height / 2:.1f}" '
            f'text-anchor="middle" opacity="0.6">no data</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _colour(s: Series, i: int) -> str:
    return s.color or PALETTE[i % len(PALETTE)]


def _axes_svg(chart: Chart, lay: Layout, x_ticks, y_ticks) -> list[str]:
    left, top, right, bottom = lay.left, lay.top, lay.left + lay.width, lay.top + lay.height
    out = ['<g class="grid" stroke="currentColor" stroke-opacity="0.15">']
    for v, _ in y_ticks:
        out.append(f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{lay.py(v):.1f}" y2="{lay.py(v):.1f}"/>')
    out.append("</g>")
    out.append('<g class="axes">')
    out.append(
        f'<line x1="{left:.1f}" x2="{left:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" stroke="currentColor" '
        f'stroke-opacity="0.7"/>'
    )
    out.append(
        f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{bottom:.1f}" y2="{bottom:.1f}" stroke="currentColor" '
        f'stroke-opacity="0.7"/>'
    )
    for v, label in y_ticks:
        out.append(
            f'<text class="y-tick" x="{left - 6:.1f}" y="{lay.py(v) + 4:.1f}" text-anchor="end" '
            f'data-value="{v!r}">{escape(label)}</text>'
        )
    for v, label in x_ticks:
        x = lay.px(v)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom:.1f}" y2="{bottom + 4:.1f}" stroke="currentColor" '
            f'stroke-opacity="0.7"/>'
        )
        out.append(
            f'<text class="x-tick" x="{x:.1f}" y="{bottom + 17:.1f}" text-anchor="middle" '
            f'data-value="{v!r}">{escape(label)}</text>'
        )
    if chart.x.label:
        out.append(
            f'<text class="x-label" x="{left + lay.width / 2:.1f}" y="{bottom + 36:.1f}" '
            f'text-anchor="middle">{escape(chart.x.label)}</text>'
        )
    if chart.y.label:
        out.append(
            f'<text class="y-label" transform="translate(14 {top + lay.height / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(chart.y.label)}</text>'
        )
    out.append("</g>")
    return out


def _legend_svg(chart: Chart, lay: Layout) -> list[str]:
    out = ['<g class="legend">']
    for r, row in enumerate(_legend_rows(chart, lay.width)):
        y = 38 + 18 * r
        for i, dx in row:
            s = chart.series[i]
            x = lay.left + dx
            dash = ' stroke-dasharray="6 3"' if s.dashed else ""
            out.append(
                f'<line x1="{x:.1f}" x2="{x + 22:.1f}" y1="{y - 4}" y2="{y - 4}" '
                f'stroke="{escape(_colour(s, i))}" stroke-width="2.5"{dash}/>'
                f'<text x="{x + 28:.1f}" y="{y}">{escape(s.name)}</text>'
            )
    out.append("</g>")
    return out


def _series_svg(s: Series, colour: str, lay: Layout, spread: str) -> tuple[str, int]:
    """One series' group, and how many points it drew."""
    c = escape(colour)
    pts = sorted((p for p in s.points if _finite(p.x, p.y)), key=lambda p: p.x)
    out = [f'<g class="series" data-series="{escape(s.name)}">']
    out.extend(_spread_svg(pts, c, lay, spread))
    if len(pts) > 1 and s.line:
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        line = " ".join(f"{lay.px(p.x):.2f},{lay.py(p.y):.2f}" for p in pts)
        out.append(
            f'<polyline class="line" points="{line}" fill="none" stroke="{c}" stroke-width="2"{dash} '
            f'stroke-linejoin="round"/>'
        )
    for p in pts:
        spread_attrs = f' data-low="{p.low!r}" data-high="{p.high!r}"' if _finite(p.low, p.high) else ""
        tip = f"{s.name}: {format_number(p.x)} -> {p.y:.4g}"
        if _finite(p.low, p.high):
            tip += f" ({p.low:.4g}..{p.high:.4g})"
        radius = 3 if s.markers else 0
        out.append(
            f'<circle class="point" cx="{lay.px(p.x):.2f}" cy="{lay.py(p.y):.2f}" r="{radius}" fill="{c}" '
            f'data-x="{p.x!r}" data-y="{p.y!r}"{spread_attrs}><title>{escape(tip)}</title></circle>'
        )
    out.append("</g>")
    return "\n".join(out), len(pts)


def _spread_svg(pts: list, c: str, lay: Layout, spread: str) -> list[str]:
    """The points' low..high spread: one band (`spread="band"`, two points or
    more) or a whisker per point; nothing when no point has one."""
    out = []
    with_spread = [
        (p.x, p.low, p.high) for p in pts if p.low is not None and p.high is not None and _finite(p.low, p.high)
    ]
    if with_spread and spread == "band" and len(with_spread) > 1:
        upper = " ".join(f"{lay.px(x):.2f},{lay.py(high):.2f}" for x, _, high in with_spread)
        lower = " ".join(f"{lay.px(x):.2f},{lay.py(low):.2f}" for x, low, _ in reversed(with_spread))
        out.append(f'<polygon class="band" points="{upper} {lower}" fill="{c}" fill-opacity="0.18" stroke="none"/>')
    elif with_spread:
        for px, low, high in with_spread:
            x = lay.px(px)
            out.append(
                f'<path class="whisker" d="M{x - 4:.2f} {lay.py(low):.2f}h8M{x:.2f} {lay.py(low):.2f}'
                f'V{lay.py(high):.2f}M{x - 4:.2f} {lay.py(high):.2f}h8" stroke="{c}" fill="none"/>'
            )
    return out


class Markup(str):
    """HTML the caller vouches for: `html_page` inserts it as it is (a plain
    str is escaped and set as a paragraph)."""


def html_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> Markup:
    """An escaped HTML table (numbers right-aligned)."""

    def cell(tag: str, v: object) -> str:
        align = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        text = f"{v:.4g}" if isinstance(v, float) else ("" if v is None else v)
        return f"<{tag}{align}>{escape(text)}</{tag}>"

    head = "".join(cell("th", h) for h in header)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


_PAGE_CSS = """
:root { color-scheme: light dark; }
body { margin: 24px auto; max-width: 1000px; padding: 0 16px; color: #222; background: #fff;
       font-family: system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif; }
@media (prefers-color-scheme: dark) { body { color: #ddd; background: #1b1b1b; } }
body.light { color: #222; background: #fff; }
body.dark { color: #ddd; background: #1b1b1b; }
h1 { font-weight: 500; font-size: 1.4em; }
figure { margin: 16px 0; }
svg.la-chart { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 12px 0; font-size: 0.9em; }
th, td { padding: 3px 10px; border-bottom: 1px solid rgba(128, 128, 128, 0.35); text-align: left; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def html_page(title: str, items: Sequence[Chart | Markup | str], theme: str = "auto") -> str:
    """A self-contained HTML page (inline CSS and SVG, no script, no external
    resource): each item in order, a Chart as inline SVG, Markup as it is, a
    str as an escaped paragraph. `theme="auto"` follows the reader's light or
    dark preference; the charts draw in the page's text colour."""
    if theme not in THEMES:
        raise ValueError(f"theme: {theme!r} is not one of {', '.join(THEMES)}")
    parts = []
    for item in items:
        if isinstance(item, Chart):
            parts.append(f"<figure>{render_svg(item, 'auto')}</figure>")
        elif isinstance(item, Markup):
            parts.append(str(item))
        else:
            parts.append(f"<p>{escape(item)}</p>")
    body_class = f' class="{theme}"' if theme != "auto" else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{_PAGE_CSS}</style></head>\n<body{body_class}><h1>{escape(title)}</h1>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
