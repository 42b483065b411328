"""charts: the SVG parses, points land where the axes say, text is escaped, log and empty charts."""

import itertools
import math
import xml.etree.ElementTree as ET

import pytest

from lambda_affinity.report.charts import (
    Axis,
    Chart,
    Markup,
    Point,
    Series,
    html_page,
    html_table,
    layout,
    linear_ticks,
    log_ticks,
    render_svg,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def circles(root: ET.Element, series: str) -> list[ET.Element]:
    group = next(g for g in root.iter(f"{SVG}g") if g.get("data-series") == series)
    return list(group.iter(f"{SVG}circle"))


def test_points_map_to_the_plot_area_linearly():
    chart = Chart(
        "linear",
        [Series("s", [Point(0, 0), Point(5, 0.5), Point(10, 1.0)])],
        x=Axis("x", lo=0, hi=10),
        y=Axis("y", lo=0, hi=1),
    )
    lay = layout(chart)
    assert lay.x_range == (0, 10) and lay.y_range == (0, 1)
    root = parse(render_svg(chart))
    drawn = [(float(c.get("cx")), float(c.get("cy"))) for c in circles(root, "s")]
    # by hand: x from the left edge across the width, y from the bottom edge up
    expected = [
        (lay.left, lay.top + lay.height),
        (lay.left + lay.width / 2, lay.top + lay.height / 2),
        (lay.left + lay.width, lay.top),
    ]
    assert drawn == [pytest.approx(e, abs=0.01) for e in expected]
    assert [(float(c.get("data-x")), float(c.get("data-y"))) for c in circles(root, "s")] == [(0, 0), (5, 0.5), (10, 1)]


def test_log_axis_puts_decades_evenly_apart():
    chart = Chart(
        "log",
        [Series("s", [Point(1, 0.2), Point(10, 0.4), Point(100, 0.6), Point(1000, 0.8)])],
        x=Axis("users", log=True),
        y=Axis("rate", lo=0, hi=1),
    )
    lay = layout(chart)
    assert lay.x_range == (1, 1000)
    xs = [float(c.get("cx")) for c in circles(parse(render_svg(chart)), "s")]
    gaps = [b - a for a, b in itertools.pairwise(xs)]
    assert gaps == [pytest.approx(lay.width / 3, abs=0.02)] * 3
    # 31.6 sits half-way between 10 and 100 on a log axis
    assert lay.px(10**1.5) == pytest.approx((xs[1] + xs[2]) / 2)
    ticks = [t.text for t in parse(render_svg(chart)).iter(f"{SVG}text") if t.get("class") == "x-tick"]
    assert ticks[0] == "1" and ticks[-1] == "1000" and "10" in ticks and "100" in ticks


def test_log_axis_refuses_values_at_or_below_zero():
    chart = Chart("bad", [Series("s", [Point(0, 1), Point(10, 2)])], x=Axis("users", log=True))
    with pytest.raises(ValueError, match="x axis 'users' is logarithmic: 0 is not > 0"):
        render_svg(chart)


@pytest.mark.parametrize("lo, hi", [(0, 0.93), (3, 3), (-7, 42), (0.001, 0.004)])
def test_linear_ticks_cover_the_data_with_round_steps(lo, hi):
    a, b, ticks = linear_ticks(lo, hi)
    assert a <= lo and b >= hi and ticks[0] == a and ticks[-1] == b and 3 <= len(ticks) <= 11
    steps = {round(y - x, 12) for x, y in itertools.pairwise(ticks)}
    assert len(steps) == 1
    mantissa = steps.pop() / 10 ** math.floor(math.log10(ticks[1] - ticks[0]))
    assert round(mantissa, 9) in (1, 2, 2.5, 5)


def test_log_ticks():
    assert log_ticks(3, 40) == (1, 100, [1, 2, 5, 10, 20, 50, 100])
    assert log_ticks(1, 1e6)[2] == [1, 10, 100, 1000, 1e4, 1e5, 1e6]


def test_text_is_escaped_and_the_svg_still_parses():
    name = "a<b>&\"c'\x01"
    chart = Chart(f"title {name}", [Series(name, [Point(1, 1), Point(2, 2, 1, 3)])], x=Axis(name), y=Axis(name))
    svg = render_svg(chart)
    assert "<b>" not in svg and "\x01" not in svg
    root = parse(svg)
    assert root.find(f"{SVG}title").text == "title a<b>&\"c'"
    group = next(g for g in root.iter(f"{SVG}g") if g.get("data-series"))
    assert group.get("data-series") == "a<b>&\"c'"
    page = html_page(
        f"page {name}", [chart, "x < y", Markup("<p id='raw'>ok</p>"), html_table(["h<"], [[1.5], ["<td>"]])]
    )
    assert "page a&lt;b&gt;" in page and "x &lt; y" in page and "<p id='raw'>ok</p>" in page
    assert "&lt;td&gt;" in page and "<th>h&lt;</th>" in page


def test_empty_series_and_empty_chart_draw_axes_and_say_no_data():
    chart = Chart("nothing", [Series("a"), Series("b", [Point(float("nan"), 1)])], y=Axis("rate", lo=0, hi=1))
    root = parse(render_svg(chart))
    assert not list(root.iter(f"{SVG}circle"))
    assert any(t.get("class") == "no-data" for t in root.iter(f"{SVG}text"))
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "y-tick"][-1] == "1"
    # one empty series beside a drawn one: no "no data", the other drawn
    chart = Chart("half", [Series("a"), Series("b", [Point(1, 0.5)])])
    root = parse(render_svg(chart))
    assert len(list(root.iter(f"{SVG}circle"))) == 1
    assert not any(t.get("class") == "no-data" for t in root.iter(f"{SVG}text"))


def test_spread_as_band_or_whiskers():
    pts = [Point(1, 0.5, 0.4, 0.6), Point(2, 0.6, 0.5, 0.7)]
    band = parse(render_svg(Chart("b", [Series("s", pts)])))
    assert [p.get("class") for p in band.iter(f"{SVG}polygon")] == ["band"]
    whiskers = parse(render_svg(Chart("w", [Series("s", pts)], spread="whiskers")))
    assert len([p for p in whiskers.iter(f"{SVG}path") if p.get("class") == "whisker"]) == 2
    with pytest.raises(ValueError, match="spread: 'bars' is not one of band, whiskers"):
        render_svg(Chart("x", [Series("s", pts)], spread="bars"))


def test_categorical_axis_and_themes():
    chart = Chart(
        "policies", [Series("s", [Point(0, 0.55), Point(1, 0.23)])], x=Axis("policy", categories=["mru", "lru"])
    )
    auto = parse(render_svg(chart))
    assert [t.text for t in auto.iter(f"{SVG}text") if t.get("class") == "x-tick"] == ["mru", "lru"]
    assert auto.get("fill") == "currentColor" and auto.find(f"{SVG}rect") is None
    dark = parse(render_svg(chart, theme="dark"))
    assert dark.find(f"{SVG}rect").get("fill") == "#1b1b1b" and dark.get("color") == "#dddddd"
    with pytest.raises(ValueError, match="theme: 'blue' is not one of auto, light, dark"):
        render_svg(chart, theme="blue")


def test_html_page_is_self_contained():
    page = html_page("p", [Chart("c", [Series("s", [Point(1, 1), Point(2, 2)])])])
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    for external in ("http://", "https://", "<script", "<link", "src="):
        assert external not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
