"""`lambda-affinity deploy` / `destroy`: the probe on a real AWS account, with boto3.

deploy packages probe_lambda/ into a zip and creates or updates, in place:
  - an execution role `<name>-role` (path /lambda-affinity/) with the AWS
    managed policy AWSLambdaBasicExecutionRole, unless --role-arn is given;
  - the function (handler `handler.handler`), its Function URL (auth type
    AWS_IAM by default, or NONE) and the resource-policy statements the URL
    needs (lambda:InvokeFunctionUrl + lambda:InvokeFunction via the URL);
then waits until the function is active and prints the URL and the `locust`
command to run against it.

Everything deploy creates carries the tag `lambda-affinity:managed=true` (the
role also `lambda-affinity:function=<name>`); policy statements carry a
`lambda-affinity-` Sid. destroy removes exactly those, and deploy refuses to
take over a function or role that lacks the tag. The function's CloudWatch log
group is created by Lambda, not by deploy, and is left alone.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import io
import json
import re
import shlex
import sys
import time
import traceback
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

MANAGED_TAG = "lambda-affinity:managed"
FUNCTION_TAG = "lambda-affinity:function"
SID_PREFIX = "lambda-affinity-"
ROLE_PATH = "/lambda-affinity/"
DEFAULT_NAME = "lambda-affinity-probe"
# Defaults shared with probe_lambda/template.yaml (a test holds them equal).
RUNTIME = "python3.13"
HANDLER = "handler.handler"
MEMORY_MB = 128
TIMEOUT_S = 10
AUTH_TYPE = "AWS_IAM"
PROBE_ENV = {"AFFINITY_CACHE_SIZE": 10000, "AFFINITY_CACHE_TTL_S": 900, "AFFINITY_MISS_DELAY_MS": 0}
LOCUSTFILE = "locustfiles/function_url.py"
SIGV4_OPTION = "--affinity-sigv4"
BASIC_EXECUTION = "arn:{partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_INVOKER = re.compile(r"^(\d{12}|arn:aws[a-z-]*:iam::\d{12}:(root|(role|user)/[\w+=,.@/-]+))$")
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


class DeployError(Exception):
    """A deploy/destroy failure worth one clear line to the user."""


def probe_dir() -> Path:
    import probe_lambda

    return Path(probe_lambda.__file__).resolve().parent


def build_zip(src: Path | None = None) -> bytes:
    """The probe's deployment package: its top-level modules, handler.py at the root.

    Deterministic (sorted names, fixed timestamps and modes), so an unchanged
    probe has an unchanged CodeSha256 and redeploying it uploads nothing.
    Skips __init__.py (a package marker for this repo), __pycache__, the
    template and the node/ variant.
    """
    src = src or probe_dir()
    files = sorted(p for p in src.glob("*.py") if p.name != "__init__.py")
    if not any(p.name == "handler.py" for p in files):
        raise DeployError(f"no handler.py in {src}: is the probe_lambda package complete?")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def code_sha256(package: bytes) -> str:
    """Lambda's CodeSha256: base64 of the package's SHA-256."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


@dataclass
class Spec:
    name: str = DEFAULT_NAME
    memory: int = MEMORY_MB
    timeout: int = TIMEOUT_S
    auth_type: str = AUTH_TYPE
    runtime: str = RUNTIME
    role_arn: str | None = None
    invoker: str | None = None  # AWS_IAM: principal allowed to call the URL (default: this account)
    env: dict = field(default_factory=lambda: {k: str(v) for k, v in PROBE_ENV.items()})

    def check(self) -> None:
        if not _NAME.match(self.name):
            raise DeployError(f"function name {self.name!r}: use 1-64 letters, digits, '-' or '_'")
        if not 128 <= self.memory <= 10240:
            raise DeployError(f"--memory {self.memory}: Lambda allows 128 to 10240 MB")
        if not 1 <= self.timeout <= 900:
            raise DeployError(f"--timeout {self.timeout}: Lambda allows 1 to 900 seconds")
        if self.auth_type not in ("AWS_IAM", "NONE"):
            raise DeployError(f"--auth-type {self.auth_type!r}: use AWS_IAM or NONE")
        if self.role_arn is not None and not _ROLE_ARN.match(self.role_arn):
            raise DeployError(
                f"--role-arn {self.role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
            )
        if self.invoker is not None and self.auth_type != "AWS_IAM":
            raise DeployError("--invoker only applies to --auth-type AWS_IAM (a NONE URL is public)")
        if self.invoker is not None and not _INVOKER.match(self.invoker):
            raise DeployError(
                f"--invoker {self.invoker!r}: give a 12-digit account id or an IAM ARN "
                "(arn:aws:iam::123456789012:role/NAME, :user/NAME or :root)"
            )

    @property
    def role_name(self) -> str:
        return f"{self.name[:59]}-role"  # IAM role names stop at 64 characters


@dataclass
class Deployed:
    function_name: str
    function_url: str
    region: str
    auth_type: str
    changes: list


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
def _step(step: Step):
    """Run AWS calls as `step`: any botocore error becomes one DeployError line."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise DeployError(explain(step, failure_of(exc))) from exc


@dataclass
class Created:
    """Something this deploy run created: how deploy undoes it, and the command that does it by hand."""

    what: str
    action: str  # the permission the undo needs
    command: str
    undo: Callable[[], object]
    # When this undo fails, what was created before it stays: e.g. the new
    # role, which the function still uses until its old Role is set back.
    guards_earlier: bool = False


ROLE_CHANGE = "changed the execution role"  # the change message a rollback undoes (see _track_role_change)


def rollback_report(undone: list, left: list, kept: list, destroy_command: str) -> str:
    """What a failed deploy did about what it had created.

    `undone`: what it removed; `left`: (what, why, command) it could not
    remove; `kept`: changes to what existed before the run, which stay.
    """
    lines = []
    if undone:
        lines.append(f"Rolled back: removed {', '.join(undone)}.")
    if left:
        lines.append("Could not remove, so left in the account:")
        for what, why, command in left:
            lines += [f"  {what} ({why})", f"    remove it with: {command}"]
        lines.append(f"Or run `lambda-affinity deploy` again to finish, or `{destroy_command}` to remove it all.")
    if kept:
        lines.append(f"Kept (changes to the deployment that was already there): {'; '.join(kept)}.")
    if not (undone or left):
        lines.insert(0, "Nothing was created, so nothing is left behind.")
    return "\n".join(lines)


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
        self._created: list = []

    @property
    def identity(self) -> dict:
        # The first call: bad credentials fail here, before anything changes.
        if self._identity is None:
            with _step(Step("checking the credentials", "sts:GetCallerIdentity")):
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
        with _step(Step(f"looking up the function {name}", "lambda:GetFunction")):
            try:
                config = self.lam.get_function(FunctionName=name)["Configuration"]
            except self.lam.exceptions.ResourceNotFoundException:
                return None
        # GetFunction shows tags only to callers allowed lambda:ListTags: ask
        # for them, so a missing permission is named, not taken for "not ours".
        with _step(Step(f"reading the tags of the function {name}", "lambda:ListTags")):
            tags = self.lam.list_tags(Resource=config["FunctionArn"]).get("Tags", {})
        return config, tags.get(MANAGED_TAG) == "true"

    def _role(self, role_name: str):
        with _step(Step(f"looking up the role {role_name}", "iam:GetRole")):
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
        """Create or update the deployment; on any failure, remove what this run created and say so."""
        spec.check()
        self.identity  # noqa: B018 -- check the credentials before anything else
        self._created = []
        changes: list = []
        try:
            return self._deploy(spec, package, changes)
        except (Exception, KeyboardInterrupt) as exc:
            if isinstance(exc, DeployError):
                reason = str(exc)
            elif isinstance(exc, KeyboardInterrupt):
                reason = "interrupted (Ctrl-C)"
            else:  # not an AWS error: a bug, or an answer deploy could not read
                reason = f"unexpected {type(exc).__name__}: {exc} ({DEBUG_ADVICE})"
            # creations and a changed role are undone
            kept = [c for c in changes if not c.startswith(("created ", "added ", ROLE_CHANGE))]
            report = self._rollback(spec.name, kept)
            raise DeployError(f"{reason}\n{report}") from exc

    def _rollback(self, name: str, kept: list) -> str:
        undone, left = [], []
        blocked = None
        for item in reversed(self._created):
            if blocked is not None:
                left.append((item.what, blocked, item.command))
                continue
            try:
                with _step(Step(f"removing {item.what}", item.action)):
                    item.undo()
                undone.append(item.what)
            except (Exception, KeyboardInterrupt) as exc:  # keep going: remove all that can be removed
                left.append((item.what, str(exc), item.command))
                if item.guards_earlier:
                    blocked = f"kept: {name} still uses it, as {item.what} failed"
        self._created = []
        return rollback_report(undone, left, kept, self.destroy_command(name))

    def _deploy(self, spec: Spec, package: bytes, changes: list) -> Deployed:
        role = None if spec.role_arn else self._our_role(spec)
        current = self._function(spec.name)
        if current is not None and not current[1]:
            raise DeployError(
                f"a function named {spec.name} already exists in {self.region} and was not created by "
                "`lambda-affinity deploy`; choose another --name (deploy never takes over a function)"
            )
        role_arn = spec.role_arn
        new_role = False
        if role_arn is None:
            if role is None:
                role = self._create_role(spec)
                new_role = True
                changes.append(f"created role {role['RoleName']}")
            role_arn = role["Arn"]
        if current is None:
            self._create_function(spec, role_arn, package, retry_role=new_role)
            changes.append(f"created function {spec.name}")
        else:
            self._update_function(spec, role_arn, package, current[0], changes)
        # Deleting a function this run created deletes its URL and policy with it:
        # only on a function that was there before are they undone one by one.
        track = current is not None
        url = self._ensure_url(spec, track, changes)
        self._ensure_policy(spec, track, changes)
        self._wait("function_active_v2", spec.name)
        return Deployed(spec.name, url, self.region, spec.auth_type, changes)

    def _create_role(self, spec: Spec) -> dict:
        name = spec.role_name
        tags = [{"Key": MANAGED_TAG, "Value": "true"}, {"Key": FUNCTION_TAG, "Value": spec.name}]
        with _step(Step(f"creating the execution role {name}", "iam:CreateRole")):
            role = self.iam.create_role(
                RoleName=name,
                Path=ROLE_PATH,
                AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                Description=f"Execution role of the lambda-affinity probe {spec.name}",
                Tags=tags,
            )["Role"]
        self._created.append(
            Created(
                f"role {name}",
                "iam:DeleteRole",
                self.cli_command("iam", "delete-role", "--role-name", name),
                lambda: self.iam.delete_role(RoleName=name),
            )
        )
        policy = BASIC_EXECUTION.format(partition=self.partition)
        missing = (
            f"the AWS managed policy {policy} does not exist here (another partition, or an AWS-compatible "
            "endpoint without AWS's managed policies): pass --role-arn with an execution role of your own"
        )
        with _step(
            Step(
                f"attaching {policy} to the role {name}",
                "iam:AttachRolePolicy",
                {"NoSuchEntity": missing, "NoSuchEntityException": missing},
            )
        ):
            self.iam.attach_role_policy(RoleName=name, PolicyArn=policy)
        self._created.append(
            Created(
                f"the attachment of {policy.rsplit('/', 1)[1]} to role {name}",
                "iam:DetachRolePolicy",
                self.cli_command("iam", "detach-role-policy", "--role-name", name, "--policy-arn", policy),
                lambda: self.iam.detach_role_policy(RoleName=name, PolicyArn=policy),
            )
        )
        return role

    def _function_config(self, spec: Spec, role_arn: str) -> dict:
        return {
            "Role": role_arn,
            "Runtime": spec.runtime,
            "Handler": HANDLER,
            "MemorySize": spec.memory,
            "Timeout": spec.timeout,
            "Environment": {"Variables": dict(spec.env)},
            "Description": "lambda-affinity probe (managed by `lambda-affinity deploy`)",
        }

    def _create_function(self, spec: Spec, role_arn: str, package: bytes, retry_role: bool) -> None:
        config = self._function_config(spec, role_arn)
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
        with _step(step):
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
        self._created.append(
            Created(
                f"function {spec.name}",
                "lambda:DeleteFunction",
                self.cli_command("lambda", "delete-function", "--function-name", spec.name),
                lambda: self.lam.delete_function(FunctionName=spec.name),
            )
        )

    # The helpers below append to `changes` as they go: a failed deploy reports what it had changed.

    def _update_function(self, spec: Spec, role_arn: str, package: bytes, config: dict, changes: list) -> None:
        if config.get("CodeSha256") != code_sha256(package):
            self._wait("function_updated_v2", spec.name)
            with _step(Step(f"uploading the code of {spec.name}", "lambda:UpdateFunctionCode")):
                self.lam.update_function_code(FunctionName=spec.name, ZipFile=package)
            changes.append(f"updated the code of {spec.name}")
        desired = self._function_config(spec, role_arn)
        have = {k: config.get(k) for k in desired}
        have["Environment"] = {"Variables": (config.get("Environment") or {}).get("Variables", {})}
        differ = sorted(k for k in desired if have[k] != desired[k])
        if differ:
            # Lambda refuses a configuration update while a code update is in progress.
            self._wait("function_updated_v2", spec.name)
            with _step(Step(f"updating {', '.join(differ)} of {spec.name}", "lambda:UpdateFunctionConfiguration")):
                self.lam.update_function_configuration(FunctionName=spec.name, **desired)
            others = [k for k in differ if k != "Role"]
            if others:
                changes.append(f"updated {', '.join(others)} of {spec.name}")
            if "Role" in differ:
                self._track_role_change(spec.name, config["Role"], role_arn, changes)

    def _track_role_change(self, name: str, old: str, new: str, changes: list) -> None:
        """A failed run sets the old role back: rolling back may delete the new
        one (a role this run created), which must not leave the function
        pointing at a deleted role."""

        def undo():
            self._wait("function_updated_v2", name)
            self.lam.update_function_configuration(FunctionName=name, Role=old)

        self._created.append(
            Created(
                f"the change of the role of {name} (set back to {old})",
                "lambda:UpdateFunctionConfiguration",
                self.cli_command("lambda", "update-function-configuration", "--function-name", name, "--role", old),
                undo,
                guards_earlier=True,
            )
        )
        changes.append(f"{ROLE_CHANGE} of {name} to {new}")

    def _ensure_url(self, spec: Spec, track: bool, changes: list) -> str:
        name = spec.name
        with _step(Step(f"looking up the Function URL of {name}", "lambda:GetFunctionUrlConfig")):
            try:
                url = self.lam.get_function_url_config(FunctionName=name)
            except self.lam.exceptions.ResourceNotFoundException:
                url = None
        if url is None:
            with _step(Step(f"creating the Function URL of {name}", "lambda:CreateFunctionUrlConfig")):
                url = self.lam.create_function_url_config(FunctionName=name, AuthType=spec.auth_type)
            if track:
                self._created.append(
                    Created(
                        f"the Function URL of {name}",
                        "lambda:DeleteFunctionUrlConfig",
                        self.cli_command("lambda", "delete-function-url-config", "--function-name", name),
                        lambda: self.lam.delete_function_url_config(FunctionName=name),
                    )
                )
            changes.append(f"created Function URL ({spec.auth_type})")
            return url["FunctionUrl"]
        if url["AuthType"] != spec.auth_type:
            with _step(Step(f"changing the auth type of the Function URL of {name}", "lambda:UpdateFunctionUrlConfig")):
                url = self.lam.update_function_url_config(FunctionName=name, AuthType=spec.auth_type)
            changes.append(f"changed the Function URL's auth type to {spec.auth_type}")
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

    def _ensure_policy(self, spec: Spec, track: bool, changes: list) -> None:
        name = spec.name
        with _step(Step(f"reading the resource policy of {name}", "lambda:GetPolicy")):
            try:
                policy = json.loads(self.lam.get_policy(FunctionName=name)["Policy"])
            except self.lam.exceptions.ResourceNotFoundException:
                policy = {"Statement": []}
        ours = {s.get("Sid") for s in policy.get("Statement", []) if str(s.get("Sid", "")).startswith(SID_PREFIX)}
        desired = self.desired_statements(spec)
        for sid in sorted(ours - set(desired)):
            with _step(Step(f"removing the policy statement {sid} of {name}", "lambda:RemovePermission")):
                self.lam.remove_permission(FunctionName=name, StatementId=sid)
            changes.append(f"removed policy statement {sid}")
        for sid in sorted(set(desired) - ours):
            statement = desired[sid]
            with _step(
                Step(f"adding the policy statement {sid} ({statement['Action']}) to {name}", "lambda:AddPermission")
            ):
                self.lam.add_permission(FunctionName=name, StatementId=sid, **statement)
            if track:
                self._created.append(
                    Created(
                        f"the policy statement {sid} of {name}",
                        "lambda:RemovePermission",
                        self.cli_command("lambda", "remove-permission", "--function-name", name, "--statement-id", sid),
                        functools.partial(self.lam.remove_permission, FunctionName=name, StatementId=sid),
                    )
                )
            changes.append(f"added policy statement {sid} ({statement['Action']} for {statement['Principal']})")

    def _wait(self, waiter: str, name: str) -> None:
        delay = 2
        with _step(Step(f"waiting for {name} to be ready", "lambda:GetFunction")):
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

    def destroy(self, name: str) -> list:
        spec = Spec(name=name)
        spec.check()
        self.identity  # noqa: B018
        removed: list = []
        try:
            return self._destroy(spec, removed)
        except DeployError as exc:
            if not removed:
                raise
            raise DeployError(
                f"{exc}\nRemoved before that: {', '.join(removed)}. Run destroy again once this is "
                "fixed: it removes what is left."
            ) from exc

    def _destroy(self, spec: Spec, removed: list) -> list:
        name = spec.name
        current = self._function(name)
        if current is not None:
            if not current[1]:
                raise DeployError(
                    f"the function {name} in {self.region} was not created by `lambda-affinity deploy`; "
                    "destroy leaves it alone"
                )
            # Deleting the function deletes its Function URL and resource policy with it.
            with _step(Step(f"deleting the function {name}", "lambda:DeleteFunction")):
                self.lam.delete_function(FunctionName=name)
            removed.append(f"function {name} (with its Function URL and resource policy)")
        role = self._role(spec.role_name)
        if role is not None and _role_is_ours(role, name):
            self._delete_role(spec.role_name)
            removed.append(f"role {spec.role_name}")
        return removed

    def _delete_role(self, role_name: str) -> None:
        with _step(Step(f"listing the policies attached to the role {role_name}", "iam:ListAttachedRolePolicies")):
            attached = [
                p["PolicyArn"]
                for page in self.iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name)
                for p in page["AttachedPolicies"]
            ]
        for arn in attached:
            with _step(Step(f"detaching {arn} from the role {role_name}", "iam:DetachRolePolicy")):
                self.iam.detach_role_policy(RoleName=role_name, PolicyArn=arn)
        with _step(Step(f"listing the inline policies of the role {role_name}", "iam:ListRolePolicies")):
            inline = [
                n
                for page in self.iam.get_paginator("list_role_policies").paginate(RoleName=role_name)
                for n in page["PolicyNames"]
            ]
        for policy_name in inline:
            with _step(
                Step(f"deleting the inline policy {policy_name} of the role {role_name}", "iam:DeleteRolePolicy")
            ):
                self.iam.delete_role_policy(RoleName=role_name, PolicyName=policy_name)
        with _step(Step(f"deleting the role {role_name}", "iam:DeleteRole")):
            self.iam.delete_role(RoleName=role_name)


def locust_command(deployed: Deployed, default_region: str | None, profile: str | None) -> str:
    """The exact command to run the Function URL locustfile against the deployment."""
    env = []
    if profile:
        env.append(f"AWS_PROFILE={shlex.quote(profile)}")
    if deployed.auth_type == "AWS_IAM" and default_region != deployed.region:
        env.append(f"AWS_REGION={deployed.region}")  # the signer's region must be the function's
    cmd = ["locust", "-f", LOCUSTFILE, "--host", deployed.function_url]
    if deployed.auth_type == "AWS_IAM":
        cmd.append(SIGV4_OPTION)
    return " ".join(env + [shlex.quote(c) for c in cmd])


# -- command line --------------------------------------------------------------


def _session(args):
    from .sigv4 import chain_session

    try:
        return chain_session(args.profile, args.region)
    except ValueError as exc:
        raise DeployError(str(exc)) from None


def _run(args, body) -> int:
    """body(), with every failure one message on stderr and exit code 1; the traceback only with --debug."""
    try:
        return body()
    except Exception as exc:  # the user gets a line, --debug the whole story
        if args.debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        if isinstance(exc, DeployError):
            message = str(exc)
        elif isinstance(exc, BotoCoreError):  # outside any step: the config, the endpoint...
            message = explain(Step(f"{args.command} setting up AWS", "-"), failure_of(exc))
        else:
            message = f"unexpected {type(exc).__name__}: {exc} ({DEBUG_ADVICE})"
        print(f"lambda-affinity {args.command}: error: {message}", file=sys.stderr)
        return 1


def _env_pair(text: str):
    name, sep, value = text.partition("=")
    if not sep or name not in PROBE_ENV:
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=VALUE with NAME one of {', '.join(PROBE_ENV)}")
    return name, value


def _cmd_deploy(args) -> int:
    def body() -> int:
        env = {k: str(v) for k, v in PROBE_ENV.items()}
        env.update(dict(args.env or []))
        spec = Spec(
            name=args.name,
            memory=args.memory,
            timeout=args.timeout,
            auth_type=args.auth_type,
            runtime=args.runtime,
            role_arn=args.role_arn,
            invoker=args.invoker,
            env=env,
        )
        package = build_zip()
        session = _session(args)
        deployer = Deployer(session, wait_s=args.wait, profile=args.profile)
        deployed = deployer.deploy(spec, package)
        command = locust_command(deployed, _region_without_flag(args.profile), args.profile)
        if args.json:
            json.dump(
                {
                    "function_name": deployed.function_name,
                    "function_url": deployed.function_url,
                    "region": deployed.region,
                    "auth_type": deployed.auth_type,
                    "changes": deployed.changes,
                    "locust_command": command,
                },
                sys.stdout,
            )
            print()
            return 0
        for change in deployed.changes or ["nothing to change: already up to date"]:
            print(f"  {change}")
        print(
            f"Function:     {deployed.function_name} ({deployed.region}, {spec.runtime}, {spec.memory} MB, "
            f"timeout {spec.timeout} s)"
        )
        print(f"Function URL: {deployed.function_url}  (auth type {deployed.auth_type})")
        print("Run:")
        print(f"  {command}")
        if deployed.auth_type == "NONE":
            print("The URL is public: anyone who finds it can invoke the function at your expense.")
        print(f"Remove it with: {deployer.destroy_command(deployed.function_name)}")
        return 0

    return _run(args, body)


def _region_without_flag(profile: str | None) -> str | None:
    """The region Locust's signer finds on its own (no --region there); None if none or malformed."""
    from .sigv4 import chain_region

    try:
        found = chain_region(None, profile)
    except ValueError:
        return None
    return found.name if found else None


def _cmd_destroy(args) -> int:
    def body() -> int:
        deployer = Deployer(_session(args), wait_s=0, profile=args.profile)
        removed = deployer.destroy(args.name)
        if not removed:
            print(
                f"nothing to destroy: no function or role of lambda-affinity deploy named {args.name} "
                f"in {deployer.region}"
            )
            return 0
        for what in removed:
            print(f"  removed {what}")
        logs = deployer.cli_command("logs", "delete-log-group", "--log-group-name", f"/aws/lambda/{args.name}")
        print(
            f"Left alone: the log group /aws/lambda/{args.name} (Lambda made it, not deploy); delete it with `{logs}`"
        )
        return 0

    return _run(args, body)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=DEFAULT_NAME, help="function name (default %(default)s)")
    p.add_argument(
        "--region",
        help="AWS region (default, as the AWS CLI v2: AWS_REGION, AWS_DEFAULT_REGION, then the profile's region)",
    )
    p.add_argument("--profile", help="AWS profile (default: boto3's chain)")
    p.add_argument("--debug", action="store_true", help="on an error, print the Python traceback too")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "deploy",
        help="deploy the probe to AWS (function, Function URL, role)",
        description="Create or update the probe Lambda, its Function URL and execution role "
        "with boto3, then print the URL and the locust command to run against it.",
    )
    _common(p)
    p.add_argument("--memory", type=int, default=MEMORY_MB, metavar="MB", help="memory size (default %(default)s)")
    p.add_argument("--timeout", type=int, default=TIMEOUT_S, metavar="S", help="function timeout (default %(default)s)")
    p.add_argument(
        "--auth-type",
        choices=("AWS_IAM", "NONE"),
        default=AUTH_TYPE,
        help="Function URL auth: AWS_IAM needs SigV4-signed requests, NONE is public (default %(default)s)",
    )
    p.add_argument("--runtime", default=RUNTIME, help="Python runtime (default %(default)s)")
    p.add_argument("--role-arn", help="use this execution role instead of creating one")
    p.add_argument(
        "--invoker",
        metavar="ACCOUNT_OR_ARN",
        help="AWS_IAM: principal the URL's resource policy admits (default: this account)",
    )
    p.add_argument(
        "--env",
        action="append",
        type=_env_pair,
        metavar="NAME=VALUE",
        help=f"probe setting, repeatable: {', '.join(PROBE_ENV)}",
    )
    p.add_argument(
        "--wait", type=float, default=300.0, metavar="S", help="how long to wait for the function to be active"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_deploy)

    p = sub.add_parser(
        "destroy",
        help="remove what deploy created (and nothing else)",
        description="Delete the probe function and the role deploy created for it. "
        "Refuses functions deploy did not create.",
    )
    _common(p)
    p.set_defaults(func=_cmd_destroy)
