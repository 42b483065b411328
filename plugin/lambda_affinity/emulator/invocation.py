"""One invocation's data, its possible results, and Lambda's log lines.

Pure: no I/O. The error payloads are the ones AWS returns for each fault,
so a client sees the same `errorType` and message as on AWS.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING

from ..core import limits

if TYPE_CHECKING:  # the data stays importable without gevent
    from gevent.event import AsyncResult

MAX_PAYLOAD = limits.MAX_PAYLOAD  # 6291456: an Invoke request (and a Function URL body)
TAIL_BYTES = 4096  # X-Amz-Log-Result carries the last 4 KB
_KEEP_LOG_BYTES = 2 * TAIL_BYTES  # kept per invocation; the rest is only printed


class Result:
    """What an invocation returned.

    `function_error` is "Unhandled" for every function error, as AWS reports
    it; `recycle` tells the platform the environment must not be reused.
    """

    __slots__ = ("payload", "function_error", "error_type", "recycle", "status")

    def __init__(
        self,
        payload: bytes,
        function_error: str | None = None,
        error_type: str | None = None,
        recycle: bool = False,
        status: str | None = None,
    ) -> None:
        self.payload = payload
        self.function_error = function_error
        self.error_type = error_type
        self.recycle = recycle
        self.status = status  # REPORT's `Status:` (timeout, error), None when fine

    @classmethod
    def ok(cls, payload: bytes) -> Result:
        return cls(payload)


def _error(error_type: str, message: str, **more) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message, **more}).encode()


def function_error(payload: bytes, error_type: str | None) -> Result:
    """The handler raised: the runtime's error document, the environment kept."""
    return Result(payload, "Unhandled", error_type or "Unhandled", status="error")


def init_error(payload: bytes, error_type: str | None) -> Result:
    return Result(payload, "Unhandled", error_type or "Runtime.Unknown", recycle=True, status="error")


def timeout_result(request_id: str, timeout_s: float) -> Result:
    message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
    return Result(_error("Sandbox.Timedout", message), "Unhandled", "Sandbox.Timedout", recycle=True, status="timeout")


def exit_result(request_id: str, status_text: str) -> Result:
    """The process ended (crash, kill, exit) before answering. AWS words a
    clean exit (status 0) differently from a failure."""
    why = "without providing a reason" if status_text == "exit status 0" else f"with error: {status_text}"
    return Result(
        _error("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited {why}"),
        "Unhandled",
        "Runtime.ExitError",
        recycle=True,
        status="error",
    )


def out_of_memory_result(request_id: str) -> Result:
    """The environment went over its memory size and was killed, as AWS reports it."""
    message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    return Result(
        _error("Runtime.OutOfMemory", message), "Unhandled", "Runtime.OutOfMemory", recycle=True, status="error"
    )


def init_timeout_result(request_id: str, timeout_s: float) -> Result:
    message = f"RequestId: {request_id} Error: Init phase timed out after {timeout_s:.2f} seconds"
    return Result(_error("Runtime.Unknown", message), "Unhandled", "Runtime.Unknown", recycle=True, status="timeout")


class LogTail:
    """The lines one invocation logged; bounded, only the tail is kept."""

    __slots__ = ("lines", "size")

    def __init__(self) -> None:
        self.lines: deque = deque()
        self.size = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line) + 1
        while self.size > _KEEP_LOG_BYTES and len(self.lines) > 1:
            self.size -= len(self.lines.popleft()) + 1

    def tail_base64(self) -> str:
        data = "".join(line + "\n" for line in self.lines).encode("utf-8", "replace")
        return base64.b64encode(data[-TAIL_BYTES:]).decode()


class Invocation:
    __slots__ = (
        "request_id",
        "payload",
        "client_context",
        "function_arn",
        "deadline_ms",
        "timeout_s",
        "result",
        "log",
        "started",
        "trace_id",
    )

    def __init__(
        self,
        request_id: str,
        payload: bytes,
        function_arn: str,
        timeout_s: float,
        client_context: str | None = None,
        log: LogTail | None = None,
    ) -> None:
        self.request_id = request_id
        self.payload = payload
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self.client_context = client_context
        self.log = log  # None when nobody reads this invocation's log
        self.deadline_ms = 0
        self.started = 0.0
        self.result: AsyncResult | None = None  # set by the environment that runs it
        self.trace_id: str | None = None


# -- Lambda's platform log lines -------------------------------------------------
def start_line(request_id: str, version: str = "$LATEST") -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int | None,
    init_ms: float | None = None,
    status: str | None = None,
    restore: bool = False,
) -> str:
    """AWS's REPORT line; `restore`: a SnapStart environment's, whose init is a restore (AWS docs, SnapStart
    monitoring: `Restore Duration` in place of `Init Duration`)."""
    max_used = max_memory_mb if max_memory_mb is not None else "-"
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration_ms))} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_used} MB",
    ]
    if init_ms is not None and restore:
        parts.append(f"Restore Duration: {init_ms:.2f} ms")
        parts.append(f"Billed Restore Duration: {max(1, math.ceil(init_ms))} ms")
    elif init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    if status:
        parts.append(f"Status: {status}")
    return "\t".join(parts) + "\t"


def timeout_log_line(when_iso: str, request_id: str, timeout_s: float) -> str:
    return f"{when_iso} {request_id} Task timed out after {timeout_s:.2f} seconds"


# AWS's parser (Jackson) refuses a document nested this deep; Python's own limit moves with its version
# (3.10 and 3.11 stop near 1000 levels, 3.13 parses 9000), so the emulator counts the levels itself.
MAX_JSON_DEPTH = 1000
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def too_deep(payload: bytes) -> bool:
    if payload.count(b"[") + payload.count(b"{") < MAX_JSON_DEPTH:
        return False  # the common case: two scans in C
    depth = 0
    for b in _JSON_STRING.sub(b"", payload).translate(None, _NOT_BRACKET):  # brackets outside strings
        depth += 1 if b in b"[{" else -1
        if depth >= MAX_JSON_DEPTH:
            return True
    return False


# Request and X-Ray ids need to be unique, not secret: a PRNG seeded from the
# OS once, rather than a getrandom syscall for each id (uuid.uuid4()).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)  # a forked copy must not repeat our ids
_random_bits = _ids.getrandbits


def new_request_id() -> str:
    """A random request id in uuid4's format (version and variant bits set), as Lambda's."""
    return str(uuid.UUID(int=_random_bits(128), version=4))


def new_invocation(request_id, payload, arn, timeout_s, client_context, log) -> Invocation:
    """An invocation with a fresh X-Ray trace header, as Lambda gives each."""
    inv = Invocation(request_id, payload, arn, timeout_s, client_context, log)
    inv.trace_id = f"Root=1-{int(time.time()):08x}-{_random_bits(96):024x};Parent={_random_bits(64):016x};Sampled=0"
    return inv
