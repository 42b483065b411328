"""The Node.js probe (probe_lambda/node/probe.mjs) against the Python probe it
mirrors: run for real in the emulator (boto3 and HTTP), every expected error
and setting computed by handler.py in this process, so the two cannot drift."""

from __future__ import annotations

import json
import os
import shutil
import time
import types
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml
from node_script import node_json

import probe_lambda.handler as py_probe
from lambda_affinity.core.reply import parse_reply
from lambda_affinity.emulator.config import probe_folder
from lambda_affinity.emulator.process import EmulatorProcess

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs `node` on PATH")
slow = pytest.mark.slow  # the emulator tests; the settings tests below take a fraction of a second

NODE_DIR = probe_folder(node=True)
PROBE_MJS = os.path.join(NODE_DIR, "probe.mjs")
CONTRACT_KEYS = {
    "env_id",
    "request_id",
    "cold",
    "new_environment",
    "init_type",
    "env_invocations",
    "env_age_ms",
    "session",
    "cache",
    "probe",
}
CANARY = "canary-must-not-leak"
TTL_S = 0.5
MISS_DELAY_MS = 300


# -- settings: handler.py's _env_number, value for value (no emulator) ----------
RAW_SETTINGS = [
    None,
    "",
    "2",
    " 7 ",
    "\t3\n",
    "2.9",
    "-5",
    "0",
    "1e3",
    "1E-2",
    "+4",
    ".5",
    "5.",
    "1_000",
    "1__0",
    "_1",
    "1_",
    "1_e2",
    "0x10",
    "0b1",
    "0o7",
    "abc",
    " ",
    "\x1c3",
    "\xa03\u3000",
    "\ufeff3",
    "\x853",
    "inf",
    "-Infinity",
    "INF",
    "1e400",
    "-1e400",
    "١٢",
    "１２",  # noqa: RUF001 - full-width digits on purpose: Unicode digits the parsers must agree on
    "\U0001d7cf\U0001d7d0",
    "1 2",
    "12345678",
    "0.0001",
    "86401",
    "10000.5",
    "Infinity",
    "3,5",
]
SETTINGS = [
    ("AFFINITY_CACHE_SIZE", 10000, 1, 1_000_000),
    ("AFFINITY_CACHE_TTL_S", 900.0, 0.001, 86400.0),
    ("AFFINITY_MISS_DELAY_MS", 0.0, 0.0, 10_000.0),
]


def node_env_numbers(cases):
    """envNumber(name, default, lo, hi) in Node for each (raw, setting) case."""
    script = (
        "import { envNumber } from " + json.dumps("file://" + PROBE_MJS) + ";\n"
        "import fs from 'node:fs';\n"
        "const out = JSON.parse(fs.readFileSync(0, 'utf8')).map(([raw, [name, d, lo, hi]]) => {\n"
        "  if (raw === null) delete process.env[name]; else process.env[name] = raw;\n"
        "  return envNumber(name, d, lo, hi); });\n"
        "process.stdout.write(JSON.stringify(out));\n"
    )
    return node_json(script, cases, env={"PATH": os.environ["PATH"]})


def test_settings_parse_clamp_and_fall_back_as_handler_py(monkeypatch):
    cases = [(raw, setting) for raw in RAW_SETTINGS for setting in SETTINGS]
    expected = []
    for raw, (name, default, lo, hi) in cases:
        if raw is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, raw)
        expected.append(py_probe._env_number(name, default, lo, hi))
    got = node_env_numbers(cases)
    mismatches = [
        (raw, s[0], e, g) for (raw, s), e, g in zip(cases, expected, got, strict=True) if e != pytest.approx(g)
    ]
    assert mismatches == []
    # The size is int() of the clamped value in both: truncation.
    assert int(py_probe._env_number("X_UNSET", 2.9, 1, 10)) == 2


def test_nan_setting_falls_back_to_the_default():
    # handler.py lets NaN through its clamp (documented in probe.mjs); here it is the default.
    got = node_env_numbers([[raw, s] for raw in ("nan", "-NaN") for s in SETTINGS])
    assert got == [s[1] for s in SETTINGS] * 2


def node_first_calls(environment: dict, pause_ms: int) -> list:
    """The Node probe's first two replies in a fresh process (its init: the import), the first `pause_ms`
    after the init, on the real clock."""
    script = (
        "const p = await import(" + json.dumps("file://" + PROBE_MJS) + ");\n"
        "let text = ''; for await (const chunk of process.stdin) text += chunk;\n"
        "await new Promise((r) => setTimeout(r, JSON.parse(text)));\n"
        "const out = [await p.handler({session: 's'}, {awsRequestId: 'r1'}),\n"
        "             await p.handler({session: 's'}, {awsRequestId: 'r2'})];\n"
        "process.stdout.write(JSON.stringify(out));\n"
    )
    return node_json(script, pause_ms, env={"PATH": os.environ["PATH"], **environment})


@pytest.mark.parametrize(
    "environment,pause_ms,start",
    [
        ({"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}, 0, (True, False)),
        ({"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "AFFINITY_PROACTIVE_GAP_MS": "150"}, 250, (False, True)),
        ({"AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"}, 0, (False, True)),
        ({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start", "AFFINITY_PROACTIVE_GAP_MS": "150"}, 250, (True, False)),
    ],
)
def test_cold_start_or_new_environment_call_as_handler_py_tells_them(environment, pause_ms, start):
    first, second = node_first_calls(environment, pause_ms)
    assert (first["cold"], first["new_environment"]) == start
    assert first["init_type"] == environment["AWS_LAMBDA_INITIALIZATION_TYPE"] and first["env_age_ms"] >= pause_ms
    assert (second["cold"], second["new_environment"]) == (False, False)
    # handler.py's rule, from the same facts
    from lambda_affinity_wrapper.state import waited_for_init

    gap_s = float(environment.get("AFFINITY_PROACTIVE_GAP_MS", 10000)) / 1000
    assert first["cold"] is waited_for_init(first["init_type"], first["env_age_ms"] / 1000, gap_s)


# -- the probe in the emulator ------------------------------------------------------
def node_function(name, **environment):
    env = {"AFFINITY_CACHE_SIZE": "2", "AFFINITY_CACHE_TTL_S": "60", "AFFINITY_CANARY": CANARY, **environment}
    return {
        "name": name,
        "runtime": "nodejs20.x",
        "code": NODE_DIR,
        "handler": "probe.handler",
        "url": True,
        "environment": env,
    }


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    config = {
        "model": {"policy": "mru", "init_delay_s": 0.01},
        "functions": [
            node_function("node"),  # most tests share it: fresh sessions each
            node_function("node-fresh"),  # the cold/warm test only
            node_function("node-ttl", AFFINITY_CACHE_TTL_S=str(TTL_S)),
            node_function("node-slow", AFFINITY_MISS_DELAY_MS=str(MISS_DELAY_MS)),
        ],
    }
    path = tmp_path_factory.mktemp("emu-node-probe") / "emulator.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = EmulatorProcess(config_path=str(path))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def lam(emu, emulator_lambda_client):
    return emulator_lambda_client(emu.endpoint)


def invoke_raw(lam, name, payload):
    resp = lam.invoke(
        FunctionName=name, Payload=payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    )
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    return resp["Payload"].read()


def invoke(lam, name, payload):
    raw = invoke_raw(lam, name, payload)
    reply = json.loads(raw)
    if isinstance(reply, dict) and "env_id" in reply:
        check_reply(raw, reply)
    return reply


def check_reply(raw: bytes, reply: dict):
    """A contract reply: exactly the contract's keys, nothing echoed, and the
    plugin's parser reads it back."""
    assert set(reply) == CONTRACT_KEYS
    assert reply["probe"] == 1 and reply["env_id"].startswith("20") and reply["request_id"]
    for leak in (CANARY, "EMULATORDUMMY", "emulator/dummy", "emulator-dummy", "nodejs", "AWS_"):
        assert leak.encode() not in raw  # no other environment variable, no credential
    obs = parse_reply(raw)
    assert (obs.env_id, obs.cold, obs.env_invocations, obs.session) == (
        reply["env_id"],
        reply["cold"],
        reply["env_invocations"],
        reply["session"],
    )
    assert obs.cache_hit == (None if reply["cache"] is None else reply["cache"]["hit"])


def http(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def url_get(emu, name, query=None, headers=None):
    url = emu.function_urls[name] + ("?" + urllib.parse.urlencode(query) if query else "")
    return http(url, headers)


def python_answer(event):
    """What handler.py answers for the same event (only bad events: no state)."""
    return py_probe.handler(event, types.SimpleNamespace(aws_request_id="python"))


@slow
def test_sequential_calls_are_cold_then_warm_on_one_environment(lam):
    replies = [invoke(lam, "node-fresh", {"session": "fresh"}) for _ in range(3)]
    assert [r["cold"] for r in replies] == [True, False, False]
    assert [r["new_environment"] for r in replies] == [False, False, False]  # on demand: the first call waited
    assert {r["init_type"] for r in replies} == {"on-demand"}  # as the emulator sets it
    assert [r["env_invocations"] for r in replies] == [1, 2, 3]
    assert len({r["env_id"] for r in replies}) == 1
    assert len({r["request_id"] for r in replies}) == 3
    ages = [r["env_age_ms"] for r in replies]
    assert ages == sorted(ages) and ages[0] >= 0


@slow
def test_same_session_twice_is_a_hit_and_no_session_has_no_cache(lam):
    first, second = (invoke(lam, "node", {"session": "same-user"}) for _ in range(2))
    assert first["cache"]["hit"] is False and first["cache"]["age_ms"] is None
    assert second["cache"]["hit"] is True and 0 <= second["cache"]["age_ms"] < 60_000
    for payload in ({}, None, {"other": 1}, {"session": None}):
        reply = invoke(lam, "node", payload)
        assert reply["session"] is None and reply["cache"] is None
        assert "error" not in python_answer(payload)


@slow
def test_lru_of_two_evicts_the_least_recently_used_as_handler_py_does(lam):
    sequence = ["lru-a", "lru-b", "lru-a", "lru-c", "lru-a", "lru-b", "lru-c"]
    replies = [invoke(lam, "node", {"session": s}) for s in sequence]
    hits = [r["cache"]["hit"] for r in replies]
    # a hit refreshes a, so c evicts b; then b evicts a... as the Python cache does on the same calls
    assert hits == [False, False, True, False, True, False, False]
    reference = py_probe.SessionCache(2, 60.0)
    assert hits == [reference.lookup(s, float(i))[0] for i, s in enumerate(sequence)]
    assert [r["cache"]["entries"] for r in replies[1:]] == [2] * (len(sequence) - 1)


@slow
def test_ttl_expiry_makes_a_cached_session_miss_again(lam):
    first = invoke(lam, "node-ttl", {"session": "ttl-user"})
    soon = invoke(lam, "node-ttl", {"session": "ttl-user"})
    assert first["cache"]["hit"] is False
    assert soon["cache"]["hit"] is True and soon["cache"]["age_ms"] < TTL_S * 1000
    time.sleep(TTL_S + 0.2)
    late = invoke(lam, "node-ttl", {"session": "ttl-user"})
    assert late["cache"] == {"hit": False, "entries": 1, "age_ms": None}
    assert invoke(lam, "node-ttl", {"session": "ttl-user"})["cache"]["hit"] is True  # cached anew


@slow
def test_miss_delay_is_paid_on_a_miss_only(lam):
    started = time.monotonic()
    miss = invoke(lam, "node-slow", {"session": "slow-user"})
    miss_s = time.monotonic() - started
    started = time.monotonic()
    hit = invoke(lam, "node-slow", {"session": "slow-user"})
    hit_s = time.monotonic() - started
    assert miss["cache"]["hit"] is False and hit["cache"]["hit"] is True
    assert miss_s >= MISS_DELAY_MS / 1000 > hit_s


@slow
def test_function_url_takes_the_session_from_header_then_query(emu):
    status, headers, body = url_get(emu, "node", query={"session": "q-user"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    reply = json.loads(body)
    check_reply(body, reply)
    assert reply["session"] == "q-user" and reply["cache"]["hit"] is False
    status, _, body = url_get(emu, "node", headers={"x-affinity-session": "q-user"})
    reply = json.loads(body)
    check_reply(body, reply)
    assert status == 200 and reply["session"] == "q-user" and reply["cache"]["hit"] is True
    # the header wins over the query, as in handler.py
    status, _, body = url_get(emu, "node", query={"session": "q-other"}, headers={"X-Affinity-Session": "h-user"})
    assert status == 200 and json.loads(body)["session"] == "h-user"
    status, _, body = url_get(emu, "node")
    reply = json.loads(body)
    check_reply(body, reply)
    assert reply["session"] is None and reply["cache"] is None


@slow
def test_url_event_through_the_invoke_api_is_a_proxy_result_the_parser_reads(lam):
    event = {
        "requestContext": {"http": {"method": "GET"}},
        "rawPath": "/",
        "headers": {"x-affinity-session": "proxied"},
    }
    result = invoke(lam, "node", event)
    assert result["statusCode"] == 200 and result["headers"] == {"content-type": "application/json"}
    reply = json.loads(result["body"])
    check_reply(result["body"].encode(), reply)
    assert reply["session"] == "proxied"
    assert parse_reply(json.dumps(result).encode()).session == "proxied"


URL = {"requestContext": {"http": {"method": "GET"}}, "rawPath": "/"}
BAD_PAYLOADS = [
    "a string",
    42,
    1.5,
    -0.25,
    True,
    False,
    [],
    [{"session": "x"}],
    {"session": ""},
    {"session": 7},
    {"session": True},
    {"session": ["a"]},
    {"session": {"id": "a"}},
    {"session": "x" * 257},
    {"session": "\U0001f600" * 257},
    dict(URL, headers="x"),
    dict(URL, headers=[1]),
    dict(URL, headers=True),
    dict(URL, queryStringParameters="s"),
    dict(URL, queryStringParameters=[["session", "a"]]),
    dict(URL, headers={"X-Affinity-Session": ""}),
    dict(URL, headers={"x-affinity-session": 5}),
    dict(URL, queryStringParameters={"session": ""}),
    dict(URL, headers={"x-affinity-session": "x" * 257}),
]


@slow
@pytest.mark.parametrize("payload", BAD_PAYLOADS, ids=lambda p: json.dumps(p)[:40])
def test_bad_event_gets_the_python_probes_error(lam, payload):
    expected = python_answer(payload)
    assert expected["statusCode"] == 400  # the case is a bad event for handler.py too
    got = invoke(lam, "node", payload)
    if "body" in expected:  # a URL event: compare the decoded bodies
        assert {k: v for k, v in got.items() if k != "body"} == {k: v for k, v in expected.items() if k != "body"}
        assert json.loads(got["body"]) == json.loads(expected["body"])
    else:
        assert got == expected


@slow
def test_edge_events_that_are_fine_for_python_are_fine_here(lam):
    long_astral = "\U0001f600" * 256  # 256 code points, 512 UTF-16 units: Python's len() decides
    for payload in (
        {"session": long_astral},
        {"session": "x" * 256},
        dict(URL, headers=0, queryStringParameters={"session": "empty-headers"}),
        dict(URL, headers={}, queryStringParameters=[]),
        dict(URL, headers={"x-affinity-session": None}, queryStringParameters={"session": "ignored"}),
    ):
        expected = python_answer(payload)
        assert "error" not in expected and expected.get("statusCode", 200) == 200
        got = invoke(lam, "node", payload)
        reply = json.loads(got["body"]) if "body" in got else got
        py_reply = json.loads(expected["body"]) if "body" in expected else expected
        assert reply["session"] == py_reply["session"]


@slow
def test_bad_session_over_a_real_function_url_is_a_400_with_the_python_message(emu):
    for query, headers in (({"session": ""}, None), (None, {"x-affinity-session": "y" * 257})):
        status, resp_headers, body = url_get(emu, "node", query=query, headers=headers)
        event = dict(URL, headers=headers or {}, queryStringParameters=query or {})
        expected = python_answer(event)
        assert status == expected["statusCode"] == 400
        assert resp_headers["Content-Type"] == "application/json"
        assert json.loads(body) == json.loads(expected["body"])


@slow
def test_stop_leaves_no_process_behind(emu, emulator_descendants):
    import psutil

    below = emulator_descendants(emu.proc.pid)
    assert len(below) >= 2  # the fork-server and at least one node environment
    assert emu.stop() == 0
    time.sleep(0.1)
    assert [p for p in below if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE] == []
