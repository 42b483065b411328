"""The affinity wrapper around ordinary apps (tests/fixtures/handlers/own_app/, a Python router and a Node.js
app), run by the emulator plain and wrapped through configuration only (`affinity_wrapper: true`, or the layer
zip and a folder in `layers:` with the wrapper's handler named as on AWS): every status, header and body byte the
same apart from the added x-affinity-* headers; errors, timeouts, non-dict results and binary bodies as plain;
hostile session keys get no session header and never an error."""

from __future__ import annotations

import glob
import http.client
import importlib.util
import json
import os
import re
import shutil
import tempfile
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from node_script import node_json

from lambda_affinity.aws.layer import build_layer
from lambda_affinity.emulator.process import EmulatorProcess

APP = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "handlers", "own_app")
VARYING = {"date", "x-amzn-requestid"}  # per response, wrapped or not
AFFINITY = "x-affinity-"
ROUTES = ["/hello", "/binary", "/created", "/plain", "/nostatus", "/shared", "/shared", "/boom", "/missing"]
WITH_HEADERS = {"/hello", "/binary", "/created", "/shared", "/missing"}  # results with a statusCode
NODE = shutil.which("node") is not None
RIC = importlib.util.find_spec("awslambdaric") is not None
PAIRS = (
    [("py-plain", "py-wrapped"), ("py-plain", "py-layer")]
    + ([("ric-plain", "ric-wrapped")] if RIC else [])
    + (
        [("node-plain", "node-wrapped"), ("node-plain", "node-layer"), ("node-callback", "node-callback-wrapped")]
        if NODE
        else []
    )
)
# errors and timeouts: each runtime client once, wrapped by configuration
ERROR_PAIRS = [p for p in PAIRS if p[1] in ("py-wrapped", "ric-wrapped", "node-wrapped", "node-callback-wrapped")]


def functions(layer_zip: str) -> list:
    py, node = os.path.join(APP, "python"), os.path.join(APP, "node")
    fns = [
        {"name": "py-plain", "code": py, "handler": "app.handler", "timeout": 0.5},
        {"name": "py-wrapped", "code": py, "handler": "app.handler", "timeout": 0.5, "affinity_wrapper": True},
        {  # as on AWS: the layer zip (and a folder layer), the wrapper's handler, the app's in AFFINITY_HANDLER
            "name": "py-layer",
            "code": py,
            "handler": "lambda_affinity_wrapper.handler",
            "timeout": 0.5,
            "layers": [layer_zip, os.path.join(APP, "layer")],
            "environment": {"AFFINITY_HANDLER": "app.handler", "AFFINITY_SESSION_FROM": "cookie:sid"},
        },
        {
            "name": "py-field",
            "code": py,
            "handler": "app.handler",
            "affinity_wrapper": True,
            "environment": {"AFFINITY_INVOKE_FIELD": "1"},
        },
    ]
    if RIC:  # AWS's own runtime client: the wrapper's handler and the layer's path reach it too
        ric = {"code": py, "handler": "app.handler", "timeout": 0.5, "runtime_client": "awslambdaric"}
        fns += [{**ric, "name": "ric-plain"}, {**ric, "name": "ric-wrapped", "affinity_wrapper": True}]
    if NODE:
        node_fn = {"code": node, "handler": "app.handler", "runtime": "nodejs20.x", "timeout": 0.5}
        fns += [
            {**node_fn, "name": "node-plain"},
            {**node_fn, "name": "node-wrapped", "affinity_wrapper": True},
            {
                **node_fn,
                "name": "node-layer",
                "handler": "/opt/nodejs/node_modules/lambda-affinity-wrapper/index.handler",
                "layers": [layer_zip],
                "environment": {"AFFINITY_HANDLER": "app.handler", "AFFINITY_SESSION_FROM": "cookie:sid"},
            },
            {**node_fn, "name": "node-field", "affinity_wrapper": True, "environment": {"AFFINITY_INVOKE_FIELD": "1"}},
            {**node_fn, "name": "node-callback", "handler": "app.callbackHandler"},
            {**node_fn, "name": "node-callback-wrapped", "handler": "app.callbackHandler", "affinity_wrapper": True},
        ]
    return fns


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emu-wrapper")
    (folder / "layer.zip").write_bytes(build_layer())
    config = {"model": {"policy": "mru", "init_delay_s": 0.01}, "functions": functions(str(folder / "layer.zip"))}
    (folder / "emulator.yaml").write_text(yaml.safe_dump(config))
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "lambda-affinity-opt-*")))
    with EmulatorProcess(config_path=str(folder / "emulator.yaml")) as proc:
        during = set(glob.glob(os.path.join(tempfile.gettempdir(), "lambda-affinity-opt-*"))) - before
        assert len(during) == 1  # every function's /opt stand-in in one folder...
        yield proc
    assert not any(os.path.exists(path) for path in during)  # ...gone with the emulator


@pytest.fixture(scope="module")
def lam(emu, emulator_lambda_client):
    return emulator_lambda_client(emu.endpoint)


def get(emu, name: str, path: str, headers: list | None = None):
    """(status, [(name, value)...] as sent, body bytes); headers may carry raw bytes."""
    url = urllib.parse.urlsplit(emu.function_urls[name])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest("GET", path)
        for key, value in headers or []:
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def split(headers: list) -> tuple[list, dict]:
    """(the app's headers in order, minus those varying per response; the affinity headers)."""
    own = [(k, v) for k, v in headers if k.lower() not in VARYING and not k.lower().startswith(AFFINITY)]
    return own, {k.lower(): v for k, v in headers if k.lower().startswith(AFFINITY)}


@pytest.mark.parametrize("plain, wrapped", PAIRS)
def test_wrapped_app_answers_as_the_plain_one_apart_from_the_affinity_headers(emu, plain, wrapped):
    for route in ROUTES:
        session = [("x-affinity-session", "same-user"), ("cookie", "sid=same-user")]
        p_status, p_headers, p_body = get(emu, plain, route, session)
        w_status, w_headers, w_body = get(emu, wrapped, route, session)
        assert (w_status, split(w_headers)[0], w_body) == (p_status, split(p_headers)[0], p_body), route
        assert not split(p_headers)[1]
        facts = split(w_headers)[1]
        if route not in WITH_HEADERS:  # the body itself, or an error: nowhere to put headers
            assert not facts, route
            continue
        names = ("env", "cold", "env-invocations", "session-hit", "init-age-ms", "new-env", "init-type")
        assert set(facts) == {AFFINITY + k for k in names}
        assert facts["x-affinity-env"].startswith("20") and "[$LATEST]" in facts["x-affinity-env"]
        assert facts["x-affinity-cold"] == ("1" if facts["x-affinity-env-invocations"] == "1" else "0")
        # on demand, as the emulator initialises: a first call waited for the init, none was initialised ahead
        assert (facts["x-affinity-new-env"], facts["x-affinity-init-type"]) == ("0", "on-demand")
    binary = get(emu, wrapped, "/binary")[2]
    assert binary == bytes(range(256))  # base64 in the result, raw bytes on the wire, as plain


@pytest.mark.parametrize("name", ["py-wrapped"] + (["node-wrapped"] if NODE else []))
def test_counts_init_age_and_session_hits_per_environment(emu, name):
    replies = [split(get(emu, name, "/hello", [("x-affinity-session", f"{name}-counted")])[1])[1] for _ in range(3)]
    assert len({r["x-affinity-env"] for r in replies}) == 1  # one at a time: one environment, reused
    counts = [int(r["x-affinity-env-invocations"]) for r in replies]
    assert counts == list(range(counts[0], counts[0] + 3))
    assert [r["x-affinity-session-hit"] for r in replies] == ["0", "1", "1"]
    ages = [int(r["x-affinity-init-age-ms"]) for r in replies]
    assert ages == sorted(ages) and ages[0] >= 0
    other = split(get(emu, name, "/hello", [("x-affinity-session", f"{name}-another")])[1])[1]
    assert other["x-affinity-session-hit"] == "0"
    assert "x-affinity-session-hit" not in split(get(emu, name, "/hello")[1])[1]  # no key: no header


HOSTILE = [
    [("x-affinity-session", "k" * 257)],  # over the probe's 256
    [("x-affinity-session", b"\xff\xfe caf\xe9 " * 60)],  # bytes no UTF-8 decoder reads, over 256 as text
    [("x-affinity-session", "")],
    [("x-affinity-session", "a"), ("X-Affinity-Session", "b" * 300)],  # joined with a comma: over 256
    [("cookie", "sid")],
    [("cookie", ";;=;sid=;=x; sid")],
    [("cookie", "sid=" + "c" * 257)],
    [("cookie", b"\xe9\xff=\xfe; other=1; sid")],
]


@pytest.mark.parametrize("plain, wrapped", PAIRS)
def test_hostile_session_keys_get_no_session_header_and_no_error(emu, plain, wrapped):
    for headers in HOSTILE:
        p_status, p_headers, p_body = get(emu, plain, "/hello", headers)
        w_status, w_headers, w_body = get(emu, wrapped, "/hello", headers)
        assert (w_status, split(w_headers)[0], w_body) == (p_status, split(p_headers)[0], p_body), headers
        facts = split(w_headers)[1]
        assert "x-affinity-env" in facts and "x-affinity-session-hit" not in facts, headers
    longest = [("x-affinity-session", "k" * 256), ("cookie", "sid=" + "c" * 256)]
    assert "x-affinity-session-hit" in split(get(emu, wrapped, "/hello", longest)[1])[1]


def test_a_layer_folder_is_on_the_python_path_and_the_wrapper_comes_from_the_layer_zip(emu):
    status, _, body = get(emu, "py-layer", "/layer")
    assert status == 200 and json.loads(body) == {"greeting": "hello from a layer folder", "wrapper_from_opt": True}


def invoke(lam, name: str, event, tail: bool = False):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail" if tail else "None")
    return resp.get("FunctionError"), resp["Payload"].read(), resp


UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?")


def same_error(plain: bytes, wrapped: bytes) -> None:
    """The same error document but for its request id and the wrapper's frames in the stack (the app's all there)."""
    p, w = json.loads(plain), json.loads(wrapped)
    assert {k: v for k, v in w.items() if k not in ("stackTrace", "requestId")} == {
        k: v for k, v in p.items() if k not in ("stackTrace", "requestId")
    }
    app_frames = [f for f in p.get("stackTrace") or [] if "own_app" in f]
    assert app_frames and all(f in (w.get("stackTrace") or []) for f in app_frames)


@pytest.mark.parametrize("plain, wrapped", ERROR_PAIRS)
def test_raising_timing_out_and_direct_invokes_behave_as_plain(lam, emu, plain, wrapped):
    for event in ({"op": "echo", "n": 1}, {"op": "list"}, None, "text", 7):
        assert invoke(lam, wrapped, event)[:2] == invoke(lam, plain, event)[:2], event
    error_p, body_p, _ = invoke(lam, plain, {"op": "raise"})
    error_w, body_w, _ = invoke(lam, wrapped, {"op": "raise"})
    assert error_p == error_w == "Unhandled"
    same_error(body_p, body_w)  # the stack gains the wrapper's frame, as under any wrapping layer
    slow = {"rawPath": "/slow", "requestContext": {"http": {"method": "GET"}}, "headers": {}}
    with ThreadPoolExecutor(4) as pool:  # four timeouts at once: each takes the function's whole timeout
        calls = [pool.submit(invoke, lam, name, slow) for name in (plain, wrapped)]
        calls += [pool.submit(get, emu, name, "/slow") for name in (plain, wrapped)]
        (error_p, body_p, _), (error_w, body_w, _), p_timeout, w_timeout = (c.result() for c in calls)
    assert error_p == error_w and error_w is not None
    assert STAMP.sub(b"T", UUID.sub(b"ID", body_p)) == STAMP.sub(b"T", UUID.sub(b"ID", body_w))
    assert (p_timeout[0], p_timeout[2]) == (w_timeout[0], w_timeout[2]) and p_timeout[0] >= 500


@pytest.mark.parametrize("name", ["py-wrapped", "py-field"] + (["node-wrapped", "node-field"] if NODE else []))
def test_other_events_log_one_affinity_line_and_the_invoke_field_is_opt_in(lam, name):
    import base64

    _, body, resp = invoke(lam, name, {"op": "echo"}, tail=True)
    log = base64.b64decode(resp["LogResult"]).decode()
    lines = [line for line in log.splitlines() if line.startswith("AFFINITY ")]
    assert len(lines) == 1, log
    doc = json.loads(lines[0].removeprefix("AFFINITY "))
    assert set(doc) == {
        "env",
        "cold",
        "env_invocations",
        "session_hit",
        "init_age_ms",
        "new_environment",
        "init_type",
        "request_id",
        "function",
    }
    assert (doc["new_environment"], doc["init_type"]) == (False, "on-demand")
    assert doc["function"] == name and doc["session_hit"] is None
    assert doc["request_id"] == resp["ResponseMetadata"]["RequestId"]
    reply = json.loads(body)
    if name.endswith("field"):
        assert reply == {"echo": {"op": "echo"}, "_affinity": doc}
    else:
        assert reply == {"echo": {"op": "echo"}}
    assert json.loads(invoke(lam, name, {"op": "list"})[1]) == [1, 2, 3]  # not an object: never a field


# -- the Node.js wrapper's pure parts against the Python one's, case for case (no emulator) -----------------


def node_answers(cases: list) -> list:
    from lambda_affinity.aws.layer import source_dir

    index = os.path.join(source_dir("nodejs"), "index.mjs")
    script = (
        f"import * as w from {json.dumps('file://' + index)};"
        "let text = ''; for await (const chunk of process.stdin) text += chunk;"
        "const out = JSON.parse(text).map(([event, source, result, facts]) => {"
        "  const src = w.parseSource(source); const kind = w.eventKind(event);"
        "  const key = kind === 'other' || !src ? null : w.sessionKey(event, src);"
        "  return [kind, key, w.withHeaders(result, kind, facts)]; });"
        "process.stdout.write(JSON.stringify(out));"
    )
    return node_json(script, cases)


@pytest.mark.skipif(not NODE, reason="needs `node` on PATH")
def test_the_node_wrapper_tells_cold_starts_from_new_environments_as_the_python_one():
    from lambda_affinity.aws.layer import source_dir
    from lambda_affinity_wrapper.state import waited_for_init

    kinds = [None, "on-demand", "provisioned-concurrency", "lambda-managed-instances", "snap-start", "other"]
    cases = [[kind, ms, gap] for kind in kinds for ms in (0, 9999, 10000, 50000) for gap in (10000, 100)]
    index = os.path.join(source_dir("nodejs"), "index.mjs")
    script = (
        f"import * as w from {json.dumps('file://' + index)};"
        "let text = ''; for await (const chunk of process.stdin) text += chunk;"
        "process.stdout.write(JSON.stringify(JSON.parse(text).map(([k, ms, gap]) => w.waitedForInit(k, ms, gap))));"
    )
    got = node_json(script, cases)
    assert got == [waited_for_init(kind, ms / 1000, gap / 1000) for kind, ms, gap in cases]


@pytest.mark.skipif(not NODE, reason="needs `node` on PATH")
def test_the_node_wrapper_reads_events_and_adds_headers_as_the_python_one():
    from lambda_affinity_wrapper import events

    url = {"rawPath": "/", "requestContext": {"http": {}}}
    rest = {"httpMethod": "GET", "requestContext": {}}
    alb_multi = {"httpMethod": "GET", "requestContext": {"elb": {}}}
    cases = [
        ({**url, "headers": {"x-affinity-session": "u1"}}, None, {"statusCode": 200, "headers": {"a": "b"}}),
        ({**url, "headers": {"x-affinity-session": "k" * 257}}, None, {"statusCode": 200}),
        ({**url, "headers": {"x-affinity-session": "\u00e9" * 256}}, None, {"statusCode": 200}),
        ({**url, "cookies": ["a=1", "sid=s1"]}, "cookie:sid", "a string"),
        ({**url, "cookies": ["sid"], "headers": {"cookie": ";;=;sid=x"}}, "cookie:sid", {"no": "status"}),
        ({**rest, "headers": {"X-Session": "u2"}}, "header:X-Session", {"statusCode": 201, "multiValueHeaders": {}}),
        ({**rest, "headers": {"Cookie": "sid=" + "c" * 257}}, "cookie:sid", {"statusCode": 200, "headers": None}),
        ({**alb_multi, "multiValueHeaders": {"x-affinity-session": ["u3"]}}, "", {"statusCode": 200, "headers": {}}),
        ({**url, "headers": "bad"}, "query:x", {"statusCode": 200, "headers": "bad"}),
        ({"op": "echo"}, None, {"ok": 1}),
        ([1], None, [1]),
    ]
    facts = events.Facts("env-1", False, 3, True, 42, True, "provisioned-concurrency")
    got = node_answers([[e, s, r, facts._asdict()] for e, s, r in cases])
    for (event, setting, result), (kind, key, with_headers) in zip(cases, got, strict=True):
        source = events.parse_source(setting)
        expected_kind = events.event_kind(event)
        assert kind == expected_kind.value, event
        http = expected_kind is not events.EventKind.OTHER  # only HTTP events are read for a key
        assert key == (events.session_key(event, source) if source and http else None), event
        assert with_headers == events.with_headers(result, expected_kind, facts), event
