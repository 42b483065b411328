"""deploy's AWS error messages and rollback report (pure logic)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, WaiterError

from lambda_affinity.aws.deploy import DEBUG_ADVICE, AwsFailure, Step, explain, failure_of, rollback_report

STEP = Step(
    "creating the function probe", "lambda:CreateFunction", {"InvalidParameterValueException": "check the role"}
)


def client_error(code, message, status, operation="CreateFunction"):
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def test_a_refusal_names_the_permission_from_aws_message_or_the_step():
    named = explain(
        STEP,
        AwsFailure(
            "AccessDeniedException",
            "User: arn:aws:iam::1:user/u is not authorized to perform: iam:PassRole on resource: arn:aws:iam::1:role/r",
            403,
        ),
    )
    assert named.startswith(
        "creating the function probe failed: missing permission iam:PassRole "
        "(AccessDeniedException): User: arn:aws:iam::1:user/u is not authorized"
    )
    assert "Add iam:PassRole to the IAM policy" in named and "SCP" in named
    bare = explain(STEP, AwsFailure("AccessDenied", "", 403))
    assert "missing permission lambda:CreateFunction (AccessDenied): access denied. Add lambda:CreateFunction" in bare
    # any other 403 that is not about the credentials is a refusal too
    assert "missing permission lambda:CreateFunction (Forbidden)" in explain(STEP, AwsFailure("Forbidden", "no", 403))


def test_rejected_credentials():
    text = explain(
        STEP, AwsFailure("InvalidClientTokenId", "The security token included in the request is invalid.", 403)
    )
    assert text == (
        "creating the function probe failed: AWS rejected the credentials (InvalidClientTokenId): "
        "The security token included in the request is invalid. Check the access key, that a session "
        "token is set for temporary keys, and the clock"
    )


@pytest.mark.parametrize(
    "failure, advice",
    [
        (
            AwsFailure(
                "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.", 400
            ),
            "check the role",
        ),
        (
            AwsFailure("ResourceConflictException", "The operation cannot be performed at this time.", 409),
            "another update of the function is in progress",
        ),
        (AwsFailure("TooManyRequestsException", "Rate exceeded", 429), "AWS is throttling this account's API calls"),
        (AwsFailure("ServiceException", "oops", 500), "an error on AWS's side: run it again"),
        (AwsFailure("WeirdNewError", "whatever", 502), "an error on AWS's side: run it again"),
        (
            AwsFailure("EndpointConnectionError", 'Could not connect to the endpoint URL: "https://x/"'),
            "check the network and the region (and AWS_ENDPOINT_URL, if set)",
        ),
        (AwsFailure("ValidationError", "bad", 400), DEBUG_ADVICE),
    ],
)
def test_every_other_error_says_the_step_the_code_the_message_and_what_to_do(failure, advice):
    text = explain(STEP, failure)
    assert text.startswith(
        f"creating the function probe failed (lambda:CreateFunction): {failure.code}: "
        f"{failure.message.rstrip('.')}. What to do: "
    )
    assert advice in text
    assert "\n" not in text


def test_failure_of_reads_botocore_errors():
    assert failure_of(client_error("ResourceConflictException", "busy", 409)) == AwsFailure(
        "ResourceConflictException", "busy", 409
    )
    # An XML error body where botocore expected JSON (moto's IAM check on a Lambda call).
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n<ErrorResponse><Errors><Error><Code>AccessDenied</Code>'
        "<Message>User: u is not authorized to perform: lambda:CreateFunction</Message></Error></Errors>"
        "</ErrorResponse>"
    )
    assert failure_of(client_error("403", xml, 403)) == AwsFailure(
        "AccessDenied", "User: u is not authorized to perform: lambda:CreateFunction", 403
    )
    assert failure_of(client_error("403", "<not xml", 403)) == AwsFailure("403", "<not xml", 403)
    assert failure_of(EndpointConnectionError(endpoint_url="https://x/")) == AwsFailure(
        "EndpointConnectionError", 'Could not connect to the endpoint URL: "https://x/"'
    )
    refused = WaiterError(
        name="FunctionActiveV2",
        reason="denied",
        last_response={
            "Error": {"Code": "AccessDeniedException", "Message": "no"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
    )
    assert failure_of(refused) == AwsFailure("AccessDeniedException", "no", 403)


def test_rollback_report():
    destroy = "lambda-affinity destroy --name p --region eu-west-1"
    assert rollback_report([], [], [], destroy) == "Nothing was created, so nothing is left behind."
    assert rollback_report(["function p", "role r"], [], [], destroy) == "Rolled back: removed function p, role r."
    text = rollback_report(
        ["role r"],
        [("function p", "refused", "aws lambda delete-function --function-name p")],
        ["updated the code of p"],
        destroy,
    )
    assert text.splitlines() == [
        "Rolled back: removed role r.",
        "Could not remove, so left in the account:",
        "  function p (refused)",
        "    remove it with: aws lambda delete-function --function-name p",
        f"Or run `lambda-affinity deploy` again to finish, or `{destroy}` to remove it all.",
        "Kept (changes to the deployment that was already there): updated the code of p.",
    ]
