"""The emulator's config file: valid files load, bad ones stop with the file,
the key and what is wrong; and the pure pieces of the front ends."""

from __future__ import annotations

import base64
import json
import os

import pytest
from config_files import config_error, write

from lambda_affinity.emulator.config import ConfigFileError, default_config, load_config
from lambda_affinity.emulator.function_url import convert_result
from lambda_affinity.emulator.invocation import LogTail, report_line, timeout_result
from lambda_affinity.emulator.sandbox import lambda_environment


def test_default_config_serves_the_bundled_probe():
    cfg = default_config()
    [fn] = cfg.functions
    assert (fn.name, fn.handler, fn.url, fn.auth_type) == ("probe", "handler.handler", True, "NONE")
    assert os.path.exists(os.path.join(fn.code, "handler.py"))


def test_full_config_loads(tmp_path):
    (tmp_path / "src").mkdir()
    path = write(
        tmp_path,
        """
region: eu-west-1
model: {policy: lru, keep_alive_s: 30, init_delay_s: 0.1}
functions:
  - name: api
    handler: app.handler
    code: src
    memory: 512
    timeout: 2.5
    environment: {A: x, N: 3}
    reserved_concurrency: 4
    url: {auth_type: AWS_IAM}
  - name: node-probe
    runtime: nodejs20.x
    url: false
""",
    )
    cfg = load_config(path)
    api, node = cfg.functions
    assert cfg.region == "eu-west-1" and cfg.model.policy == "lru" and cfg.model.keep_alive_s == 30
    assert api.code == str(tmp_path / "src") and api.memory == 512 and api.timeout == 2.5
    assert api.environment == {"A": "x", "N": "3"} and api.reserved_concurrency == 4 and api.auth_type == "AWS_IAM"
    assert node.is_node and node.handler == "index.handler" and node.url is False
    assert node.code.endswith(os.path.join("probe_lambda", "node"))


@pytest.mark.parametrize(
    "text,key,words",
    [
        ("functions: [{name: a, memory: 64}]", "functions[0].memory", "128 to 10240"),
        ("functions: [{name: a, timeout: fast}]", "functions[0].timeout", "'fast'"),
        ("functions: [{name: 'bad name'}]", "functions[0].name", "letters, digits"),
        ("functions: [{name: a}, {name: a}]", "functions[1].name", "defined twice"),
        ("functions: [{name: a, handler: nodot, code: .}]", "functions[0].handler", "module.function"),
        ("functions: [{name: a, code: ./missing, handler: a.b}]", "functions[0].code", "does not exist"),
        ("functions: [{name: a, runtime: java21}]", "functions[0].runtime", "python3.N or nodejsN.x"),
        (
            "functions: [{name: a, runtime: nodejs20.x, runtime_client: awslambdaric}]",
            "functions[0].runtime_client",
            "Python runtime client",
        ),
        ("functions: [{name: a, environment: {AWS_REGION: x}}]", "functions[0].environment.AWS_REGION", "reserved"),
        ("functions: [{name: a, environment: {A: [1]}}]", "functions[0].environment.A", "a list"),
        (
            'functions: [{name: a, environment: {A: "x\\0y"}}]',
            "functions[0].environment.A",
            "NUL byte (at character 2)",
        ),
        ("functions: [{name: a, url: {auth_type: OPEN}}]", "functions[0].url.auth_type", "NONE or AWS_IAM"),
        ("functions: [{name: a, reserved_concurrency: -1}]", "functions[0].reserved_concurrency", "-1"),
        ("functions: [{name: a, colour: red}]", "functions[0].colour", "unknown key"),
        ("functions: [{name: a, affinity_wrapper: yes please}]", "functions[0].affinity_wrapper", "true or false"),
        ("functions: [{name: a, layers: ./x.zip}]", "functions[0].layers", "a list of at most 5"),
        ("functions: [{name: a, layers: [a, b, c, d, e, f]}]", "functions[0].layers", "at most 5"),
        ("functions: [{name: a, layers: [./missing.zip]}]", "functions[0].layers[0]", "neither a folder nor a zip"),
        ("functions: [{name: a, layers: [emu.yaml]}]", "functions[0].layers[0]", "neither a folder nor a zip"),
        ("functions: [{name: a, layers: [7]}]", "functions[0].layers[0]", "a path to a zip or a folder"),
        ("model: {keep_alive_s: -1}", "model.keep_alive_s", ">= 0"),
        ("model: {policy: fifo}", "model.policy", "'fifo'"),
        ("model: {warp: 9}", "model.warp", "unknown option"),
        ("functions: []", "functions", "non-empty list"),
        ("- a\n- b", "(top level)", "mapping"),
        ("colour: red", "colour", "unknown key"),
        (
            "network_latency: 0.1:0.05",
            "network_latency",
            "'0.1:0.05' is not a distribution: A:B needs A <= B, got 0.1 s > 0.05 s",
        ),
        ("network_latency: exp:0", "network_latency", "is not a distribution"),
        ("network_latency: -0.1", "network_latency", "-0.1"),
        ("network_latency: .nan", "network_latency", "is not a distribution"),
        ("network_latency: [0.06, 0.1]", "network_latency", "got a list"),
        ("network_latency: true", "network_latency", "got True"),
        ("service_time: fast", "service_time", "'fast' is not a distribution"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path, text, key, words):
    config_error(tmp_path, text, key, words)


@pytest.mark.parametrize(
    "value,kept",
    [("'0.06:0.1'", "0.06:0.1"), ("exp:0.08", "exp:0.08"), ("fixed:0.05", "fixed:0.05"), ("0.08", "0.08"), ("0", "0")],
)
def test_modelled_network_and_service_time_load(tmp_path, value, kept):
    cfg = load_config(write(tmp_path, f"network_latency: {value}\nservice_time: {value}\n"))
    assert cfg.network_latency == cfg.service_time == kept
    # none unless asked for: benchmarks and existing configs see loopback's own timing
    assert load_config(write(tmp_path, "{}")).network_latency is None and default_config().service_time is None


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "functions:\n  - name: a\n   bad: [\n")
    with pytest.raises(ConfigFileError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}: line ") and "not valid YAML" in str(exc.value)


def test_config_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"functions:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigFileError, match=r"latin1\.yaml: not UTF-8 text \(byte 24: invalid continuation byte\)"):
        load_config(str(path))


def test_lambda_environment_is_lambdas_and_the_functions_only(monkeypatch):
    monkeypatch.setenv("SOME_SECRET_OF_THE_HOST", "x")
    cfg = default_config()
    fn = cfg.functions[0]
    fn.environment = {"MINE": "1"}
    env = lambda_environment(fn, cfg, "2024/01/01/[$LATEST]" + "a" * 32, "127.0.0.1:9001")
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].endswith("a" * 32) and env["_HANDLER"] == "handler.handler"
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001" and env["MINE"] == "1"
    assert "SOME_SECRET_OF_THE_HOST" not in env


# -- pure pieces ------------------------------------------------------------------
def test_convert_result_follows_aws():
    # AWS re-serialises compactly, and sends a string as its text
    assert convert_result(b'{"a": 1}') == (200, [("Content-Type", "application/json")], b'{"a":1}')
    assert convert_result(b'[1, "\\u00e9"]')[2] == '[1,"\u00e9"]'.encode()
    assert convert_result(b'"text"')[2] == b"text"
    assert convert_result(b"") == (200, [("Content-Type", "application/json")], b"")
    status, headers, body = convert_result(
        json.dumps({"statusCode": 404, "body": "nf", "cookies": ["k=v"], "headers": {"x-a": "1"}}).encode()
    )
    assert (status, body) == (404, b"nf")
    assert ("Set-Cookie", "k=v") in headers and ("Content-Type", "application/json") in headers
    assert (
        convert_result(
            json.dumps(
                {"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(b"\x00").decode()}
            ).encode()
        )[2]
        == b"\x00"
    )
    assert convert_result(b'{"statusCode": "x"}') is None
    assert convert_result(b"not json") is None
    # too deep to parse: 502, not a dead greenlet (json's depth limit grows with Python: 3.13 parses 5000 levels)
    assert convert_result(b"[" * 100_000 + b"]" * 100_000) is None
    # a field that would break the response's framing on the wire: 502
    for bad in (
        {"headers": {"x-a": "1\r\nx-b: 2"}},
        {"headers": {"x a": "1"}},
        {"headers": {"x-a": "\x00"}},
        {"cookies": ["k=v\nx-b: 2"]},
    ):
        assert convert_result(json.dumps({"statusCode": 200, **bad}).encode()) is None, bad


def test_nesting_depth_is_counted_like_aws_on_every_python():
    from lambda_affinity.emulator.invocation import MAX_JSON_DEPTH, too_deep

    assert too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert not too_deep(b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1))
    assert not too_deep(b"[" + b"[]," * 5000 + b"[]]")  # many brackets, shallow
    assert not too_deep(b'["' + b"[" * 5000 + b'\\"' + b"{" * 5000 + b'"]')  # in a string (with a \\")


def test_log_lines_and_errors_look_like_lambdas():
    line = report_line("r1", 12.345, 128, 40, init_ms=101.5)
    assert line == (
        "REPORT RequestId: r1\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 40 MB\tInit Duration: 101.50 ms\t"
    )
    err = json.loads(timeout_result("r1", 3).payload)
    assert err["errorMessage"] == "RequestId: r1 Error: Task timed out after 3.00 seconds"
    tail = LogTail()
    for i in range(1000):
        tail.add(f"line {i}")
    raw = base64.b64decode(tail.tail_base64())
    assert len(raw) == 4096 and raw.endswith(b"line 999\n")


def test_layers_and_the_wrapper_load_and_set_the_handler(tmp_path):
    import zipfile

    (tmp_path / "src").mkdir()
    (tmp_path / "opt-folder").mkdir()
    with zipfile.ZipFile(tmp_path / "layer.zip", "w") as zf:
        zf.writestr("python/x.py", "")
    text = (
        "functions:\n"
        "  - {name: api, code: ./src, handler: app.handler, affinity_wrapper: true, layers: [layer.zip, opt-folder]}\n"
        "  - {name: web, code: ./src, handler: app.handler, runtime: nodejs20.x, affinity_wrapper: true}\n"
    )
    cfg = load_config(write(tmp_path, text))
    api, web = cfg.functions
    assert api.layers == [str(tmp_path / "layer.zip"), str(tmp_path / "opt-folder")] and api.affinity_wrapper
    env = lambda_environment(api, cfg, "2024/01/01/[$LATEST]" + "a" * 32, "127.0.0.1:9001", opt="/tmp/opt-api")
    assert (env["_HANDLER"], env["AFFINITY_HANDLER"]) == ("lambda_affinity_wrapper.handler", "app.handler")
    assert env["LAMBDA_AFFINITY_OPT"] == "/tmp/opt-api" and "NODE_PATH" not in env
    env = lambda_environment(web, cfg, "2024/01/01/[$LATEST]" + "b" * 32, "127.0.0.1:9001", opt="/tmp/opt-web")
    assert env["_HANDLER"] == "/opt/nodejs/node_modules/lambda-affinity-wrapper/index.handler"
    assert env["NODE_PATH"] == "/tmp/opt-web/nodejs/node20/node_modules:/tmp/opt-web/nodejs/node_modules"
    plain = load_config(write(tmp_path, "functions: [{name: p, code: ./src, handler: app.handler}]")).functions[0]
    assert (plain.layers, plain.affinity_wrapper) == ([], False)
