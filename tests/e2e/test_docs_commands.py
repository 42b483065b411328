"""Every `lambda-affinity ...` and `locust ...` example in README.md and docs/*.md runs as written.

Which lines are commands, and the `<!-- docs-test: ... -->` markers that skip, shorten or set one
up, are tests/doc_commands.py's rule. Each command is its own test, named by its document and line;
they run two at a time (started together when the first of them is reached), each in its own copy
of docs/ and locustfiles/.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_commands import ROOT, DocCommand, all_commands

from lambda_affinity.cli import build_parser

COMMANDS = all_commands()
COPIED = ("docs", "locustfiles")
TIMEOUT_S = 180


@dataclass
class Ran:
    returncode: int | None  # None: timed out
    output: str
    differ: list[str]  # files under a `reproduces` path that are not the committed ones


def run(command: DocCommand, base: Path) -> Ran:
    cwd = Path(tempfile.mkdtemp(dir=base, prefix=command.id.replace("/", "_").replace(":", "_") + "-"))
    for name in COPIED:
        shutil.copytree(ROOT / name, cwd / name)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    script = "\n".join(["set -e", *command.setup, command.shell])
    with subprocess.Popen(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # Locust and the emulator it started, too
            output, _ = proc.communicate()
            return Ran(None, output, [])
    return Ran(proc.returncode, output, [p for path in command.reproduces for p in _differing(path, cwd)])


def _differing(path: str, cwd: Path) -> list[str]:
    committed = {p.relative_to(ROOT) for p in (ROOT / path).rglob("*") if p.is_file()}
    written = {p.relative_to(cwd) for p in (cwd / path).rglob("*") if p.is_file()}
    return sorted(
        str(p)
        for p in committed | written
        if not ((cwd / p).is_file() and (ROOT / p).is_file() and (cwd / p).read_bytes() == (ROOT / p).read_bytes())
    )


@pytest.fixture(scope="module")
def started(request, tmp_path_factory):
    """Every selected, not skipped command, started on a pool of two when the first test asks."""
    selected = {
        item.callspec.params["command"].id
        for item in request.session.items
        if item.originalname == "test_doc_command" and hasattr(item, "callspec")
    }
    base = tmp_path_factory.mktemp("docs")
    pool = ThreadPoolExecutor(max_workers=2)
    futures: dict[str, Future] = {
        c.id: pool.submit(run, c, base) for c in COMMANDS if c.id in selected and c.skip is None
    }
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_doc_command(command: DocCommand, started):
    if command.skip is not None:
        pytest.skip(f"docs-test: skip ({command.skip})")
    ran = started[command.id].result()
    shown = f"{command.id}: `{command.shell}`"
    assert ran.returncode is not None, f"{shown} did not end in {TIMEOUT_S} s:\n{ran.output[-3000:]}"
    assert ran.returncode == 0, f"{shown} exited {ran.returncode}:\n{ran.output[-3000:]}"
    assert not ran.differ, f"{shown} did not reproduce the committed files: {', '.join(ran.differ)}"


def test_every_document_has_its_commands_found():
    # the rule finds what the documents show; a document that lost its examples would fail here
    docs = {c.doc for c in COMMANDS}
    assert {"README.md", "docs/plugin.md", "docs/traces.md", "docs/real-aws.md", "docs/sweep.md"} <= docs
    assert sum(c.skip is None for c in COMMANDS) >= 8


def test_readme_lists_every_command():
    # README: "`lambda-affinity --help` lists the commands: `simulate`, ..." must name each subcommand
    readme = (ROOT / "README.md").read_text()
    start = readme.index("`lambda-affinity --help` lists the commands:")
    listed = set(re.findall(r"`([a-z-]+)`", readme[start : readme.index("\n\n", start)]))
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) - listed == set(), "README's command list leaves these out"
