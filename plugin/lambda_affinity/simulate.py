"""Old import path of sim/simulate.py, kept for existing scripts."""

from __future__ import annotations

from .sim.replay import replay
from .sim.simulate import (
    FUNCTION,
    RunResult,
    Scenario,
    run,
    run_many,
)

__all__ = [
    "FUNCTION",
    "RunResult",
    "Scenario",
    "replay",
    "run",
    "run_many",
]
