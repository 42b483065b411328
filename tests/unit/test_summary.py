"""Summaries: hand-computed distributions, the section-8 document, CSV, checks, the HTML section."""

import csv
import io
import json
import math
import xml.dom.minidom

import pytest

from lambda_affinity.core.summary import distribution, evaluate_checks, histogram, merge_rows, percentile, summarize
from lambda_affinity.core.tracker import ROW_FIELDS, Tracker
from lambda_affinity.report.render import (
    histogram_svg,
    inject_html_section,
    rates_line,
    render_html_section,
    render_table,
    rows_csv,
    summary_csv,
)


def row(
    user,
    requests,
    max_count,
    warm_hits=0,
    cache_known=0,
    environments=1,
    cold_starts=0,
    switches=0,
    invalid=0,
    new_environment_calls=0,
):
    return {
        "user": user,
        "requests": requests,
        "max_count": max_count,
        "max_share": max_count / requests if requests else None,
        "warm_hits": warm_hits,
        "cache_known": cache_known,
        "environments": environments,
        "cold_starts": cold_starts,
        "new_environment_calls": new_environment_calls,
        "switches": switches,
        "invalid": invalid,
    }


ROWS = [
    row("u1", 10, 5, warm_hits=8, cache_known=10, environments=3, cold_starts=1, switches=4),  # 0.5, warm 0.8
    row("u2", 4, 1, warm_hits=1, cache_known=4, environments=4, cold_starts=2, switches=3),  # 0.25, warm 0.25
    row("u3", 5, 5, warm_hits=4, cache_known=5, environments=1, cold_starts=1, switches=0),  # 1.0, warm 0.8
    row("u4", 0, 0, invalid=3, environments=0),  # only invalid
]


def test_summarize_hand_computed():
    doc = summarize(ROWS, environments=6)
    assert (doc["users"], doc["requests"], doc["invalid"], doc["environments"], doc["cold_starts"]) == (4, 19, 3, 6, 4)
    h = doc["hit_rate"]
    # rates sorted: 0.25, 0.5, 1.0
    assert h["mean"] == pytest.approx(1.75 / 3)
    assert (h["min"], h["p50"], h["max"]) == (0.25, 0.5, 1.0)
    assert h["p25"] == pytest.approx(0.375) and h["p75"] == pytest.approx(0.75)
    assert h["p10"] == pytest.approx(0.25 + 0.2 * 0.25) and h["p90"] == pytest.approx(0.5 + 0.8 * 0.5)
    assert h["weighted"] == 11 / 19
    w = doc["warm_cache_rate"]
    assert (w["min"], w["p50"], w["max"]) == (0.25, 0.8, 0.8)
    assert w["weighted"] == 13 / 19
    assert doc["histogram"] == [0, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    assert [u["user"] for u in doc["per_user"]] == ["u1", "u2", "u3", "u4"]
    # the whole row, as the per-user CSV has it
    assert doc["per_user"][3] == {**ROWS[3]}
    assert list(doc["per_user"][0]) == list(ROWS[0])
    json.dumps(doc)  # the --affinity-json document is plain JSON


def test_no_cache_status_gives_null_warm_rate_and_per_user_limit():
    rows = [row("a", 2, 1), row("b", 3, 3)]
    doc = summarize(rows, per_user_limit=1)
    assert doc["warm_cache_rate"] is None and "per_user" not in doc
    assert doc["environments"] == 1  # without a distinct count: the largest per-user count
    assert summarize([])["hit_rate"] is None


def test_histogram_edges_and_percentile():
    assert histogram([0.0, 0.1, 0.3, 0.2999999, 0.99, 1.0]) == [1, 1, 1, 1, 0, 0, 0, 0, 0, 2]
    assert histogram([3 / 10]) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert percentile([1.0], 0.9) == 1.0
    with pytest.raises(ValueError, match="percentile of no values"):
        percentile([], 0.5)


def test_tracker_rows_summarize_like_hand_rows():
    t = Tracker()
    for env in "AAB":
        t.record("u1", env, env == "B", env == "A")
    doc = summarize(t.rows(), t.environments)
    assert doc["hit_rate"]["p50"] == pytest.approx(2 / 3)
    assert doc["warm_cache_rate"]["p50"] == pytest.approx(2 / 3)
    assert rates_line(t.rows()) == "rates: 0.67"


def test_merge_rows_rejects_incomplete_rows():
    into = {}
    merge_rows(into, [row("u1", 2, 1)])
    bad = row("u2", 2, 1)
    del bad["switches"]
    with pytest.raises(ValueError, match=r"^affinity row lacks switches: "):
        merge_rows(into, [bad])
    assert list(into) == ["u1"]


def test_rates_line_skips_users_without_valid_replies():
    assert rates_line(ROWS) == "rates: 0.50,0.25,1.00"


def test_csv_outputs():
    parsed = list(csv.DictReader(io.StringIO(rows_csv(ROWS))))
    assert list(parsed[0]) == list(ROW_FIELDS)
    assert [r["user"] for r in parsed] == ["u1", "u2", "u3", "u4"]
    assert parsed[2]["max_share"] == "1.0" and parsed[3]["max_share"] == ""
    lines = summary_csv(summarize(ROWS, 6)).splitlines()
    assert lines[0] == "metric,mean,min,p10,p25,p50,p75,p90,max,weighted"
    assert lines[1].startswith("hit_rate,") and lines[2].startswith("warm_cache_rate,")
    assert "4,19,3,6,4,0" in lines
    assert lines[-1] == "0.9-1.0,1"


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_a_user_label_a_spreadsheet_would_run_is_made_inert(name):
    # OWASP, CSV Injection: a leading single quote; before, the label was written as is
    parsed = list(csv.DictReader(io.StringIO(rows_csv([row(name, 2, 1), row("u-1", 1, 1)]), newline="")))
    assert [r["user"] for r in parsed] == ["'" + name, "u-1"]
    assert parsed[0]["requests"] == "2" and parsed[0]["max_share"] == "0.5"


def test_table_shows_totals_and_histogram():
    text = render_table(summarize(ROWS, 6))
    assert text.splitlines()[0] == (
        "Lambda affinity: 4 users, 19 valid replies, 3 invalid, 6 environments, 4 cold starts, 0 new-environment calls"
    )
    assert "max-share hit       0.583    0.250    0.300" in text
    assert "  0.9-1.0       1 " in text


def test_checks_name_check_threshold_and_value():
    doc = summarize(ROWS, 6)
    failures, passes = evaluate_checks(
        doc, {"affinity-min-hit-rate": 0.6, "affinity-min-warm-rate": 0.8, "affinity-max-cold-ratio": 0.2}
    )
    assert failures == [
        "CHECK FAILED: --affinity-min-hit-rate 0.6: median per-user max-share hit rate was 0.500, "
        "at least 0.6 required",
        "CHECK FAILED: --affinity-max-cold-ratio 0.2: cold starts per valid reply was 0.211, at most 0.2 required",
    ]
    assert passes == [
        "CHECK passed: --affinity-min-warm-rate 0.8: median per-user warm-cache hit rate was 0.800, "
        "at least 0.8 required"
    ]
    assert evaluate_checks(doc, {"affinity-min-hit-rate": None}) == ([], [])


def test_checks_without_measurements_fail():
    no_cache = summarize([row("a", 2, 1)])
    failures, _ = evaluate_checks(no_cache, {"affinity-min-warm-rate": 0.1})
    assert failures == [
        "CHECK FAILED: --affinity-min-warm-rate 0.1: median per-user warm-cache hit rate "
        "not measured (no reply carried a cache status)"
    ]
    nothing = summarize([row("a", 0, 0, invalid=2)])
    failures, _ = evaluate_checks(nothing, {"affinity-min-hit-rate": 0.1, "affinity-max-cold-ratio": 1})
    assert [f.split(":")[1] for f in failures] == [" --affinity-min-hit-rate 0.1", " --affinity-max-cold-ratio 1"]
    assert all(f.endswith("not measured (no valid reply)") for f in failures)


def test_html_section_and_svg():
    doc = summarize(ROWS, 6)
    svg = histogram_svg(doc["histogram"])
    xml.dom.minidom.parseString(svg)  # a well-formed picture
    assert svg.count("<rect") == 10
    section = render_html_section(doc, ["CHECK FAILED: x < y & z"])
    xml.dom.minidom.parseString(section)
    assert section.startswith('<section id="lambda-affinity"')
    assert "19 valid replies" in section and "CHECK FAILED: x &lt; y &amp; z" in section
    report = "<html><body><div id=\"root\"></div><script>'</body>'</script>\n</body></html>"
    out = inject_html_section(report, section)
    assert out.endswith(section + "</body></html>")
    with pytest.raises(ValueError, match="no </body>"):
        inject_html_section("<html></html>", section)


def test_miss_cost_hand_computed():
    from lambda_affinity.core.summary import miss_cost

    doc = summarize(ROWS, environments=6)  # warm-cache weighted: 13 hits of 19 known
    cost = miss_cost(doc, per_miss_ms=5, per_miss_usd=0.00000025)
    hits = 13 / 19 * 1e6
    assert cost["warm_cache_rate"] == 13 / 19
    assert cost["hits_per_million"] == pytest.approx(hits) and cost["misses_per_million"] == pytest.approx(1e6 - hits)
    assert cost["saved_ms_per_million"] == pytest.approx(5 * hits)
    assert cost["saved_usd_per_million"] == pytest.approx(0.25 * 13 / 19)
    assert cost["spent_usd_per_million"] == pytest.approx(0.25 * 6 / 19)
    assert cost["saved_ms_per_request"] == pytest.approx(5 * 13 / 19)
    only_ms = miss_cost(doc, per_miss_ms=2)
    assert only_ms["saved_usd_per_million"] is None and only_ms["spent_usd_per_million"] is None
    assert only_ms["saved_ms_per_million"] == pytest.approx(2 * hits)


def test_miss_cost_is_absent_without_a_cost_or_a_cache_status():
    from lambda_affinity.core.summary import miss_cost

    assert miss_cost(summarize(ROWS)) is None
    assert "miss_cost" not in summarize(ROWS)
    no_cache = [row("u1", 4, 2)]  # the probe gave no cache status
    assert miss_cost(summarize(no_cache), per_miss_ms=5) is None


@pytest.mark.parametrize(
    "ms, usd, message",
    [
        (-1, None, "miss-cost-ms: must be a finite number >= 0, got -1"),
        (None, float("nan"), "miss-cost-usd: must be a finite number >= 0, got nan"),
        (float("inf"), None, "miss-cost-ms: must be a finite number >= 0, got inf"),
    ],
)
def test_bad_miss_costs_name_the_option(ms, usd, message):
    from lambda_affinity.core.summary import miss_cost

    with pytest.raises(ValueError, match=message):
        miss_cost(summarize(ROWS), ms, usd)


def test_miss_cost_in_the_document_table_csv_and_html():
    doc = summarize(ROWS, environments=6, per_miss_ms=5, per_miss_usd=0.00000025)
    assert set(doc["miss_cost"]) == {
        "per_miss_ms",
        "per_miss_usd",
        "warm_cache_rate",
        "hits_per_million",
        "misses_per_million",
        "saved_ms_per_million",
        "saved_usd_per_million",
        "spent_ms_per_million",
        "spent_usd_per_million",
        "saved_ms_per_request",
    }
    json.dumps(doc)
    line = render_table(doc).splitlines()[-1]
    assert line == (
        "cost of a miss 5 ms, $2.5e-07: per million replies the warm cache (0.684) saves 684,211 "
        "lookups, 57.0 min and $0.17 (3.42 ms per reply on average)"
    )
    rows = list(csv.reader(io.StringIO(summary_csv(doc))))
    assert rows[-2][0] == "per_miss_ms" and float(rows[-1][rows[-2].index("saved_usd_per_million")]) == pytest.approx(
        0.25 * 13 / 19
    )
    assert "57.0 min and $0.17" in render_html_section(doc)


def test_the_mean_is_the_same_float_on_every_python():
    # Python 3.12 made sum() of floats compensated, so a plain sum gave committed figures that
    # differ in the last digit between 3.11 and 3.13 (0.09999999999999999 against 0.1 here)
    dist = distribution([0.1] * 10, 1, 10)
    assert dist is not None and dist["mean"] == 0.1


def test_mean_and_sd_are_fsum_based_and_the_same_floats_on_every_python():
    # statistics.stdev's last digit changed between 3.10 and 3.11; committed figures are compared byte for byte
    from lambda_affinity.core.summary import mean_sd

    assert mean_sd([1.0, 2.0, 3.0, 4.0]) == (2.5, math.sqrt(5.0 / 3.0))
    assert mean_sd([0.1] * 10) == (0.1, 0.0) and mean_sd([7.0]) == (7.0, 0.0)
