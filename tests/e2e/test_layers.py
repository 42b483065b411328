"""The layers and the import contracts of pyproject.toml ([tool.importlinter]), checked by import-linter on
the real tree, and shown to fail on copies of it with one deliberately broken import each. Here, with the
end-to-end tests, because each check runs lint-imports as a process on a tree of its own."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = os.path.join(ROOT, "tests")
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None, reason="import-linter is not installed (pip install -e '.[lint]')"
)


def lint_imports(root: str) -> subprocess.CompletedProcess:
    paths = [os.path.join(root, "plugin"), os.path.join(root, "wrapper", "python"), root, TESTS]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_tree_keeps_every_contract():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.fixture
def tree(tmp_path):
    """A copy of the package sources and the contracts, to break."""
    for folder in ("plugin", "probe_lambda", "wrapper"):
        shutil.copytree(os.path.join(ROOT, folder), tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    return tmp_path


def add_import(tree, module: str, line: str) -> None:
    top = module.split(".")[0]
    folder = {"lambda_affinity": "plugin", "lambda_affinity_wrapper": "wrapper/python"}.get(top, "")
    path = tree / folder / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize(
    "module, line, broken",
    [
        # a lower layer reaching up (the tracker importing the trace reader)
        ("lambda_affinity.core.tracker", "from ..sim import trace", "Layers: each imports only those below it"),
        # a pure layer importing Locust, even inside a function
        ("lambda_affinity.sim.simulate", "def f():\n    import locust", "Pure layers import no Locust"),
        ("lambda_affinity.report.charts", "import boto3", "Pure layers import no Locust"),
        # the probe's code used beyond the simulator's cache, the emulator's default and deploy's zip
        ("lambda_affinity.report.render", "from probe_lambda.handler import SessionCache", "Only the simulator's"),
        # the deployed probe importing the package
        ("probe_lambda.handler", "import lambda_affinity.core.tracker", "The deployed probe stands alone"),
        # the wrapper (inside the user's function, from a layer) importing the package
        ("lambda_affinity_wrapper.events", "import lambda_affinity.core.limits", "The wrapper stands alone"),
        # a submodule importing its own package, whose __init__ imports it back through plugin.py
        ("lambda_affinity.locust_plugin.roles", "from . import plugin_for", "No import cycle"),
    ],
)
def test_a_broken_import_breaks_its_contract(tree, module, line, broken):
    add_import(tree, module, line)
    proc = lint_imports(str(tree))
    assert proc.returncode != 0, proc.stdout
    assert "1 broken" in proc.stdout, proc.stdout
    assert broken in proc.stdout.split("Broken contracts")[1].replace("\n", " ")
