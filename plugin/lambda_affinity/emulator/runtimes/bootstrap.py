"""The built-in Python runtime client: Lambda's Runtime API (2018-06-01), stdlib only.

Runs inside an environment process (forked by the zygote, or started as
`python bootstrap.py`). It speaks HTTP/1.1 over one raw keep-alive socket
rather than http.client: importing http.client alone costs ~24 ms (it pulls
in the email package), and the hand-rolled exchange is the fastest per
invocation (docs/emulator.md, "Performance"). After a result it sends the POST and the
next GET in one write (HTTP pipelining), saving a round trip per invocation.

Environment (set by the emulator as Lambda sets it): AWS_LAMBDA_RUNTIME_API,
_HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, ...
"""

import io
import json
import logging
import os
import socket
import sys
import time
import traceback

API = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
MAX_HEAD = 1 << 20


class RuntimeAPIError(Exception):
    pass


class RequestIdFilter(logging.Filter):
    """Puts the invocation's request id on every record, as AWS's runtime does."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def install_log_handler() -> RequestIdFilter:
    """AWS's Python runtime gives the root logger a handler writing
    `[LEVEL]\t<UTC time>Z\t<request id>\t<message>` to the function's log; the
    root level stays WARNING unless the code sets it (as on AWS), and a later
    logging.basicConfig() does nothing, the root logger having a handler."""
    handler = logging.StreamHandler(sys.stdout)
    handler.terminator = ""  # the format ends the line itself, as AWS's does
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    request_ids = RequestIdFilter()
    handler.addFilter(request_ids)
    logging.getLogger().addHandler(handler)
    return request_ids


def exec_wrapper(runtime_api: str) -> None:
    """Run again under `AWS_LAMBDA_EXEC_WRAPPER`, as AWS's runtimes do: the
    wrapper gets this runtime's command line as its arguments (and usually
    ends with `exec "$@"`). Returns only when there is none to run."""
    wrapper = os.environ.get("AWS_LAMBDA_EXEC_WRAPPER")
    if not wrapper:
        return
    try:
        os.execv(wrapper, [wrapper, sys.executable, os.path.abspath(__file__), WRAPPED])
    except OSError as exc:
        # AWS: the environment's init fails with Runtime.InvalidEntrypoint
        message = f"fork/exec {wrapper}: {exc.strerror.lower() if exc.strerror else exc}"
        payload = {"errorMessage": message, "errorType": "Runtime.InvalidEntrypoint", "requestId": "", "stackTrace": []}
        log_error(payload)
        conn = Connection(runtime_api)
        conn.send(
            Connection.encode(
                "POST", f"{API}/init/error", json.dumps(payload).encode(), {ERROR_TYPE_HEADER: payload["errorType"]}
            )
        )
        conn.read_response()
        raise SystemExit(1) from None


WRAPPED = "--exec-wrapped"  # on the command line the wrapper runs: do not wrap again


class Connection:
    """One keep-alive HTTP/1.1 connection to the Runtime API. Responses are
    parsed from one buffer, one recv at a time (no readline per header)."""

    def __init__(self, address: str, fd: int | None = None) -> None:
        if fd is not None:
            # A socket the emulator connected for us: the same API, minus
            # TCP's cost per exchange on the loopback.
            self.sock = socket.socket(fileno=fd)
            self.sock.setblocking(True)  # the emulator's end is non-blocking, and the flag is shared
        else:
            host, _, port = address.rpartition(":")
            self.sock = socket.create_connection((host or "127.0.0.1", int(port)))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""  # received, not yet parsed

    @staticmethod
    def encode(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: runtime"]
        if method == "POST":
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response(self):
        """Return (status, headers with lower-case names, body)."""
        buf = self.buf
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(buf) > MAX_HEAD:
                raise RuntimeAPIError("the Runtime API sent an oversized response head")
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeAPIError("the Runtime API closed the connection")
            buf = buf + data if buf else data
        lines = buf[:i].decode("latin-1").split("\r\n")
        status = int(lines[0].split(None, 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = i + 4
        end = start + int(headers.get("content-length", "0"))
        if len(buf) < end:  # a body still on its way
            parts, have = [buf[start:]], len(buf) - start
            while have < end - start:
                data = self.sock.recv(max(end - start - have, 65536))
                if not data:
                    raise RuntimeAPIError("the Runtime API closed the connection")
                parts.append(data)
                have += len(data)
            rest = b"".join(parts)
            body, self.buf = rest[: end - start], rest[end - start :]
        else:
            body, self.buf = buf[start:end], buf[end:]
        return status, headers, body


class Context:
    """The `context` argument, with the attributes AWS's runtime provides."""

    def __init__(self, headers: dict) -> None:
        env = os.environ
        self.aws_request_id = headers.get("lambda-runtime-aws-request-id", "")
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn", "")
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0") or 0)
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        cc = headers.get("lambda-runtime-client-context")
        self.client_context = json.loads(cc) if cc else None
        ci = headers.get("lambda-runtime-cognito-identity")
        self.identity = json.loads(ci) if ci else None

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


class InitError(Exception):
    def __init__(self, error_type: str, message: str, stack=None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []


def load_handler(spec: str):
    """`module.function` (module may be a path with `/`), as AWS resolves it."""
    modname, _, fname = spec.rpartition(".")
    if not modname or not fname:
        raise InitError(
            "Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)"
        )
    modname = modname.replace("/", ".")
    try:
        __import__(modname)
        module = sys.modules[modname]
    except ImportError as exc:
        raise InitError("Runtime.ImportModuleError", f"Unable to import module '{modname}': {exc}") from exc
    except SyntaxError as exc:
        raise InitError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{modname}': {exc}",
            traceback.format_list(traceback.extract_tb(exc.__traceback__)),
        ) from exc
    except Exception as exc:
        raise InitError(
            type(exc).__name__, str(exc), traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
        ) from exc
    fn = getattr(module, fname, None)
    if fn is None:
        raise InitError("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'")
    return fn


def add_layer_paths(root: str) -> None:
    """The layers' Python folders right after the task root, where Lambda puts /opt's: the emulator extracts a
    function's layers into a folder of its own and names it in LAMBDA_AFFINITY_OPT (emulator/layers.py)."""
    opt = os.environ.get("LAMBDA_AFFINITY_OPT")
    if not opt:
        return
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    at = sys.path.index(root) + 1 if root in sys.path else 0
    for path in (os.path.join(opt, "python"), os.path.join(opt, "python", "lib", version, "site-packages")):
        if path not in sys.path:
            sys.path.insert(at, path)


def error_payload(exc: BaseException, request_id: str) -> dict:
    tb = traceback.extract_tb(exc.__traceback__)[1:]  # drop this runtime's frame
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(tb),
    }


def log_error(payload: dict) -> None:
    # AWS's Python runtime logs unhandled errors this way before reporting them.
    sys.stderr.write(
        f"[ERROR] {payload['errorType']}: {payload['errorMessage']}\n"
        + "Traceback (most recent call last):\n"
        + "".join(payload.get("stackTrace") or [])
    )
    sys.stderr.flush()


def main(runtime_fd: int | None = None, wrapped: bool = False) -> int:
    if not wrapped:
        exec_wrapper(os.environ["AWS_LAMBDA_RUNTIME_API"])
    # Logs reach the emulator per line, in order with the Runtime API calls.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):  # a handler's test harness may have replaced them
            try:
                stream.reconfigure(line_buffering=True)
            except ValueError:
                pass
    request_ids = install_log_handler()
    root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    if root not in sys.path:
        sys.path.insert(0, root)
    add_layer_paths(root)
    conn = Connection(os.environ["AWS_LAMBDA_RUNTIME_API"], runtime_fd)
    next_request = Connection.encode("GET", f"{API}/invocation/next")
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except InitError as exc:
        payload = {"errorMessage": exc.message, "errorType": exc.error_type, "requestId": "", "stackTrace": exc.stack}
        log_error(payload)
        conn.send(
            Connection.encode(
                "POST", f"{API}/init/error", json.dumps(payload).encode(), {ERROR_TYPE_HEADER: exc.error_type}
            )
        )
        conn.read_response()
        return 1
    conn.send(next_request)
    while True:
        status, headers, body = conn.read_response()
        if status != 200:
            # A 202 acknowledges the result pipelined before this /next.
            continue
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        request_ids.request_id = request_id
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        path = f"{API}/invocation/{request_id}"
        try:
            event = json.loads(body) if body else None
            result = handler(event, Context(headers))
        except Exception as exc:  # the handler's exception is the function error
            payload = error_payload(exc, request_id)
            log_error(payload)
            out = Connection.encode(
                "POST", f"{path}/error", json.dumps(payload).encode(), {ERROR_TYPE_HEADER: payload["errorType"]}
            )
        else:
            try:
                data = json.dumps(result).encode()
            except (TypeError, ValueError, RecursionError) as exc:
                payload = {
                    "errorMessage": f"Unable to marshal response: {exc}",
                    "errorType": "Runtime.MarshalError",
                    "requestId": request_id,
                    "stackTrace": [],
                }
                log_error(payload)
                out = Connection.encode(
                    "POST", f"{path}/error", json.dumps(payload).encode(), {ERROR_TYPE_HEADER: payload["errorType"]}
                )
            else:
                out = Connection.encode("POST", f"{path}/response", data)
        sys.stdout.flush()
        sys.stderr.flush()
        conn.send(out + next_request)


if __name__ == "__main__":
    try:
        sys.exit(main(wrapped=WRAPPED in sys.argv[1:]))
    except (RuntimeAPIError, OSError):
        sys.exit(0)  # the emulator stopped this environment
