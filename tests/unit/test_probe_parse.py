"""The plugin's reader of the probe contract: every accepted form, every fault with its message."""

import json
import types

import pytest

from lambda_affinity.core.reply import (
    MAX_ENV_ID_LEN,
    Observation,
    ProbeReplyError,
    function_error,
    http_failure,
    invoke_failure,
    parse_reply,
)
from probe_lambda import handler as probe_handler

STREAM = "2020/03/27/[$LATEST]0123456789abcdef0123456789abcdef"


def contract(**over):
    doc = {
        "env_id": STREAM,
        "request_id": "r-1",
        "cold": False,
        "env_invocations": 3,
        "env_age_ms": 12.5,
        "session": "u1",
        "cache": {"hit": True, "entries": 1, "age_ms": 3.0},
        "probe": 1,
    }
    doc.update(over)
    return doc


def test_contract_dict_bytes_and_str_give_the_same_observation():
    expected = Observation(STREAM, False, True, "r-1", 3, 12.5, "u1")
    assert parse_reply(contract()) == expected
    assert parse_reply(json.dumps(contract())) == expected
    assert parse_reply(json.dumps(contract()).encode()) == expected
    assert parse_reply(bytearray(json.dumps(contract()).encode())) == expected


def test_cold_start_and_null_cache():
    obs = parse_reply(contract(cold=True, cache=None, env_invocations=1))
    assert (obs.cold, obs.cache_hit, obs.outcome) == (True, None, "cold")
    assert parse_reply(contract(cache={"hit": False, "entries": 1, "age_ms": None})).outcome == "cache miss"
    assert parse_reply(contract()).outcome == "cache hit"


def test_the_seeds_bare_log_stream_name():
    obs = parse_reply(json.dumps(STREAM).encode())
    assert obs == Observation(STREAM)
    assert (obs.cold, obs.cache_hit, obs.outcome) == (None, None, None)


def test_proxy_result_from_invoking_a_function_url_handler():
    # What the Invoke API returns for the seed's handler: the proxy result itself.
    seed_reply = {"statusCode": 200, "body": json.dumps(STREAM)}
    assert parse_reply(json.dumps(seed_reply)) == Observation(STREAM)
    assert parse_reply({"statusCode": 200, "body": json.dumps(contract())}).cache_hit is True
    with pytest.raises(ProbeReplyError, match=r"^function answered HTTP 500: 'boom'$"):
        parse_reply({"statusCode": 500, "body": "boom"})


def test_real_probe_handler_replies_round_trip(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", STREAM)
    ctx = types.SimpleNamespace(aws_request_id="req-9")
    invoke = probe_handler.handler({"session": "parse-test-session"}, ctx)
    obs = parse_reply(json.dumps(invoke))
    assert obs.env_id == STREAM and obs.request_id == "req-9" and obs.session == "parse-test-session"
    assert obs.cache_hit is False  # first time this session is seen by this module
    url_event = {
        "version": "2.0",
        "rawPath": "/",
        "requestContext": {"http": {"method": "GET"}},
        "headers": {"x-affinity-session": "parse-test-session"},
    }
    url = probe_handler.handler(url_event, ctx)
    assert url["statusCode"] == 200
    assert parse_reply(url["body"]).cache_hit is True


def test_probe_rejections_carry_the_probes_message(monkeypatch):
    ctx = types.SimpleNamespace(aws_request_id="req-10")
    bad = probe_handler.handler({"session": 7}, ctx)
    with pytest.raises(ProbeReplyError, match=r"^probe error 400: session must be a string of 1 to 256 characters$"):
        parse_reply(json.dumps(bad))
    with pytest.raises(ProbeReplyError, match=r"^probe error: nope$"):
        parse_reply({"error": "nope", "probe": 1})


@pytest.mark.parametrize(
    "reply, message",
    [
        (b"", "reply is empty"),
        ("", "reply is empty"),
        (b"Internal Server Error", "reply is not JSON: 'Internal Server Error'"),
        (b"\xff\xfe", "reply is not JSON: '\ufffd\ufffd'"),
        (b'{"env_id": ', "reply is not JSON: '{\"env_id\": '"),
        (b"null", "reply is a JSON null, not a probe object or a log stream name: null"),
        (b"42", "reply is a JSON number, not a probe object or a log stream name: 42"),
        (b"[1, 2]", "reply is a JSON array, not a probe object or a log stream name: [1, 2]"),
        (b"true", "reply is a JSON boolean, not a probe object or a log stream name: true"),
        (b"{}", "reply has no env_id (keys: none)"),
        (b'{"request_id": "x", "cold": true}', "reply has no env_id (keys: cold, request_id)"),
        (b'""', 'reply env_id is not a non-empty string: ""'),
        (b'{"env_id": null}', "reply env_id is not a non-empty string: null"),
        (b'{"env_id": 5}', "reply env_id is not a non-empty string: 5"),
        (b'{"env_id": "e", "cold": "yes"}', 'reply field cold is not a boolean: "yes"'),
        (b'{"env_id": "e", "cache": true}', "reply field cache is not an object or null: true"),
        (b'{"env_id": "e", "cache": {}}', "reply field cache.hit is not a boolean: null"),
        (b'{"env_id": "e", "env_invocations": 0}', "reply field env_invocations is not a positive integer: 0"),
        (b'{"env_id": "e", "probe": 2}', "reply is probe contract version 2; this plugin reads version 1"),
        (b'{"env_id": "e", "probe": true}', "reply is probe contract version True; this plugin reads version 1"),
        (b'{"errorMessage": "x", "errorType": "KeyError"}', "function error: KeyError: x"),
        (b'{"statusCode": "200", "body": ""}', 'reply statusCode is not an integer: "200"'),
        (b'{"statusCode": 200, "body": {}}', "reply body is not a string: {}"),
        (b'{"statusCode": 200, "body": ""}', "reply is empty"),
        (
            b'{"statusCode": 200, "body": "eA==", "isBase64Encoded": true}',
            "reply body is base64-encoded; a probe reply is JSON text",
        ),
    ],
)
def test_faults_have_precise_messages(reply, message):
    with pytest.raises(ProbeReplyError) as info:
        parse_reply(reply)
    assert str(info.value) == message


def test_long_replies_are_cut_in_messages():
    with pytest.raises(ProbeReplyError) as info:
        parse_reply(b"x" * 1000)
    assert str(info.value) == "reply is not JSON: " + repr("x" * 80) + "... (1000 chars)"


def test_env_id_length_is_bounded():
    parse_reply({"env_id": "e" * MAX_ENV_ID_LEN})
    with pytest.raises(ProbeReplyError, match=f"^reply env_id is longer than {MAX_ENV_ID_LEN} characters"):
        parse_reply({"env_id": "e" * (MAX_ENV_ID_LEN + 1)})


def test_probe_error_is_a_value_error_shown_plainly():
    assert issubclass(ProbeReplyError, ValueError)
    # Locust's failure table shows repr(error)
    assert repr(ProbeReplyError("reply is empty")) == "ProbeReplyError: reply is empty"


def test_failed_call_messages():
    assert http_failure(502, b"Internal Server Error") == "HTTP 502: 'Internal Server Error'"
    assert http_failure(429, b'{"Message":"Rate Exceeded."}') == 'throttled: HTTP 429: \'{"Message":"Rate Exceeded."}\''
    assert http_failure(500, b"") == "HTTP 500: (empty body)"
    assert http_failure(0, None, ConnectionRefusedError(111, "Connection refused")) == (
        "no reply: ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert invoke_failure(
        "TooManyRequestsException", 429, "Rate Exceeded.", "ReservedFunctionConcurrentInvocationLimitExceeded"
    ) == ("throttled: TooManyRequestsException (ReservedFunctionConcurrentInvocationLimitExceeded): Rate Exceeded.")
    assert invoke_failure("ResourceNotFoundException", 404, "Function not found: x") == (
        "invoke failed: ResourceNotFoundException (HTTP 404): Function not found: x"
    )
    assert invoke_failure("ServiceException", None, None) == "invoke failed: ServiceException"
    payload = json.dumps({"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": []})
    assert function_error("Unhandled", payload.encode()) == "function error (Unhandled): RuntimeError: boom"
    assert function_error("Unhandled", b"oops") == "function error (Unhandled): 'oops'"
    assert function_error("Handled", b"") == "function error (Handled): (empty payload)"
    long = function_error("Unhandled", {"errorType": "E", "errorMessage": "m" * 200})
    assert long == "function error (Unhandled): E: " + "m" * 80 + "..."
    # each timeout names its own request id: dropped, so equal faults make one failure row
    for rid in ("5f0c1a2b-0000-4000-8000-000000000001", "5f0c1a2b-0000-4000-8000-000000000002"):
        timed_out = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds",
        }
        assert function_error("Unhandled", timed_out) == (
            "function error (Unhandled): Sandbox.Timedout: Task timed out after 1.00 seconds"
        )
