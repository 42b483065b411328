"""The run's time series (timeline.py) and the headline figures, from real
summary documents of real tracker rows."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import pytest

from lambda_affinity.core import summary
from lambda_affinity.core.tracker import Tracker
from lambda_affinity.report.timeline import CHARTS, Timeline, TimelinePoint, headline


def doc_of(tracker: Tracker) -> dict:
    return summary.summarize(tracker.rows(), tracker.environments)


def test_points_hold_gauges_and_interval_counts():
    t = Tracker()
    line = Timeline(start=100.0)
    t.record("u1", "A", cold=True, cache_hit=False)
    t.record("u1", "A", cold=False, cache_hit=True)
    t.record_invalid("u2")
    first = line.add(102.0, doc_of(t))
    assert first == TimelinePoint(
        t=102.0,
        span_s=2.0,
        users=2,
        mean_max_share=1.0,
        median_max_share=1.0,
        mean_warm_rate=0.5,
        environments=1,
        cold_starts=1,
        valid=2,
        invalid=1,
    )
    t.record("u2", "B", cold=True, cache_hit=False)
    t.record("u2", "A", cold=False, cache_hit=False)
    second = line.add(104.5, doc_of(t))
    # u1 keeps 1.0, u2 has 0.5: the mean 0.75; the counts are this interval's only
    assert (second.span_s, second.users, second.mean_max_share, second.median_max_share) == (2.5, 2, 0.75, 0.75)
    assert (second.environments, second.cold_starts, second.valid, second.invalid) == (2, 1, 2, 0)
    assert second.mean_warm_rate == pytest.approx(0.25)
    assert line.points == [first, second]


def test_no_cache_status_and_no_reply_give_none_not_zero():
    t = Tracker()
    t.register("u1")
    line = Timeline()
    p = line.add(5.0, doc_of(t))
    assert (p.mean_max_share, p.median_max_share, p.mean_warm_rate, p.span_s) == (None, None, None, 0.0)
    t.record("u1", "A")  # a probe without cache status
    p = line.add(6.0, doc_of(t))
    assert p.mean_max_share == 1.0 and p.mean_warm_rate is None


def test_memory_is_bounded_and_counts_survive_halving():
    t = Tracker()
    line = Timeline(start=0.0, max_points=8)
    for i in range(1, 1001):
        t.record(f"u{i % 7}", f"e{i % 13}", cold=i % 5 == 0)
        if i % 3 == 0:
            t.record_invalid("u1")
        line.add(float(i), doc_of(t))
        assert len(line.points) <= 8
    # no sample lost: the intervals add up to the run's totals and cover it end to end
    assert sum(p.cold_starts for p in line.points) == 200
    assert sum(p.valid for p in line.points) == 1000
    assert sum(p.invalid for p in line.points) == 333
    assert sum(p.samples for p in line.points) == 1000
    assert sum(p.span_s for p in line.points) == pytest.approx(1000.0)
    assert line.points[-1].t == 1000.0
    times = [p.t for p in line.points]
    assert times == sorted(times)
    # evenly spaced but for the newest point, which is still gathering samples
    assert {p.samples for p in line.points[:-1]} == {line.stride} and line.stride == 128
    assert line.points[-1].samples <= line.stride


def test_json_round_trip_names_every_field():
    t = Tracker()
    t.record("u1", "A")
    line = Timeline(start=1.0)
    line.add(3.0, doc_of(t))
    data = json.loads(json.dumps([asdict(p) for p in line.points]))
    assert [TimelinePoint(**p) for p in data] == line.points
    names = tuple(f.name for f in fields(TimelinePoint))
    assert tuple(data[0]) == names
    # every charted series is a field of a point
    assert {s["field"] for c in CHARTS for s in c["series"]} <= set(names)


def test_a_closed_timeline_takes_no_more_points():
    t = Tracker()
    t.record("u1", "A")
    line = Timeline(start=0.0)
    line.add(2.0, doc_of(t))
    assert not line.closed
    t.record("u1", "A")
    last = line.close(3.0, doc_of(t))
    assert line.closed and last.valid == 1 and line.points[-1] == last
    with pytest.raises(ValueError, match="closed: its run is over"):
        line.add(4.0, doc_of(t))


def test_bad_input_is_refused_with_a_reason():
    t = Tracker()
    t.record("u1", "A")
    t.record("u1", "A", cold=True)
    line = Timeline()
    line.add(10.0, doc_of(t))
    with pytest.raises(ValueError, match=r"earlier than the previous one at 10\.0"):
        line.add(9.0, doc_of(t))
    t.reset()
    with pytest.raises(ValueError, match=r"went down from \(1, 2, 0, 0\) to \(0, 0, 0, 0\)"):
        line.add(11.0, doc_of(t))
    with pytest.raises(ValueError, match="no 'cold_starts' key"):
        line.add(12.0, {"users": 1})
    with pytest.raises(ValueError, match="at least 2 points"):
        Timeline(max_points=1)


def test_headline_reads_the_document():
    t = Tracker()
    for env in "AAB":
        t.record("u1", env, cold=env == "B", cache_hit=True)
    t.record("u2", "C", cold=True, cache_hit=False)
    t.record_invalid("u2")
    doc = doc_of(t)
    figures = {f["key"]: f for f in headline(doc)}
    assert [f["key"] for f in headline(doc)] == [
        "users",
        "mean_max_share",
        "median_max_share",
        "mean_warm_rate",
        "environments",
        "cold_starts",
        "new_environment_calls",
        "requests",
        "invalid",
    ]
    assert figures["users"]["value"] == 2 and figures["environments"]["value"] == 3
    assert figures["mean_max_share"]["value"] == pytest.approx((2 / 3 + 1) / 2) == doc["hit_rate"]["mean"]
    assert figures["median_max_share"]["value"] == doc["hit_rate"]["p50"]
    assert figures["mean_warm_rate"]["value"] == 0.5 and figures["mean_warm_rate"]["kind"] == "rate"
    assert (figures["cold_starts"]["value"], figures["requests"]["value"], figures["invalid"]["value"]) == (2, 4, 1)


def test_headline_says_what_the_cache_saves_when_a_miss_has_a_cost():
    t = Tracker()
    for hit in (False, True, True, True):
        t.record("u1", "A", cache_hit=hit)
    doc = summary.summarize(t.rows(), t.environments, per_miss_ms=8.0, per_miss_usd=0.25e-6)
    figures = {f["key"]: f for f in headline(doc)}
    # 750 000 hits per million replies: 6 000 s saved, and $0.1875
    assert figures["saved_time_per_million"] == {
        "key": "saved_time_per_million",
        "kind": "text",
        "value": "1.7 h",
        "label": "Time the cache saves per 1M replies",
    }
    assert figures["saved_usd_per_million"]["value"] == "$0.19"
    assert "saved_time_per_million" not in {f["key"] for f in headline(summary.summarize(t.rows(), t.environments))}


def test_the_reports_time_axis_shows_round_times_and_every_label_is_its_ticks_time():
    # Before: ticks 2.5 s apart labelled 0s 2s 5s 8s 10s 12s (rounded to whole seconds).
    import xml.etree.ElementTree as ET

    from lambda_affinity.report.charts import render_svg
    from lambda_affinity.report.timeline import charts_of, clock

    t = Tracker()
    line = Timeline(start=0.0)
    for at in (4.1, 8.2, 12.3):
        t.record("u1", "A", cold=False, cache_hit=True)
        line.add(at, doc_of(t))
    svg = ET.fromstring(render_svg(charts_of(line.points)[0]))
    ticks = [(float(e.get("data-value")), e.text) for e in svg.iter() if e.get("class") == "x-tick"]
    assert [label for _, label in ticks] == ["0s", "5s", "10s", "15s"]
    assert all(label == clock(value) for value, label in ticks)
    assert [clock(v) for v in (2.5, 7.5, 62.5, 3725.25)] == ["2.5s", "7.5s", "1:02.5", "1:02:05.25"]
