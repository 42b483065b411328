"""The probe template through cfn-lint, its library and its command (cfn-lint takes seconds to load and run)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cfnlint.api import ManualArgs, lint

from lambda_affinity.aws import deploy

TEMPLATE = deploy.probe_dir() / "template.yaml"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


@pytest.mark.skipif(not shutil.which("cfn-lint"), reason="the cfn-lint command is not on PATH")
def test_template_passes_the_cfn_lint_command():
    done = subprocess.run(
        ["cfn-lint", "--regions", *REGIONS, "--", str(TEMPLATE)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _lint(text: str) -> list:
    return lint(text, config=ManualArgs(regions=REGIONS))


def test_template_passes_cfn_lint():
    matches = _lint(TEMPLATE.read_text())
    assert matches == [], "\n".join(str(m) for m in matches)


def test_lint_catches_a_broken_template():
    # Guards against a lint call that checks nothing (e.g. the SAM transform skipped).
    broken = TEMPLATE.read_text().replace("ProbeFunctionUrl.FunctionUrl", "NoSuchUrl.FunctionUrl")
    assert any("NoSuchUrl" in str(m) for m in _lint(broken))
