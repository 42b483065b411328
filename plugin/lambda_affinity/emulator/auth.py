"""Function URL authorization: the one hook `authorize`.

`NONE` is open. `AWS_IAM` must verify the request's SigV4 signature, as AWS
does; that verification is not written yet.
TODO(SigV4): verify `Authorization` / `X-Amz-Date` / `X-Amz-Security-Token`
against the `lambda` service and the emulator's region, answering 403
{"Message": "Forbidden"} when absent or wrong. Until then an AWS_IAM URL
only demands that a SigV4 `Authorization` header be present.
"""
from __future__ import annotations

import json

from .wire import Request, Response


def authorize(req: Request, auth_type: str) -> Response | None:
    """None to let the request through, else the error to answer with."""
    if auth_type == "NONE":
        return None
    if not req.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 "):
        return forbidden()
    return None


def forbidden() -> Response:
    return Response(403, [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException")],
                    json.dumps({"Message": "Forbidden"}).encode())
