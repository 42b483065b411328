"""deploy without AWS: the zip package, option errors and the locust command it prints."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import pytest

from lambda_affinity.aws import deploy as d
from lambda_affinity.cli import main

NAME = d.DEFAULT_NAME


def test_zip_has_the_handler_at_the_root_and_runs(tmp_path):
    package = d.build_zip()
    names = zipfile.ZipFile(io.BytesIO(package)).namelist()
    wrapper = ["__init__.py", "events.py", "state.py", "wrap.py"]
    assert names == ["handler.py"] + [f"lambda_affinity_wrapper/{name}" for name in wrapper]
    assert package == d.build_zip()  # deterministic: same probe, same CodeSha256
    path = tmp_path / "probe.zip"
    path.write_bytes(package)
    # imported from the zip alone as Lambda's runtime would, through sys.path, in an interpreter that sees no
    # site-packages (-I -S): the zip carries the wrapper's session cache the probe imports
    code = (
        f"import sys; sys.path.insert(0, {str(path)!r}); import handler, lambda_affinity_wrapper as w, json; "
        "assert handler.__file__.startswith(sys.path[0]) and w.__file__.startswith(sys.path[0]); "
        "print(json.dumps(handler.handler({'session': 'u1'}, None)))"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout)
    assert reply["probe"] == 1 and reply["cache"]["hit"] is False


def test_zip_skips_caches_package_markers_and_other_variants(tmp_path):
    (tmp_path / "handler.py").write_text("def handler(e, c): return 1\n")
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "template.yaml").write_text("x: 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "index.mjs").write_text("export const handler = 1\n")
    names = zipfile.ZipFile(io.BytesIO(d.build_zip(tmp_path))).namelist()
    assert [n for n in names if "/" not in n] == ["handler.py", "helpers.py"]
    (tmp_path / "handler.py").unlink()
    with pytest.raises(d.DeployError, match=r"no handler\.py"):
        d.build_zip(tmp_path)


def test_bad_env_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["deploy", "--env", "PATH=/tmp"])
    assert info.value.code == 2
    assert "NAME one of AFFINITY_CACHE_SIZE" in capsys.readouterr().err


def test_locust_command_carries_profile_and_region_when_needed():
    iam_url = d.Deployed(NAME, "https://abc.lambda-url.us-east-2.on.aws/", "us-east-2", "AWS_IAM", [])
    assert (
        d.locust_command(iam_url, "us-east-2", None)
        == "locust -f locustfiles/function_url.py --host https://abc.lambda-url.us-east-2.on.aws/ --affinity-sigv4"
    )
    assert d.locust_command(iam_url, "eu-west-1", "load test").startswith(
        "AWS_PROFILE='load test' AWS_REGION=us-east-2 locust -f"
    )
    public = d.Deployed(NAME, "https://abc.lambda-url.us-east-2.on.aws/", "us-east-2", "NONE", [])
    assert (
        d.locust_command(public, None, None)
        == "locust -f locustfiles/function_url.py --host https://abc.lambda-url.us-east-2.on.aws/"
    )
