"""End to end: real clients (boto3, the AWS CLI, plain HTTP) against a running
`lambda-affinity emulate` process, one for the whole module."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml
from botocore.exceptions import ClientError

from lambda_affinity.aws import sigv4
from lambda_affinity.emulator.process import EmulatorProcess

pytestmark = pytest.mark.slow

LOG_STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"


@pytest.fixture(scope="module")
def emu(emulator_code, tmp_path_factory):
    faults = str(emulator_code["faults"])
    config = {
        "model": {"policy": "mru", "init_delay_s": 0.02},
        "functions": [
            {"name": "warm"},  # the bundled probe, used by one test only
            {"name": "probe"},
            {"name": "slowprobe", "environment": {"AFFINITY_MISS_DELAY_MS": 600}},
            {
                "name": "faults",
                "handler": "app.handler",
                "code": faults,
                "timeout": 1,
                "environment": {"GREETING": "hello"},
                "memory": 256,
            },
            {"name": "initfail", "handler": "app.handler", "code": str(emulator_code["initfail"])},
            {"name": "limited", "handler": "app.handler", "code": faults, "reserved_concurrency": 1, "timeout": 5},
            {"name": "zero", "reserved_concurrency": 0},
            {"name": "node", "runtime": "nodejs20.x"},
            {"name": "ric", "runtime_client": "awslambdaric"},
            {"name": "private", "url": {"auth_type": "AWS_IAM"}},
            {"name": "nourl", "url": False},
        ],
    }
    path = tmp_path_factory.mktemp("emu-e2e") / "emulator.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(__import__("os").environ, LAMBDA_AFFINITY_CANARY="must-not-leak")
    proc = EmulatorProcess(config_path=str(path), env=env)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def lam(emu, emulator_lambda_client):
    return emulator_lambda_client(emu.endpoint)


def invoke(lam, name, payload=None, **kw):
    args = {"FunctionName": name, **kw}
    if payload is not None:
        args["Payload"] = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    resp = lam.invoke(**args)
    resp["body"] = resp["Payload"].read()
    return resp


def http(url, headers=None, method="GET", data=None):
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def environments(emu):
    return json.loads(http(emu.introspection_url)[2])["environments"]


# -- warm reuse, concurrency ---------------------------------------------------
def test_boto3_sequential_calls_reuse_one_warm_environment(lam):
    replies = [json.loads(invoke(lam, "warm", {"session": "user-1"})["body"]) for _ in range(3)]
    assert [r["cold"] for r in replies] == [True, False, False]
    assert len({r["env_id"] for r in replies}) == 1
    assert LOG_STREAM.match(replies[0]["env_id"])
    assert [r["cache"]["hit"] for r in replies] == [False, True, True]
    assert [r["env_invocations"] for r in replies] == [1, 2, 3]


def test_concurrent_calls_get_distinct_environments(emu, emulator_lambda_client):
    n = 4
    barrier = threading.Barrier(n)
    replies, errors = [], []

    def call(i):
        client = emulator_lambda_client(emu.endpoint)
        barrier.wait()
        try:
            replies.append(json.loads(invoke(client, "slowprobe", {"session": f"s{i}"})["body"]))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len({r["env_id"] for r in replies}) == n
    assert all(r["cold"] for r in replies)


# -- faults -----------------------------------------------------------------------
def test_handler_exception_is_unhandled_function_error_and_keeps_the_environment(lam):
    first = json.loads(invoke(lam, "faults", {})["body"])
    resp = invoke(lam, "faults", {"action": "raise"})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["body"])
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"].startswith("boom")
    assert isinstance(err["stackTrace"], list) and err["stackTrace"]
    after = json.loads(invoke(lam, "faults", {})["body"])
    assert after["env_id"] == first["env_id"] and after["count"] == first["count"] + 2


def test_timeout_returns_task_timed_out_and_recycles_the_environment(lam):
    before = json.loads(invoke(lam, "faults", {})["body"])
    started = time.monotonic()
    resp = invoke(lam, "faults", {"action": "sleep", "seconds": 5})
    assert time.monotonic() - started < 4
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["body"])
    assert "Task timed out after 1.00 seconds" in err["errorMessage"]
    after = json.loads(invoke(lam, "faults", {})["body"])
    assert after["env_id"] != before["env_id"] and after["count"] == 1


@pytest.mark.parametrize("action,status", [("exit", "exit status 3"), ("kill", "signal: killed")])
def test_process_dying_mid_invocation_is_runtime_exit_error_then_fresh_environment(lam, action, status):
    before = json.loads(invoke(lam, "faults", {})["body"])
    resp = invoke(lam, "faults", {"action": action})
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["body"])
    assert err["errorType"] == "Runtime.ExitError"
    assert err["errorMessage"].endswith(f"Runtime exited with error: {status}")
    after = json.loads(invoke(lam, "faults", {})["body"])
    assert after["env_id"] != before["env_id"] and after["count"] == 1


def test_init_error_returns_the_runtime_error_and_next_call_gets_a_fresh_environment(lam, emu):
    for _ in range(2):
        resp = invoke(lam, "initfail", {}, LogType="Tail")
        assert resp["FunctionError"] == "Unhandled"
        err = json.loads(resp["body"])
        assert err["errorType"] == "Runtime.ImportModuleError"
        assert "module_that_does_not_exist_anywhere" in err["errorMessage"]
        log = base64.b64decode(resp["LogResult"]).decode()
        assert "Init Duration" in log and "ImportModuleError" in log
    assert not [e for e in environments(emu) if e["function"] == "initfail"]


def test_response_over_6_mb_is_a_function_error(lam):
    resp = invoke(lam, "faults", {"action": "big"})
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["body"])["errorType"] == "Function.ResponseSizeTooLarge"


# -- the Invoke API's errors, as botocore sees AWS's ----------------------------
def test_unknown_function_and_unknown_qualifier_raise_resource_not_found(lam):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as exc:
        lam.invoke(FunctionName="no-such-function")
    assert "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function" in str(exc.value)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="probe", Qualifier="v7")


def test_function_arn_and_latest_qualifier_are_accepted(lam):
    resp = invoke(lam, "arn:aws:lambda:us-east-1:000000000000:function:probe", {}, Qualifier="$LATEST")
    assert resp["StatusCode"] == 200 and resp["ExecutedVersion"] == "$LATEST"


def test_reserved_concurrency_throttles_with_the_function_reason(emu, lam, emulator_lambda_client):
    with pytest.raises(lam.exceptions.TooManyRequestsException) as exc:
        lam.invoke(FunctionName="zero")
    assert exc.value.response["Reason"] == RESERVED
    assert "retry-after" not in exc.value.response["ResponseMetadata"]["HTTPHeaders"]  # AWS sends none
    busy = threading.Thread(
        target=lambda: invoke(emulator_lambda_client(emu.endpoint), "limited", {"action": "sleep", "seconds": 1.5})
    )
    busy.start()
    try:
        deadline = time.monotonic() + 10
        while not any(e["function"] == "limited" and e["state"] in ("busy", "initializing") for e in environments(emu)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(lam.exceptions.TooManyRequestsException) as exc:
            lam.invoke(FunctionName="limited", Payload=b"{}")
        assert exc.value.response["Reason"] == RESERVED
        assert exc.value.response["Error"]["Message"] == "Rate Exceeded."
    finally:
        busy.join(10)


def test_malformed_payload_raises_invalid_request_content(lam):
    with pytest.raises(lam.exceptions.InvalidRequestContentException) as exc:
        lam.invoke(FunctionName="probe", Payload=b'{"session": ')
    assert "Could not parse request body into json" in str(exc.value)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_numeric_json_payload_is_invalid_as_on_aws(lam, token):
    with pytest.raises(lam.exceptions.InvalidRequestContentException) as exc:
        lam.invoke(FunctionName="probe", Payload=b'{"session": "s", "x": ' + token.encode() + b"}")
    assert f"Non-standard token '{token}'" in str(exc.value)


def test_payload_over_6_mb_gets_413_request_entity_too_large(lam):
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="probe", Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    err = exc.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Code"] == "RequestEntityTooLargeException"
    assert "Request must be smaller than 6291456 bytes for the InvokeFunction operation" in err["Error"]["Message"]


def raw_exchange(url, request: bytes) -> bytes:
    """Send bytes no well-behaved client would, and read the answer to the end."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


INVOKE_PATH = b"/2015-03-31/functions/probe/invocations"


@pytest.mark.parametrize("chunk_size", [b"-10000000000", b"+10", b"0x10", b"zz"])
def test_malformed_chunk_size_is_400_not_a_way_past_the_limit(emu, chunk_size):
    answer = raw_exchange(
        emu.endpoint,
        b"POST " + INVOKE_PATH + b" HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunk_size + b"\r\n{}\r\n0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400 ") and b"in chunk size" in answer


def test_non_ascii_digit_content_length_is_400(emu):
    request = (
        "POST /2015-03-31/functions/probe/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: \u00b2\r\n"
        "Connection: close\r\n\r\n{}"
    ).encode()
    answer = raw_exchange(emu.endpoint, request)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Invalid character in Content-Length" in answer


def test_one_oversized_chunk_gets_413(emu):
    size = 6 * 1024 * 1024 + 10
    answer = raw_exchange(
        emu.endpoint,
        b"POST " + INVOKE_PATH + b" HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + f"{size:x}".encode()
        + b"\r\n"
        + b"x" * size
        + b"\r\n0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ") and b"RequestEntityTooLargeException" in answer


def test_event_and_dry_run_invocation_types(lam):
    assert invoke(lam, "probe", {"session": "async"}, InvocationType="Event")["StatusCode"] == 202
    assert invoke(lam, "probe", {}, InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="nope", InvocationType="Event")


def test_tail_log_carries_start_end_report_and_output(lam):
    resp = invoke(lam, "faults", {"action": "print", "lines": 3}, LogType="Tail")
    log = base64.b64decode(resp["LogResult"]).decode()
    assert len(base64.b64decode(resp["LogResult"])) <= 4096
    lines = log.splitlines()
    assert lines[0].startswith("START RequestId: ") and "Version: $LATEST" in lines[0]
    assert "handling print" in log and "line 2 " in log
    assert lines[-2].startswith("END RequestId: ")
    assert lines[-1].startswith("REPORT RequestId: ") and "Memory Size: 256 MB" in lines[-1]
    # Only the last 4 KB of a long log.
    resp = invoke(lam, "faults", {"action": "print", "lines": 100}, LogType="Tail")
    raw = base64.b64decode(resp["LogResult"])
    assert len(raw) == 4096 and raw.decode().rstrip().splitlines()[-1].startswith("REPORT")


def test_client_context_and_context_object(lam):
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    ctx = json.loads(invoke(lam, "faults", {"action": "context"}, ClientContext=cc)["body"])
    assert ctx["client_context"] == {"custom": {"k": "v"}}
    assert ctx["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:faults"
    assert 0 < ctx["remaining_ms"] <= 1000
    assert ctx["name"] == "faults" and ctx["memory"] == "256"
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName="faults", ClientContext="%%%not-base64")


def test_environment_has_lambdas_variables_and_nothing_of_the_emulators(lam):
    env = json.loads(invoke(lam, "faults", {"action": "env"})["body"])
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "faults"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert re.match(r"^127\.0\.0\.1:\d+$", env["AWS_LAMBDA_RUNTIME_API"])
    assert LOG_STREAM.match(env["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/faults"
    assert env["AWS_REGION"] == "us-east-1" and env["GREETING"] == "hello"
    assert "LAMBDA_AFFINITY_CANARY" not in env
    assert "dummy" in env["AWS_SECRET_ACCESS_KEY"]
    # nor in the environment block the process inherited (readable in /proc)
    initial = json.loads(invoke(lam, "faults", {"action": "proc_environ"})["body"])
    assert "must-not-leak" not in initial


# -- Function URLs --------------------------------------------------------------
def test_function_url_serves_the_probe(emu):
    status, headers, body = http(emu.function_urls["probe"], {"x-affinity-session": "url-user"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    reply = json.loads(body)
    assert reply["session"] == "url-user" and reply["probe"] == 1 and LOG_STREAM.match(reply["env_id"])
    assert set(emu.function_urls) == {
        "warm",
        "probe",
        "slowprobe",
        "faults",
        "initfail",
        "limited",
        "zero",
        "node",
        "ric",
        "private",
    }


def test_function_url_event_is_payload_format_2(emu):
    url = emu.function_urls["faults"] + "some/path?action=echo&x=1&x=2"
    status, headers, body = http(
        url, {"Cookie": "c1=a; c2=b", "X-Multi": "v", "Content-Type": "text/plain"}, method="POST", data=b"hello body"
    )
    assert status == 200 and headers["Content-Type"] == "application/json"  # no statusCode: sent as JSON
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path" and event["rawQueryString"] == "action=echo&x=1&x=2"
    assert event["queryStringParameters"] == {"action": "echo", "x": "1,2"}
    assert event["cookies"] == ["c1=a", "c2=b"]
    assert event["headers"]["x-multi"] == "v" and "cookie" not in event["headers"]
    assert event["body"] == "hello body" and event["isBase64Encoded"] is False
    http_ctx = event["requestContext"]["http"]
    assert http_ctx["method"] == "POST" and http_ctx["path"] == "/some/path" and http_ctx["sourceIp"] == "127.0.0.1"
    assert isinstance(event["requestContext"]["timeEpoch"], int)


def test_function_url_response_conversion_and_errors(emu):
    url = emu.function_urls["faults"]
    status, headers, body = http(url + "?action=custom")
    assert (status, body, headers["x-custom"], headers["Content-Type"]) == (201, b"created", "yes", "text/plain")
    status, headers, body = http(url + "?action=binary")
    assert status == 200 and body == b"\x00\x01\x02\xff"
    assert http(url + "?action=raise")[0] == 502
    assert http(url + "?action=badresponse")[0] == 502
    status, _, body = http(emu.function_urls["zero"])
    assert status == 429
    status, _, body = http(
        url, method="POST", data=b"x" * (6 * 1024 * 1024 + 1), headers={"Content-Type": "application/octet-stream"}
    )
    assert status == 413


def test_function_url_with_aws_iam_refuses_unsigned_requests(emu):
    status, headers, body = http(emu.function_urls["private"])
    assert status == 403 and headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert json.loads(body) == {"Message": sigv4.FORBIDDEN_MESSAGE}


# -- other runtime clients ----------------------------------------------------------
def test_node_handler_runs_verbatim(emu, lam):
    status, headers, body = http(emu.function_urls["node"])
    assert status == 200 and headers["Content-Type"] == "application/json"
    first = json.loads(body)
    assert LOG_STREAM.match(first)
    again = json.loads(http(emu.function_urls["node"])[2])
    assert again == first  # warm reuse (mru, sequential)
    resp = invoke(lam, "node", {})
    assert json.loads(resp["body"])["statusCode"] == 200


def test_awslambdaric_runs_the_probe(lam):
    replies = [json.loads(invoke(lam, "ric", {"session": "ric-user"})["body"]) for _ in range(2)]
    assert replies[0]["cold"] and not replies[1]["cold"]
    assert replies[0]["env_id"] == replies[1]["env_id"]
    assert replies[1]["cache"]["hit"] is True


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed (pip install awscli)")
def test_aws_cli_invoke(emu, tmp_path):
    out = tmp_path / "out.json"
    env = dict(
        __import__("os").environ,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    version = subprocess.run(["aws", "--version"], capture_output=True, text=True, timeout=60, env=env)
    # v2 reads --payload as base64 unless told otherwise; v1 takes it raw.
    raw = ["--cli-binary-format", "raw-in-base64-out"] if "aws-cli/2" in version.stdout + version.stderr else []
    run = subprocess.run(
        [
            "aws",
            "lambda",
            "invoke",
            "--endpoint-url",
            emu.endpoint,
            "--function-name",
            "probe",
            *raw,
            "--payload",
            '{"session": "cli"}',
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text())["session"] == "cli"
    run = subprocess.run(
        ["aws", "lambda", "invoke", "--endpoint-url", emu.endpoint, "--function-name", "nope", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode != 0 and "ResourceNotFoundException" in run.stderr


# -- introspection, and the end ---------------------------------------------------
def test_introspection_lists_environments(emu):
    envs = environments(emu)
    assert envs
    for e in envs:
        assert set(e) >= {"id", "function", "state", "invocations", "age_s", "idle_s", "pid"}
        assert LOG_STREAM.match(e["id"])
    status, _, _ = http(emu.introspection_url, method="POST", data=b"{}")
    assert status == 405


def test_stop_leaves_no_process_behind(emu, emulator_descendants):
    import psutil

    below = emulator_descendants(emu.proc.pid)
    assert len(below) >= 2  # the fork-server and at least one environment
    assert emu.stop() == 0
    time.sleep(0.1)
    assert [p for p in below if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE] == []
