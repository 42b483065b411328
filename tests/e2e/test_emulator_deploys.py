"""D1 in the emulator (docs/model.md, "Deploys"): UpdateFunctionCode, UpdateFunctionConfiguration and
PublishVersion through boto3 and the AWS CLI, with real environment processes. After an update every call
lands on a new environment running the new code; the old environments drain (a call in flight ends on the
old code) and retire."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
import zipfile

import pytest
from botocore.exceptions import ClientError
from concurrent_calls import together

from lambda_affinity.emulator.config import config_from_mapping
from lambda_affinity.emulator.server import Emulator

APP = """import os, time
CODE = {code!r}
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    env = os.environ
    return {{"code": CODE, "env_id": env["AWS_LAMBDA_LOG_STREAM_NAME"], "greeting": env.get("GREETING"),
            "version": env["AWS_LAMBDA_FUNCTION_VERSION"], "memory": env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]}}
"""


def app_zip(code: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", APP.format(code=code))
    return buf.getvalue()


@pytest.fixture
def emu(tmp_path):
    folder = tmp_path / "v1"
    folder.mkdir()
    (folder / "app.py").write_text(APP.format(code="v1"))
    cfg = config_from_mapping(
        {"model": {"init_delay_s": 0}, "functions": [{"name": "app", "handler": "app.handler", "code": "v1"}]},
        base_dir=str(tmp_path),
    )
    with Emulator(cfg) as emulator:
        yield emulator


@pytest.fixture
def lam(emu, emulator_lambda_client):
    return emulator_lambda_client(emu.endpoint)


def together_calls(lam, n: int, sleep: float) -> list:
    return together(n, lambda _i: call(lam, sleep), timeout=30)


def call(lam, sleep: float = 0.0, **kwargs) -> dict:
    return json.loads(lam.invoke(FunctionName="app", Payload=json.dumps({"sleep": sleep}), **kwargs)["Payload"].read())


def state(emu) -> dict:
    with urllib.request.urlopen(emu.introspection_url, timeout=10) as r:
        return json.loads(r.read())


def test_d1_update_function_code_moves_every_later_call_to_new_environments_old_ones_drain(emu, lam):
    before = {r["env_id"] for r in together_calls(lam, 3, 0.3)}
    assert len(before) == 3
    in_flight: list = []
    slow = threading.Thread(target=lambda: in_flight.append(call(lam, 1.5)))
    slow.start()
    time.sleep(0.3)  # the slow call is running on one of the three
    data = app_zip("v2")
    answer = lam.update_function_code(FunctionName="app", ZipFile=data)
    # AWS's shape: the update is under way as it answers; the waiter then sees it done
    assert answer["LastUpdateStatus"] == "InProgress" and answer["State"] == "Active"
    assert answer["Version"] == "$LATEST" and answer["PackageType"] == "Zip" and answer["Handler"] == "app.handler"
    assert answer["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert answer["CodeSize"] == len(data) and answer["FunctionArn"].endswith(":function:app")
    live = {e["id"]: e["state"] for e in state(emu)["environments"]}
    assert set(live) <= before and list(live.values()) == ["busy"]  # idle ones retired at once; the busy drains
    after = [call(lam) for _ in range(3)] + together_calls(lam, 4, 0.2)
    assert {r["code"] for r in after} == {"v2"}
    assert not {r["env_id"] for r in after} & before, "a call after the deploy landed on an old environment"
    slow.join(10)
    assert in_flight[0]["code"] == "v1" and in_flight[0]["env_id"] in before  # it ended on the old code
    doc = state(emu)
    assert not {e["id"] for e in doc["environments"]} & before
    assert doc["retired"].get("deploy") == 3
    lam.get_waiter("function_updated").wait(FunctionName="app", WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    got = lam.get_function_configuration(FunctionName="app")
    assert got["LastUpdateStatus"] == "Successful" and got["RevisionId"] == answer["RevisionId"]


def test_update_function_configuration_and_publish_version(emu, lam):
    first = call(lam)
    answer = lam.update_function_configuration(
        FunctionName="app", Environment={"Variables": {"GREETING": "hi"}}, MemorySize=256, Timeout=5
    )
    assert answer["LastUpdateStatus"] == "InProgress" and answer["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert (answer["MemorySize"], answer["Timeout"]) == (256, 5)
    reply = call(lam)
    assert reply["env_id"] != first["env_id"] and (reply["greeting"], reply["memory"]) == ("hi", "256")
    v1 = lam.publish_version(FunctionName="app", Description="first")
    assert v1["Version"] == "1" and v1["FunctionArn"].endswith(":function:app:1") and v1["Description"] == "first"
    assert lam.publish_version(FunctionName="app")["Version"] == "1"  # nothing changed since: the same version
    invoked = lam.invoke(FunctionName="app", Qualifier="1", Payload=b"{}")
    on_v1 = json.loads(invoked["Payload"].read())
    assert invoked["ExecutedVersion"] == "1" and on_v1["version"] == "1" and "[1]" in on_v1["env_id"]
    assert on_v1["env_id"] != reply["env_id"]  # a version runs on environments of its own
    lam.update_function_code(FunctionName="app", ZipFile=app_zip("v3"), Publish=True)
    assert call(lam, Qualifier="2")["code"] == "v3" and call(lam, Qualifier="1")["code"] == "v1"
    assert lam.get_function(FunctionName="app", Qualifier="1")["Configuration"]["Version"] == "1"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="app", Qualifier="3", Payload=b"{}")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_configuration(FunctionName="app", Qualifier="3")


def test_bad_updates_get_aws_errors_and_change_nothing(emu, lam, tmp_path):
    revision = lam.get_function_configuration(FunctionName="app")["RevisionId"]
    cases = [
        (dict(S3Bucket="bucket", S3Key="app.zip"), "InvalidParameterValueException", "S3 Error Code: NoSuchBucket"),
        (dict(ZipFile=b"not a zip"), "InvalidParameterValueException", "Could not unzip uploaded file"),
        (dict(ZipFile=zip_slip()), "InvalidParameterValueException", "points outside the function's folder"),
        (dict(ZipFile=app_zip("x"), RevisionId="stale"), "PreconditionFailedException", "Revision Id"),
        (dict(ZipFile=app_zip("x"), Architectures=["arm64"]), "InvalidParameterValueException", "x86_64"),
    ]
    for kwargs, code, words in cases:
        with pytest.raises(ClientError) as exc:
            lam.update_function_code(FunctionName="app", **kwargs)
        assert exc.value.response["Error"]["Code"] == code and words in exc.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_function_code(FunctionName="nope", ZipFile=app_zip("x"))
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="reserved keys"):
        lam.update_function_configuration(FunctionName="app", Environment={"Variables": {"AWS_REGION": "x"}})
    with pytest.raises(ClientError, match="less than or equal to 900"):
        lam.update_function_configuration(FunctionName="app", Timeout=901)
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="VpcConfig is not supported"):
        lam.update_function_configuration(FunctionName="app", VpcConfig={"SubnetIds": ["subnet-1"]})
    too_big = urllib.request.Request(
        emu.endpoint + "/2015-03-31/functions/app/code", data=b"x" * (7 << 20), method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(too_big, timeout=30)
    assert http_error.value.code == 413 and http_error.value.headers["x-amzn-ErrorType"].startswith("RequestEntity")
    assert lam.get_function_configuration(FunctionName="app")["RevisionId"] == revision
    assert call(lam)["code"] == "v1" and state(emu)["retired"].get("deploy") is None
    assert not (tmp_path / "evil.py").exists()


def zip_slip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "x = 1\n")
        zf.writestr("../../evil.py", "x = 1\n")
    return buf.getvalue()


def test_uploaded_code_is_removed_at_shutdown(tmp_path, emulator_lambda_client):
    cfg = config_from_mapping({"model": {"init_delay_s": 0}, "functions": [{"name": "app"}]}, base_dir=str(tmp_path))
    with Emulator(cfg) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        lam.update_function_code(FunctionName="app", ZipFile=app_zip("v2"))
        lam.update_function_configuration(FunctionName="app", Handler="app.handler")
        assert call(lam)["code"] == "v2"
        root = emu.service.code_store.root
        assert root and os.listdir(root)
    assert not os.path.exists(root)


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed (pip install awscli)")
def test_d1_aws_cli_update_function_code_then_wait(emu, lam, tmp_path):
    old = call(lam)
    package = tmp_path / "v2.zip"
    package.write_bytes(app_zip("v2"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    base = ["aws", "lambda", "--endpoint-url", emu.endpoint]
    run = subprocess.run(
        [*base, "update-function-code", "--function-name", "app", "--zip-file", f"fileb://{package}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["LastUpdateStatus"] == "InProgress"
    wait = subprocess.run(
        [*base, "wait", "function-updated", "--function-name", "app"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert wait.returncode == 0, wait.stderr
    new = call(lam)
    assert new["code"] == "v2" and new["env_id"] != old["env_id"]


def test_an_update_naming_another_host_is_refused(emu, lam):
    """DNS rebinding: a page whose name now points at 127.0.0.1 sends its own Host; it may not deploy code."""
    body = json.dumps({"ZipFile": base64.b64encode(app_zip("evil")).decode()}).encode()
    port = emu.endpoint.rsplit(":", 1)[1]
    for host, status in ((f"evil.example:{port}", 403), (f"localhost:{port}", 200)):
        req = urllib.request.Request(
            emu.endpoint + "/2015-03-31/functions/app/code", data=body, method="PUT", headers={"Host": host}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                got = r.status
        except urllib.error.HTTPError as exc:
            got = exc.code
            assert exc.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        assert got == status
        if status == 403:
            assert call(lam)["code"] == "v1"


def test_uploads_no_environment_or_version_runs_leave_the_disk(emu, lam):
    store = emu.service.code_store
    lam.update_function_code(FunctionName="app", ZipFile=app_zip("v2"), Publish=True)  # version 1 keeps v2
    call(lam)
    slow: list = []
    busy = threading.Thread(target=lambda: slow.append(call(lam, 1.0)))
    busy.start()
    time.sleep(0.3)
    lam.update_function_code(FunctionName="app", ZipFile=app_zip("v3"))  # v2 is still run by version 1 and the busy one
    lam.update_function_code(FunctionName="app", ZipFile=app_zip("v4"))
    busy.join(10)
    assert slow[0]["code"] == "v2"
    lam.update_function_code(FunctionName="app", ZipFile=app_zip("v5"))  # v3, v4: run by nothing now
    assert len(os.listdir(store.root)) == 2  # v2 (version 1) and v5 ($LATEST)
    assert call(lam, Qualifier="1")["code"] == "v2" and call(lam)["code"] == "v5"


def test_configuration_documents_hold_only_botocore_members_of_their_types(emu, lam):
    """botocore drops a member its model lacks without a word: the raw answer is checked against the model."""
    import botocore.loaders

    shapes = botocore.loaders.Loader().load_service_model("lambda", "service-2")["shapes"]
    lam.update_function_configuration(FunctionName="app", Environment={"Variables": {"A": "b"}})
    with urllib.request.urlopen(emu.endpoint + "/2015-03-31/functions/app", timeout=10) as r:
        doc = json.loads(r.read())
    assert set(doc) <= set(shapes["GetFunctionResponse"]["members"])
    members = shapes["FunctionConfiguration"]["members"]
    config = doc["Configuration"]
    assert set(config) <= set(members)
    for key, value in config.items():
        kind = shapes[members[key]["shape"]]["type"]
        expected = {"string": str, "integer": int, "long": int, "structure": dict, "list": list, "map": dict}[kind]
        assert isinstance(value, expected), key
        enum = shapes[members[key]["shape"]].get("enum")
        assert enum is None or value in enum, key
