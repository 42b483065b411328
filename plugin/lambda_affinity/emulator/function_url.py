"""A function's URL: HTTP in, payload format 2.0 event, AWS's response conversion.

`build_event` and `convert_result` are pure; `FunctionURL` is the front end
that serves one function on its own port, as each Function URL is its own
host on AWS.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from urllib.parse import parse_qsl, unquote

from ..core.reply import EMULATOR_ERROR_HEADER
from ..platform import Throttled, UnknownFunction
from .auth import Authority, authorize
from .invocation import MAX_PAYLOAD, Result, too_deep
from .service import InvocationService, ServiceStopping, new_request_id
from .wire import App, Request, Response

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "+json",
    "+xml",
)
_JSON_TYPE = ("Content-Type", "application/json")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.6.2
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def _is_text(content_type: str) -> bool:
    ct = content_type.lower()
    return any(t in ct for t in _TEXT_TYPES)


# Hop-by-hop: AWS's front end ends the client's connection and does not pass these on.
_NOT_PASSED = frozenset(("cookie", "connection", "keep-alive", "te", "upgrade", "proxy-connection"))


def build_event(
    req: Request, url_id: str, region: str, request_id: str, now: float, port: int = 443, trace_root: str = ""
) -> dict:
    """The payload format 2.0 event Lambda builds for a Function URL request.
    `port`: the port the client connected to; `trace_root`: the X-Ray root
    (`1-<8 hex>-<24 hex>`) AWS's front end adds as `x-amzn-trace-id`."""
    headers = {}
    cookies = None
    for name, value in req.headers.items():
        if name not in _NOT_PASSED:
            headers[name] = value
        elif name == "cookie":
            cookies = [c.strip() for c in value.replace(",", ";").split(";") if c.strip()]
    # What AWS's front end adds: the client's address appended to any it sent.
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded}, {req.peer}" if forwarded else req.peer
    headers["x-forwarded-proto"] = "http"  # AWS: https, the only scheme it serves; ours is http
    headers["x-forwarded-port"] = str(port)
    if trace_root and "x-amzn-trace-id" not in headers:
        headers["x-amzn-trace-id"] = f"Root={trace_root}"
    query: dict[str, str] | None = None
    if req.query:
        query = {}
        for key, value in parse_qsl(req.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
    host = req.headers.get("host", f"{url_id}.lambda-url.{region}.on.aws")
    path = unquote(req.path)
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": req.query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": req.method,
                "path": path,
                "protocol": req.version,
                "sourceIp": req.peer,
                "userAgent": req.headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query is not None:
        event["queryStringParameters"] = query
    if req.body:
        if _is_text(req.headers.get("content-type", "")):
            try:
                event["body"] = req.body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(req.body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(req.body).decode()
            event["isBase64Encoded"] = True
    return event


def _compact(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _header_ok(name: str, value: str) -> bool:
    """A field AWS would send: a token for a name, no CR, LF or NUL in the value
    (which would end the header early and inject others on the wire)."""
    return bool(_TOKEN.fullmatch(name)) and not _BAD_VALUE.search(value)


def convert_result(payload: bytes) -> tuple[int, list, bytes] | None:
    """AWS's conversion of a function's result to an HTTP response; None when
    the result is not a valid response (AWS answers 502 then).

    A JSON object with `statusCode` gives that status, its `headers`,
    `cookies` and `body` (base64-decoded when `isBase64Encoded`). Any other
    result is a 200 application/json body: a string as its text (`hello`,
    not `"hello"`), anything else re-serialised compactly, as AWS does.
    """
    if not payload.strip():
        return 200, [_JSON_TYPE], b""
    if too_deep(payload):  # AWS's conversion refuses it: 502
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or "statusCode" not in doc:
        return 200, [_JSON_TYPE], doc.encode("utf-8") if isinstance(doc, str) else _compact(doc)
    status = doc["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return None
    headers = _response_headers(doc)
    data = _response_body(doc)
    if headers is None or data is None:
        return None
    return status, headers, data


def _response_headers(doc: dict) -> list | None:
    """A response object's `headers` and `cookies` as header fields (our own
    framing left out, a content type added when it names none); None when
    either is not a valid response's."""
    headers = []
    raw_headers = doc.get("headers") or {}
    if not isinstance(raw_headers, dict):
        return None
    for name, value in raw_headers.items():
        name, value = str(name), str(value)
        if not _header_ok(name, value):
            return None
        if name.lower() in ("content-length", "connection", "transfer-encoding", "date"):
            continue  # framing is ours
        headers.append((name, value))
    if not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(_JSON_TYPE)
    cookies = doc.get("cookies") or []
    if not isinstance(cookies, list):
        return None
    for cookie in map(str, cookies):
        if _BAD_VALUE.search(cookie):
            return None
        headers.append(("Set-Cookie", cookie))
    return headers


def _response_body(doc: dict) -> bytes | None:
    """A response object's `body` as bytes (base64-decoded when `isBase64Encoded`);
    None when it is not valid base64."""
    body = doc.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        return _compact(body)
    if not doc.get("isBase64Encoded"):
        return body.encode("utf-8")
    try:
        return base64.b64decode(body)
    except ValueError:
        return None


def _message(status: int, message: str | None, request_id: str) -> Response:
    return Response(status, [_JSON_TYPE, ("x-amzn-RequestId", request_id)], json.dumps({"Message": message}).encode())


def _plain(status: int, text: str, request_id: str) -> Response:
    return Response(status, [("Content-Type", "text/plain"), ("x-amzn-RequestId", request_id)], text.encode())


class FunctionURL(App):
    max_body = MAX_PAYLOAD

    def __init__(self, service: InvocationService, function: str, url_id: str, auth_type: str) -> None:
        self.service = service
        self.function = function
        self.url_id = url_id
        self.auth_type = auth_type
        self.authority = Authority()  # the server sets where it listens once it does

    def too_large(self, req: Request) -> Response:
        return _message(
            413, f"Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation", new_request_id()
        )

    def handle(self, req: Request) -> Response:
        request_id = new_request_id()
        config = self.service.config
        denied = authorize(req, self.auth_type, config.credentials, config.region, self._log_denied, self.authority)
        if denied is not None:
            denied.headers.append(("x-amzn-RequestId", request_id))
            return denied
        now = time.time()
        event = build_event(
            req,
            self.url_id,
            config.region,
            request_id,
            now,
            self.authority.port,
            f"1-{int(now):08x}-{secrets.token_hex(12)}",
        )
        payload = json.dumps(event).encode()
        if len(payload) > MAX_PAYLOAD:  # base64 grows a body near the limit past it
            return self.too_large(req)
        try:
            result, _ = self.service.invoke(self.function, payload, request_id=request_id)
        except Throttled as exc:  # the emulator's own cap says so in its message
            return _message(429, getattr(exc, "message", "Rate Exceeded."), request_id)
        except UnknownFunction:
            return _message(404, None, request_id)
        except ServiceStopping:
            return _plain(503, "Service Unavailable", request_id)
        return self._respond(result, request_id)

    def _log_denied(self, reason: str) -> None:
        # Beside the START/END/REPORT lines (and, like them, silent with
        # --quiet): AWS's 403 body does not say which check failed.
        self.service._print(f"[{self.function} url] {reason}")

    @staticmethod
    def _respond(result: Result, request_id: str) -> Response:
        if result.function_error:
            failed = _plain(502, "Internal Server Error", request_id)  # AWS's answer, body and all
            failed.headers.append((EMULATOR_ERROR_HEADER, _error_header(result)))
            return failed
        converted = convert_result(result.payload)
        if converted is None:
            return _plain(502, "Internal Server Error", request_id)
        status, headers, body = converted
        headers.append(("x-amzn-RequestId", request_id))
        return Response(status, headers, body)


def _error_header(result: Result) -> str:
    """The function's error for EMULATOR_ERROR_HEADER: ASCII JSON (no CR or LF), its message cut to 1000 characters."""
    try:
        doc = json.loads(result.payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    message = doc.get("errorMessage")
    return json.dumps(
        {
            "kind": result.function_error,
            "errorType": str(doc.get("errorType") or result.error_type or "Unknown"),
            "errorMessage": "" if message is None else str(message)[:1000],
        }
    )
