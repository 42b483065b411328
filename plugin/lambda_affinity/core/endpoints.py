"""Per-endpoint tallies: replies of a wrapped function by Locust stats name. Pure Python.

A user's rows say how often a user keeps its environment; these say which
request (by its name in Locust's stats) loses it, or its cache, most: a
login that always lands on a fresh environment, an upload that is slow
enough to push the user's next call elsewhere.

Every count is a sum over users, so a master adds its workers' tables.
Names are bounded: past MAX_ENDPOINTS distinct names (a locustfile that names
requests by their URL with ids in it) the rest are tallied under OTHER.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .schema import EndpointRow

MAX_ENDPOINTS = 1000
OTHER = "(other names)"
# An endpoint's counts in EndpointRow's order, without the name and the derived rates:
# the wire form a worker sends (a list, packed as a msgpack array).
COUNT_FIELDS: tuple[str, ...] = (
    "requests",
    "invalid",
    "cold_starts",
    "new_environment_calls",
    "warm_hits",
    "cache_known",
    "followed",
    "stays",
)
_REQUESTS, _INVALID, _COLD, _FRESH, _WARM, _KNOWN, _FOLLOWED, _STAYS = range(len(COUNT_FIELDS))


class EndpointTracker:
    """Counts per stats name; `record` is on the request path."""

    def __init__(self, max_endpoints: int = MAX_ENDPOINTS) -> None:
        self.max_endpoints = max_endpoints
        self.counts: dict[str, list[int]] = {}
        self.version = 0  # bumped on every change: a worker sends its table only when it moved
        self._taken = 0

    def _slot(self, name: str) -> list[int]:
        c = self.counts.get(name)
        if c is None:
            if len(self.counts) >= self.max_endpoints:
                name = OTHER
                c = self.counts.get(name)
            if c is None:
                c = self.counts[name] = [0] * len(COUNT_FIELDS)
        return c

    def record(
        self, name: str, cold: bool, cache_hit: bool | None, stayed: bool | None, new_environment: bool = False
    ) -> None:
        """One reply with valid facts; `stayed` None for a user's first reply."""
        c = self._slot(name)
        c[_REQUESTS] += 1
        if cold:
            c[_COLD] += 1
        elif new_environment:
            c[_FRESH] += 1
        if cache_hit is not None:
            c[_KNOWN] += 1
            if cache_hit:
                c[_WARM] += 1
        if stayed is not None:
            c[_FOLLOWED] += 1
            if stayed:
                c[_STAYS] += 1
        self.version += 1

    def record_invalid(self, name: str) -> None:
        self._slot(name)[_INVALID] += 1
        self.version += 1

    def table(self) -> list[list]:
        """[name, *counts] per endpoint: what a worker sends."""
        return [[name, *c] for name, c in self.counts.items()]

    def take_changed(self) -> list[list] | None:
        """The whole table when it changed since the last call (for worker -> master), else None."""
        if self.version == self._taken:
            return None
        self._taken = self.version
        return self.table()

    def rows(self) -> list[EndpointRow]:
        return rows_of(self.table())

    def reset(self) -> None:
        self.counts = {}
        self.version += 1


def add_tables(tables: Iterable[Sequence[Sequence]]) -> list[list]:
    """Several processes' tables summed per name, in first-seen order."""
    out: dict[str, list[int]] = {}
    for table in tables:
        for name, *counts in table:
            have = out.get(name)
            if have is None:
                out[name] = list(counts)
            else:
                for i, v in enumerate(counts):
                    have[i] += v
    return [[name, *c] for name, c in out.items()]


def table_size(table: Sequence[Sequence]) -> int:
    """Replies a table holds (valid and invalid): a later snapshot never holds fewer."""
    return sum(e[1 + _REQUESTS] + e[1 + _INVALID] for e in table)


def rows_of(table: Iterable[Sequence]) -> list[EndpointRow]:
    """Rows with their rates, most replies first."""
    rows: list[EndpointRow] = []
    for name, requests, invalid, cold, fresh, warm, known, followed, stays in table:
        rows.append(
            {
                "name": str(name),
                "requests": requests,
                "invalid": invalid,
                "cold_starts": cold,
                "new_environment_calls": fresh,
                "warm_hits": warm,
                "cache_known": known,
                "followed": followed,
                "stays": stays,
                "warm_rate": warm / known if known else None,
                "stay_rate": stays / followed if followed else None,
            }
        )
    rows.sort(key=lambda r: (-r["requests"], r["name"]))
    return rows
