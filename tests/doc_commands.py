"""The command examples of README.md and docs/*.md, as tests/e2e/test_docs_commands.py runs them.

The rule:
- A command is a line of a fenced block (``` with no language, or sh, bash, shell, console) that
  starts, at its first column (after an optional `$ ` prompt), with `lambda-affinity ` or `locust `,
  or that runs one after `&&` (`pip install -e . && locust ...`). A line ending in `\\` goes on
  on the next. A line of a program's output (`lambda-affinity sweep: error: ...`: the name, maybe a
  word, then a colon) is not a command, nor is an indented line (output, or a list's example).
- Every command runs as written, with bash, in a fresh copy of docs/ and locustfiles/ (so one that
  writes files writes them there), and must exit 0.
- HTML comments just above a block (the reader does not see them), one per line, change that:
    <!-- docs-test: skip (REASON) -->                  every command of the block is skipped
    <!-- docs-test: skip "TEXT" (REASON) -->           those containing TEXT are
    <!-- docs-test: shorten ARGS -->                   ARGS are appended to every command (a later
    <!-- docs-test: shorten "TEXT" ARGS -->             option wins, in argparse and Locust alike),
                                                       or to those containing TEXT: `-t 3s`
    <!-- docs-test: setup SHELL -->                    SHELL runs first, in the same folder
    <!-- docs-test: reproduces PATH -->                after the command, every file under PATH is
                                                       byte for byte the committed one
  REASON says why (installs, needs AWS, a synopsis); a marker whose TEXT matches no command of its
  block is an error, so markers cannot outlive what they name.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_INFO = ("", "sh", "bash", "shell", "console")
COMMAND = re.compile(r"^(?:\$ )?(?:lambda-affinity|locust)\s|&&\s*(?:lambda-affinity|locust)\s")
OUTPUT = re.compile(r"^(?:lambda-affinity|locust)(?: [\w-]+)?:\s")
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<action>\S+)\s*(?P<rest>.*?)\s*-->\s*$")
QUOTED = re.compile(r'^"(?P<text>[^"]+)"\s*(?P<rest>.*)$')
REASON = re.compile(r"^\((?P<reason>[^)]+)\)$")
ACTIONS = ("skip", "shorten", "setup", "reproduces")


class MarkerError(ValueError):
    """A docs-test marker that does not parse or names no command."""


@dataclass(frozen=True)
class Marker:
    action: str
    text: str | None  # only commands containing it; None: all of the block
    arg: str  # skip: the reason; shorten: the arguments; setup: the shell; reproduces: the path
    line: int

    def applies(self, command: str) -> bool:
        return self.text is None or self.text in command


@dataclass
class DocCommand:
    doc: str  # README.md, docs/traces.md
    line: int
    written: str  # as the doc has it (continuations joined)
    skip: str | None = None  # the reason
    append: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    reproduces: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def shell(self) -> str:
        """What runs: the command as written, a trailing comment dropped, the shortening appended."""
        command = re.sub(r"\s+#\s.*$", "", self.written)
        return " ".join([command, *self.append])


def parse_marker(text: str, line: int) -> Marker:
    m = MARKER.match(text.strip())
    if not m or m["action"] not in ACTIONS:
        raise MarkerError(f"line {line}: not a docs-test marker ({', '.join(ACTIONS)}): {text.strip()}")
    rest, target = m["rest"], None
    quoted = QUOTED.match(rest)
    if quoted and m["action"] in ("skip", "shorten"):
        target, rest = quoted["text"], quoted["rest"]
    if m["action"] == "skip":
        reason = REASON.match(rest)
        if not reason:
            raise MarkerError(f"line {line}: skip needs a (reason): {text.strip()}")
        rest = reason["reason"]
    elif not rest:
        raise MarkerError(f"line {line}: {m['action']} needs an argument: {text.strip()}")
    if m["action"] == "shorten":
        shlex.split(rest)  # refuses unbalanced quotes now, not when the command runs
    return Marker(m["action"], target, rest, line)


def commands_in(doc: str, text: str) -> list[DocCommand]:
    """The commands of one document, each with what its block's markers do to it."""
    lines = text.split("\n")
    out: list[DocCommand] = []
    i = 0
    while i < len(lines):
        fence = lines[i]
        if not fence.startswith("```"):
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        if fence[3:].strip() in SHELL_INFO:
            block = _block_commands(doc, lines, i + 1, end)
            _apply(block, _markers_above(lines, i), doc)
            out.extend(block)
        i = end + 1
    return out


def _block_commands(doc: str, lines: list[str], start: int, end: int) -> list[DocCommand]:
    block: list[DocCommand] = []
    j = start
    while j < end:
        first, text = j, lines[j]
        while text.endswith("\\") and j + 1 < end:
            j += 1
            text = text[:-1].rstrip() + " " + lines[j].strip()
        j += 1
        if COMMAND.search(text) and not OUTPUT.match(text) and not text[:1].isspace():
            block.append(DocCommand(doc, first + 1, text.removeprefix("$ ")))
    return block


def _markers_above(lines: list[str], fence: int) -> list[Marker]:
    markers = []
    k = fence - 1
    while k >= 0 and (not lines[k].strip() or lines[k].lstrip().startswith("<!-- docs-test:")):
        if lines[k].strip():
            markers.append(parse_marker(lines[k], k + 1))
        k -= 1
    return markers[::-1]


def _apply(block: list[DocCommand], markers: list[Marker], doc: str) -> None:
    for marker in markers:
        hit = [c for c in block if marker.applies(c.written)]
        if not hit:
            raise MarkerError(f"{doc}:{marker.line}: docs-test {marker.action} names no command of the block below")
        for command in hit:
            if marker.action == "skip":
                command.skip = marker.arg
            elif marker.action == "shorten":
                command.append.append(marker.arg)
            elif marker.action == "setup":
                command.setup.append(marker.arg)
            else:
                command.reproduces.append(marker.arg)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def all_commands() -> list[DocCommand]:
    return [c for path in documents() for c in commands_in(str(path.relative_to(ROOT)), path.read_text())]
