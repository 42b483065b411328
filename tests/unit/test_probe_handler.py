"""The probe Lambda's handler, called in-process with both event shapes."""

import importlib
import json
import types

import pytest

import probe_lambda.handler as handler_module
from probe_lambda.handler import SessionCache

STREAM = "2026/11/26/[$LATEST]0123456789abcdef0123456789abcdef"


@pytest.fixture
def probe(monkeypatch):
    """A fresh environment: module state reloaded with Lambda's variables."""
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", STREAM)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET/KEY/never-echo")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TOKEN-never-echo")
    monkeypatch.setenv("AFFINITY_CACHE_SIZE", "2")
    monkeypatch.setenv("AFFINITY_CACHE_TTL_S", "60")
    monkeypatch.delenv("AFFINITY_MISS_DELAY_MS", raising=False)
    yield importlib.reload(handler_module)
    monkeypatch.undo()
    importlib.reload(handler_module)


def ctx(n=1):
    return types.SimpleNamespace(aws_request_id=f"req-{n}")


def url_event(headers=None, query=None):
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": headers or {},
        "queryStringParameters": query,
        "requestContext": {"http": {"method": "GET", "path": "/"}},
        "isBase64Encoded": False,
    }


def test_invoke_payload_cold_then_warm_hit(probe):
    first = probe.handler({"session": "alice"}, ctx(1))
    assert first["env_id"] == STREAM and first["request_id"] == "req-1" and first["probe"] == 1
    assert first["cold"] is True and first["env_invocations"] == 1 and first["session"] == "alice"
    assert first["cache"] == {"hit": False, "entries": 1, "age_ms": None}
    second = probe.handler({"session": "alice"}, ctx(2))
    assert second["cold"] is False and second["env_invocations"] == 2
    assert second["cache"]["hit"] is True and second["cache"]["age_ms"] >= 0
    assert second["env_age_ms"] >= first["env_age_ms"]


def test_function_url_event_header_and_query(probe):
    r = probe.handler(url_event(headers={"x-affinity-session": "bob"}), ctx())
    assert r["statusCode"] == 200 and r["headers"]["content-type"] == "application/json"
    body = json.loads(r["body"])
    assert body["session"] == "bob" and body["cache"]["hit"] is False
    body = json.loads(probe.handler(url_event(query={"session": "bob"}), ctx())["body"])
    assert body["session"] == "bob" and body["cache"]["hit"] is True


def test_no_session_means_no_cache_status(probe):
    assert probe.handler({}, ctx())["cache"] is None
    assert probe.handler(None, ctx())["cache"] is None
    assert json.loads(probe.handler(url_event(), ctx())["body"])["cache"] is None


@pytest.mark.parametrize(
    "event,message",
    [
        ([1, 2], "payload must be a JSON object"),
        ("text", "payload must be a JSON object"),
        ({"session": 7}, "session must be a string"),
        ({"session": ""}, "session must be a string"),
        ({"session": "x" * 257}, "session must be a string"),
    ],
)
def test_bad_invoke_payload_gets_400_style_error(probe, event, message):
    r = probe.handler(event, ctx())
    assert r["statusCode"] == 400 and message in r["error"]


def test_bad_url_event_gets_400(probe):
    r = probe.handler(url_event(headers={"x-affinity-session": "y" * 300}), ctx())
    assert r["statusCode"] == 400 and "session must be" in json.loads(r["body"])["error"]
    bad = url_event()
    bad["headers"] = ["not", "a", "dict"]
    assert probe.handler(bad, ctx())["statusCode"] == 400


def test_never_echoes_other_environment_variables(probe):
    text = json.dumps(probe.handler({"session": "s"}, ctx())) + json.dumps(probe.handler(url_event(), ctx()))
    assert "never-echo" not in text and "SECRET" not in text


def test_cache_size_from_environment_bounds_entries(probe):
    for name in ("a", "b", "c"):
        probe.handler({"session": name}, ctx())
    r = probe.handler({"session": "a"}, ctx())  # evicted as least recently used
    assert r["cache"]["hit"] is False and r["cache"]["entries"] == 2


def test_bad_environment_values_fall_back_to_safe_defaults(monkeypatch):
    monkeypatch.setenv("AFFINITY_CACHE_SIZE", "lots")
    monkeypatch.setenv("AFFINITY_CACHE_TTL_S", "-5")
    monkeypatch.setenv("AFFINITY_MISS_DELAY_MS", "nan")
    mod = importlib.reload(handler_module)
    try:
        assert mod._CACHE.max_entries == 10000 and mod._CACHE.ttl_s == 0.001 and mod._MISS_DELAY_S == 0.0
    finally:
        monkeypatch.undo()
        importlib.reload(handler_module)


def test_session_cache_hit_miss_ttl_eviction():
    c = SessionCache(max_entries=2, ttl_s=10.0)
    assert c.lookup("a", 0.0) == (False, None)
    assert c.lookup("a", 4.0) == (True, 4.0)
    assert c.lookup("a", 10.0) == (False, None)  # expired at TTL: re-read, cached anew
    assert c.lookup("a", 12.0) == (True, 2.0)
    c.lookup("b", 13.0)
    c.lookup("a", 14.0)  # a is now most recent
    c.lookup("c", 15.0)  # evicts b
    assert len(c) == 2
    assert c.lookup("b", 16.0)[0] is False
    with pytest.raises(ValueError):
        SessionCache(max_entries=0)
