"""Old import path of sim/simulate.py, kept for existing scripts."""

from .sim.simulate import Scenario, replay, run, run_many

__all__ = ["Scenario", "replay", "run", "run_many"]
