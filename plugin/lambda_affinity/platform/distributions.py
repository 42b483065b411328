"""Durations and random durations given as text: one grammar for every option and key that takes
one (the simulator's, sweep's and calibrate's options, the model file and the emulator's config).

    DURATION      90  0.25  (seconds)   90s  10m  1h30m  250ms  1.5h  (as Locust's -t, plus decimals and ms)
    DISTRIBUTION  DURATION             a constant (also fixed:DURATION)
                  A:B                  uniform between two durations (5m:15m, 0.06:0.1)
                  exp:MEAN             exponential with that mean (exp:10m)

Pure: a parsed distribution is a function of a `random.Random`, so each
driver draws from a generator of its own (seeded or not) and the module keeps
no state. It also says what drivers plan with: `fixed` (its value when
constant, else None), `lowest` (the least value it draws) and `mean`.
"""

from __future__ import annotations

import argparse
import math
import random
import re
from typing import Protocol

from ..errors import LambdaAffinityError

# Seconds per unit, largest first: a duration names each unit at most once, in this order.
UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})(ms|d|h|m|s)")
DURATION_FORMS = "seconds (90, 0.25) or a number with units d, h, m, s, ms (10m, 1h30m, 250ms)"
DISTRIBUTION_FORMS = "a duration (90, 10m), A:B uniform (5m:15m), exp:MEAN (exp:10m) or fixed:DURATION"
# Longer text is not a duration anyone writes; refusing it keeps the regular expressions cheap.
MAX_TEXT = 100


class DistributionError(LambdaAffinityError, ValueError):
    """Text that is not a distribution; the message names the option or key."""


class DurationError(DistributionError):
    """Text that is not a duration; the message names the option or key."""


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


def parse_distribution(spec: str | float, what: str | None = "think") -> Distribution:
    """`A:B` uniform, `exp:MEAN` exponential, `fixed:X` or `X` constant, each a duration (parse_duration).

    Raises DistributionError (a ValueError) "{what}: {spec!r} is not a distribution: ..." (without
    "{what}: " when `what` is None, as argparse names the option itself)."""
    text = str(spec).strip()
    try:
        if text.startswith("exp:"):
            mean = _seconds(text[4:])
            if mean == 0:
                raise _Bad("exp:MEAN needs a mean > 0")
            rate = 1.0 / mean
            return _described(lambda rng: rng.expovariate(rate), None, 0.0, mean)
        if text.startswith("fixed:"):
            text = text[6:]
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 2:
                raise _Bad("A:B takes two durations")
            a, b = _seconds(parts[0]), _seconds(parts[1])
            if a > b:
                raise _Bad(f"A:B needs A <= B, got {a:g} s > {b:g} s")
            width = b - a
            return _described(lambda rng: a + width * rng.random(), None, a, (a + b) / 2)
        value = _seconds(text)
        return _described(lambda rng: value, value, value, value)
    except _Bad as exc:
        raise DistributionError(
            f"{_prefix(what)}{spec!r} is not a distribution: {exc}; use {DISTRIBUTION_FORMS}"
        ) from None


def parse_duration(spec: str | float, what: str | None = None) -> float:
    """Seconds from a duration: a plain number is seconds; else numbers with units, largest first
    (`1h30m`, `90s`, `250ms`, `1.5h`). DurationError "{what}: {spec!r} is not a duration: ..." if not."""
    try:
        return _seconds(spec)
    except _Bad as exc:
        raise DurationError(f"{_prefix(what)}{spec!r} is not a duration: {exc}; use {DURATION_FORMS}") from None


def duration_option(text: str) -> float:
    """argparse `type=` of every option taking a duration (lambda-affinity's subcommands, the emulator,
    deploy): seconds; argparse puts "argument --NAME: " in front of the message."""
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_duration_or_distribution(spec: str | float, what: str | None = None) -> float | str:
    """What a key or option taking either (keep-alive, lifetime) keeps: seconds when constant (`10m`,
    `fixed:600`, 600), else the distribution's text, checked. Text without a colon is read as a duration,
    so its error says "is not a duration"; with one, as a distribution. Raises DistributionError."""
    text = str(spec).strip()
    if isinstance(spec, (int, float)) or ":" not in text:
        return parse_duration(spec, what)
    dist = parse_distribution(text, what)
    return dist.fixed if dist.fixed is not None else text


def distribution_option(text: str) -> float | str:
    """argparse `type=` of an option taking a duration or a distribution (--keep-alive, --max-lifetime):
    parse_duration_or_distribution's value; argparse puts "argument --NAME: " in front of the message."""
    try:
        return parse_duration_or_distribution(text)
    except DistributionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Bad(LambdaAffinityError, ValueError):
    """Why a text is not a duration; parse_* catch it and raise their one-line message."""


def _seconds(spec: str | float) -> float:
    if isinstance(spec, bool):
        raise _Bad("a boolean")
    if isinstance(spec, (int, float)):
        try:
            value = float(spec)
        except OverflowError:  # an int past float's range (YAML reads 400 digits as one)
            raise _Bad("too large") from None
    elif not isinstance(spec, str):
        raise _Bad(f"a {type(spec).__name__}, not text or a number")
    else:
        text = spec.strip()
        if not text:
            raise _Bad("empty")
        if len(text) > MAX_TEXT:
            raise _Bad(f"longer than {MAX_TEXT} characters")
        try:
            value = float(text)  # plain seconds, in any form float() reads (1e3 too)
        except ValueError:
            value = _with_units(text)
    # Checks read `not 0 <= x < inf`: NaN and infinity would pass `x < 0`.
    if not 0 <= value < math.inf:
        raise _Bad("must be a finite number of seconds >= 0")
    return value


def _with_units(text: str) -> float:
    total, pos, last = 0.0, 0, -1
    order = list(UNITS)
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        rank = order.index(match.group(2))
        if rank <= last:
            raise _Bad(f"units go largest first, each once ({match.group(2)!r} after a larger or equal one)")
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos, last = match.end(), rank
    if pos != len(text):
        rest = text[pos:]
        raise _Bad(f"cannot read {rest!r}" + (" (each number needs its unit: 1m30s)" if rest.isdigit() else ""))
    return total


def _prefix(what: str | None) -> str:
    return f"{what}: " if what else ""
