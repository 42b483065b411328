"""The probe template and the wrapper's SAM template (wrapper/template.yaml, the snippet docs/own-function.md
shows) through cfn-lint, its library and its command (cfn-lint takes seconds to load and run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint

from lambda_affinity.aws import deploy

TEMPLATE = deploy.probe_dir() / "template.yaml"
WRAPPER_TEMPLATE = Path(__file__).resolve().parents[2] / "wrapper" / "template.yaml"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


@pytest.mark.skipif(not shutil.which("cfn-lint"), reason="the cfn-lint command is not on PATH")
def test_template_passes_the_cfn_lint_command():
    done = subprocess.run(
        ["cfn-lint", "--regions", *REGIONS, "--", str(TEMPLATE), str(WRAPPER_TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _lint(text: str) -> list:
    return lint(text, config=ManualArgs(regions=REGIONS))


@pytest.mark.parametrize("template", [TEMPLATE, WRAPPER_TEMPLATE], ids=["probe", "wrapper"])
def test_template_passes_cfn_lint(template):
    matches = _lint(template.read_text())
    assert matches == [], "\n".join(str(m) for m in matches)


def test_the_wrapper_template_configures_both_runtimes_as_the_layer_build_says():
    import yaml

    from lambda_affinity.aws.layer import WRAPPER_HANDLER

    class Loader(yaml.SafeLoader):  # CloudFormation's short forms (!Ref, !GetAtt, !Sub) as plain values
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    resources = yaml.load(WRAPPER_TEMPLATE.read_text(), Loader=Loader)["Resources"]
    handlers = {
        r["Properties"]["Runtime"][:6]: r["Properties"]["Handler"]
        for r in resources.values()
        if "Runtime" in r.get("Properties", {})
    }
    assert handlers == {"python": WRAPPER_HANDLER["python"], "nodejs": WRAPPER_HANDLER["nodejs"]}


def test_lint_catches_a_broken_template():
    # Guards against a lint call that checks nothing (e.g. the SAM transform skipped).
    broken = TEMPLATE.read_text().replace("ProbeFunctionUrl.FunctionUrl", "NoSuchUrl.FunctionUrl")
    assert any("NoSuchUrl" in str(m) for m in _lint(broken))
