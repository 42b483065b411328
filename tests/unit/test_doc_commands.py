"""The rule that finds the docs' command examples and reads their markers (tests/doc_commands.py)."""

from __future__ import annotations

import pytest
from doc_commands import MarkerError, commands_in

DOC = """Intro `lambda-affinity simulate` inline is not a block.

<!-- docs-test: skip "deploy" (needs AWS) -->
<!-- docs-test: shorten "--users 10000" --duration 300 -->

<!-- docs-test: setup cp a b -->
```
lambda-affinity deploy            # makes things
$ lambda-affinity simulate --users 10000 \\
    --think exp:30
pip install -e . && locust -f x.py --headless
python -m pytest
lambda-affinity sweep: error: --vary 'x': not a factor
  lambda-affinity destroy --name n     (indented: output)
```

```python
import locust  # not a shell block
```

<!-- docs-test: reproduces docs/figures/x -->
```bash
lambda-affinity sweep --vary users=1,2 --out docs/figures/x
```
"""


def test_commands_markers_and_the_lines_that_are_not_commands():
    found = commands_in("d.md", DOC)
    assert [(c.id, c.written) for c in found] == [
        ("d.md:8", "lambda-affinity deploy            # makes things"),
        ("d.md:9", "lambda-affinity simulate --users 10000 --think exp:30"),
        ("d.md:11", "pip install -e . && locust -f x.py --headless"),
        ("d.md:23", "lambda-affinity sweep --vary users=1,2 --out docs/figures/x"),
    ]
    deploy, simulate, compound, sweep = found
    assert deploy.skip == "needs AWS" and deploy.shell == "lambda-affinity deploy"
    assert simulate.skip is None and simulate.shell.endswith("--think exp:30 --duration 300")
    assert compound.skip is None and compound.append == [] and compound.setup == ["cp a b"]
    assert sweep.reproduces == ["docs/figures/x"] and sweep.setup == []


@pytest.mark.parametrize(
    "marker, message",
    [
        ("<!-- docs-test: skip -->", "skip needs a \\(reason\\)"),
        ('<!-- docs-test: skip "deploy" because -->', "skip needs a \\(reason\\)"),
        ("<!-- docs-test: shorten -->", "shorten needs an argument"),
        ('<!-- docs-test: shorten "x" -t \'unbalanced -->', "No closing quotation"),
        ("<!-- docs-test: ignore (x) -->", "not a docs-test marker"),
        ('<!-- docs-test: skip "nothing like it" (x) -->', "d.md:1: docs-test skip names no command"),
    ],
)
def test_a_bad_or_stale_marker_is_an_error(marker, message):
    with pytest.raises((MarkerError, ValueError), match=message):
        commands_in("d.md", f"{marker}\n```\nlambda-affinity simulate\n```\n")
