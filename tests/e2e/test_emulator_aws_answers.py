"""The emulator's answers where AWS's exact ones are known (issue 11): response
size, name and qualifier validation, the Python runtime's logging and
AWS_LAMBDA_EXEC_WRAPPER; boto3 against a running `lambda-affinity emulate`."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat

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
