"""deploy and destroy: the AWS calls, in order, against one account and region, with rollback.

deploy creates or updates, in place:
  - an execution role `<name>-role` (path /lambda-affinity/) with the AWS
    managed policy AWSLambdaBasicExecutionRole, unless --role-arn is given;
  - the function (handler `handler.handler`), its Function URL (auth type
    AWS_IAM by default, or NONE) and the resource-policy statements the URL
    needs (lambda:InvokeFunctionUrl + lambda:InvokeFunction via the URL);
then waits until the function is active. Each step is recorded as a Change as
soon as it is made, so that a failed run can undo exactly its own part.

Everything deploy creates carries the tag `lambda-affinity:managed=true` (the
role also `lambda-affinity:function=<name>`); policy statements carry a
`lambda-affinity-` Sid. destroy removes exactly those, and deploy refuses to
take over a function or role that lacks the tag. The function's CloudWatch log
group is created by Lambda, not by deploy, and is left alone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
import time

from botocore.exceptions import WaiterError

from . import layer_publish
from .errors import DEBUG_ADVICE, DeployError, Step, aws_step
from .layer import build_layer
from .packaging import code_sha256
from .rollback import Change, Kind, Undo, roll_back
from .spec import BASIC_EXECUTION, FUNCTION_TAG, MANAGED_TAG, ROLE_PATH, SID_PREFIX, TRUST_POLICY, Deployed, Spec


def _role_is_ours(role: dict, function_name: str) -> bool:
    tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
    return tags.get(MANAGED_TAG) == "true" and tags.get(FUNCTION_TAG) == function_name


class Deployer:
    """deploy/destroy against one account and region through a boto3 Session."""

    def __init__(self, session, wait_s: float = 300.0, profile: str | None = None) -> None:
        from .sigv4 import REGION_SETTINGS  # not at import: sigv4 loads ssl, which `lambda-affinity locust` patches

        self.region = session.region_name
        if not self.region:
            raise DeployError(f"no AWS region: pass --region, or {REGION_SETTINGS}")
        self.session = session
        self.profile = profile
        self.lam = session.client("lambda")
        self.iam = session.client("iam")
        self.wait_s = wait_s
        self._identity: dict | None = None

    @property
    def identity(self) -> dict:
        # The first call: bad credentials fail here, before anything changes.
        if self._identity is None:
            with aws_step(Step("checking the credentials", "sts:GetCallerIdentity")):
                self._identity = self.session.client("sts").get_caller_identity()
        return self._identity

    @property
    def partition(self) -> str:
        return self.identity["Arn"].split(":")[1]

    def cli_command(self, *argv: str) -> str:
        """The AWS CLI command for argv, for this region (IAM too: AWS CLI v1 wants one) and profile."""
        return self._command("aws", *argv)

    def destroy_command(self, name: str) -> str:
        return self._command("lambda-affinity", "destroy", "--name", name)

    def _command(self, *argv: str) -> str:
        extra = ["--region", self.region] + (["--profile", self.profile] if self.profile else [])
        return " ".join(shlex.quote(a) for a in (*argv, *extra))

    # -- reading -----------------------------------------------------------

    def _function(self, name: str):
        """(configuration, made by deploy?) of the function, or None if there is none."""
        with aws_step(Step(f"looking up the function {name}", "lambda:GetFunction")):
            try:
                config = self.lam.get_function(FunctionName=name)["Configuration"]
            except self.lam.exceptions.ResourceNotFoundException:
                return None
        # GetFunction shows tags only to callers allowed lambda:ListTags: ask
        # for them, so a missing permission is named, not taken for "not ours".
        with aws_step(Step(f"reading the tags of the function {name}", "lambda:ListTags")):
            tags = self.lam.list_tags(Resource=config["FunctionArn"]).get("Tags", {})
        return config, tags.get(MANAGED_TAG) == "true"

    def _role(self, role_name: str):
        with aws_step(Step(f"looking up the role {role_name}", "iam:GetRole")):
            try:
                return self.iam.get_role(RoleName=role_name)["Role"]
            except self.iam.exceptions.NoSuchEntityException:
                return None

    def _our_role(self, spec: Spec):
        """Our role for this function, None if absent; refuse a role we did not make."""
        role = self._role(spec.role_name)
        if role is None:
            return None
        if not _role_is_ours(role, spec.name):
            raise DeployError(
                f"an IAM role named {spec.role_name} already exists and was not created by "
                f"`lambda-affinity deploy` for {spec.name}; pass --role-arn to use a role of your own"
            )
        return role

    # -- deploy ------------------------------------------------------------

    def deploy(self, spec: Spec, package: bytes) -> Deployed:
        """Create or update the deployment; on any failure, undo what this run created and say so."""
        spec.check()
        self.identity  # noqa: B018 -- check the credentials before anything else
        changes: list[Change] = []
        try:
            return self._deploy(spec, package, changes)
        except (Exception, KeyboardInterrupt) as exc:
            if isinstance(exc, DeployError):
                reason = str(exc)
            elif isinstance(exc, KeyboardInterrupt):
                reason = "interrupted (Ctrl-C)"
            else:  # not an AWS error: a bug, or an answer deploy could not read
                reason = f"unexpected {type(exc).__name__}: {exc} ({DEBUG_ADVICE})"
            report = roll_back(changes, spec.name, self.destroy_command(spec.name))
            raise DeployError(f"{reason}\n{report}") from exc

    # The helpers below append to `changes` as they go: a failed deploy undoes and reports from them.

    def _deploy(self, spec: Spec, package: bytes, changes: list[Change]) -> Deployed:
        role = None if spec.role_arn else self._our_role(spec)
        current = self._function(spec.name)
        if current is not None and not current[1]:
            raise DeployError(
                f"a function named {spec.name} already exists in {self.region} and was not created by "
                "`lambda-affinity deploy`; choose another --name (deploy never takes over a function)"
            )
        layer_arn = None
        if spec.layer:
            layer_arn = layer_publish.ensure_layer(self, spec.name, build_layer(), changes)
        role_arn = spec.role_arn
        new_role = False
        if role_arn is None:
            if role is None:
                role = self._create_role(spec, changes)
                new_role = True
            role_arn = role["Arn"]
        if current is None:
            self._create_function(spec, role_arn, package, new_role, changes, layer_arn)
        else:
            self._update_function(spec, role_arn, package, current[0], changes, layer_arn)
        # Deleting a function this run created deletes its URL and policy with it:
        # only on a function that was there before are they undone one by one.
        track = current is not None
        url = self._ensure_url(spec, track, changes)
        self._ensure_policy(spec, track, changes)
        self._wait("function_active_v2", spec.name)
        return Deployed(spec.name, url, self.region, spec.auth_type, changes, layer_arn)

    def _create_role(self, spec: Spec, changes: list[Change]) -> dict:
        name = spec.role_name
        tags = [{"Key": MANAGED_TAG, "Value": "true"}, {"Key": FUNCTION_TAG, "Value": spec.name}]
        with aws_step(Step(f"creating the execution role {name}", "iam:CreateRole")):
            role = self.iam.create_role(
                RoleName=name,
                Path=ROLE_PATH,
                AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                Description=f"Execution role of the lambda-affinity probe {spec.name}",
                Tags=tags,
            )["Role"]
        delete = Undo(
            lambda: self.iam.delete_role(RoleName=name),
            "iam:DeleteRole",
            self.cli_command("iam", "delete-role", "--role-name", name),
        )
        changes.append(Change(Kind.CREATED, f"role {name}", f"created role {role['RoleName']}", delete))
        policy = BASIC_EXECUTION.format(partition=self.partition)
        missing = (
            f"the AWS managed policy {policy} does not exist here (another partition, or an AWS-compatible "
            "endpoint without AWS's managed policies): pass --role-arn with an execution role of your own"
        )
        with aws_step(
            Step(
                f"attaching {policy} to the role {name}",
                "iam:AttachRolePolicy",
                {"NoSuchEntity": missing, "NoSuchEntityException": missing},
            )
        ):
            self.iam.attach_role_policy(RoleName=name, PolicyArn=policy)
        detach = Undo(
            lambda: self.iam.detach_role_policy(RoleName=name, PolicyArn=policy),
            "iam:DetachRolePolicy",
            self.cli_command("iam", "detach-role-policy", "--role-name", name, "--policy-arn", policy),
        )
        # Part of creating the role: not listed on its own.
        changes.append(Change(Kind.CREATED, f"the attachment of {policy.rsplit('/', 1)[1]} to role {name}", "", detach))
        return role

    def _create_function(
        self, spec: Spec, role_arn: str, package: bytes, retry_role: bool, changes: list[Change], layer_arn=None
    ) -> None:
        config = spec.function_config(role_arn, layer_arn)
        unassumable = (
            "Lambda cannot assume the execution role: a new role takes some seconds to reach Lambda "
            "(run deploy again), or the --role-arn role does not trust lambda.amazonaws.com"
        )
        step = Step(
            f"creating the function {spec.name}",
            "lambda:CreateFunction",
            {"InvalidParameterValueException": unassumable},
        )
        # A role IAM has just created takes some seconds to be usable by Lambda.
        deadline = time.monotonic() + (60 if retry_role else 0)
        with aws_step(step):
            while True:
                try:
                    self.lam.create_function(
                        FunctionName=spec.name,
                        Code={"ZipFile": package},
                        Architectures=["x86_64"],
                        Tags={MANAGED_TAG: "true"},
                        **config,
                    )
                    break
                except self.lam.exceptions.InvalidParameterValueException as exc:
                    if "cannot be assumed" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(3)
        delete = Undo(
            lambda: self.lam.delete_function(FunctionName=spec.name),
            "lambda:DeleteFunction",
            self.cli_command("lambda", "delete-function", "--function-name", spec.name),
        )
        changes.append(Change(Kind.CREATED, f"function {spec.name}", f"created function {spec.name}", delete))

    def _update_function(
        self, spec: Spec, role_arn: str, package: bytes, config: dict, changes: list[Change], layer_arn=None
    ) -> None:
        name = spec.name
        if config.get("CodeSha256") != code_sha256(package):
            self._wait("function_updated_v2", name)
            with aws_step(Step(f"uploading the code of {name}", "lambda:UpdateFunctionCode")):
                self.lam.update_function_code(FunctionName=name, ZipFile=package)
            changes.append(Change(Kind.UPDATED, f"the code of {name}", f"updated the code of {name}"))
        desired = spec.function_config(role_arn, layer_arn)
        have = {k: config.get(k) for k in desired}
        have["Environment"] = {"Variables": (config.get("Environment") or {}).get("Variables", {})}
        have["Layers"] = [layer["Arn"] for layer in config.get("Layers") or []]
        differ = sorted(k for k in desired if have[k] != desired[k])
        if not differ:
            return
        # Lambda refuses a configuration update while a code update is in progress.
        self._wait("function_updated_v2", name)
        with aws_step(Step(f"updating {', '.join(differ)} of {name}", "lambda:UpdateFunctionConfiguration")):
            self.lam.update_function_configuration(FunctionName=name, **desired)
        others = ", ".join(k for k in differ if k != "Role")
        if others:
            changes.append(Change(Kind.UPDATED, f"{others} of {name}", f"updated {others} of {name}"))
        if "Role" in differ:
            changes.append(self._role_change(name, config["Role"], role_arn))

    def _role_change(self, name: str, old: str, new: str) -> Change:
        """A failed run sets the old role back: rolling back may delete the new
        one (a role this run created), which must not leave the function
        pointing at a deleted role."""

        def undo():
            self._wait("function_updated_v2", name)
            self.lam.update_function_configuration(FunctionName=name, Role=old)

        command = self.cli_command("lambda", "update-function-configuration", "--function-name", name, "--role", old)
        return Change(
            Kind.ROLE_CHANGED,
            f"the change of the role of {name} (set back to {old})",
            f"changed the execution role of {name} to {new}",
            Undo(undo, "lambda:UpdateFunctionConfiguration", command),
        )

    def _ensure_url(self, spec: Spec, track: bool, changes: list[Change]) -> str:
        name = spec.name
        with aws_step(Step(f"looking up the Function URL of {name}", "lambda:GetFunctionUrlConfig")):
            try:
                url = self.lam.get_function_url_config(FunctionName=name)
            except self.lam.exceptions.ResourceNotFoundException:
                url = None
        if url is None:
            with aws_step(Step(f"creating the Function URL of {name}", "lambda:CreateFunctionUrlConfig")):
                url = self.lam.create_function_url_config(FunctionName=name, AuthType=spec.auth_type)
            delete = Undo(
                lambda: self.lam.delete_function_url_config(FunctionName=name),
                "lambda:DeleteFunctionUrlConfig",
                self.cli_command("lambda", "delete-function-url-config", "--function-name", name),
            )
            message = f"created Function URL ({spec.auth_type})"
            changes.append(Change(Kind.CREATED, f"the Function URL of {name}", message, delete if track else None))
            return url["FunctionUrl"]
        if url["AuthType"] != spec.auth_type:
            step = Step(f"changing the auth type of the Function URL of {name}", "lambda:UpdateFunctionUrlConfig")
            with aws_step(step):
                url = self.lam.update_function_url_config(FunctionName=name, AuthType=spec.auth_type)
            message = f"changed the Function URL's auth type to {spec.auth_type}"
            changes.append(Change(Kind.UPDATED, f"the Function URL of {name}", message))
        return url["FunctionUrl"]

    def desired_statements(self, spec: Spec) -> dict:
        """{Sid: add_permission arguments} for the URL's resource policy.

        NONE: anyone may call the URL (AWS requires both statements for URLs
        made since October 2025). AWS_IAM: the invoker (default: this account,
        whose IAM policies then decide) may call it; a signature is still needed.
        """
        principal = "*" if spec.auth_type == "NONE" else (spec.invoker or self.identity["Account"])
        statements = [
            {"Action": "lambda:InvokeFunctionUrl", "Principal": principal, "FunctionUrlAuthType": spec.auth_type},
            {"Action": "lambda:InvokeFunction", "Principal": principal, "InvokedViaFunctionUrl": True},
        ]
        # The Sid names the statement's content: an unchanged statement is kept as is.
        return {
            SID_PREFIX + hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:16]: s for s in statements
        }

    def _ensure_policy(self, spec: Spec, track: bool, changes: list[Change]) -> None:
        name = spec.name
        with aws_step(Step(f"reading the resource policy of {name}", "lambda:GetPolicy")):
            try:
                policy = json.loads(self.lam.get_policy(FunctionName=name)["Policy"])
            except self.lam.exceptions.ResourceNotFoundException:
                policy = {"Statement": []}
        ours = {s.get("Sid") for s in policy.get("Statement", []) if str(s.get("Sid", "")).startswith(SID_PREFIX)}
        desired = self.desired_statements(spec)
        for sid in sorted(ours - set(desired)):
            with aws_step(Step(f"removing the policy statement {sid} of {name}", "lambda:RemovePermission")):
                self.lam.remove_permission(FunctionName=name, StatementId=sid)
            changes.append(
                Change(Kind.REMOVED, f"the policy statement {sid} of {name}", f"removed policy statement {sid}")
            )
        for sid in sorted(set(desired) - ours):
            statement = desired[sid]
            step = Step(f"adding the policy statement {sid} ({statement['Action']}) to {name}", "lambda:AddPermission")
            with aws_step(step):
                self.lam.add_permission(FunctionName=name, StatementId=sid, **statement)
            remove = Undo(
                functools.partial(self.lam.remove_permission, FunctionName=name, StatementId=sid),
                "lambda:RemovePermission",
                self.cli_command("lambda", "remove-permission", "--function-name", name, "--statement-id", sid),
            )
            message = f"added policy statement {sid} ({statement['Action']} for {statement['Principal']})"
            resource = f"the policy statement {sid} of {name}"
            changes.append(Change(Kind.ADDED, resource, message, remove if track else None))

    def _wait(self, waiter: str, name: str) -> None:
        delay = 2
        with aws_step(Step(f"waiting for {name} to be ready", "lambda:GetFunction")):
            try:
                self.lam.get_waiter(waiter).wait(
                    FunctionName=name, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(self.wait_s / delay))}
                )
            except WaiterError as exc:
                if exc.last_response and "Error" in exc.last_response:
                    raise  # AWS refused the waiter's own call: explained by the step
                config = (exc.last_response or {}).get("Configuration", {})
                state = {
                    k: config.get(k)
                    for k in ("State", "StateReason", "LastUpdateStatus", "LastUpdateStatusReason")
                    if config.get(k)
                }
                raise DeployError(f"{name} did not become ready within {self.wait_s:g} s: {state or exc}") from None

    # -- destroy -----------------------------------------------------------

    def destroy(self, name: str) -> list[Change]:
        spec = Spec(name=name)
        spec.check()
        self.identity  # noqa: B018
        removed: list[Change] = []
        try:
            return self._destroy(spec, removed)
        except DeployError as exc:
            if not removed:
                raise
            raise DeployError(
                f"{exc}\nRemoved before that: {', '.join(c.resource for c in removed)}. Run destroy again once "
                "this is fixed: it removes what is left."
            ) from exc

    def _destroy(self, spec: Spec, removed: list[Change]) -> list[Change]:
        name = spec.name
        current = self._function(name)
        if current is not None:
            if not current[1]:
                raise DeployError(
                    f"the function {name} in {self.region} was not created by `lambda-affinity deploy`; "
                    "destroy leaves it alone"
                )
            # Deleting the function deletes its Function URL and resource policy with it.
            with aws_step(Step(f"deleting the function {name}", "lambda:DeleteFunction")):
                self.lam.delete_function(FunctionName=name)
            what = f"function {name} (with its Function URL and resource policy)"
            removed.append(Change(Kind.REMOVED, what, f"removed {what}"))
        removed += layer_publish.delete_layers(self, name)
        role = self._role(spec.role_name)
        if role is not None and _role_is_ours(role, name):
            self._delete_role(spec.role_name)
            removed.append(Change(Kind.REMOVED, f"role {spec.role_name}", f"removed role {spec.role_name}"))
        return removed

    def _delete_role(self, role_name: str) -> None:
        step = Step(f"listing the policies attached to the role {role_name}", "iam:ListAttachedRolePolicies")
        with aws_step(step):
            attached = [
                p["PolicyArn"]
                for page in self.iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name)
                for p in page["AttachedPolicies"]
            ]
        for arn in attached:
            with aws_step(Step(f"detaching {arn} from the role {role_name}", "iam:DetachRolePolicy")):
                self.iam.detach_role_policy(RoleName=role_name, PolicyArn=arn)
        with aws_step(Step(f"listing the inline policies of the role {role_name}", "iam:ListRolePolicies")):
            inline = [
                n
                for page in self.iam.get_paginator("list_role_policies").paginate(RoleName=role_name)
                for n in page["PolicyNames"]
            ]
        for policy_name in inline:
            step = Step(f"deleting the inline policy {policy_name} of the role {role_name}", "iam:DeleteRolePolicy")
            with aws_step(step):
                self.iam.delete_role_policy(RoleName=role_name, PolicyName=policy_name)
        with aws_step(Step(f"deleting the role {role_name}", "iam:DeleteRole")):
            self.iam.delete_role(RoleName=role_name)
