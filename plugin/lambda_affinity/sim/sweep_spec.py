"""The factor spec of a sweep (`--vary NAME=...`): what can vary, and its values.

Spec grammar (NAME is a simulate option without its dashes, `-` or `_`):

    NAME=V1,V2,...             a list (any factor: numbers, distributions, policies, model files)
    NAME=START..STOP:step:S    START, START+S, ... up to STOP (numeric factors)
    NAME=START..STOP:lin:N     N values evenly spaced, both ends included
    NAME=START..STOP:log:N     N values evenly spaced on a log scale (START > 0); the chart's x axis is log
    NAME=START..STOP           integer factors only: every integer (step 1)

An integer factor's range values are rounded, repeats dropped. A keep-alive or lifetime list may
hold distributions too (keep-alive=10m,300:900,exp:10m); a switch takes on/off (true/false).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LambdaAffinityError
from ..platform.distributions import (
    DistributionError,
    DurationError,
    parse_distribution,
    parse_duration,
    parse_duration_or_distribution,
)

MAX_POINTS = 50
# random_duration: a duration (a float) or a distribution's text (keep-alive, lifetime); bool: on/off.
KINDS = ("int", "float", "duration", "random_duration", "distribution", "bool", "text")
BOOLS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}


@dataclass(frozen=True)
class Factor:
    """An option a sweep may vary: its name as typed (`keep-alive`), its
    value kind and, for a choice, the allowed values. `kind` decides what a
    spec may say: ranges for int, float, duration (seconds, or with units: 10m),
    random_duration and distribution (fixed durations).
    `field` is the Scenario field a value sets: `users`, `duration_s`, a
    model field as `model.keep_alive_s`, or `model` (a ModelConfig value)."""

    name: str
    kind: str
    choices: tuple[str, ...] | None = None
    field: str = ""


@dataclass(frozen=True)
class Vary:
    """A parsed `--vary`: the factor and its values (int, float or str, as
    the option takes them), in the order given."""

    factor: Factor
    values: tuple[Any, ...]
    spec: str
    # whether the values are numbers (a numeric x axis) and the spec asked for log spacing
    numeric: bool
    log: bool

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(_label(v) for v in self.values)


def _label(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class SweepError(LambdaAffinityError, ValueError):
    """A sweep that cannot run: a bad point, too few runs, a cost over the limit."""


class SpecError(SweepError):
    """A `--vary` spec that does not parse; the message names the spec and what is wrong in it."""


def parse_vary(spec: str, factors: Mapping[str, Factor]) -> Vary:
    """`NAME=VALUES` -> Vary. `factors` maps every accepted name (aliases
    too) to its Factor. Raises SpecError, a ValueError naming the spec and
    what is wrong in it."""
    where = f"--vary {spec!r}"
    name, eq, body = spec.partition("=")
    name = name.strip()
    if not eq or not name:
        raise SpecError(f"{where}: expected NAME=VALUES, e.g. users=1,10,100 or users=1..1000:log:7")
    factor = factors.get(name) or factors.get(name.replace("_", "-"))
    if factor is None:
        known = sorted({f.name for f in factors.values()})
        raise SpecError(f"{where}: unknown factor {name!r} (one of: {', '.join(known)})")
    body = body.strip()
    if not body:
        raise SpecError(f"{where}: no values after '='")
    if ".." in body and factor.kind not in ("text", "bool"):
        values, log = _parse_range(body, factor, where)
    else:
        if ".." in body:
            raise SpecError(f"{where}: {factor.name} takes a list, not a range (e.g. {factor.name}=A,B)")
        values, log = _parse_list(body, factor, where), False
    if len(values) > MAX_POINTS:
        raise SpecError(f"{where}: {len(values)} points; at most {MAX_POINTS}")
    numeric = (factor.kind != "bool" and all(isinstance(v, (int, float)) for v in values)) or (
        factor.kind == "distribution" and all(_is_number(v) for v in values)
    )
    return Vary(factor, tuple(values), spec, numeric, log)


def _is_number(text: Any) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _convert(text: str, factor: Factor, where: str) -> Any:
    if factor.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise SpecError(f"{where}: {text!r} is not a whole number ({factor.name} takes one)") from None
    if factor.kind == "float":
        return _finite_number(text, where)
    if factor.kind == "duration":
        return _duration(text, where)
    if factor.kind == "random_duration":
        try:
            return parse_duration_or_distribution(text)
        except DistributionError as exc:
            raise SpecError(f"{where}: {exc}") from None
    if factor.kind == "bool":
        if text.lower() not in BOOLS:
            raise SpecError(f"{where}: {text!r} is not on or off ({factor.name} is a switch)")
        return BOOLS[text.lower()]
    if factor.kind == "distribution":
        try:
            parse_distribution(text, factor.name)
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
        return text
    if factor.choices is not None and text not in factor.choices:
        raise SpecError(f"{where}: {text!r} is not one of {', '.join(factor.choices)}")
    return text


def _parse_list(body: str, factor: Factor, where: str) -> list:
    values: list = []
    for i, item in enumerate(body.split(","), 1):
        item = item.strip()
        if not item:
            raise SpecError(f"{where}: value {i} is empty")
        value = _convert(item, factor, where)
        if value in values:
            raise SpecError(f"{where}: {item!r} is listed twice")
        values.append(value)
    return values


def _range_number(text: str, what: str, where: str, factor: Factor) -> float:
    if factor.kind in ("duration", "random_duration", "distribution"):  # seconds, or with units (10m)
        return _duration(text, where, f"range {what} ")
    return _finite_number(text, where, f"range {what} ")


def _duration(text: str, where: str, what: str = "") -> float:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise SpecError(f"{where}: {what}{exc}") from None


def _finite_number(text: str, where: str, what: str = "") -> float:
    """`text` as a finite float; SpecError naming `where` (and `what`, e.g. "range start ") if not."""
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{where}: {what}{text!r} is not a number") from None
    if not math.isfinite(value):
        raise SpecError(f"{where}: {what}{text!r} is not a finite number")
    return value


RANGE_FORMS = "START..STOP:step:S, START..STOP:lin:N or START..STOP:log:N"


def _parse_range(body: str, factor: Factor, where: str) -> tuple[list, bool]:
    """The range's values, and whether they are log-spaced."""
    bounds, _, form = body.partition(":")
    lo_text, _, hi_text = bounds.partition("..")
    if ".." in hi_text:
        raise SpecError(f"{where}: one '..' per range ({RANGE_FORMS})")
    lo = _range_number(lo_text.strip(), "START", where, factor)
    hi = _range_number(hi_text.strip(), "STOP", where, factor)
    if not lo < hi:
        raise SpecError(f"{where}: range START must be below STOP, got {lo:g}..{hi:g}")
    mode, arg = _range_form(form, factor, where)
    raw = _stepped(lo, hi, arg, where, factor) if mode == "step" else _spaced(lo, hi, mode, arg, where)
    return _range_values(raw, factor, where), mode == "log"


def _range_form(form: str, factor: Factor, where: str) -> tuple[str, str]:
    """(step | lin | log, its argument); an integer factor's bare range steps by 1."""
    if not form:
        if factor.kind != "int":
            raise SpecError(f"{where}: say how to step through the range: {RANGE_FORMS}")
        return "step", "1"
    mode, colon, arg = form.partition(":")
    if not colon or mode not in ("step", "lin", "log"):
        raise SpecError(f"{where}: {form!r} is not a range form: {RANGE_FORMS}")
    return mode, arg


def _stepped(lo: float, hi: float, arg: str, where: str, factor: Factor) -> list[float]:
    step = _range_number(arg, "step", where, factor)
    if step <= 0:
        raise SpecError(f"{where}: range step must be > 0, got {arg}")
    count = math.floor((hi - lo) / step + 1e-9) + 1
    if count > MAX_POINTS:
        raise SpecError(f"{where}: {count} points; at most {MAX_POINTS} (a larger step, or :log:N)")
    return [lo + i * step for i in range(count)]


def _spaced(lo: float, hi: float, mode: str, arg: str, where: str) -> list[float]:
    """N values from lo to hi, evenly spaced (lin) or evenly on a log scale (log)."""
    try:
        count = int(arg)
    except ValueError:
        raise SpecError(f"{where}: range point count {arg!r} is not a whole number") from None
    if not 2 <= count <= MAX_POINTS:
        raise SpecError(f"{where}: range point count must be 2..{MAX_POINTS}, got {count}")
    if mode == "lin":
        return [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    if lo <= 0:
        raise SpecError(f"{where}: a log range needs START > 0, got {lo:g}")
    a, b = math.log10(lo), math.log10(hi)
    raw = [10 ** (a + (b - a) * i / (count - 1)) for i in range(count)]
    raw[0], raw[-1] = lo, hi  # exactly the ends, not 10**log10(x)
    return raw


def _range_values(raw: list[float], factor: Factor, where: str) -> list:
    """The factor's values for the range's numbers: integers rounded, repeats dropped."""
    values: list = []
    for r in raw:
        v: Any
        if factor.kind == "int":
            v = round(r)
        else:
            v = round(r, 9)  # 0.30000000000000004 -> 0.3 in files and labels
        if factor.kind == "distribution":
            v = _convert(f"{v:g}", factor, where)
        if v not in values:
            values.append(v)
    return values
