"""probe_lambda/template.yaml says what `lambda-affinity deploy` does (cfn-lint's checks are in
e2e/test_template_cfn_lint.py)."""

from __future__ import annotations

import botocore.session
from cfnlint.decode import decode_str

from lambda_affinity.aws import deploy
from lambda_affinity.core import limits

TEMPLATE = deploy.probe_dir() / "template.yaml"


def _template() -> dict:
    template, matches = decode_str(TEMPLATE.read_text())
    assert not matches
    return template


def test_function_and_url_as_specified():
    t = _template()
    fn = t["Resources"]["ProbeFunction"]
    assert fn["Type"] == "AWS::Serverless::Function"
    props = fn["Properties"]
    assert props["Handler"] == deploy.HANDLER
    assert props["Runtime"] == deploy.RUNTIME
    assert props["MemorySize"] == {"Ref": "MemorySize"} and props["Timeout"] == {"Ref": "Timeout"}
    assert props["FunctionUrlConfig"]["AuthType"] == {"Ref": "FunctionUrlAuthType"}
    env = props["Environment"]["Variables"]
    assert set(env) == set(deploy.PROBE_ENV)


def test_runtime_is_a_current_python():
    runtimes = botocore.session.get_session().get_service_model("lambda").shape_for("Runtime").enum
    assert deploy.RUNTIME in runtimes
    major, minor = map(int, deploy.RUNTIME.removeprefix("python").split("."))
    assert (major, minor) >= (3, 12)


def test_parameters_default_to_what_deploy_does():
    params = _template()["Parameters"]
    assert params["FunctionUrlAuthType"]["Default"] == deploy.AUTH_TYPE == "AWS_IAM"
    assert params["FunctionUrlAuthType"]["AllowedValues"] == ["AWS_IAM", "NONE"]
    assert params["MemorySize"]["Default"] == deploy.MEMORY_MB
    assert params["Timeout"]["Default"] == deploy.TIMEOUT_S
    env = _template()["Resources"]["ProbeFunction"]["Properties"]["Environment"]["Variables"]
    for name, value in deploy.PROBE_ENV.items():
        assert params[env[name]["Ref"]]["Default"] == value


def test_outputs_url_name_and_region():
    outputs = _template()["Outputs"]
    assert outputs["FunctionUrl"]["Value"] == {"Fn::GetAtt": ["ProbeFunctionUrl", "FunctionUrl"]}
    assert outputs["FunctionName"]["Value"] == {"Ref": "ProbeFunction"}
    assert outputs["Region"]["Value"] == {"Ref": "AWS::Region"}


def test_parameter_ranges_are_lambda_s_limits():
    params = _template()["Parameters"]
    assert (params["MemorySize"]["MinValue"], params["MemorySize"]["MaxValue"]) == (
        limits.MEMORY_MIN_MB,
        limits.MEMORY_MAX_MB,
    )
    assert (params["Timeout"]["MinValue"], params["Timeout"]["MaxValue"]) == (
        limits.TIMEOUT_MIN_S,
        limits.TIMEOUT_MAX_S,
    )
    assert params["FunctionUrlAuthType"]["AllowedValues"] == list(limits.URL_AUTH_TYPES)


def test_the_wrapper_layer_gives_the_probe_its_session_cache_as_the_deploy_zip_does():
    t = _template()
    assert t["Resources"]["ProbeFunction"]["Properties"]["Layers"] == [{"Ref": "WrapperLayer"}]
    layer = t["Resources"]["WrapperLayer"]["Properties"]
    assert deploy.RUNTIME in layer["CompatibleRuntimes"]
    content = (TEMPLATE.parent / layer["ContentUri"]).resolve()
    # the folder SAM zips: its python/ is /opt/python, where the probe's import finds the wrapper's package
    assert (content / "python" / "lambda_affinity_wrapper" / "state.py").is_file()
