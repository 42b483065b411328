"""Several functions in one simulated account: users hashed to K shards (`--shards K`), or the
functions a replayed trace names (`--function-col`), each with its own pool under one account
concurrency limit. Here: which function a call goes to, and what the outputs say per function.

Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Iterable, Mapping

from ..core.schema import FunctionRow
from ..core.summary import summarize
from ..core.tracker import Tracker
from ..errors import LambdaAffinityError
from ..platform import FunctionSpec, Platform
from ..platform.distributions import Distribution

# Past this many functions a replay is refused: each has its own pool, scale-rate bucket and tally,
# and a per-function table of tens of thousands of rows says nothing a person can read.
MAX_FUNCTIONS = 10_000
MAX_SHARDS = 1_000


class FunctionsError(LambdaAffinityError, ValueError):
    """Too many functions (or shards) for one run."""


def check_shards(shards: object) -> None:
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise FunctionsError(f"shards: must be a whole number from 1 to {MAX_SHARDS}, got {shards!r}")


def shard_specs(spec: FunctionSpec, shards: int) -> list[FunctionSpec]:
    """The K functions users are hashed to: `spec` itself when K is 1 (the one-function run, unchanged),
    else copies named `{name}-0` ... `{name}-{K-1}`, each with `spec`'s knobs (its own reserved
    concurrency, as each real function would have)."""
    if shards == 1:
        return [spec]
    return [dataclasses.replace(spec, name=f"{spec.name}-{i}", extra=dict(spec.extra)) for i in range(shards)]


def shard_of(user: str, shards: int) -> int:
    """The shard a user's calls go to: a stable hash (CRC-32, the same in every process and run, unlike
    Python's salted hash()) of its name, so a user always calls the same function, as an API gateway
    routing on a user key would."""
    return zlib.crc32(user.encode("utf-8")) % shards


class FunctionTallies:
    """Each function's own tracker and throttled calls, beside the run's: every call is recorded on both,
    so the outputs can say per function (shard, or a replay's --function-col value) what the run did."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.trackers: dict[str, Tracker] = {name: Tracker() for name in names}
        self.throttled: dict[str, int] = dict.fromkeys(self.trackers, 0)

    def record(self, function: str, user: str, env_id: str, cold: bool, hit: bool, new_environment: bool) -> None:
        self.trackers[function].record(user, env_id, cold, hit, new_environment)

    def refused(self, function: str, user: str) -> None:
        self.throttled[function] += 1
        self.trackers[function].record_invalid(user)

    def report(self, res) -> None:
        """Put the tallies in `res` (a sim.simulate.RunResult) if the run had several functions."""
        if len(self.trackers) > 1:
            res.functions, res.function_throttled = self.trackers, self.throttled


class Routes(FunctionTallies):
    """The function each replayed row calls (its own column's, else its user's shard, else the
    scenario's one function), each added to `platform` when first met, and each one's tallies."""

    def __init__(self, platform: Platform, scenario, service: Distribution, rng: random.Random) -> None:
        # scenario: a sim.simulate.Scenario (which imports this module)
        super().__init__()
        self.platform, self.spec, self.service, self.rng = platform, scenario.function, service, rng
        self.shards = shard_specs(scenario.function, scenario.shards)
        self._of_user: dict[str, str] = {}
        # When the run's provisioned concurrency was initialised (the trace's first time): a function
        # met later gets its own as of then, as the run's first function did.
        self.provisioned_at = 0.0

    def function(self, item: tuple) -> str:
        """The function of a row (time, user, duration, function)."""
        name = item[3]
        if name is None:
            name = self._of_user.get(item[1])
            if name is None:
                name = self._of_user[item[1]] = self.shards[shard_of(item[1], len(self.shards))].name
        if name not in self.trackers:
            self._add(name)
        return name

    def _add(self, name: str) -> None:
        if len(self.trackers) >= MAX_FUNCTIONS:
            raise too_many_functions()
        spec = next((s for s in self.shards if s.name == name), None)
        spec = spec or dataclasses.replace(self.spec, name=name, extra=dict(self.spec.extra))
        self.platform.add_function(spec)
        if spec.provisioned_concurrency:
            self.platform.provision(self.provisioned_at, [spec])
        self.trackers[name] = Tracker()
        self.throttled[name] = 0

    def busy(self, item: tuple) -> float:
        """A row's time on the environment: its duration column's, else a draw of the service time."""
        return self.service(self.rng) if item[2] is None else item[2]


def too_many_functions() -> FunctionsError:
    return FunctionsError(
        f"more than {MAX_FUNCTIONS:,} distinct functions in one replay (the --function-col values): "
        "replay fewer at once (filter the trace, or name a coarser column)"
    )


def function_rows(trackers: Mapping[str, Tracker], throttled: Mapping[str, int]) -> list[FunctionRow]:
    """One row per function, in the order given: what the run did on it."""
    rows = []
    for name, tracker in trackers.items():
        doc = summarize(tracker.rows(), tracker.environments, per_user_limit=0)
        hit, warm = doc["hit_rate"], doc["warm_cache_rate"]
        rows.append(
            FunctionRow(
                function=name,
                users=doc["users"],
                requests=doc["requests"],
                throttled=throttled.get(name, 0),
                environments=doc["environments"],
                cold_starts=doc["cold_starts"],
                new_environment_calls=doc["new_environment_calls"],
                max_share=hit["mean"] if hit else None,
                warm_cache_rate=warm["mean"] if warm else None,
            )
        )
    return rows


def pool_functions(runs: Iterable[tuple[dict[str, Tracker], dict[str, int]]]) -> tuple[dict, dict]:
    """Runs' per-function trackers and throttle counts folded together, function by function (each
    run's users are its own: pooled runs prefix them)."""
    trackers: dict[str, Tracker] = {}
    throttled: dict[str, int] = {}
    for per_function, per_throttled in runs:
        for name, tracker in per_function.items():
            trackers.setdefault(name, Tracker()).absorb(tracker)
        for name, n in per_throttled.items():
            throttled[name] = throttled.get(name, 0) + n
    return trackers, throttled


def _short(name: str, most: int = 40) -> str:
    """A long function name (Azure's app/func is two 64-digit hashes) cut in the middle for the console."""
    return name if len(name) <= most else f"{name[: most // 2 - 2]}...{name[-(most // 2 - 1) :]}"


def functions_table(rows: Iterable[FunctionRow], limit: int = 50) -> str:
    """The console's per-function table (the first `limit` functions by requests; long names cut)."""
    rows = sorted(rows, key=lambda r: -r["requests"])
    heads = (
        "function",
        "users",
        "requests",
        "throttled",
        "environments",
        "cold starts",
        "new-env calls",
        "max-share",
        "warm-cache",
    )
    cells = [
        (
            _short(r["function"]),
            str(r["users"]),
            str(r["requests"]),
            str(r["throttled"]),
            str(r["environments"]),
            str(r["cold_starts"]),
            str(r["new_environment_calls"]),
            "-" if r["max_share"] is None else f"{r['max_share']:.3f}",
            "-" if r["warm_cache_rate"] is None else f"{r['warm_cache_rate']:.3f}",
        )
        for r in rows[:limit]
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(heads)]
    lines = ["  ".join(f"{c:>{w}}" for c, w in zip(line, widths, strict=True)) for line in [heads, *cells]]
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more functions (--json has them all)")
    return "\n".join(lines)
