"""A deliberately broken "probe": every kind of invalid reply, chosen by the caller.

Function URL: the path picks the fault (/not-json, /no-env-id, /error-500,
/raise, /ok). Invoke: the payload's "mode" does ({"mode": "number"}, ...).
"""
import json
import os

_calls = 0


def _ok():
    global _calls
    _calls += 1
    return {"env_id": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"], "cold": _calls == 1, "cache": None, "probe": 1}


def handler(event, context):
    if isinstance(event, dict) and "rawPath" in event:  # a Function URL event
        mode = event["rawPath"].strip("/")
        if mode == "not-json":
            return {"statusCode": 200, "body": "this is not json"}
        if mode == "no-env-id":
            return {"statusCode": 200, "body": json.dumps({"hello": "world"})}
        if mode == "error-500":
            return {"statusCode": 500, "body": "boom"}
        if mode == "raise":
            raise RuntimeError("deliberately broken")
        return {"statusCode": 200, "body": json.dumps(_ok())}
    mode = (event or {}).get("mode")
    if mode == "number":
        return 42
    if mode == "no-env-id":
        return {"hello": "world"}
    if mode == "bad-cold":
        return {"env_id": "e", "cold": "yes", "probe": 1}
    if mode == "raise":
        raise RuntimeError("deliberately broken")
    return _ok()
