"""Test helper shared by the deploy tests (in-process moto and moto's server)."""

from __future__ import annotations


def empty_account(lambda_clients, iam) -> None:
    """Delete every function (in each client's region), role and user, so a test starts from an empty account."""
    for lam in lambda_clients:
        for fn in lam.list_functions()["Functions"]:
            lam.delete_function(FunctionName=fn["FunctionName"])
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)
    for user in iam.list_users()["Users"]:
        name = user["UserName"]
        for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
            iam.delete_user_policy(UserName=name, PolicyName=policy)
        iam.delete_user(UserName=name)
