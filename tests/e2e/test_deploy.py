"""`lambda-affinity deploy` / `destroy` against moto's in-process AWS (boto3 runs for real)."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_account import empty_account
from moto import mock_aws
from moto.core import enable_iam_authentication

from lambda_affinity.aws import deploy as d, packaging
from lambda_affinity.cli import main

REGION = "eu-west-1"
NAME = d.DEFAULT_NAME
ROLE = f"{NAME}-role"
BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
TRUST = json.dumps(d.TRUST_POLICY)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Fake credentials in the environment only; no profile files, no instance metadata."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMOTOTESTKEY00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return monkeypatch


@pytest.fixture(scope="module")
def _mock():
    # One mock for the module: building IAM's managed-policy catalogue takes
    # most of a second. mock_credentials off: `env` is the whole credential chain.
    with mock_aws(config={"core": {"mock_credentials": False}, "iam": {"load_aws_managed_policies": True}}):
        yield


@pytest.fixture
def aws(_mock, env):
    session = boto3.Session(region_name=REGION)
    yield session
    # Own keys: a test may have taken the environment's away.
    cleanup = boto3.Session(aws_access_key_id="cleanup", aws_secret_access_key="cleanup", region_name=REGION)
    empty_account([cleanup.client("lambda")], cleanup.client("iam"))


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def deploy_json(capsys, *argv):
    rc, out, err = run(capsys, "deploy", "--json", *argv)
    assert rc == 0, err
    return json.loads(out)


def statements(lam, name=NAME):
    return json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]


def ours(stmts):
    return sorted((s for s in stmts if s["Sid"].startswith(d.SID_PREFIX)), key=lambda s: s["Action"])


# -- the package -------------------------------------------------------------


# -- deploy --------------------------------------------------------------------


def test_deploy_creates_role_function_url_and_policy(aws, capsys):
    rc, out, err = run(capsys, "deploy", "--memory", "256", "--timeout", "15", "--env", "AFFINITY_MISS_DELAY_MS=20")
    assert rc == 0, err
    iam, lam = aws.client("iam"), aws.client("lambda")
    account = aws.client("sts").get_caller_identity()["Account"]

    role = iam.get_role(RoleName=ROLE)["Role"]
    assert role["Path"] == d.ROLE_PATH
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {d.MANAGED_TAG: "true", d.FUNCTION_TAG: NAME}
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]] == [BASIC]

    fn = lam.get_function(FunctionName=NAME)
    config = fn["Configuration"]
    assert fn["Tags"] == {d.MANAGED_TAG: "true"}
    assert (config["Runtime"], config["Handler"], config["MemorySize"], config["Timeout"], config["Role"]) == (
        d.RUNTIME,
        "handler.handler",
        256,
        15,
        role["Arn"],
    )
    assert config["Environment"]["Variables"] == {
        "AFFINITY_CACHE_SIZE": "10000",
        "AFFINITY_CACHE_TTL_S": "900",
        "AFFINITY_MISS_DELAY_MS": "20",
    }
    assert config["CodeSha256"] == d.code_sha256(d.build_zip())
    assert config["State"] == "Active"

    url = lam.get_function_url_config(FunctionName=NAME)
    assert url["AuthType"] == "AWS_IAM"
    stmts = ours(statements(lam))
    assert [(s["Action"], s["Principal"]) for s in stmts] == [
        ("lambda:InvokeFunction", account),
        ("lambda:InvokeFunctionUrl", account),
    ]
    assert stmts[0]["InvokedViaFunctionUrl"] is True and stmts[1]["FunctionUrlAuthType"] == "AWS_IAM"

    assert f"Function URL: {url['FunctionUrl']}" in out
    # The signer's region is the function's; the default chain's region is the same here.
    assert f"  locust -f locustfiles/function_url.py --host {url['FunctionUrl']} --affinity-sigv4\n" in out
    assert "moto-test-secret" not in out + err


def test_redeploy_is_idempotent_and_updates_in_place(aws, capsys):
    lam, iam = aws.client("lambda"), aws.client("iam")
    first = deploy_json(capsys)
    before = lam.get_function(FunctionName=NAME)["Configuration"]
    policy_before = statements(lam)

    again = deploy_json(capsys)
    assert again["function_url"] == first["function_url"]
    assert again["changes"] == []
    after = lam.get_function(FunctionName=NAME)["Configuration"]
    assert (after["CodeSha256"], after["LastModified"]) == (before["CodeSha256"], before["LastModified"])
    assert statements(lam) == policy_before
    rc, out, _ = run(capsys, "deploy")
    assert rc == 0 and "nothing to change: already up to date" in out

    changed = deploy_json(capsys, "--memory", "512", "--auth-type", "NONE")
    assert changed["function_url"] == first["function_url"]
    assert "updated MemorySize of lambda-affinity-probe" in changed["changes"]
    assert "changed the Function URL's auth type to NONE" in changed["changes"]
    assert lam.get_function(FunctionName=NAME)["Configuration"]["MemorySize"] == 512
    assert lam.get_function_url_config(FunctionName=NAME)["AuthType"] == "NONE"
    stmts = ours(statements(lam))
    assert [(s["Action"], s["Principal"]) for s in stmts] == [
        ("lambda:InvokeFunction", "*"),
        ("lambda:InvokeFunctionUrl", "*"),
    ]
    assert stmts[1]["FunctionUrlAuthType"] == "NONE"
    assert changed["locust_command"] == f"locust -f locustfiles/function_url.py --host {first['function_url']}"

    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == [NAME]
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == [ROLE]


def test_changed_code_is_uploaded(aws, capsys, monkeypatch, tmp_path):
    lam = aws.client("lambda")
    deploy_json(capsys)
    (tmp_path / "handler.py").write_text((d.probe_dir() / "handler.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(packaging, "probe_dir", lambda: tmp_path)
    result = deploy_json(capsys)
    assert result["changes"] == [f"updated the code of {NAME}"]
    assert lam.get_function(FunctionName=NAME)["Configuration"]["CodeSha256"] == d.code_sha256(d.build_zip(tmp_path))


def test_role_arn_is_used_and_never_deleted(aws, capsys):
    iam, lam = aws.client("iam"), aws.client("lambda")
    mine = iam.create_role(RoleName="my-own-role", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    result = deploy_json(capsys, "--role-arn", mine, "--name", "probe-b")
    assert lam.get_function(FunctionName="probe-b")["Configuration"]["Role"] == mine
    assert "created role" not in " ".join(result["changes"])
    rc, out, err = run(capsys, "destroy", "--name", "probe-b")
    assert rc == 0, err
    assert "role" not in out.split("Left alone")[0]
    assert iam.get_role(RoleName="my-own-role")["Role"]["Arn"] == mine


def test_invoker_sets_the_url_policy_principal(aws, capsys):
    deploy_json(capsys, "--invoker", "210987654321")
    assert {s["Principal"] for s in ours(statements(aws.client("lambda")))} == {"210987654321"}
    role = "arn:aws:iam::210987654321:role/load-generator"
    changes = deploy_json(capsys, "--invoker", role)["changes"]
    assert sum(c.startswith("removed policy statement") for c in changes) == 2
    assert {s["Principal"] for s in ours(statements(aws.client("lambda")))} == {role}


# -- destroy ---------------------------------------------------------------------


def test_destroy_removes_ours_and_nothing_else(aws, capsys):
    iam, lam = aws.client("iam"), aws.client("lambda")
    # Someone else's function, role and permission in the same account.
    other_role = iam.create_role(RoleName="other-role", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    iam.attach_role_policy(RoleName="other-role", PolicyArn=BASIC)
    lam.create_function(
        FunctionName="other-fn",
        Runtime="python3.12",
        Role=other_role,
        Handler="h.h",
        Code={"ZipFile": d.build_zip()},
        Tags={"team": "x"},
    )
    lam.create_function_url_config(FunctionName="other-fn", AuthType="NONE")
    lam.add_permission(
        FunctionName="other-fn",
        StatementId="other",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )

    deploy_json(capsys)
    rc, out, err = run(capsys, "destroy")
    assert rc == 0, err
    assert f"removed function {NAME}" in out and f"removed role {ROLE}" in out
    assert f"/aws/lambda/{NAME}" in out  # says what it leaves

    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == ["other-fn"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=NAME)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=ROLE)
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["other-role"]
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="other-role")["AttachedPolicies"]] == [
        BASIC
    ]
    assert lam.get_function_url_config(FunctionName="other-fn")["AuthType"] == "NONE"
    assert [s["Sid"] for s in statements(lam, "other-fn")] == ["other"]
    assert lam.get_function(FunctionName="other-fn")["Tags"] == {"team": "x"}

    rc, out, _ = run(capsys, "destroy")
    assert rc == 0 and "nothing to destroy" in out


def test_destroy_cleans_a_role_left_by_an_interrupted_deploy(aws, capsys):
    iam = aws.client("iam")
    deploy_json(capsys)
    aws.client("lambda").delete_function(FunctionName=NAME)  # as if deploy stopped after the role
    rc, out, _ = run(capsys, "destroy")
    assert rc == 0 and f"removed role {ROLE}" in out
    assert iam.list_roles()["Roles"] == []


def test_rollback_follows_each_change_s_kind_not_its_wording(aws, capsys, monkeypatch):
    from lambda_affinity.aws import deployer, rollback

    def reworded(kind, resource, message, undo=None):
        return rollback.Change(kind, resource, message and f"touched {resource}", undo)

    def refuse(self, spec, track, changes):
        raise d.DeployError("refused on purpose")

    monkeypatch.setattr(deployer, "Change", reworded)
    monkeypatch.setattr(deployer.Deployer, "_ensure_policy", refuse)
    rc, out, err = run(capsys, "deploy")
    assert rc == 1 and out == ""
    assert err.splitlines()[1:] == [
        f"Rolled back: removed function {NAME}, the attachment of AWSLambdaBasicExecutionRole to role {ROLE}, "
        f"role {ROLE}."
    ]
    assert aws.client("lambda").list_functions()["Functions"] == []
    assert aws.client("iam").list_roles()["Roles"] == []


# -- refusals and errors -----------------------------------------------------------


def test_a_name_taken_by_an_unmanaged_function_is_refused(aws, capsys):
    iam, lam = aws.client("iam"), aws.client("lambda")
    role = iam.create_role(RoleName="their-role", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    lam.create_function(
        FunctionName=NAME,
        Runtime="python3.12",
        Role=role,
        Handler="theirs.main",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
        MemorySize=1024,
    )
    before = lam.get_function(FunctionName=NAME)["Configuration"]

    rc, _out, err = run(capsys, "deploy")
    assert rc == 1
    assert f"a function named {NAME} already exists in {REGION} and was not created by `lambda-affinity deploy`" in err
    assert "choose another --name" in err
    after = lam.get_function(FunctionName=NAME)["Configuration"]
    assert (after["CodeSha256"], after["Handler"], after["MemorySize"]) == (before["CodeSha256"], "theirs.main", 1024)
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["their-role"]  # refused before creating a role
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_url_config(FunctionName=NAME)

    rc, _, err = run(capsys, "destroy")
    assert rc == 1 and "was not created by `lambda-affinity deploy`; destroy leaves it alone" in err
    assert lam.get_function(FunctionName=NAME)["Configuration"]["Handler"] == "theirs.main"


def test_a_role_name_taken_by_an_unmanaged_role_is_refused(aws, capsys):
    iam = aws.client("iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=TRUST)
    rc, _, err = run(capsys, "deploy")
    assert rc == 1 and f"an IAM role named {ROLE} already exists" in err and "--role-arn" in err
    assert aws.client("lambda").list_functions()["Functions"] == []
    rc, out, _ = run(capsys, "destroy")
    assert rc == 0 and "nothing to destroy" in out
    assert iam.get_role(RoleName=ROLE)["Role"]["RoleName"] == ROLE


def test_missing_credentials(aws, env, capsys):
    env.delenv("AWS_ACCESS_KEY_ID")
    env.delenv("AWS_SECRET_ACCESS_KEY")
    for command in ("deploy", "destroy"):
        rc, out, err = run(capsys, command)
        assert rc == 1 and out == ""
        assert err.startswith(f"lambda-affinity {command}: error: no AWS credentials found")


def test_missing_region(aws, env, capsys):
    env.delenv("AWS_DEFAULT_REGION")
    rc, _, err = run(capsys, "deploy")
    assert rc == 1 and "no AWS region: pass --region" in err
    rc, _, err = run(capsys, "deploy", "--region", "us-west-2", "--json")
    assert rc == 0, err


def test_unknown_profile(aws, capsys):
    rc, _, err = run(capsys, "deploy", "--profile", "nope")
    assert rc == 1 and "cannot read AWS credentials" in err and "nope" in err


def test_missing_permission_names_the_action(aws, env, capsys):
    iam = aws.client("iam")
    iam.create_user(UserName="loadtester")
    key = iam.create_access_key(UserName="loadtester")["AccessKey"]
    iam.put_user_policy(
        UserName="loadtester",
        PolicyName="lambda-only",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["lambda:*"], "Resource": "*"}]}
        ),
    )
    env.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    env.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    with enable_iam_authentication():  # moto now evaluates IAM policies for every call
        rc, out, err = run(capsys, "deploy")
    assert rc == 1 and out == ""
    assert "missing permission iam:GetRole (AccessDenied)" in err
    assert "user/loadtester is not authorized to perform: iam:GetRole" in err
    assert key["SecretAccessKey"] not in err
    assert iam.list_roles()["Roles"] == []


def test_rejected_credentials(aws, env, capsys):
    env.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAREALKEY00000")
    with enable_iam_authentication():
        rc, _, err = run(capsys, "deploy")
    assert rc == 1 and "AWS rejected the credentials (InvalidClientTokenId)" in err
    assert "moto-test-secret" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--memory", "64"], "Lambda allows 128 to 10240 MB"),
        (["--timeout", "0"], "Lambda allows 1 to 900 seconds"),
        (["--name", "bad name!"], "use 1-64 letters, digits"),
        (["--role-arn", "my-role"], "is not an IAM role ARN"),
        (["--auth-type", "NONE", "--invoker", "123456789012"], "--invoker only applies to --auth-type AWS_IAM"),
        (["--invoker", "everyone"], "give a 12-digit account id or an IAM ARN"),
    ],
)
def test_bad_input_is_refused_before_any_call(aws, capsys, argv, message):
    rc, _, err = run(capsys, "deploy", *argv)
    assert rc == 1 and message in err
    assert aws.client("iam").list_roles()["Roles"] == []
