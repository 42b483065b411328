"""A failed deploy's rollback: driven by each change's kind, never by the wording of its message."""

from __future__ import annotations

from botocore.exceptions import ClientError

from lambda_affinity.aws.rollback import Change, Kind, Undo, roll_back

DESTROY = "lambda-affinity destroy --name p --region eu-west-1"


def journal(calls):
    def undo(resource, fail=None):
        def call():
            calls.append(resource)
            if fail is not None:
                raise fail

        return Undo(call, "x:Undo", f"undo {resource} by hand")

    return undo


def test_rollback_undoes_what_the_kind_says_whatever_the_messages_say():
    calls: list = []
    undo = journal(calls)
    # Messages that read the opposite way of their kind: the old prefix test
    # ("created ", "added ", ...) would have kept the role and the statement
    # and listed the updated code as undone.
    changes = [
        Change(Kind.CREATED, "role r", "updated IAM: role r is new", undo("role r")),
        Change(Kind.CREATED, "the attachment of P to role r", "", undo("the attachment of P to role r")),
        Change(Kind.UPDATED, "the code of p", "created a new code version of p"),
        Change(Kind.ADDED, "statement s of p", "kept statement s", undo("statement s of p")),
        Change(Kind.REMOVED, "statement old of p", "added nothing; dropped statement old"),
        Change(Kind.CREATED, "the Function URL of p", "updated URL", None),  # goes with the function
    ]
    report = roll_back(changes, "p", DESTROY)
    assert calls == ["statement s of p", "the attachment of P to role r", "role r"]  # newest first
    assert report.splitlines() == [
        "Rolled back: removed statement s of p, the attachment of P to role r, role r.",
        "Kept (changes to the deployment that was already there): created a new code version of p; "
        "added nothing; dropped statement old.",
    ]


def test_a_role_that_cannot_be_set_back_keeps_what_was_created_before_it():
    calls: list = []
    undo = journal(calls)
    refused = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "UpdateFunctionConfiguration")
    changes = [
        Change(Kind.CREATED, "role r", "a role", undo("role r")),
        Change(Kind.ROLE_CHANGED, "the role of p", "p runs as r now", undo("the role of p", refused)),
        Change(Kind.ADDED, "statement s of p", "a statement", undo("statement s of p")),
    ]
    lines = roll_back(changes, "p", DESTROY).splitlines()
    assert calls == ["statement s of p", "the role of p"]  # role r is not deleted: p still uses it
    assert lines[0] == "Rolled back: removed statement s of p."
    assert lines[1] == "Could not remove, so left in the account:"
    assert lines[2].startswith("  the role of p (removing the role of p failed: missing permission x:Undo")
    assert lines[4:6] == [
        "  role r (kept: p still uses it, as the role of p failed)",
        "    remove it with: undo role r by hand",
    ]


def test_nothing_undone_when_only_updates_were_made():
    changes = [Change(Kind.UPDATED, "MemorySize of p", "made p bigger")]
    assert roll_back(changes, "p", DESTROY).splitlines() == [
        "Nothing was created, so nothing is left behind.",
        "Kept (changes to the deployment that was already there): made p bigger.",
    ]
