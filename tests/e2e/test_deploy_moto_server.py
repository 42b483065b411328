"""`lambda-affinity deploy` / `destroy` against moto's standalone server over real HTTP.

The way a user points tools at any AWS endpoint: AWS_ENDPOINT_URL, honoured by
boto3 and the AWS CLI alike. moto's server is a separate implementation of
AWS's API in its own process, started here on a free 127.0.0.1 port and
stopped after the module (no process left).

moto checks IAM for every request or for none, and cannot check Lambda's
GET and DELETE requests (it hashes the request's headers as their payload, so
their signature never matches: SignatureDoesNotMatch). `Enforcer` therefore
turns moto's check on only for the calls a test asks it to check; the
refusals themselves are moto evaluating a real IAM policy.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.handlers
import psutil
import pytest
from aws_account import empty_account
from moto.iam.access_control import IAMPolicy, PermissionResult

from lambda_affinity.aws import deploy as d, packaging
from lambda_affinity.aws.layer import build_layer
from lambda_affinity.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
OTHER_REGION = "ap-southeast-2"
REGIONS = (REGION, OTHER_REGION)  # where tests deploy
NAME = d.DEFAULT_NAME
ROLE = f"{NAME}-role"
ACCOUNT = "123456789012"  # moto's default account
# Permissions AWS checks inside another call (CreateRole with tags, CreateFunction
# with tags and a role): no request of their own, so moto never sees them.
IMPLICIT = {"iam:TagRole", "lambda:TagResource", "iam:PassRole"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's standalone server (`moto_server`, i.e. python -m moto.server) as a child process."""

    def __init__(self, log: Path, managed_policies: bool) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        if managed_policies:  # AWS's managed policies (AWSLambdaBasicExecutionRole...) exist only when asked for
            env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        # a file, not a pipe: werkzeug logs every request; open until stop()
        self._log = open(log, "wb")  # noqa: SIM115 - held for the server's lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).close()
                break
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}") from exc
                time.sleep(0.1)

    def post(self, path: str, body: bytes = b"") -> None:
        # text/plain: with urllib's default form type, moto's server reads an empty body
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(request, timeout=10).close()

    def enforce(self, on: bool) -> None:
        # INITIAL_NO_AUTH_ACTION_COUNT: requests left before moto checks IAM.
        self.post("/moto-api/reset-auth", b"0" if on else b"inf")

    def stop(self) -> None:
        tree = [psutil.Process(self.proc.pid)]
        try:
            tree += tree[0].children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert not alive, f"moto server processes left behind: {alive}"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log", managed_policies=True)
    yield server
    server.stop()


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Only what a test sets reaches boto3: no profile, file or metadata of this machine, no region."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMOTOADMIN0000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto-admin-secret")
    return monkeypatch


@pytest.fixture
def aws(moto, env):
    """An empty moto account reached through AWS_ENDPOINT_URL; returns an admin client factory."""
    moto.enforce(False)
    env.setenv("AWS_ENDPOINT_URL", moto.url)

    # The test's own calls: a session made before any Enforcer, which never lets moto check them.
    admin = boto3.Session(aws_access_key_id="AKIAMOTOADMIN0000000", aws_secret_access_key="x")
    admin.events.register("before-call", lambda **_: moto.enforce(False))

    def client(service, region=REGION):
        return admin.client(service, region_name=region, endpoint_url=moto.url)

    # Emptied by API calls, not /moto-api/reset: that would rebuild IAM's managed policies (seconds).
    empty_account([client("lambda", region) for region in REGIONS], client("iam"))
    return client


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def functions(client, region=REGION):
    return [f["FunctionName"] for f in client("lambda", region).list_functions()["Functions"]]


def roles(client):
    return [r["RoleName"] for r in client("iam").list_roles()["Roles"]]


def documented_policy() -> dict:
    """The IAM policy document of docs/real-aws.md, section 5."""
    text = (ROOT / "docs" / "real-aws.md").read_text()
    section = text[text.index("## 5. Permissions") :]
    return json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))


def _actions(statement: dict) -> list:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def without(policy: dict, actions=(), sids=()) -> dict:
    statements = []
    for s in policy["Statement"]:
        if s.get("Sid") in sids:
            continue
        kept = [a for a in _actions(s) if a not in actions]
        if kept:
            statements.append({**s, "Action": kept})
    return {**policy, "Statement": statements}


def any_resource(policy: dict) -> dict:
    # moto matches Resource against "*" for every Lambda call, and for an IAM
    # role that does not exist yet: it cannot evaluate resource scoping.
    return {**policy, "Statement": [{**s, "Resource": "*"} for s in policy["Statement"]]}


def deployer_user(client, env, policy: dict) -> None:
    """Run as an IAM user whose only permissions are `policy`."""
    iam = client("iam")
    iam.create_user(UserName="deployer")
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    iam.put_user_policy(UserName="deployer", PolicyName="deploy", PolicyDocument=json.dumps(policy))
    env.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    env.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])


class Enforcer:
    """A botocore hook: records every AWS call this process makes (action and
    parameters) and has moto check IAM for exactly the calls `checked(action,
    http_method)` selects."""

    def __init__(self, server: MotoServer, checked) -> None:
        self.server, self.checked = server, checked
        self.calls: list = []

    def __call__(self, model, params, **_):
        action = f"{model.service_model.signing_name}:{model.name}"
        self.calls.append((action, dict(params)))
        self.server.enforce(bool(self.checked(action, model.http["method"])))


@pytest.fixture
def enforcer(moto, monkeypatch):
    def install(checked=lambda action, method: False) -> Enforcer:
        hook = Enforcer(moto, checked)
        # botocore reads this list for every new session: every client deploy makes gets the hook.
        monkeypatch.setattr(
            botocore.handlers,
            "BUILTIN_HANDLERS",
            botocore.handlers.BUILTIN_HANDLERS + [("before-parameter-build", hook)],
        )
        return hook

    yield install
    moto.enforce(False)


def checkable(action: str, method: str) -> bool:
    """The calls moto can check: all of IAM's and STS's, Lambda's with a body."""
    return not action.startswith("lambda:") or method in ("POST", "PUT")


def only(*refused):
    return lambda action, method: action in refused


# -- deploy, re-deploy, destroy -------------------------------------------------------


def test_deploy_redeploy_destroy_over_http(aws, env, capsys):
    env.setenv("AWS_REGION", REGION)
    rc, out, err = run(capsys, "deploy")
    assert rc == 0, err
    url = aws("lambda").get_function_url_config(FunctionName=NAME)["FunctionUrl"]
    assert f"Function URL: {url}" in out and f"({REGION}, {d.RUNTIME}" in out
    assert f"Remove it with: lambda-affinity destroy --name {NAME} --region {REGION}" in out
    assert functions(aws) == [NAME] and roles(aws) == [ROLE]
    policies = aws("iam").list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]
    assert [p["PolicyName"] for p in policies] == ["AWSLambdaBasicExecutionRole"]

    rc, out, err = run(capsys, "deploy")
    assert rc == 0 and "nothing to change: already up to date" in out, err

    rc, out, err = run(capsys, "destroy")
    assert rc == 0, err
    assert f"removed function {NAME}" in out and f"removed role {ROLE}" in out
    assert functions(aws) == [] and roles(aws) == []
    rc, out, _ = run(capsys, "destroy")
    assert rc == 0 and "nothing to destroy" in out


def test_deploy_with_the_wrapper_layer_publishes_attaches_reuses_and_destroy_removes_it(aws, env, capsys):
    env.setenv("AWS_REGION", REGION)
    layer = f"{NAME}-wrapper"
    rc, out, err = run(capsys, "deploy", "--layer", "--json")
    assert rc == 0, err
    result = json.loads(out)
    versions = aws("lambda").list_layer_versions(LayerName=layer)["LayerVersions"]
    assert [v["LayerVersionArn"] for v in versions] == [result["layer_arn"]]
    assert f"published layer {layer} version 1" in result["changes"]
    content = aws("lambda").get_layer_version(LayerName=layer, VersionNumber=1)["Content"]
    assert content["CodeSha256"] == d.code_sha256(build_layer())  # the zip `layer build` writes
    config = aws("lambda").get_function(FunctionName=NAME)["Configuration"]
    assert [x["Arn"] for x in config["Layers"]] == [result["layer_arn"]]
    assert config["Handler"] == "lambda_affinity_wrapper.handler"
    assert config["Environment"]["Variables"]["AFFINITY_HANDLER"] == d.HANDLER
    rc, out, err = run(capsys, "deploy", "--layer")
    assert rc == 0 and "nothing to change: already up to date" in out, err  # the same content: no new version
    assert f"Layer:        {result['layer_arn']}" in out
    rc, out, err = run(capsys, "deploy")  # without: the probe's own handler, no layer
    assert rc == 0 and "updated Environment, Handler, Layers" in out, err
    config = aws("lambda").get_function(FunctionName=NAME)["Configuration"]
    assert not config.get("Layers") and config["Handler"] == d.HANDLER
    rc, out, err = run(capsys, "destroy")
    assert rc == 0 and f"removed layer {layer} version 1" in out, err
    assert aws("lambda").list_layer_versions(LayerName=layer)["LayerVersions"] == []


def test_the_command_line_a_user_runs(aws, moto, tmp_path):
    """`lambda-affinity deploy` as its own process: a refusal is one message, exit 1, no traceback."""
    cmd_env = {**os.environ, "AWS_REGION": REGION}
    cli = [sys.executable, "-c", "import sys; from lambda_affinity.cli import main; sys.exit(main())"]
    aws("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(d.TRUST_POLICY))  # not ours
    done = subprocess.run(cli + ["deploy"], env=cmd_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"lambda-affinity deploy: error: an IAM role named {ROLE} already exists")
    done = subprocess.run(cli + ["deploy", "--debug"], env=cmd_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr, done


# -- the region, as the AWS CLI v2 resolves it --------------------------------------------


@pytest.mark.parametrize("setting", ["AWS_REGION", "AWS_DEFAULT_REGION", "profile"])
def test_region_from_one_setting_only(aws, env, capsys, tmp_path, setting):
    region = OTHER_REGION
    argv = []
    if setting == "profile":
        config = tmp_path / "config"
        config.write_text(
            f"[profile loadtest]\nregion = {region}\n"
            "aws_access_key_id = AKIAMOTOPROFILE00000\naws_secret_access_key = profile-secret\n"
        )
        env.setenv("AWS_CONFIG_FILE", str(config))
        env.delenv("AWS_ACCESS_KEY_ID")  # a profile given: its keys, as the AWS CLI does
        env.delenv("AWS_SECRET_ACCESS_KEY")
        argv = ["--profile", "loadtest"]
    else:
        env.setenv(setting, region)
    rc, out, err = run(capsys, "deploy", *argv)
    assert rc == 0, err
    assert functions(aws, region) == [NAME] and functions(aws, REGION) == []
    assert f"lambda-url.{region}" in out or f"({region}," in out
    rc, out, err = run(capsys, "destroy", *argv)
    assert rc == 0 and f"removed function {NAME}" in out, err
    assert functions(aws, region) == []


def test_no_region_names_only_settings_that_work(aws, capsys):
    rc, out, err = run(capsys, "deploy")
    assert rc == 1 and out == ""
    assert err == (
        "lambda-affinity deploy: error: no AWS region: pass --region, or set AWS_REGION "
        "(or AWS_DEFAULT_REGION), or a region in your AWS profile\n"
    )
    assert functions(aws) == [] and roles(aws) == []


def test_a_malformed_region_setting_is_named(aws, env, capsys):
    env.setenv("AWS_REGION", "eu west 1")
    rc, _, err = run(capsys, "deploy")
    assert rc == 1 and "AWS_REGION is 'eu west 1', not a region name" in err
    rc, _, err = run(capsys, "deploy", "--region", REGION, "--json")  # --region comes first
    assert rc == 0, err


# -- a refused step at each stage, and the rollback ------------------------------------------


def test_attach_refused_without_aws_managed_policies_rolls_back(env, capsys, tmp_path):
    """The issue's case: an endpoint (or partition) without AWS's managed policies."""
    bare = MotoServer(tmp_path / "bare.log", managed_policies=False)
    try:
        env.setenv("AWS_ENDPOINT_URL", bare.url)
        env.setenv("AWS_REGION", REGION)
        rc, out, err = run(capsys, "deploy")
        assert rc == 1 and out == "" and "Traceback" not in err
        first, *rest = err.splitlines()
        assert first.startswith(
            f"lambda-affinity deploy: error: attaching arn:aws:iam::aws:policy/service-role/"
            f"AWSLambdaBasicExecutionRole to the role {ROLE} failed (iam:AttachRolePolicy): "
            "NoSuchEntity: Policy arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
            " does not exist or is not attachable"
        )
        assert "pass --role-arn with an execution role of your own" in first
        assert rest == [f"Rolled back: removed role {ROLE}."]
        iam = boto3.client("iam", region_name=REGION, endpoint_url=bare.url)
        assert iam.list_roles()["Roles"] == []

        # The advice works: a role of one's own.
        arn = iam.create_role(RoleName="mine", AssumeRolePolicyDocument=json.dumps(d.TRUST_POLICY))["Role"]["Arn"]
        rc, _, err = run(capsys, "deploy", "--role-arn", arn, "--json")
        assert rc == 0, err
    finally:
        bare.stop()


STAGES = [  # (refused action, what deploy removes on the way out, what is gone afterwards)
    ("iam:CreateRole", "Nothing was created, so nothing is left behind."),
    ("iam:AttachRolePolicy", f"Rolled back: removed role {ROLE}."),
    (
        "lambda:CreateFunction",
        f"Rolled back: removed the attachment of AWSLambdaBasicExecutionRole to role {ROLE}, role {ROLE}.",
    ),
    (
        "lambda:CreateFunctionUrlConfig",
        f"Rolled back: removed function {NAME}, the attachment of "
        f"AWSLambdaBasicExecutionRole to role {ROLE}, role {ROLE}.",
    ),
    (
        "lambda:AddPermission",
        f"Rolled back: removed function {NAME}, the attachment of "
        f"AWSLambdaBasicExecutionRole to role {ROLE}, role {ROLE}.",
    ),
]


@pytest.mark.parametrize("refused, report", STAGES, ids=[s[0] for s in STAGES])
def test_a_refused_stage_is_one_message_and_is_rolled_back(aws, env, capsys, enforcer, refused, report):
    env.setenv("AWS_REGION", REGION)
    deployer_user(aws, env, any_resource(without(documented_policy(), actions=[refused])))
    hook = enforcer(only(refused))
    rc, out, err = run(capsys, "deploy")
    assert rc == 1 and out == "" and "Traceback" not in err
    first, *rest = err.splitlines()
    assert (
        first.startswith("lambda-affinity deploy: error: ")
        and f" failed: missing permission {refused} "
        "(AccessDenied): User: arn:aws:iam::123456789012:user/deployer is not authorized to perform: "
        f"{refused}. Add {refused} to the IAM policy"
        in first
    ), first
    assert rest == [report]
    assert functions(aws) == [] and roles(aws) == []
    assert [a for a, _ in hook.calls].count(refused) == 1

    # Re-running after the failure works once the permission is there.
    hook.checked = only()
    rc, _, err = run(capsys, "deploy")
    assert rc == 0, err
    assert functions(aws) == [NAME] and roles(aws) == [ROLE]


def test_what_cannot_be_removed_is_listed_with_its_command(aws, env, capsys, enforcer, moto):
    """The URL is refused, and so is deleting the function: it is left, and said so with the exact command."""
    env.setenv("AWS_REGION", REGION)
    refused = ("lambda:CreateFunctionUrlConfig", "lambda:DeleteFunction")
    deployer_user(aws, env, any_resource(without(documented_policy(), actions=refused)))
    enforcer(only(*refused))
    rc, out, err = run(capsys, "deploy")
    assert rc == 1 and out == ""
    lines = err.splitlines()
    assert "missing permission lambda:CreateFunctionUrlConfig" in lines[0]
    command = f"aws lambda delete-function --function-name {NAME} --region {REGION}"
    assert lines[1:] == [
        f"Rolled back: removed the attachment of AWSLambdaBasicExecutionRole to role {ROLE}, role {ROLE}.",
        "Could not remove, so left in the account:",
        lines[3],
        f"    remove it with: {command}",
        "Or run `lambda-affinity deploy` again to finish, or "
        f"`lambda-affinity destroy --name {NAME} --region {REGION}` to remove it all.",
    ]
    # moto refuses it (SignatureDoesNotMatch: it cannot check a DELETE; the policy lacks the permission too)
    assert lines[3].startswith(f"  function {NAME} (removing function {NAME} failed: ")
    assert functions(aws) == [NAME] and roles(aws) == []

    # Re-running deploy finishes the job (a new role, the URL, the policy)...
    moto.enforce(False)
    enforcer()
    rc, out, err = run(capsys, "deploy")
    assert rc == 0, err
    assert "created role" in out and "created Function URL (AWS_IAM)" in out
    assert aws("lambda").get_function(FunctionName=NAME)["Configuration"]["Role"].endswith(f"/{ROLE}")
    # ...and the printed command is one the AWS CLI runs as it stands.
    cli = subprocess.run(shlex.split(command), env=os.environ.copy(), capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli
    assert functions(aws) == []


def test_a_failed_redeploy_removes_only_what_it_added(aws, env, capsys, enforcer):
    """On a deployment that was there before, only this run's URL and statements go; the function stays."""
    env.setenv("AWS_REGION", REGION)
    rc, _, err = run(capsys, "deploy")
    assert rc == 0, err
    _remove_url_and_statements(aws)  # as if someone had removed them by hand
    deployer_user(aws, env, any_resource(without(documented_policy(), actions=["lambda:AddPermission"])))
    hook = enforcer()
    adds = []

    def second_statement(action, method):  # moto checks the second AddPermission only: the first one is undone
        adds.append(action == "lambda:AddPermission")
        return action == "lambda:AddPermission" and sum(adds) == 2

    hook.checked = second_statement
    rc, out, err = run(capsys, "deploy")
    assert rc == 1 and out == ""
    lines = err.splitlines()
    assert "failed: missing permission lambda:AddPermission (AccessDenied)" in lines[0]
    assert re.fullmatch(
        rf"Rolled back: removed the policy statement lambda-affinity-[0-9a-f]{{16}} of {NAME}, "
        rf"the Function URL of {NAME}\.",
        lines[1],
    ), lines
    assert lines[2:] == []
    lam = aws("lambda")
    assert functions(aws) == [NAME] and roles(aws) == [ROLE]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_url_config(FunctionName=NAME)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=NAME)


@pytest.mark.parametrize("restore_refused", [False, True], ids=["role-set-back", "set-back-refused"])
def test_a_failed_redeploy_never_leaves_the_function_on_a_deleted_role(aws, env, capsys, enforcer, restore_refused):
    """Deployed with --role-arn, re-deployed without: the run creates the managed
    role and points the function at it, then AddPermission is refused. The
    rollback sets the function's role back before deleting the new one; if it
    cannot, the new role is left (the function still uses it), and said so."""
    env.setenv("AWS_REGION", REGION)
    mine = aws("iam").create_role(RoleName="mine", AssumeRolePolicyDocument=json.dumps(d.TRUST_POLICY))["Role"]["Arn"]
    rc, _, err = run(capsys, "deploy", "--role-arn", mine)
    assert rc == 0, err
    _remove_url_and_statements(aws)  # so the re-deploy adds statements again
    refused = ["lambda:AddPermission"] + (["lambda:UpdateFunctionConfiguration"] if restore_refused else [])
    deployer_user(aws, env, any_resource(without(documented_policy(), actions=refused)))
    hook = enforcer()
    updates = []

    def checked(action, method):  # the first UpdateFunctionConfiguration (to the new role) is allowed
        updates.append(action == "lambda:UpdateFunctionConfiguration")
        return action == "lambda:AddPermission" or (action == "lambda:UpdateFunctionConfiguration" and sum(updates) > 1)

    hook.checked = checked
    rc, out, err = run(capsys, "deploy")
    assert rc == 1 and out == ""
    lines = err.splitlines()
    assert "failed: missing permission lambda:AddPermission (AccessDenied)" in lines[0], lines
    role_now = aws("lambda").get_function(FunctionName=NAME)["Configuration"]["Role"]
    assert role_now in roles_arns(aws), (role_now, roles_arns(aws))  # never a deleted role
    back = f"the change of the role of {NAME} (set back to {mine})"
    if not restore_refused:
        assert role_now == mine and roles(aws) == ["mine"]
        assert back in lines[1] and f"role {ROLE}" in lines[1], lines
        assert not any(line.startswith("Kept") and "role" in line for line in lines), lines
    else:
        assert role_now.endswith(f"/{ROLE}") and sorted(roles(aws)) == sorted(["mine", ROLE])
        text = "\n".join(lines)
        assert f"  {back} (" in text and f"  role {ROLE} (kept: {NAME} still uses it" in text, text
        assert f"update-function-configuration --function-name {NAME} --role {mine}" in text, text


def roles_arns(client):
    return [r["Arn"] for r in client("iam").list_roles()["Roles"]]


def _remove_url_and_statements(client):
    lam = client("lambda")
    lam.delete_function_url_config(FunctionName=NAME)
    for sid in [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=NAME)["Policy"])["Statement"]]:
        lam.remove_permission(FunctionName=NAME, StatementId=sid)


def test_a_failed_redeploy_lists_the_updates_it_keeps(aws, env, capsys, enforcer, monkeypatch, tmp_path):
    env.setenv("AWS_REGION", REGION)
    rc, _, err = run(capsys, "deploy")
    assert rc == 0, err
    (tmp_path / "handler.py").write_text((d.probe_dir() / "handler.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(packaging, "probe_dir", lambda: tmp_path)
    deployer_user(aws, env, any_resource(without(documented_policy(), actions=["lambda:UpdateFunctionConfiguration"])))
    enforcer(only("lambda:UpdateFunctionConfiguration"))
    rc, out, err = run(capsys, "deploy", "--memory", "256")
    assert rc == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(
        "lambda-affinity deploy: error: updating MemorySize of lambda-affinity-probe failed: "
        "missing permission lambda:UpdateFunctionConfiguration (AccessDenied)"
    )
    assert lines[1:] == [
        "Nothing was created, so nothing is left behind.",
        f"Kept (changes to the deployment that was already there): updated the code of {NAME}.",
    ]
    config = aws("lambda").get_function(FunctionName=NAME)["Configuration"]
    assert config["CodeSha256"] == d.code_sha256(d.build_zip(tmp_path)) and config["MemorySize"] == d.MEMORY_MB


def test_a_refused_destroy_says_what_it_removed_and_runs_again(aws, env, capsys, enforcer):
    env.setenv("AWS_REGION", REGION)
    rc, _, err = run(capsys, "deploy")
    assert rc == 0, err
    deployer_user(aws, env, any_resource(without(documented_policy(), actions=["iam:DeleteRole"])))
    hook = enforcer(only("iam:DeleteRole"))
    rc, out, err = run(capsys, "destroy")
    assert rc == 1 and out == "" and "Traceback" not in err
    first, second = err.splitlines()
    assert first.startswith(
        f"lambda-affinity destroy: error: deleting the role {ROLE} failed: missing permission "
        "iam:DeleteRole (AccessDenied)"
    )
    assert second == (
        f"Removed before that: function {NAME} (with its Function URL and resource policy). "
        "Run destroy again once this is fixed: it removes what is left."
    )
    assert functions(aws) == [] and roles(aws) == [ROLE]
    hook.checked = only()
    rc, out, err = run(capsys, "destroy")
    assert rc == 0 and f"removed role {ROLE}" in out, err
    assert roles(aws) == []


# -- the documented IAM policy -----------------------------------------------------------------


def _resources(action: str, params: dict) -> list:
    """The ARNs IAM evaluates a call against (a role both by its path and by its bare name)."""
    if "LayerName" in params:  # a layer, or one version of it
        version = f":{params['VersionNumber']}" if "VersionNumber" in params else ""
        return [f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{params['LayerName']}{version}"]
    if action.startswith("lambda:"):
        return [params.get("Resource") or f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{params['FunctionName']}"]
    if action.startswith("iam:"):
        name = params["RoleName"]
        return [f"arn:aws:iam::{ACCOUNT}:role{d.ROLE_PATH}{name}", f"arn:aws:iam::{ACCOUNT}:role/{name}"]
    return []  # sts:GetCallerIdentity needs no permission


def test_documented_policy_is_what_deploy_and_destroy_use(aws, env, capsys, enforcer, monkeypatch, tmp_path):
    """Every call of deploy, re-deploy (changes), code upload, rollback and destroy, with moto checking IAM
    wherever it can, succeeds under the documented policy; each call is allowed for its resource ARN by
    moto's IAM evaluator; and every action in the policy is one these calls use."""
    env.setenv("AWS_REGION", REGION)
    policy = documented_policy()
    deployer_user(aws, env, any_resource(policy))
    hook = enforcer(checkable)
    layer = ["deploy", "--layer"]  # twice: publishing the layer, then finding it up to date
    for argv in (["deploy"], ["deploy", "--memory", "256", "--auth-type", "NONE"], layer, layer, ["deploy"]):
        rc, _, err = run(capsys, *argv)
        assert rc == 0, err
    (tmp_path / "handler.py").write_text((d.probe_dir() / "handler.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(packaging, "probe_dir", lambda: tmp_path)
    rc, out, err = run(capsys, "deploy")
    assert rc == 0 and "updated the code" in out, err
    # A rollback on an existing deployment: the URL gone, then the first statement refused.
    hook.checked = only()
    _remove_url_and_statements(aws)
    hook.checked = lambda action, method: action == "lambda:AddPermission"
    moto_policy = any_resource(without(policy, actions=["lambda:AddPermission"]))
    aws("iam").put_user_policy(UserName="deployer", PolicyName="deploy", PolicyDocument=json.dumps(moto_policy))
    rc, _, err = run(capsys, "deploy")
    assert rc == 1 and "Rolled back: removed the Function URL" in err, err
    aws("iam").put_user_policy(
        UserName="deployer", PolicyName="deploy", PolicyDocument=json.dumps(any_resource(policy))
    )
    hook.checked = checkable
    # An inline policy someone added to the role: destroy removes it with the role.
    aws("iam").put_role_policy(
        RoleName=ROLE,
        PolicyName="extra",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
        ),
    )
    rc, _, err = run(capsys, "destroy")
    assert rc == 0, err
    assert functions(aws) == [] and roles(aws) == []

    evaluator = IAMPolicy(json.dumps(policy))
    refused = [
        (action, arn)
        for action, params in hook.calls
        for arn in _resources(action, params)
        if evaluator.is_action_permitted(action, arn) != PermissionResult.PERMITTED
    ]
    assert refused == []
    documented = {a for s in policy["Statement"] for a in _actions(s)}
    used = {action for action, _ in hook.calls} - {"sts:GetCallerIdentity"}
    assert documented - IMPLICIT == used


@pytest.mark.parametrize(
    "sid, first_refused", [("ExecutionRole", "iam:GetRole"), ("Function", "lambda:CreateFunction")]
)
def test_documented_policy_without_a_statement_fails_clearly(aws, env, capsys, enforcer, sid, first_refused):
    """Where moto checks IAM (not iam:PassRole, which AWS checks inside CreateFunction: the third statement)."""
    env.setenv("AWS_REGION", REGION)
    deployer_user(aws, env, any_resource(without(documented_policy(), sids=[sid])))
    enforcer(checkable)
    rc, out, err = run(capsys, "deploy")
    assert rc == 1 and out == ""
    assert f"failed: missing permission {first_refused} (AccessDenied)" in err.splitlines()[0]
    assert functions(aws) == [] and roles(aws) == []
