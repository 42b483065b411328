"""The probe template through the cfn-lint command, as a user runs it."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from lambda_affinity import deploy
TEMPLATE = deploy.probe_dir() / "template.yaml"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


@pytest.mark.skipif(not shutil.which("cfn-lint"), reason="the cfn-lint command is not on PATH")
def test_template_passes_the_cfn_lint_command():
    done = subprocess.run(["cfn-lint", "--regions", *REGIONS, "--", str(TEMPLATE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
