"""AWS's answers and names, shared by the Invoke API and the control-plane operations (control_api.py): the
REST-JSON error shape botocore reads, and the grammar of a function's name or ARN (from botocore's model)."""

from __future__ import annotations

import functools
import json
import re

from .invocation import new_request_id
from .wire import Response

# Parts of a name that passed AWS's pattern (below), grouped as that pattern groups them, so a name reads as AWS
# reads it: the incomplete ARN `arn:aws:lambda:R:A:function` is the function `function` at $LATEST.
ARN = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:(?P<region>(?:eusc-)?[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?(?P<name>[A-Za-z0-9_.-]+)"
    r"(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[A-Za-z0-9_-]+))?$"
)


class Refused(Exception):
    """A request AWS would refuse (Invoke or a control-plane operation); `response` is AWS's answer to it."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


@functools.lru_cache(maxsize=1)
def constraints() -> dict:
    """Invoke's FunctionName and Qualifier constraints, from botocore's copy of
    AWS's Lambda model: {field: (compiled pattern, pattern, min, max)}."""
    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model("lambda", "service-2")
    shapes = model["shapes"]
    members = shapes[model["operations"]["Invoke"]["input"]["shape"]]["members"]
    out = {}
    for member, field in (("FunctionName", "functionName"), ("Qualifier", "qualifier")):
        shape = shapes[members[member]["shape"]]
        out[field] = (re.compile(shape["pattern"]), shape["pattern"], shape["min"], shape["max"])
    return out


def validation_errors(name: str, qualifier: str | None) -> list[str]:
    """AWS's ValidationException items for an Invoke's name and qualifier (pure)."""
    problems = []
    for field, value in (("functionName", name), ("qualifier", qualifier)):
        if value is None:
            continue
        compiled, pattern, low, high = constraints()[field]
        prefix = f"Value '{value}' at '{field}' failed to satisfy constraint: Member must"
        if len(value) > high:
            problems.append(f"{prefix} have length less than or equal to {high}")
        elif len(value) < low:
            problems.append(f"{prefix} have length greater than or equal to {low}")
        if not compiled.fullmatch(value):
            problems.append(f"{prefix} satisfy regular expression pattern: {pattern}")
    return problems


def aws_error(
    status: int,
    code: str,
    message: str,
    message_key: str = "message",
    request_id: str | None = None,
    extra_headers: list | None = None,
    **fields,
) -> Response:
    """An AWS REST-JSON error: the code in x-amzn-ErrorType, the body as AWS shapes it."""
    body = {"Type": "User" if status < 500 else "Service", message_key: message, **fields}
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", code),
        ("x-amzn-RequestId", request_id or new_request_id()),
    ]
    headers += extra_headers or []
    return Response(status, headers, json.dumps(body).encode())
