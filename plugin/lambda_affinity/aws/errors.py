"""AWS's errors, in our words: one line naming the step that failed, AWS's code and message, and what to do.

deploy and destroy run every AWS call inside `aws_step(Step(what, action))`; a botocore error there becomes a
DeployError whose message explain() writes from the Step and the AwsFailure (the error's code, message and
HTTP status).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from xml.etree import ElementTree

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from ..errors import LambdaAffinityError


class DeployError(LambdaAffinityError):
    """A deploy/destroy failure worth one clear line to the user."""


_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
_BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "AuthFailure",
    "InvalidAccessKeyId",
}


@dataclass(frozen=True)
class Step:
    """One AWS call of deploy or destroy: what it does, in words, and the permission it needs.

    `advice`: what to do about particular AWS error codes at this step, over
    the general advice of explain().
    """

    what: str
    action: str
    advice: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AwsFailure:
    """An AWS error as explain() needs it: botocore's ClientError code (or,
    for a BotoCoreError, its class name), message and HTTP status."""

    code: str
    message: str
    status: int | None = None


_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
_AWS_SIDE = {
    "ServiceException",
    "ServiceFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
}
_NETWORK = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
    "SSLError",
    "HTTPClientError",
}
_ADVICE = {
    "LimitExceeded": "an account quota is reached (IAM roles or policies): remove unused ones or ask AWS for more",
    "ResourceConflictException": "another update of the function is in progress: wait a minute and run it again",
    "CodeStorageExceededException": "the account's Lambda code storage is full: delete unused functions or versions",
    "EntityAlreadyExists": "it was created by someone else meanwhile: run it again",
}
DEBUG_ADVICE = "run it again with --debug for AWS's full answer; docs/real-aws.md explains the messages"


def explain(step: Step, failure: AwsFailure) -> str:
    """One line for a failed AWS call: the step, AWS's code and message, and what to do."""
    code, message = failure.code, failure.message.strip().rstrip(".")
    if code in _DENIED or (failure.status == 403 and code not in _BAD_CREDENTIALS):
        named = re.search(r"not authorized to perform:? ([\w-]+:[\w*]+)", message)
        action = named.group(1) if named else step.action
        return (
            f"{step.what} failed: missing permission {action} ({code}): {message or 'access denied'}. "
            f"Add {action} to the IAM policy of the identity you run this as (docs/real-aws.md, section 5, "
            "has the whole policy); a permissions boundary or an organization's SCP can also refuse it"
        )
    if code in _BAD_CREDENTIALS:
        return (
            f"{step.what} failed: AWS rejected the credentials ({code}): {message}. Check the access key, "
            "that a session token is set for temporary keys, and the clock"
        )
    advice = step.advice.get(code) or _ADVICE.get(code)
    if advice is None:
        if code in _THROTTLED:
            advice = "AWS is throttling this account's API calls: wait a minute and run it again"
        elif code in _AWS_SIDE or (failure.status or 0) >= 500:
            advice = "an error on AWS's side: run it again"
        elif code in _NETWORK:
            advice = "AWS could not be reached: check the network and the region (and AWS_ENDPOINT_URL, if set)"
        else:
            advice = DEBUG_ADVICE
    return f"{step.what} failed ({step.action}): {code}: {message}. What to do: {advice}"


def failure_of(exc: Exception) -> AwsFailure:
    """The AwsFailure of a botocore exception."""
    if isinstance(exc, ClientError):
        response = exc.response
    elif isinstance(exc, WaiterError) and "Error" in (exc.last_response or {}):
        response = exc.last_response  # AWS refused the waiter's own call
    else:
        return AwsFailure(type(exc).__name__, str(exc))
    err = response.get("Error", {})
    code, message = str(err.get("Code", "")), str(err.get("Message", "") or err.get("message", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code.isdigit() and message.lstrip().startswith("<"):
        # An XML error body where botocore expected JSON (moto's IAM check on
        # Lambda calls does this): read AWS's code and message out of it.
        with contextlib.suppress(ElementTree.ParseError):
            root = ElementTree.fromstring(message)
            code = root.findtext(".//Code") or code
            message = root.findtext(".//Message") or message
    return AwsFailure(code or "UnknownError", message, status)


@contextlib.contextmanager
def aws_step(step: Step) -> Iterator[None]:
    """Run AWS calls as `step`: any botocore error becomes one DeployError line."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise DeployError(explain(step, failure_of(exc))) from exc
