"""`lambda-affinity layer build`: the zip laid out as AWS mounts layers, standing alone, written whole."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from lambda_affinity.aws.layer import build_layer
from lambda_affinity.cli import main

PY = ["python/lambda_affinity_wrapper/" + n for n in ("__init__.py", "events.py", "state.py", "wrap.py")]
NODE = ["nodejs/node_modules/lambda-affinity-wrapper/" + n for n in ("index.mjs", "package.json")]


@pytest.mark.parametrize("runtime, names", [("python", PY), ("nodejs", NODE), ("all", NODE + PY)])
def test_the_zip_holds_the_runtimes_wrapper_under_opts_layout(tmp_path, capsys, runtime, names):
    out = tmp_path / "layer.zip"
    assert main(["layer", "build", "--runtime", runtime, "--out", str(out)]) == 0
    assert zipfile.ZipFile(out).namelist() == names
    assert f"wrote {out}" in capsys.readouterr().out
    if runtime == "all":
        assert out.read_bytes() == build_layer()  # deterministic: what deploy --layer publishes


def test_the_python_wrapper_runs_from_the_zip_alone(tmp_path):
    out = tmp_path / "layer.zip"
    out.write_bytes(build_layer(("python",)))
    # /opt/python on the path, in an interpreter that sees no site-packages: the wrapper needs only the stdlib
    code = (
        f"import sys; sys.path.insert(0, {str(out / 'python')!r}); import lambda_affinity_wrapper as w; "
        "assert w.__file__.startswith(sys.path[0]); "
        "app = w.affinity(lambda e, c: {'statusCode': 200}); "
        "e = {'rawPath': '/', 'requestContext': {}, 'headers': {'x-affinity-session': 'u'}}; "
        "print(app(e, None)['headers']['x-affinity-session-hit'], app(e, None)['headers']['x-affinity-session-hit'])"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["0", "1"], proc.stderr


def test_a_folder_as_target_is_refused_and_left_alone(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["layer", "build", "--out", str(tmp_path)])
    assert info.value.code == 2 and tmp_path.is_dir()
