"""What re-runs a command exactly, for its JSON output (pure): the version, the seed, the scenario and model."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from .. import __version__
from .schema import Reproduce


def fresh_seed(seed: int | None) -> int:
    """The seed a run uses: the one given, or a new one drawn from the OS (printed, so the run can be repeated)."""
    return seed if seed is not None else random.SystemRandom().randrange(1, 10**9)


def reproduce(
    command: str,
    seed: int | None,
    options: Mapping[str, Any],
    scenario: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
) -> Reproduce:
    """`scenario`: a Scenario as a mapping (dataclasses.asdict), its `model` split out; `model`: the
    platform model of a run with no scenario (a Locust run on the embedded emulator)."""
    rest = dict(scenario) if scenario is not None else None
    if rest is not None:
        model = rest.pop("model", None)
    return {
        "version": __version__,
        "command": command,
        "seed": seed,
        "scenario": rest,
        "model": dict(model) if model is not None else None,
        "options": dict(options),
    }
