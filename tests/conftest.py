"""Shared fixtures. Emulator fixtures are prefixed `emulator_`."""
from __future__ import annotations

# Locust patches the process with gevent when imported, and patching ssl after
# urllib3 (boto3, requests) has loaded it recurses: so the suite imports Locust
# first, the way a Locust process does, and the plugin's tests run in-process.
import locust  # noqa: F401  isort: skip

import textwrap

import pytest

# A function that misbehaves on request, for the emulator's fault tests. The
# action comes from an Invoke payload {"action": ...} or a Function URL's
# query string (?action=...).
EMULATOR_FAULTS_HANDLER = textwrap.dedent('''
    import json, os, sys, time

    COUNT = 0

    def handler(event, context):
        global COUNT
        COUNT += 1
        url = isinstance(event, dict) and "requestContext" in event
        if url:
            args = event.get("queryStringParameters") or {}
        else:
            args = event if isinstance(event, dict) else {}
        action = args.get("action")
        print(f"handling {action} #{COUNT}")
        if action == "raise":
            raise ValueError("boom: " + str(COUNT))
        if action == "sleep":
            time.sleep(float(args.get("seconds", 5)))
        if action == "exit":
            sys.stdout.flush()
            os._exit(3)
        if action == "kill":
            os.kill(os.getpid(), 9)
        if action == "big":  # 6291558 bytes as JSON: over AWS's 6291556 for a response
            return "x" * (6 * 1024 * 1024 + 100)
        if action == "sized":  # a result of exactly `bytes` bytes as JSON
            return "x" * (int(args["bytes"]) - 2)
        if action == "print":
            for i in range(int(args.get("lines", 3))):
                print(f"line {i} " + "y" * 100)
        if action == "env":
            return dict(os.environ)
        if action == "proc_environ":  # what the process was started with, not os.environ
            with open("/proc/self/environ", "rb") as f:
                return f.read().decode(errors="replace")
        if action == "context":
            return {"request_id": context.aws_request_id, "arn": context.invoked_function_arn,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                    "client_context": context.client_context, "name": context.function_name,
                    "memory": context.memory_limit_in_mb}
        if action == "echo":
            return event
        if action == "custom":
            return {"statusCode": 201, "headers": {"x-custom": "yes", "content-type": "text/plain"},
                    "cookies": ["a=1", "b=2"], "body": "created"}
        if action == "binary":
            return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                    "isBase64Encoded": True, "body": "AAEC/w=="}
        if action == "badresponse":
            return {"statusCode": "teapot"}
        return {"count": COUNT, "env_id": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"], "pid": os.getpid()}
''')

EMULATOR_INIT_FAIL_HANDLER = "import module_that_does_not_exist_anywhere\n\ndef handler(event, context):\n    return 1\n"


@pytest.fixture(scope="session")
def emulator_code(tmp_path_factory):
    """Folders of test functions: {"faults": dir, "initfail": dir}."""
    root = tmp_path_factory.mktemp("emulator-functions")
    dirs = {}
    for name, source in (("faults", EMULATOR_FAULTS_HANDLER), ("initfail", EMULATOR_INIT_FAIL_HANDLER)):
        d = root / name
        d.mkdir()
        (d / "app.py").write_text(source)
        dirs[name] = d
    return dirs


@pytest.fixture(scope="session")
def emulator_lambda_client():
    """A factory: a boto3 Lambda client for an emulator endpoint, no retries."""
    import boto3
    from botocore.config import Config

    def make(endpoint: str, read_timeout: float = 30.0):
        return boto3.client(
            "lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}, read_timeout=read_timeout, connect_timeout=5),
        )

    return make


@pytest.fixture(scope="session")
def emulator_descendants():
    """A function: the pids of every process below a pid (an emulator's
    fork-server and environments)."""
    import psutil

    def descendants(pid: int) -> set:
        try:
            return {p.pid for p in psutil.Process(pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    return descendants
