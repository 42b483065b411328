"""Trace rows shared by the trace tests, in-process and end to end."""

from __future__ import annotations

from lambda_affinity.sim.trace import TraceRow

ENV = "2026/12/01/[$LATEST]" + "ab" * 16


def rows_fixture():
    return [
        TraceRow(100.0, 100.08, "u1", "u1-x", ENV, True, False, True),
        TraceRow(100.5, 100.6, "u2", "u2-x", ENV + "2", True, None, True),
        TraceRow(101.25, 101.3, "u1", "u1-x", None, None, None, False),
        TraceRow(102.0, 102.1, "u1", "u1-x", ENV, False, True, True),
    ]


def write(tmp_path, text, name="t.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)
