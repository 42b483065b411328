"""The affinity wrapper's logic (wrapper/python/lambda_affinity_wrapper/), in process: the events it reads, the
headers it adds, its counters and settings; the emulator and the Node.js wrapper are in tests/e2e."""

from __future__ import annotations

import copy
import json
import sys
import types

import pytest

import probe_lambda.handler as probe
from lambda_affinity_wrapper import events, state, wrap
from lambda_affinity_wrapper.events import EventKind, Facts, SessionSource

URL = {"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET"}}, "headers": {}}
REST = {"httpMethod": "GET", "path": "/", "requestContext": {"stage": "prod"}, "headers": {}, "multiValueHeaders": {}}
ALB = {"httpMethod": "GET", "path": "/", "requestContext": {"elb": {"targetGroupArn": "arn"}}, "headers": {}}
ALB_MULTI = {"httpMethod": "GET", "path": "/", "requestContext": {"elb": {}}, "multiValueHeaders": {}}
FACTS = Facts("2026/01/01/[$LATEST]abc", True, 1, False, 12)
CONTEXT = types.SimpleNamespace(aws_request_id="req-1")


def test_the_probe_counts_hits_with_the_wrappers_own_cache_and_limits():
    assert probe.SessionCache is state.SessionCache and probe.MAX_SESSION_LEN == state.MAX_SESSION_LEN == 256
    assert probe.SESSION_HEADER == events.DEFAULT_SOURCE.name == "x-affinity-session"


@pytest.mark.parametrize(
    "event, kind",
    [
        (URL, EventKind.HTTP_V2),
        (REST, EventKind.REST_V1),
        (ALB, EventKind.ALB),
        (ALB_MULTI, EventKind.ALB_MULTI),
        ({"session": "u1"}, EventKind.OTHER),
        ({"Records": [{"eventSource": "aws:sqs"}]}, EventKind.OTHER),
        ({"requestContext": "not a mapping", "rawPath": "/"}, EventKind.OTHER),
        ([1, 2], EventKind.OTHER),
        (None, EventKind.OTHER),
    ],
)
def test_event_kinds(event, kind):
    assert events.event_kind(event) is kind


@pytest.mark.parametrize(
    "setting, source",
    [
        (None, SessionSource("header", "x-affinity-session")),
        ("", SessionSource("header", "x-affinity-session")),
        ("header:X-Session-Id", SessionSource("header", "x-session-id")),
        (" Cookie : SessionID ", SessionSource("cookie", "SessionID")),  # cookie names keep their case
        ("cookie", None),
        ("query:sid", None),
        ("header:", None),
        ("cookie:a b", None),
        ("cookie:a=b", None),
    ],
)
def test_session_source_settings(setting, source):
    assert events.parse_source(setting) == source


def with_headers(base: dict, headers=None, multi=None, cookies=None) -> dict:
    event = copy.deepcopy(base)
    if headers is not None:
        event["headers"] = headers
    if multi is not None:
        event["multiValueHeaders"] = multi
    if cookies is not None:
        event["cookies"] = cookies
    return event


HEADER = SessionSource("header", "x-affinity-session")
COOKIE = SessionSource("cookie", "sid")


@pytest.mark.parametrize(
    "event, source, key",
    [
        (with_headers(URL, {"x-affinity-session": "u1"}), HEADER, "u1"),
        (with_headers(REST, {"X-Affinity-Session": "u2"}), HEADER, "u2"),  # REST keeps the client's case
        (with_headers(ALB_MULTI, multi={"x-affinity-session": ["u3", "other"]}), HEADER, "u3"),
        (with_headers(URL, {"x-affinity-session": "k" * 256}), HEADER, "k" * 256),
        (with_headers(URL, {"x-affinity-session": "k" * 257}), HEADER, None),
        (with_headers(URL, {"x-affinity-session": ""}), HEADER, None),
        (with_headers(URL, {"x-affinity-session": ["u1"]}), HEADER, None),  # hand-made events: no str, no key
        (with_headers(URL, {"x-affinity-session": 7}), HEADER, None),
        (with_headers(URL, "not a mapping"), HEADER, None),
        (with_headers(ALB_MULTI, multi={"x-affinity-session": "not a list"}), HEADER, None),
        (URL, HEADER, None),
        (with_headers(URL, cookies=["a=1", "sid=s1"]), COOKIE, "s1"),  # payload 2.0: the cookies list
        (with_headers(REST, {"Cookie": "a=1; sid=s2; b=2"}), COOKIE, "s2"),
        (with_headers(ALB_MULTI, multi={"cookie": ["a=1", "sid=s3"]}), COOKIE, "s3"),
        (with_headers(URL, cookies=["sid"], headers={"cookie": ";;=;sid"}), COOKIE, None),
        (with_headers(URL, cookies=[None, 3, "sid=" + "c" * 257]), COOKIE, None),
        (with_headers(URL, cookies="sid=s1"), COOKIE, None),  # not a list: not read as one
        (with_headers(REST, {"cookie": "SID=upper"}), COOKIE, None),  # cookie names are case-sensitive
    ],
)
def test_session_keys_and_the_hostile_ones_that_give_none(event, source, key):
    assert events.session_key(event, source) == key


def test_headers_go_on_a_copy_after_the_apps_own():
    result = {"statusCode": 200, "headers": {"content-type": "text/plain", "X-App": "1"}, "body": "b"}
    before = copy.deepcopy(result)
    out = events.with_headers(result, EventKind.HTTP_V2, FACTS)
    assert result == before and out is not result and out["headers"] is not result["headers"]
    assert list(out["headers"].items()) == list(result["headers"].items()) + [
        ("x-affinity-env", FACTS.env),
        ("x-affinity-cold", "1"),
        ("x-affinity-env-invocations", "1"),
        ("x-affinity-session-hit", "0"),
        ("x-affinity-init-age-ms", "12"),
        ("x-affinity-new-env", "0"),
    ]
    assert {k: v for k, v in out.items() if k != "headers"} == {k: v for k, v in result.items() if k != "headers"}


def test_no_session_key_no_session_header():
    out = events.with_headers({"statusCode": 204}, EventKind.REST_V1, FACTS._replace(session_hit=None))
    assert "x-affinity-session-hit" not in out["headers"] and out["headers"]["x-affinity-env"] == FACTS.env


def test_multi_value_responses_get_lists():
    multi = {"statusCode": 200, "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]}}
    out = events.with_headers(multi, EventKind.REST_V1, FACTS)
    assert out["multiValueHeaders"]["set-cookie"] == ["a=1", "b=2"] and out["multiValueHeaders"]["x-affinity-cold"] == [
        "1"
    ]
    assert "headers" not in out
    # ALB in multi-value mode reads only multiValueHeaders, even when the app wrote `headers`
    out = events.with_headers({"statusCode": 200, "headers": {"a": "b"}}, EventKind.ALB_MULTI, FACTS)
    assert out["headers"] == {"a": "b"} and out["multiValueHeaders"]["x-affinity-env"] == [FACTS.env]
    # payload 2.0 has no multiValueHeaders: a result carrying one is left to Lambda, headers go in `headers`
    out = events.with_headers({"statusCode": 200, "multiValueHeaders": {"a": ["b"]}}, EventKind.HTTP_V2, FACTS)
    assert out["multiValueHeaders"] == {"a": ["b"]} and "x-affinity-env" in out["headers"]


@pytest.mark.parametrize(
    "result",
    [
        "a string body",
        {"message": "no statusCode: payload 2.0 sends this dict as the body"},
        {"statusCode": 200, "headers": "not a mapping"},
        [1, 2],
        None,
    ],
)
def test_results_without_room_for_headers_are_left_alone(result):
    assert events.with_headers(result, EventKind.HTTP_V2, FACTS) is None


@pytest.fixture
def fresh(monkeypatch):
    """A Wrapper made under given settings (each call of the fixture's function: a new environment)."""
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]env1")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "app")

    def make(**settings) -> wrap.Wrapper:
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        return wrap.Wrapper()

    return make


def url_event(session=None):
    return with_headers(URL, {} if session is None else {"x-affinity-session": session})


def app(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}


def test_counts_cold_and_hits_per_environment(fresh):
    w = fresh()
    outs = [w.call(app, url_event(s), CONTEXT)["headers"] for s in ("u1", "u1", "u2", None, "u1")]
    assert [h["x-affinity-env-invocations"] for h in outs] == ["1", "2", "3", "4", "5"]
    assert [h["x-affinity-cold"] for h in outs] == ["1", "0", "0", "0", "0"]
    assert [h.get("x-affinity-session-hit") for h in outs] == ["0", "1", "0", None, "1"]
    assert {h["x-affinity-env"] for h in outs} == {"2026/01/01/[$LATEST]env1"}
    assert all(int(h["x-affinity-init-age-ms"]) >= 0 for h in outs)


def test_the_cache_is_bounded_by_the_probes_settings(fresh):
    w = fresh(AFFINITY_CACHE_SIZE="1")
    hits = [w.call(app, url_event(s), CONTEXT)["headers"]["x-affinity-session-hit"] for s in ("a", "b", "a")]
    assert hits == ["0", "0", "0"]  # b evicted a
    w = fresh(AFFINITY_CACHE_SIZE="10", AFFINITY_CACHE_TTL_S="0.001")
    w.call(app, url_event("a"), CONTEXT)
    w.environment.cache._items["a"] -= 1.0  # cached a second ago: past its TTL
    assert w.call(app, url_event("a"), CONTEXT)["headers"]["x-affinity-session-hit"] == "0"


def test_non_dict_results_and_errors_pass_through_as_they_are(fresh, capsys):
    w = fresh()
    body = ["a", "list"]
    assert w.call(lambda e, c: body, url_event("u"), CONTEXT) is body
    error = ValueError("the app's own")

    def boom(event, context):
        raise error

    with pytest.raises(ValueError) as info:
        w.call(boom, url_event("u"), CONTEXT)
    assert info.value is error
    assert w.environment.invocations == 2  # a failed call still counts: it ran in this environment


def test_other_events_log_one_line_and_the_field_is_opt_in(fresh, capsys):
    w = fresh()
    result = {"ok": True}
    assert w.call(lambda e, c: result, {"op": 1}, CONTEXT) is result
    line = capsys.readouterr().out
    assert line.startswith("AFFINITY ") and line.endswith("\n") and line.count("\n") == 1
    doc = json.loads(line.removeprefix("AFFINITY "))
    assert doc == {
        "env": "2026/01/01/[$LATEST]env1",
        "cold": True,
        "env_invocations": 1,
        "session_hit": None,
        "init_age_ms": doc["init_age_ms"],
        "new_environment": False,
        "init_type": None,
        "request_id": "req-1",
        "function": "app",
    }
    w = fresh(AFFINITY_INVOKE_FIELD="1")
    out = w.call(lambda e, c: result, {"op": 1}, CONTEXT)
    assert out == {"ok": True, "_affinity": json.loads(capsys.readouterr().out.removeprefix("AFFINITY "))}
    assert result == {"ok": True}  # the app's object untouched
    assert w.call(lambda e, c: [1], {"op": 1}, CONTEXT) == [1]  # not an object: no field


def test_an_http_result_without_room_for_headers_logs_instead(fresh, capsys):
    w = fresh()
    assert w.call(lambda e, c: "text", url_event("u"), CONTEXT) == "text"
    assert json.loads(capsys.readouterr().out.removeprefix("AFFINITY "))["session_hit"] is False


def test_a_bad_session_setting_warns_once_and_reads_the_default_header(fresh, capsys):
    w = fresh(AFFINITY_SESSION_FROM="query:sid")
    assert w.source == events.DEFAULT_SOURCE
    assert "AFFINITY_SESSION_FROM='query:sid' is not header:NAME or cookie:NAME" in capsys.readouterr().err


def test_the_configured_handler_runs_affinity_handler(tmp_path, monkeypatch):
    (tmp_path / "my_app").mkdir()
    (tmp_path / "my_app" / "__init__.py").write_text("")
    (tmp_path / "my_app" / "routes.py").write_text("def handler(event, context):\n    return {'statusCode': 201}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(wrap, "_original", None)
    monkeypatch.setattr(wrap, "_WRAPPER", None)
    monkeypatch.setenv("AFFINITY_HANDLER", "my_app/routes.handler")  # a path, as Lambda's handler setting takes
    out = wrap.handler(url_event("u"), CONTEXT)
    assert out["statusCode"] == 201 and out["headers"]["x-affinity-cold"] == "1"
    sys.modules.pop("my_app.routes", None)
    sys.modules.pop("my_app", None)


@pytest.mark.parametrize(
    "spec, words",
    [(None, "AFFINITY_HANDLER is not set"), ("app", "expected module.function"), ("json.nothing", "has no handler")],
)
def test_a_bad_affinity_handler_is_an_import_error(spec, words):
    with pytest.raises(ImportError, match=words):
        wrap.load_handler(spec)


def test_the_decorator_keeps_the_handlers_name(fresh):
    @wrap.affinity
    def my_handler(event, context):
        return {"statusCode": 200}

    assert my_handler.__name__ == "my_handler"
    assert my_handler(url_event(), CONTEXT)["headers"]["x-affinity-env-invocations"].isdigit()


def test_a_hand_made_context_never_breaks_the_call(fresh, capsys):
    w = fresh()
    odd = types.SimpleNamespace(aws_request_id=object())  # a test harness's stand-in: not JSON
    assert w.call(lambda e, c: {"ok": 1}, {"op": 1}, odd) == {"ok": 1}
    assert json.loads(capsys.readouterr().out.removeprefix("AFFINITY "))["request_id"].startswith("<object")
    assert w.call(lambda e, c: 1, {"op": 1}, None) == 1  # no context at all
    assert json.loads(capsys.readouterr().out.removeprefix("AFFINITY "))["request_id"] is None
