"""The emulator's answers where AWS's exact ones are known (issue 11): response
size, name and qualifier validation, the Python runtime's logging and
AWS_LAMBDA_EXEC_WRAPPER; boto3 against a running `lambda-affinity emulate`."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import time

import pytest
import yaml
from botocore.exceptions import ClientError
from fixture_paths import HANDLERS

from lambda_affinity.emulator.process import EmulatorProcess

pytestmark = pytest.mark.slow

LOGS = HANDLERS / "logs/logs.py"
WRAPPER = '#!/bin/sh\nexport WRAPPED_BY="wrapper $#"\nexec "$@"\n'


@pytest.fixture(scope="module")
def lam(emulator_code, emulator_lambda_client, tmp_path_factory):
    code = tmp_path_factory.mktemp("answers-code")
    shutil.copyfile(LOGS, (code / "logs.py"))
    wrapper = code / "wrapper.sh"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    config = {
        "model": {"init_delay_s": 0},
        "functions": [
            {"name": "probe"},
            {"name": "faults", "handler": "app.handler", "code": str(emulator_code["faults"])},
            {"name": "logs", "handler": "logs.handler", "code": str(code)},
            {
                "name": "wrapped",
                "handler": "logs.handler",
                "code": str(code),
                "environment": {"AWS_LAMBDA_EXEC_WRAPPER": str(wrapper)},
            },
            {
                "name": "badwrapper",
                "handler": "logs.handler",
                "code": str(code),
                "environment": {"AWS_LAMBDA_EXEC_WRAPPER": str(code / "missing.sh")},
            },
        ],
    }
    path = tmp_path_factory.mktemp("emu-answers") / "emulator.yaml"
    path.write_text(yaml.safe_dump(config))
    with EmulatorProcess(config_path=str(path)) as emu:
        yield emulator_lambda_client(emu.endpoint)


def error_of(lam, **kw) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as err:
        lam.invoke(**kw)
    resp = err.value.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"], resp["Error"]["Message"]


def test_a_response_may_be_6291556_bytes_and_the_error_names_no_size(lam):
    at_limit = lam.invoke(FunctionName="faults", Payload=json.dumps({"action": "sized", "bytes": 6291556}))
    assert "FunctionError" not in at_limit and len(at_limit["Payload"].read()) == 6291556
    over = lam.invoke(FunctionName="faults", Payload=json.dumps({"action": "sized", "bytes": 6291557}))
    assert over["FunctionError"] == "Unhandled"
    assert json.loads(over["Payload"].read()) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }


def test_names_and_qualifiers_are_checked_as_aws_does(lam):
    arn = "arn:aws:lambda:us-east-1:000000000000:function:"
    # valid by AWS's pattern but no such function: 404, naming the version looked for
    assert error_of(lam, FunctionName="no-such-function") == (
        404,
        "ResourceNotFoundException",
        f"Function not found: {arn}no-such-function:$LATEST",
    )
    assert error_of(lam, FunctionName="my.function")[:2] == (404, "ResourceNotFoundException")
    assert error_of(lam, FunctionName="a" * 65)[:2] == (404, "ResourceNotFoundException")
    assert error_of(lam, FunctionName="probe", Qualifier="7") == (
        404,
        "ResourceNotFoundException",
        f"Function not found: {arn}probe:7",
    )
    # not valid by the pattern or the length in botocore's Lambda model: 400
    status, code, message = error_of(lam, FunctionName="bad name!")
    assert (status, code) == (400, "ValidationException")
    assert message.startswith(
        "1 validation error detected: Value 'bad name!' at 'functionName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: (arn:"
    )
    status, code, message = error_of(lam, FunctionName="probe", Qualifier="v.1")
    assert (status, code) == (400, "ValidationException") and "at 'qualifier'" in message
    status, code, message = error_of(lam, FunctionName="a" * 257, Qualifier="v.1")
    assert (status, code) == (400, "ValidationException")
    assert message.startswith("2 validation errors detected: ") and "length less than or equal to 256" in message


def test_python_logging_writes_aws_runtime_lines(lam):
    resp = lam.invoke(FunctionName="logs", LogType="Tail")
    request_id = json.loads(resp["Payload"].read())["request_id"]
    log = base64.b64decode(resp["LogResult"]).decode()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.search(rf"^\[WARNING\]\t{stamp}\t{request_id}\twarned 1$", log, re.M), log
    assert re.search(rf"^\[INFO\]\t{stamp}\t{request_id}\tshown$", log, re.M), log
    assert "hidden" not in log


def test_the_exec_wrapper_runs_the_runtime(lam):
    # the wrapper got the runtime's command line (3 arguments) and exec'd it
    assert json.loads(lam.invoke(FunctionName="wrapped")["Payload"].read())["wrapped_by"] == "wrapper 3"
    assert json.loads(lam.invoke(FunctionName="logs")["Payload"].read())["wrapped_by"] is None
    failed = lam.invoke(FunctionName="badwrapper")
    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "Runtime.InvalidEntrypoint" and "missing.sh" in error["errorMessage"]


# AWS's answers as LocalStack's AWS-validated snapshots recorded them (tests/aws/services/lambda_/test_lambda.py,
# TestLambdaErrors::test_lambda_invoke_payload_encoding_error; test_lambda_api.py, the invoke cases of
# test_function_name_and_qualifier_validation), with this emulator's account and region.
NOT_JSON = "Could not parse request body into json: Could not parse payload into json: "
SOURCE = "[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled)"
VALUE = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"n\x87r\x9e\xe9\xb5\xd7I\xee\x9bmt", f"Invalid UTF-8 start byte 0x87\n at {SOURCE}; line: 1, column: 3]"),
        (
            b"\x99\xeb,j\x07\xa1zYh",
            f"Unexpected character ((CTRL-CHAR, code 153)): expected a valid value {VALUE}\n"
            f" at {SOURCE}; line: 1, column: 1]",
        ),
        (
            b"'test'",
            f"Unexpected character (''' (code 39)): expected a valid value {VALUE}\n at {SOURCE}; line: 1, column: 1]",
        ),
    ],
)
def test_an_invalid_payload_is_worded_as_awss_parser_words_it(lam, payload, message):
    assert error_of(lam, FunctionName="probe", Payload=payload) == (
        400,
        "InvalidRequestContentException",
        NOT_JSON + message,
    )


@pytest.mark.parametrize(
    "name,qualifier,function",
    [
        ("arn:aws:lambda:us-east-1:000000000000:function", None, "function:$LATEST"),  # incomplete_arn
        ("arn:aws:lambda:us-east-1:000000000000:function:my-function", "$latest", "my-function:$latest"),
        ("my-function", "a" * 65, "my-function:" + "a" * 65),
        ("a" * 65, None, "a" * 65 + ":$LATEST"),
    ],
)
def test_names_read_as_aws_reads_them(lam, name, qualifier, function):
    kw = {"FunctionName": name} if qualifier is None else {"FunctionName": name, "Qualifier": qualifier}
    assert error_of(lam, **kw) == (
        404,
        "ResourceNotFoundException",
        f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{function}",
    )


def test_a_handler_asking_for_next_itself_gets_its_own_event_and_loses_no_invocation(lam):
    # AWS's Runtime API answers a /next during an invocation with that invocation (rapid's Running state
    # renders the current event again); before, the emulator parked that connection and handed it the
    # environment's next invocation, which then waited out the whole function timeout.
    first = lam.invoke(FunctionName="faults", Payload=json.dumps({"action": "next", "seconds": 2}))
    got = json.loads(first["Payload"].read())
    assert got["status"] == 200 and got["request_id"] == first["ResponseMetadata"]["RequestId"], got
    started = time.monotonic()
    second = lam.invoke(FunctionName="faults", Payload=b"{}")
    assert "FunctionError" not in second and time.monotonic() - started < 2
    assert json.loads(second["Payload"].read())["count"] >= 2  # the same environment, still serving


def test_modelled_service_time_is_bounded_by_the_function_timeout(emulator_code, emulator_lambda_client, tmp_path):
    path = tmp_path / "emulator.yaml"
    config = {
        "model": {"init_delay_s": 0},
        "service_time": "exp:1e308",
        "functions": [
            {"name": "faults", "handler": "app.handler", "code": str(emulator_code["faults"]), "timeout": 0.5}
        ],
    }
    path.write_text(yaml.safe_dump(config))
    with EmulatorProcess(config_path=str(path)) as emu:
        lam = emulator_lambda_client(emu.endpoint, read_timeout=10)
        started = time.monotonic()
        resp = lam.invoke(FunctionName="faults", Payload=b"{}")
        took = time.monotonic() - started
        error = json.loads(resp["Payload"].read())
        request_id = resp["ResponseMetadata"]["RequestId"]
    assert resp["FunctionError"] == "Unhandled" and 0.5 <= took < 3, took
    assert error == {
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 0.50 seconds",
        "errorType": "Sandbox.Timedout",
    }
