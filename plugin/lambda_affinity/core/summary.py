"""Distributions across users, merging per-user rows, the cost of a miss, CI checks.

Everything here reads per-user rows (schema.UserRow), so a Locust run, a
distributed master and the simulator all summarise the same way, into one
document (schema.SummaryDoc, described in docs/schema.md). Rendering the
document for people and files is report.render's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from ..errors import LambdaAffinityError

# MissCost is imported from here too (it was defined here first)
from .schema import Distribution, MissCost, PerUser, SummaryDoc, UserRow
from .tracker import ROW_FIELDS

STAT_KEYS: tuple[str, ...] = tuple(Distribution.__annotations__)
PER_USER_KEYS: tuple[str, ...] = tuple(PerUser.__annotations__)
PER_USER_LIMIT = 10_000
BINS = 10


def mean_sd(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value), the same floats on every Python:
    math.fsum is exactly rounded and sqrt correctly rounded, where statistics.stdev's last digit
    changed between 3.10 and 3.11 (committed figures are compared byte for byte)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def histogram(rates: Iterable[float]) -> list[int]:
    """Counts in 0.1-wide bins; 1.0 falls in the last bin."""
    bins = [0] * BINS
    for r in rates:
        # the epsilon keeps 0.3 (=2.9999... as a float ratio) in bin 3
        bins[min(int(r * BINS + 1e-9), BINS - 1)] += 1
    return bins


def distribution(rates: list[float], hits: int, total: int) -> Distribution | None:
    if not rates:
        return None
    s = sorted(rates)
    return {
        # fsum: exactly rounded, so figures are the same bytes on every Python (3.12 changed sum())
        "mean": math.fsum(s) / len(s),
        "min": s[0],
        "p10": percentile(s, 0.1),
        "p25": percentile(s, 0.25),
        "p50": percentile(s, 0.5),
        "p75": percentile(s, 0.75),
        "p90": percentile(s, 0.9),
        "max": s[-1],
        "weighted": hits / total if total else None,
    }


MILLION = 1_000_000


class MissCostError(LambdaAffinityError, ValueError):
    """A cost of a miss that is negative or not a finite number; the message names the option."""


@dataclass(frozen=True)
class MissCostPrice:
    """The cost of one cache miss, in time and/or money (None: not priced).

    Built once where the options are read, so a bad value is refused before
    any run, naming the option (--miss-cost-ms, --miss-cost-usd)."""

    per_miss_ms: float | None = None
    per_miss_usd: float | None = None

    def __post_init__(self) -> None:
        for value, option in ((self.per_miss_ms, "miss-cost-ms"), (self.per_miss_usd, "miss-cost-usd")):
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise MissCostError(f"{option}: must be a finite number >= 0, got {value!r}")

    @property
    def given(self) -> bool:
        return self.per_miss_ms is not None or self.per_miss_usd is not None


def miss_cost(doc: SummaryDoc, per_miss_ms: float | None = None, per_miss_usd: float | None = None) -> MissCost | None:
    """Time and money the warm cache saves per million replies, from the
    document's request-weighted warm-cache rate and the cost of one miss.

    None when neither cost is given, or when no reply carried a cache status
    (there is no rate to price). Raises MissCostError (a ValueError) on a negative or
    non-finite cost, naming the option (--miss-cost-ms, --miss-cost-usd).
    """
    MissCostPrice(per_miss_ms, per_miss_usd)
    warm = doc.get("warm_cache_rate")
    rate = warm["weighted"] if warm else None
    if (per_miss_ms is None and per_miss_usd is None) or rate is None:
        return None
    hits = rate * MILLION
    misses = MILLION - hits

    def times(n: float, cost: float | None) -> float | None:
        return None if cost is None else n * cost

    saved_ms = times(hits, per_miss_ms)
    return MissCost(
        per_miss_ms=per_miss_ms,
        per_miss_usd=per_miss_usd,
        warm_cache_rate=rate,
        hits_per_million=hits,
        misses_per_million=misses,
        saved_ms_per_million=saved_ms,
        saved_usd_per_million=times(hits, per_miss_usd),
        spent_ms_per_million=times(misses, per_miss_ms),
        spent_usd_per_million=times(misses, per_miss_usd),
        saved_ms_per_request=None if saved_ms is None else saved_ms / MILLION,
    )


def _totals(rows: list[UserRow]) -> tuple[int, int, int, int]:
    """Valid replies, invalid ones, cold starts and new-environment calls, summed over `rows`."""
    return (
        sum(r["requests"] for r in rows),
        sum(r["invalid"] for r in rows),
        sum(r["cold_starts"] for r in rows),
        sum(r["new_environment_calls"] for r in rows),
    )


def summarize(
    rows: Iterable[UserRow],
    environments: int | None = None,
    per_user_limit: int = PER_USER_LIMIT,
    per_miss_ms: float | None = None,
    per_miss_usd: float | None = None,
    restarted: Iterable[UserRow] = (),
) -> SummaryDoc:
    """The `--affinity-json` / `simulate --json` document (docs/schema.md),
    with `miss_cost` (see miss_cost) when a cost of a miss is given.
    `restarted`: rows of users Locust stopped mid-run and started again
    elsewhere (a distributed run's rebalancing); their replies count in the
    totals, not in `users` or any per-user rate (`restarted_users` says how many)."""
    rows = list(rows)
    restarted = list(restarted)
    everyone = rows + restarted  # for the totals
    valid = [r for r in rows if r["requests"] > 0]
    rates = [r["max_count"] / r["requests"] for r in valid]
    cached = [r for r in valid if r["cache_known"] > 0]
    requests, invalid, cold_starts, new_environment_calls = _totals(everyone)
    doc: SummaryDoc = {
        "users": len(rows),
        "requests": requests,
        "invalid": invalid,
        "environments": environments if environments is not None else max((r["environments"] for r in rows), default=0),
        "cold_starts": cold_starts,
        "new_environment_calls": new_environment_calls,
        "hit_rate": distribution(rates, sum(r["max_count"] for r in valid), sum(r["requests"] for r in valid)),
        "warm_cache_rate": distribution(
            [r["warm_hits"] / r["cache_known"] for r in cached],
            sum(r["warm_hits"] for r in cached),
            sum(r["cache_known"] for r in cached),
        ),
        "histogram": histogram(rates),
    }
    if len(rows) <= per_user_limit:
        doc["per_user"] = [cast(PerUser, dict(r)) for r in rows]
    if restarted:
        doc["restarted_users"] = len(restarted)
    cost = miss_cost(doc, per_miss_ms, per_miss_usd)
    if cost is not None:
        doc["miss_cost"] = cost
    return doc


def merge_rows(into: dict[str, UserRow], rows: Iterable[Mapping[str, Any]]) -> None:
    """Fold full per-user rows into `into` (user -> row). A newer row for the
    same user replaces the older one: rows are snapshots, not deltas, so a
    repeated message never double counts."""
    for r in rows:
        missing = [k for k in ROW_FIELDS if k not in r]
        if missing:
            raise ValueError(f"affinity row lacks {', '.join(missing)}: {dict(r)!r}")
        into[r["user"]] = cast(UserRow, dict(r))  # every field is there (checked above)


# -- CI checks ---------------------------------------------------------------

# (option, what is measured, comparison): the checks a run can fail. The
# measured value comes from the summary doc so the check reads the same
# numbers the report shows.
CHECKS = (
    ("affinity-min-hit-rate", "median per-user max-share hit rate", "min"),
    ("affinity-min-warm-rate", "median per-user warm-cache hit rate", "min"),
    ("affinity-max-cold-ratio", "cold starts per valid reply", "max"),
)


def check_value(doc: SummaryDoc, option: str) -> float | None:
    """The measured value a check compares, or None when the run gives none."""
    if option == "affinity-min-hit-rate":
        hit = doc.get("hit_rate")
        return hit["p50"] if hit else None
    if option == "affinity-min-warm-rate":
        warm = doc.get("warm_cache_rate")
        return warm["p50"] if warm else None
    if option == "affinity-max-cold-ratio":
        return doc["cold_starts"] / doc["requests"] if doc["requests"] else None
    raise ValueError(f"unknown affinity check {option!r}")


def evaluate_checks(doc: SummaryDoc, thresholds: Mapping[str, float | None]) -> tuple[list[str], list[str]]:
    """Compare the run with the thresholds that are set (option -> value).

    Returns (failures, passes), one message each naming the check, the
    threshold and the measured value.
    """
    failures: list[str] = []
    passes: list[str] = []
    for option, what, kind in CHECKS:
        threshold = thresholds.get(option)
        if threshold is None:
            continue
        measured = check_value(doc, option)
        if measured is None:
            reason = "no valid reply" if not doc["requests"] else "no reply carried a cache status"
            failures.append(f"CHECK FAILED: --{option} {threshold:g}: {what} not measured ({reason})")
            continue
        ok = measured >= threshold if kind == "min" else measured <= threshold
        verdict = "passed" if ok else "FAILED"
        bound = "at least" if kind == "min" else "at most"
        message = (
            f"CHECK {verdict}: --{option} {threshold:g}: {what} was {measured:.3f}, {bound} {threshold:g} required"
        )
        (passes if ok else failures).append(message)
    return failures, passes
