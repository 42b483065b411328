"""Lambda's Runtime API (2018-06-01), served to one environment on its own port.

The runtime client in the environment long-polls `/next` for an event and
posts the result (or the error) back. Replies carry AWS's headers, including a
`Content-Type` on `/next` (awslambdaric 4.2.2 crashes without one).
"""
from __future__ import annotations

import json

from .invocation import MAX_PAYLOAD, Result, function_error, response_too_large
from .wire import App, Request, Response

PREFIX = "/2018-06-01/runtime"
NEXT = PREFIX + "/invocation/next"
INVOCATION = PREFIX + "/invocation/"
INIT_ERROR = PREFIX + "/init/error"
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"

_JSON = ("Content-Type", "application/json")
_ACCEPTED = b'{"status":"OK"}'


def _error(status: int, error_type: str, message: str) -> Response:
    return Response(status, [_JSON], json.dumps({"errorType": error_type, "errorMessage": message}).encode())


class RuntimeAPI(App):
    max_body = MAX_PAYLOAD

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox

    def handle(self, req: Request) -> Response:
        path = req.path
        if req.method == "GET" and path == NEXT:
            return self._next()
        if req.method == "POST" and path.startswith(INVOCATION):
            request_id, _, what = path[len(INVOCATION):].partition("/")
            if what == "response":
                return self._complete(request_id, Result.ok(req.body))
            if what == "error":
                return self._complete(request_id, function_error(_error_document(req.body), req.headers.get(ERROR_TYPE_HEADER)))
        if req.method == "POST" and path == INIT_ERROR:
            if self.sandbox.init_failed(_error_document(req.body), req.headers.get(ERROR_TYPE_HEADER)):
                return Response(202, [_JSON], _ACCEPTED)
            return _error(403, "Runtime.InvalidStateTransition", "State transition from Ready to InitError failed")
        return _error(404, "Runtime.NotFound", f"no such Runtime API resource: {req.method} {path}")

    def too_large(self, req: Request) -> Response:
        path = req.path
        if path.startswith(INVOCATION) and path.endswith("/response"):
            request_id = path[len(INVOCATION):].partition("/")[0]
            self.sandbox.complete(request_id, response_too_large(req.length or MAX_PAYLOAD + 1))
        return _error(413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes).")

    def _next(self) -> Response:
        inv = self.sandbox.next_invocation()  # blocks until an event is dispatched
        if inv is None:  # the environment is being shut down
            return Response(410, [_JSON], b'{"errorType":"Runtime.Shutdown","errorMessage":"environment stopped"}', close=True)
        headers = [
            _JSON,
            ("Lambda-Runtime-Aws-Request-Id", inv.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(inv.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", inv.function_arn),
            ("Lambda-Runtime-Trace-Id", inv.trace_id),
        ]
        if inv.client_context:
            headers.append(("Lambda-Runtime-Client-Context", inv.client_context))
        return Response(200, headers, inv.payload)

    def _complete(self, request_id: str, result: Result) -> Response:
        if self.sandbox.complete(request_id, result):
            return Response(202, [_JSON], _ACCEPTED)
        return _error(400, "InvalidRequestID", f"Invalid request ID: {request_id!r} is not the invocation in progress")


def _error_document(body: bytes) -> bytes:
    """The runtime's error JSON as sent, or a wrapper when it sent something else."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            return body
    except ValueError:
        pass
    return json.dumps({"errorMessage": body.decode("utf-8", "replace")[:4096], "errorType": "Runtime.Unknown"}).encode()
