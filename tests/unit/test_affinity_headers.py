"""The wrapper's affinity headers and log facts as the plugin reads them (core/headers.py),
and the per-endpoint tallies (core/endpoints.py)."""

from __future__ import annotations

import pytest

from lambda_affinity.core.endpoints import OTHER, EndpointTracker, add_tables, rows_of, table_size
from lambda_affinity.core.headers import (
    AffinityHeaderError,
    Facts,
    SessionSource,
    SessionSourceError,
    check_header_name,
    parse_headers,
    parse_log_facts,
    parse_session_source,
)
from lambda_affinity.core.tracker import Tracker
from lambda_affinity.locust_plugin.distributed import Aggregator, final_payload, periodic_payload

GOOD = {
    "x-affinity-env": "2026/12/03/[$LATEST]abc",
    "x-affinity-cold": "0",
    "x-affinity-env-invocations": "12",
    "x-affinity-session-hit": "1",
    "x-affinity-init-age-ms": "5320",
}


def get_of(headers: dict):
    lower = {k.lower(): v for k, v in headers.items()}
    return lambda name: lower.get(name.lower())


def test_headers_give_the_facts():
    assert parse_headers(get_of(GOOD)) == Facts("2026/12/03/[$LATEST]abc", False, 12, True, 5320.0)


def test_no_session_hit_header_means_unknown_not_a_miss():
    headers = {k: v for k, v in GOOD.items() if k != "x-affinity-session-hit"}
    assert parse_headers(get_of(headers)).session_hit is None


def test_a_reply_without_the_env_header_is_not_counted():
    assert parse_headers(get_of({"content-type": "text/css"})) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x-affinity-cold": "yes"}, "x-affinity-cold: not 1 or 0"),
        ({"x-affinity-cold": None}, "x-affinity-env without x-affinity-cold"),
        ({"x-affinity-env-invocations": "0"}, "x-affinity-env-invocations: must be at least 1"),
        ({"x-affinity-env-invocations": "1.5"}, "x-affinity-env-invocations: not a whole number"),
        ({"x-affinity-env-invocations": "9" * 40}, "x-affinity-env-invocations: not a whole number"),
        ({"x-affinity-session-hit": "2"}, "x-affinity-session-hit: not 1 or 0"),
        ({"x-affinity-init-age-ms": "nan"}, "x-affinity-init-age-ms: must be a finite number >= 0"),
        ({"x-affinity-init-age-ms": "-1"}, "x-affinity-init-age-ms: must be a finite number >= 0"),
        ({"x-affinity-env": " "}, "x-affinity-env: must be 1 to 512 characters"),
        ({"x-affinity-env": "e" * 513}, "x-affinity-env: must be 1 to 512 characters"),
        ({"x-affinity-cold": ["0", "1"]}, "x-affinity-cold: repeated"),
    ],
)
def test_malformed_headers_say_which(change, message):
    headers = {**GOOD, **change}
    headers = {k: v for k, v in headers.items() if v is not None}
    with pytest.raises(AffinityHeaderError) as err:
        parse_headers(get_of(headers))
    assert message in str(err.value)


def test_log_facts_take_json_types():
    obj = {"env": "e1", "cold": True, "env_invocations": 1, "session_hit": None, "init_age_ms": 0, "request_id": "r"}
    assert parse_log_facts(obj) == Facts("e1", True, 1, None, 0.0)
    assert parse_log_facts({**obj, "cold": 0, "session_hit": 1}) == Facts("e1", False, 1, True, 0.0)
    with pytest.raises(AffinityHeaderError, match="without 'env_invocations'"):
        parse_log_facts({k: v for k, v in obj.items() if k != "env_invocations"})
    with pytest.raises(AffinityHeaderError, match="env_invocations: not a whole number"):
        parse_log_facts({**obj, "env_invocations": True})


def test_session_sources_and_header_names():
    assert parse_session_source("cookie:sid") == SessionSource("cookie", "sid")
    assert parse_session_source("Header: Authorization") == SessionSource("header", "Authorization")
    for bad in ("cookie:", "query:sid", "header", "header:a b", "cookie:a;b", "header:" + "h" * 129):
        with pytest.raises(SessionSourceError):
            parse_session_source(bad)
    assert check_header_name(" x-session ") == "x-session"
    with pytest.raises(SessionSourceError, match="is not a header name"):
        check_header_name("x:y")


def test_endpoint_rates_and_bound():
    t = EndpointTracker(max_endpoints=2)
    t.record("login", cold=True, cache_hit=False, stayed=None)
    t.record("/items", cold=False, cache_hit=True, stayed=True)
    t.record("/items", cold=False, cache_hit=None, stayed=False)
    t.record_invalid("/items")
    t.record("/third", cold=False, cache_hit=True, stayed=True)  # past the bound: under OTHER
    rows = {r["name"]: r for r in t.rows()}
    assert rows["/items"] == {
        "name": "/items",
        "requests": 2,
        "invalid": 1,
        "cold_starts": 0,
        "new_environment_calls": 0,
        "warm_hits": 1,
        "cache_known": 1,
        "followed": 2,
        "stays": 1,
        "warm_rate": 1.0,
        "stay_rate": 0.5,
    }
    assert rows["login"]["stay_rate"] is None and rows["login"]["warm_rate"] == 0.0
    assert rows[OTHER]["requests"] == 1
    assert t.rows()[0]["name"] == "/items"  # most replies first


def test_tables_add_up_per_name():
    a, b = EndpointTracker(), EndpointTracker()
    a.record("x", True, False, None)
    b.record("x", False, True, True)
    b.record("y", False, None, None)
    total = {r["name"]: r for r in rows_of(add_tables([a.table(), b.table()]))}
    assert total["x"]["requests"] == 2 and total["x"]["cold_starts"] == 1 and total["x"]["stays"] == 1
    assert total["y"]["requests"] == 1
    assert table_size(add_tables([a.table(), b.table()])) == 3


def test_workers_send_endpoints_when_changed_and_the_master_sums_them():
    agg = Aggregator()
    agg.start("run1")
    for key in ("w0", "w1"):
        tracker, endpoints = Tracker(), EndpointTracker()
        tracker.record("u1", "e1", True, False)
        endpoints.record("login", True, False, None)
        first = periodic_payload(tracker, "run1", endpoints=endpoints)
        assert first is not None and "endpoints" in first
        assert periodic_payload(tracker, "run1", endpoints=endpoints) is None  # nothing new: nothing sent
        agg.receive(key, first)
        endpoints.record("/items", False, True, True)
        agg.receive(key, final_payload(tracker, "run1", endpoints=endpoints))
        agg.receive(key, first)  # a late, older snapshot does not go back
    rows = {r["name"]: r["requests"] for r in agg.endpoint_rows()}
    assert rows == {"login": 2, "/items": 2}


def test_the_session_options_default_to_the_probes_header_and_refuse_bad_forms():
    import argparse

    import configargparse

    from lambda_affinity.locust_plugin.options import AffinityOptions, add_arguments
    from probe_lambda.handler import SESSION_HEADER

    parser = configargparse.ArgumentParser()
    add_arguments(parser)
    opts = AffinityOptions.of(parser.parse_args([]))
    assert opts.affinity_session_header == SESSION_HEADER and opts.affinity_session_from is None
    opts = AffinityOptions.of(parser.parse_args(["--affinity-session-from", "Cookie: sid"]))
    assert opts.affinity_session_from == "cookie:sid"
    parser.exit = lambda status=0, message=None: (_ for _ in ()).throw(argparse.ArgumentError(None, message or ""))
    with pytest.raises(argparse.ArgumentError, match="expected header:NAME or cookie:NAME"):
        parser.parse_args(["--affinity-session-from", "query:sid"])


@pytest.mark.parametrize(
    ("change", "facts"),
    [
        ({}, Facts("2026/12/03/[$LATEST]abc", False, 12, True, 5320.0)),  # the wrapper's forms: the inline path
        ({"x-affinity-env-invocations": "012"}, Facts("2026/12/03/[$LATEST]abc", False, 12, True, 5320.0)),
        ({"x-affinity-init-age-ms": "5320.5"}, Facts("2026/12/03/[$LATEST]abc", False, 12, True, 5320.5)),
        ({"x-affinity-init-age-ms": "١٢"}, None),  # non-ASCII digits: refused by the checks, not the inline path
    ],
)
def test_the_inline_path_and_the_checks_agree(change, facts):
    headers = get_of({**GOOD, **change})
    if facts is None:
        with pytest.raises(AffinityHeaderError, match="x-affinity-init-age-ms"):
            parse_headers(headers)
    else:
        assert parse_headers(headers) == facts


def test_the_console_csv_and_html_show_every_endpoint():
    from lambda_affinity.core.summary import summarize
    from lambda_affinity.report import render

    t = EndpointTracker()
    t.record("/items/<id>", cold=False, cache_hit=True, stayed=True)
    t.record("login", cold=True, cache_hit=None, stayed=None)
    doc = summarize([], 0)
    doc["per_endpoint"] = t.rows()
    table = render.render_table(doc)
    assert "per endpoint" in table and "  /items/<id>        1        0      0       0   1.000   1.000" in table
    assert render.endpoints_csv(doc["per_endpoint"]).splitlines()[2] == "login,1,0,1,0,0,0,0,0,,"
    section = render.render_html_section(doc)
    assert '<table class="affinity-endpoints"' in section and "/items/&lt;id&gt;" in section
    assert "/items/<id>" not in section
    del doc["per_endpoint"]
    assert "per endpoint" not in render.render_table(doc)
    assert "affinity-endpoints" not in render.render_html_section(doc)
