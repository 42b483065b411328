"""The control-plane operations a deploy needs, on the Invoke API's port, in botocore's request and response
shapes (its Lambda model): UpdateFunctionCode, UpdateFunctionConfiguration, PublishVersion,
GetFunctionConfiguration and GetFunction. So `boto3.client("lambda").update_function_code(...)`,
`aws lambda update-function-code --zip-file fileb://...` and `aws lambda wait function-updated` work against
the emulator. Requests are accepted unsigned or signed, as the Invoke front end accepts them.

An update answers `LastUpdateStatus: InProgress`, as AWS's does; the change is already applied when the answer
goes out, so the next GetFunctionConfiguration says `Successful` (what `wait function-updated` polls for).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from typing import Any
from urllib.parse import parse_qs

import gevent

from ..core import limits
from ..platform import ConfigError
from .auth import LOOPBACK
from .aws_shapes import ARN, Refused as _Refused, aws_error, validation_errors
from .code_store import Code, CodeError, CodeStore
from .config import RESERVED_ENV, _environment
from .deployments import LATEST, Deployments, Published
from .invocation import MAX_PAYLOAD, new_request_id
from .wire import Request, Response

# {name}, then which operation's path: /code, /configuration, /versions, or none (GetFunction).
_PATH = re.compile(r"^(?P<name>[^/]+)(?P<op>/code|/configuration|/versions)?/?$")
# AWS's direct-upload bound (50 MB of zip, base64) is above the front end's bounded body; ours is said in the answer.
AWS_ZIP_REQUEST_MAX = 69_905_067
# UpdateFunctionConfiguration fields the emulator applies; any other one given is refused, not ignored.
CONFIG_FIELDS = ("FunctionName", "Environment", "Timeout", "MemorySize", "Handler", "Description", "RevisionId")
CODE_FIELDS = ("FunctionName", "ZipFile", "Publish", "DryRun", "RevisionId", "Architectures")
S3_FIELDS = ("S3Bucket", "S3Key", "S3ObjectVersion", "S3ObjectStorageMode")


def _bad(message: str, code: str = "InvalidParameterValueException", status: int = 400) -> _Refused:
    return _Refused(aws_error(status, code, message))


class ControlAPI:
    def __init__(self, service) -> None:
        self.service = service
        self.deployments = Deployments(service)
        # Host names a request that changes code may name (`bind`); None: any
        self.hosts: frozenset | None = None

    def bind(self, host: str) -> None:
        """The address the port listens on. Bound to one (loopback by default), an update must name it or a
        loopback name in its Host header: a web page whose name was re-pointed at 127.0.0.1 (DNS rebinding)
        cannot send this emulator code to run."""
        self.hosts = None if host in ("", "0.0.0.0", "::") else LOOPBACK | {host.lower()}

    def too_large(self) -> Response:
        return aws_error(
            413,
            "RequestEntityTooLargeException",
            f"Request must be smaller than {MAX_PAYLOAD} bytes for the UpdateFunctionCode operation (the local "
            f"emulator's bound on a request; AWS's is {AWS_ZIP_REQUEST_MAX})",
        )

    def handle(self, req: Request, rest: str) -> Response | None:
        """AWS's answer to a control-plane request on `/2015-03-31/functions/{rest}`; None when it is none of
        these operations (the caller answers UnknownOperation)."""
        m = _PATH.match(rest)
        if m is None:
            return None
        handler = {
            ("PUT", "/code"): self._update_code,
            ("PUT", "/configuration"): self._update_configuration,
            ("GET", "/configuration"): self._get_configuration,
            ("POST", "/versions"): self._publish_version,
            ("GET", None): self._get_function,
        }.get((req.method, m.group("op")))
        if handler is None:
            return None
        if req.method != "GET" and not self._host_allowed(req.headers.get("host", "")):
            return aws_error(403, "AccessDeniedException", "The Host header names no address this emulator listens on")
        query = parse_qs(req.query, keep_blank_values=True) if req.query else {}
        try:
            name, qualifier = self._function(m.group("name"), query.get("Qualifier", [None])[0])
            status, doc = handler(name, qualifier, req)
        except _Refused as refused:
            return refused.response
        body = json.dumps(doc).encode()
        return Response(status, [("Content-Type", "application/json"), ("x-amzn-RequestId", new_request_id())], body)

    def _host_allowed(self, host: str) -> bool:
        name, colon, port = host.strip().lower().rpartition(":")
        if not colon or "]" in port:  # no port (or an IPv6 address without one)
            name = host.strip().lower()
        return self.hosts is None or name in self.hosts

    # -- the operations: each (status, document) -------------------------------------------------------------
    def _get_configuration(self, name: str, qualifier: str | None, req: Request) -> tuple[int, dict]:
        return 200, self.deployments.configuration(self._published(name, qualifier))

    def _get_function(self, name: str, qualifier: str | None, req: Request) -> tuple[int, dict]:
        pub = self._published(name, qualifier)
        doc: dict[str, Any] = {"Configuration": self.deployments.configuration(pub), "Code": {"RepositoryType": "S3"}}
        if pub.fn.reserved_concurrency is not None:
            doc["Concurrency"] = {"ReservedConcurrentExecutions": pub.fn.reserved_concurrency}
        return 200, doc

    def _update_code(self, name: str, qualifier: str | None, req: Request) -> tuple[int, dict]:
        body = _body(req, CODE_FIELDS + S3_FIELDS + ("ImageUri", "SourceKMSKeyArn", "PublishTo"), refuse_others=True)
        latest = self._latest(name, qualifier, body)
        if any(body.get(k) is not None for k in S3_FIELDS):
            raise _bad(
                "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: The specified "
                "bucket does not exist (the local Lambda emulator has no S3: send the zip as ZipFile)"
            )
        for key in ("ImageUri", "SourceKMSKeyArn", "PublishTo"):
            if body.get(key) is not None:
                raise _bad(f"{key} is not supported by the local Lambda emulator (a Zip function takes ZipFile)")
        if body.get("Architectures") not in (None, ["x86_64"]):
            raise _bad("Architectures: the local Lambda emulator runs functions natively and reports x86_64")
        if body.get("ZipFile") is None:
            raise _bad("Please provide a source for function code.")
        data = _zip_bytes(body["ZipFile"])
        store = self.service.code_store
        # extracted off the loop: invocations in flight go on meanwhile
        code = gevent.get_hub().threadpool.apply(_extract, (store, data))
        if isinstance(code, CodeError):
            raise _bad(str(code))
        if body.get("DryRun"):
            store.discard(code)
            return 200, self.deployments.configuration(dataclasses.replace(latest, code=code), "InProgress")
        self.deployments.update(name, latest.fn, code=code)
        return self._after_update(name, body)

    def _update_configuration(self, name: str, qualifier: str | None, req: Request) -> tuple[int, dict]:
        body = _body(req, CONFIG_FIELDS + ("Runtime",), refuse_others=True)
        latest = self._latest(name, qualifier, body)
        fn = latest.fn
        if body.get("Runtime") not in (None, fn.runtime):
            raise _bad("Runtime cannot be changed by the local Lambda emulator; it runs the config's")
        changes: dict[str, Any] = {}
        if body.get("Environment") is not None:
            changes["environment"] = _variables(body["Environment"])
        if body.get("Timeout") is not None:
            changes["timeout"] = float(_ranged(body["Timeout"], "timeout", limits.TIMEOUT_MIN_S, limits.TIMEOUT_MAX_S))
        if body.get("MemorySize") is not None:
            changes["memory"] = _ranged(body["MemorySize"], "memorySize", limits.MEMORY_MIN_MB, limits.MEMORY_MAX_MB)
        if body.get("Handler") is not None:
            changes["handler"] = _handler(body["Handler"])
        description = body.get("Description")
        if description is not None and (not isinstance(description, str) or len(description) > 256):
            raise _validation(
                "Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256"
            )
        self.deployments.update(name, dataclasses.replace(fn, **changes), description=description)
        return self._after_update(name, body)

    def _publish_version(self, name: str, qualifier: str | None, req: Request) -> tuple[int, dict]:
        body = _body(req, ("FunctionName", "CodeSha256", "Description", "RevisionId"), refuse_others=True)
        latest = self._latest(name, qualifier, body)
        sha = body.get("CodeSha256")
        if sha is not None and sha != latest.code.sha256:
            raise _bad(
                f"CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({latest.code.sha256}). "
                "Please try again with the current CodeSHA256."
            )
        return 201, self.deployments.configuration(self.deployments.publish(name, body.get("Description")))

    # -- helpers ---------------------------------------------------------------------------------------------
    def _after_update(self, name: str, body: dict) -> tuple[int, dict]:
        if body.get("Publish"):
            return 200, self.deployments.configuration(self.deployments.publish(name), "InProgress")
        return 200, self.deployments.configuration(self.deployments.latest(name), "InProgress")

    def _function(self, raw_name: str, qualifier: str | None) -> tuple[str, str | None]:
        problems = validation_errors(raw_name, qualifier)
        if problems:
            count = f"{len(problems)} validation error{'s' if len(problems) > 1 else ''}"
            raise _validation(f"{'; '.join(problems)}", count)
        m = ARN.match(raw_name)
        arn_qualifier = m.group("qualifier") if m else None
        if arn_qualifier and qualifier and arn_qualifier != qualifier:
            raise _bad("The derived qualifier from the function name does not match the specified qualifier.")
        qualifier = qualifier or arn_qualifier
        config = self.service.config
        if (
            m is None
            or (m.group("region") and m.group("region") != config.region)
            or (m.group("account") and m.group("account") != config.account_id)
            or m.group("name") not in self.service.functions
        ):
            raise self._not_found(m.group("name") if m else raw_name, qualifier)
        return m.group("name"), qualifier

    def _not_found(self, name: str, qualifier: str | None) -> _Refused:
        arn = f"{self.service.arn(name)}:{qualifier or LATEST}"
        return _Refused(aws_error(404, "ResourceNotFoundException", f"Function not found: {arn}", "Message"))

    def _published(self, name: str, qualifier: str | None) -> Published:
        pub = self.deployments.version(name, qualifier)
        if pub is None:
            raise self._not_found(name, qualifier)
        return pub

    def _latest(self, name: str, qualifier: str | None, body: dict) -> Published:
        """$LATEST, which updates and PublishVersion act on; PreconditionFailed on a stale RevisionId."""
        if qualifier not in (None, LATEST):
            raise _bad(f"The local Lambda emulator updates and publishes from $LATEST only, not {qualifier!r}")
        latest = self.deployments.latest(name)
        revision = body.get("RevisionId")
        if revision is not None and revision != latest.revision_id:
            raise _bad(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias "
                "API to retrieve the latest Revision Id",
                "PreconditionFailedException",
                412,
            )
        return latest


def _validation(problem: str, count: str = "1 validation error") -> _Refused:
    return _bad(f"{count} detected: {problem}", "ValidationException")


def _body(req: Request, known: tuple[str, ...], refuse_others: bool = False) -> dict:
    """The request's JSON object; with `refuse_others`, a field the emulator does not apply is refused by name."""
    try:
        body = json.loads(req.body or b"{}")
    except (ValueError, RecursionError):
        raise _bad("Could not parse request body into json", "InvalidRequestContentException") from None
    if not isinstance(body, dict):
        raise _bad("Could not parse request body into json: expected an object", "InvalidRequestContentException")
    others = sorted(k for k, v in body.items() if k not in known and v is not None)
    if others and refuse_others:
        raise _bad(
            f"{others[0]} is not supported by the local Lambda emulator (it takes "
            f"{', '.join(k for k in known if k not in ('FunctionName', 'RevisionId', 'Runtime'))})"
        )
    return body


def _extract(store: CodeStore, data: bytes) -> Code | CodeError:
    """In a worker thread: the extracted code, or the refusal (returned: a raise there is logged as a crash)."""
    try:
        return store.extract(data)
    except CodeError as exc:
        return exc


def _zip_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _bad("ZipFile: expected the zip's bytes in base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Could not unzip uploaded file. Please check your file, then try to upload again.") from None


def _ranged(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _validation(f"Value '{value}' at '{field}' failed to satisfy constraint: Member must be an integer")
    if value > high:
        raise _validation(
            f"Value '{value}' at '{field}' failed to satisfy constraint: Member must have value less than or "
            f"equal to {high}"
        )
    if value < low:
        raise _validation(
            f"Value '{value}' at '{field}' failed to satisfy constraint: Member must have value greater than or "
            f"equal to {low}"
        )
    return value


def _handler(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[^\s]+", value) or len(value) > 128:
        raise _validation(
            f"Value '{value}' at 'handler' failed to satisfy constraint: Member must satisfy regular expression "
            "pattern: [^\\s]+"
        )
    if "." not in value.strip("."):
        raise _bad(f"Handler {value!r}: expected module.function (e.g. app.handler)")
    return value


def _variables(environment: Any) -> dict:
    """Environment.Variables, checked as AWS checks them (reserved keys, 4 KB) and as the emulator's config is."""
    if not isinstance(environment, dict) or not isinstance(environment.get("Variables", {}), dict):
        raise _bad('Environment: expected {"Variables": {NAME: value}}')
    variables = environment.get("Variables", {})
    reserved = sorted(k for k in variables if k in RESERVED_ENV)
    if reserved:
        raise _bad(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            "provided contains reserved keys that are currently not supported for modification. Reserved keys used "
            f"in this request: {', '.join(reserved)}"
        )
    size = sum(len(k) + len(str(v)) for k, v in variables.items())
    if size > limits.ENV_TOTAL_BYTES:
        raise _bad(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            f"provided exceeded the 4KB limit. String measured: {size} bytes"
        )
    try:
        return _environment(variables, "Environment.Variables")
    except ConfigError as exc:
        raise _bad(str(exc)) from None
