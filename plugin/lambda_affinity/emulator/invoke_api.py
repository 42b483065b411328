"""The Invoke API front end: `POST /2015-03-31/functions/{name}/invocations`.

Status codes, headers and error shapes are AWS's (the Invoke API reference,
https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html; docs/emulator.md,
"Behaviour as on AWS", lists each case), so
botocore raises the same exception classes as against AWS: the error code
travels in `x-amzn-ErrorType` with its `Exception` suffix, 404s use `Message`
and most others `message`, throttling carries `Reason` (and, as on AWS, no `Retry-After`).
The same port serves the read-only introspection routes under /_emulator/.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import parse_qs

from ..errors import LambdaAffinityError
from ..platform import Throttled, UnknownFunction
from .aws_shapes import ARN as _ARN, Refused as _Refused, aws_error, constraints, validation_errors
from .control_api import ControlAPI
from .deployments import function_key
from .introspection import PREFIX as INTROSPECTION_PREFIX, introspect
from .invocation import MAX_PAYLOAD, too_deep
from .payload_json import jackson_problem
from .service import InvocationService, ServiceStopping, new_request_id
from .wire import App, Request, Response

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
MAX_CLIENT_CONTEXT = 3583  # AWS: base64 ClientContext up to 3583 bytes


def throttled(exc: Throttled, request_id: str | None = None) -> Response:
    """AWS's 429 (no Retry-After: AWS sends none); the emulator's own cap on
    environments says in its message that it is this machine's limit."""
    return aws_error(
        429,
        "TooManyRequestsException",
        getattr(exc, "message", "Rate Exceeded."),
        request_id=request_id,
        Reason=exc.reason,
    )


def too_large(request_id: str | None = None) -> Response:
    return aws_error(
        413,
        "RequestEntityTooLargeException",
        f"Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation",
        request_id=request_id,
    )


class InvokeAPI(App):
    max_body = MAX_PAYLOAD

    def __init__(self, service: InvocationService) -> None:
        self.service = service
        # Read botocore's model now (about 0.25 s), at start: on the first request it would
        # stall the one loop every invocation in flight runs on.
        constraints()
        self.control = ControlAPI(service)

    def too_large(self, req: Request) -> Response:
        if req.method == "PUT" and req.unquoted_path().endswith("/code"):
            return self.control.too_large()
        return too_large()

    def handle(self, req: Request) -> Response:
        path = req.unquoted_path()
        if path.startswith(INTROSPECTION_PREFIX):
            return introspect(self.service, req.method, path)
        if path.startswith(INVOKE_PREFIX) and not path.endswith(INVOKE_SUFFIX):
            answer = self.control.handle(req, path[len(INVOKE_PREFIX) :])
            if answer is not None:
                return answer
        if not (path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX)):
            return aws_error(
                404, "UnknownOperationException", f"Unknown operation {req.method} {req.path}", message_key="Message"
            )
        if req.method != "POST":
            return aws_error(405, "MethodNotAllowedException", f"{req.method} is not allowed on {req.path}")
        return self._invoke(req, path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)])

    def _not_found(self, name: str, qualifier: str | None, request_id: str) -> Response:
        # AWS names the version it looked for: $LATEST when the call gave none
        arn = f"{self.service.arn(name)}:{qualifier or '$LATEST'}"
        return aws_error(
            404, "ResourceNotFoundException", f"Function not found: {arn}", message_key="Message", request_id=request_id
        )

    def _invoke(self, req: Request, raw_name: str) -> Response:
        request_id = new_request_id()
        service = self.service
        headers = req.headers
        query = parse_qs(req.query, keep_blank_values=True) if req.query else {}
        try:
            name, qualifier = self._function(raw_name, query.get("Qualifier", [None])[0], request_id)
            invocation_type, client_context, payload = _call(req, request_id)
        except _Refused as refused:
            return refused.response
        if invocation_type == "DryRun":
            return Response(204, [("x-amzn-RequestId", request_id)])
        try:
            if invocation_type == "Event":
                request_id = service.invoke_async(name, payload, client_context)
                return Response(202, [("x-amzn-RequestId", request_id), ("Content-Type", "application/json")])
            result, log = service.invoke(
                name, payload, client_context, tail=headers.get("x-amz-log-type") == "Tail", request_id=request_id
            )
        except UnknownFunction:
            return self._not_found(name, qualifier, request_id)
        except Throttled as exc:
            return throttled(exc, request_id)
        except ServiceStopping:
            return aws_error(
                500,
                "ServiceException",
                "The Lambda emulator stopped while this invocation was in flight.",
                message_key="Message",
                request_id=request_id,
            )
        return _answer(result, log, request_id, qualifier if qualifier not in (None, "$LATEST") else "$LATEST")

    def _function(self, raw_name: str, qualifier: str | None, request_id: str) -> tuple[str, str | None]:
        """(function key, qualifier) of the call, from the path's name (a name or an ARN) and the Qualifier
        parameter; _Refused when AWS would refuse them. The key is the name, or `name:N` for a published version."""
        service = self.service
        problems = validation_errors(raw_name, qualifier)
        if problems:
            count = f"{len(problems)} validation error{'s' if len(problems) > 1 else ''}"
            raise _Refused(
                aws_error(400, "ValidationException", f"{count} detected: {'; '.join(problems)}", request_id=request_id)
            )
        m = _ARN.match(raw_name)
        if m is None:
            raise _Refused(self._not_found(raw_name, qualifier, request_id))
        name = m.group("name")
        arn_qualifier = m.group("qualifier")
        if arn_qualifier and qualifier and arn_qualifier != qualifier:
            raise _Refused(
                aws_error(
                    400,
                    "InvalidParameterValueException",
                    "The derived qualifier from the function name does not match the specified qualifier.",
                    request_id=request_id,
                )
            )
        qualifier = qualifier or arn_qualifier
        if (
            (m.group("region") and m.group("region") != service.config.region)
            or (m.group("account") and m.group("account") != service.config.account_id)
            or function_key(name, qualifier) not in service.functions
        ):
            raise _Refused(self._not_found(name, qualifier, request_id))
        return function_key(name, qualifier), qualifier


def _call(req: Request, request_id: str) -> tuple[str, str | None, bytes]:
    """(invocation type, client context as JSON text or None, payload) of an Invoke;
    _Refused when AWS would refuse them. An empty payload is `{}`."""
    headers = req.headers
    invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
    if invocation_type not in INVOCATION_TYPES:
        raise _Refused(
            aws_error(
                400,
                "InvalidParameterValueException",
                f"Unsupported invocation type {invocation_type!r}: use one of {', '.join(INVOCATION_TYPES)}",
                request_id=request_id,
            )
        )
    client_context = headers.get("x-amz-client-context")
    if client_context is not None:
        client_context, problem = _decode_client_context(client_context)
        if problem:
            raise _Refused(aws_error(400, "InvalidRequestContentException", problem, request_id=request_id))
    payload = req.body
    problem = _check_json(payload)
    if problem:
        raise _Refused(aws_error(400, "InvalidRequestContentException", problem, request_id=request_id))
    if not payload.strip():
        payload = b"{}"  # Lambda hands an empty payload to the handler as {}
    return invocation_type, client_context, payload


def _answer(result, log, request_id: str, version: str) -> Response:
    """The 200 of a synchronous invocation: the function's payload, and its error and log tail when it has them."""
    out = [
        ("Content-Type", "application/json"),
        ("x-amzn-RequestId", request_id),
        ("X-Amz-Executed-Version", version),
    ]
    if result.function_error:
        out.append(("X-Amz-Function-Error", result.function_error))
    if log is not None:
        out.append(("X-Amz-Log-Result", log.tail_base64()))
    return Response(200, out, result.payload)


class _NonNumeric(LambdaAffinityError, ValueError):
    pass


_NOT_JSON = "Could not parse request body into json: Could not parse payload into json: "
_TOO_DEEP = _NOT_JSON + "Document nesting depth exceeds the maximum allowed"


def _non_numeric(token: str):
    raise _NonNumeric(token)


def _check_json(payload: bytes) -> str | None:
    """AWS's message for a payload that is not JSON; None when it is (or empty)."""
    if not payload.strip():
        return None
    if too_deep(payload):
        return _TOO_DEEP
    try:
        json.loads(payload, parse_constant=_non_numeric)
    except RecursionError:  # Python's stack ran out first (3.10 and 3.11, just under 1000 levels)
        return _TOO_DEEP
    except (_NonNumeric, UnicodeDecodeError, json.JSONDecodeError):
        # Python's json takes NaN and Infinity, AWS's parser (Jackson) does not; its words, byte and column
        return _NOT_JSON + jackson_problem(payload)
    except ValueError:
        # Well-formed JSON holding an integer longer than Python converts (sys.get_int_max_str_digits): the
        # syntax is what is checked here, so it passes (this ValueError has no .msg; reading it crashed the request)
        return None
    return None


def _decode_client_context(raw: str) -> tuple[str | None, str | None]:
    """(the JSON text for the runtime, problem or None)."""
    if len(raw) > MAX_CLIENT_CONTEXT:
        return None, f"Client context must be at most {MAX_CLIENT_CONTEXT} bytes of base64."
    try:
        doc = json.loads(base64.b64decode(raw, validate=True).decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError):
        return None, "Client context must be a valid Base64-encoded JSON object."
    # Re-serialised: compact ASCII JSON holds no CR, LF or byte beyond latin-1,
    # so it goes into the Runtime API's /next header as is, and the handler
    # gets the same object (raw JSON may hold line breaks between tokens).
    return json.dumps(doc, separators=(",", ":")), None
