"""Random durations given as text, shared by the simulator's options and the
emulator's config so both drivers read `A:B`, `exp:MEAN` and `fixed:X` alike.

Pure: a parsed distribution is a function of a `random.Random`, so each
driver draws from a generator of its own (seeded or not) and the module keeps
no state. It also says what drivers plan with: `fixed` (its value when
constant, else None), `lowest` (the least value it draws) and `mean`.
"""

from __future__ import annotations

import math
import random
from typing import Protocol

from ..errors import LambdaAffinityError


class DistributionError(LambdaAffinityError, ValueError):
    """Text that is not a distribution; the message names the option or key."""


class Distribution(Protocol):
    """`draw(rng)` -> seconds; `fixed`: the value when constant, else None; `lowest`: the least value drawn;
    `mean`: the expected value."""

    fixed: float | None
    lowest: float
    mean: float

    def __call__(self, rng: random.Random) -> float: ...


def _described(draw, fixed: float | None, lowest: float, mean: float) -> Distribution:
    # Attributes on the function itself: drawing stays one plain call (hot loops draw millions).
    draw.fixed, draw.lowest, draw.mean = fixed, lowest, mean
    return draw


def parse_distribution(spec: str | float, what: str = "think") -> Distribution:
    """`A:B` uniform seconds, `exp:MEAN` exponential, `fixed:X` or `X` constant.

    Raises DistributionError (a ValueError) "{what}: ... is not a distribution: ...") so a caller
    can name its own option or key in `what`.
    """
    text = str(spec).strip()
    # Checks read `not 0 <= x < inf`: NaN and infinity would pass `x < 0`.
    try:
        if text.startswith("exp:"):
            mean = float(text[4:])
            if not 0 < mean < math.inf:
                raise ValueError
            rate = 1.0 / mean
            return _described(lambda rng: rng.expovariate(rate), None, 0.0, mean)
        if text.startswith("fixed:"):
            text = text[6:]
        if ":" in text:
            a, b = (float(x) for x in text.split(":"))
            if not 0 <= a <= b < math.inf:
                raise ValueError
            width = b - a
            return _described(lambda rng: a + width * rng.random(), None, a, (a + b) / 2)
        value = float(text)
        if not 0 <= value < math.inf:
            raise ValueError
        return _described(lambda rng: value, value, value, value)
    except ValueError:
        raise DistributionError(
            f"{what}: {spec!r} is not a distribution: use A:B (uniform seconds), exp:MEAN or a fixed number of seconds"
        ) from None
