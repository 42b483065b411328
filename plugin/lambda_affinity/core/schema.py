"""The shapes every part of a run agrees on: per-user rows and the summary document.

Typed dicts, so they stay plain JSON-able dicts at run time (the JSON, CSV and
msgpack outputs are those of the dicts) while mypy checks every read by key.
docs/schema.md describes each field for people; tests/unit/test_schema.py
holds it to exactly the fields declared here.

Optional keys sit in a `total=False` subclass: `typing.NotRequired` is
Python 3.11 and the floor is 3.10.
"""

from __future__ import annotations

from typing import Any, TypedDict


def user_label(n: int) -> str:
    """The label of a run's n-th user (from 1), the simulator's and the plugin's alike: `u1`, `u2`, ...
    (a distributed worker adds `w<index>-` in front, a pooled simulation `r<run>-`)."""
    return f"u{n}"


class UserRow(TypedDict):
    """One user's tally (core.tracker): what summaries read, what a worker
    sends its master, one line of the per-user CSV (PREFIX_affinity.csv)."""

    user: str
    requests: int  # valid replies
    max_count: int  # replies from the environment that served this user most
    max_share: float | None  # max_count / requests; None with no valid reply
    warm_hits: int  # replies whose session was in the environment's cache
    cache_known: int  # replies that said whether it was
    environments: int  # distinct environments that served this user
    cold_starts: int  # replies whose call waited for an environment's init
    new_environment_calls: int  # first calls on environments initialised ahead (no wait, empty cache)
    switches: int  # replies from another environment than the one before
    invalid: int  # replies that were not valid probe replies


class PerUser(UserRow):
    """One entry of the document's `per_user`: the user's whole UserRow, the same fields as a line of
    the per-user CSV (a reader of either gets warm_hits / cache_known, max_count and invalid alike)."""


class EndpointRow(TypedDict):
    """One Locust stats name's tally of replies that carried a wrapped
    function's affinity headers (core.endpoints): which endpoint loses the
    environment, or its cache, most. An entry of the document's `per_endpoint`,
    a line of PREFIX_affinity_endpoints.csv."""

    name: str  # the request's name in Locust's stats
    requests: int  # replies with valid affinity headers
    invalid: int  # replies whose affinity headers were malformed
    cold_starts: int  # replies whose call waited for the environment's init
    new_environment_calls: int  # first calls on environments initialised ahead (x-affinity-new-env: 1)
    warm_hits: int  # replies whose session the environment had seen
    cache_known: int  # replies that said whether it had (a session key was sent)
    followed: int  # replies of a user that had an earlier reply
    stays: int  # of those, served by the environment of the user's previous reply
    warm_rate: float | None  # warm_hits / cache_known
    stay_rate: float | None  # stays / followed


class Distribution(TypedDict):
    """A per-user rate across users (core.summary.distribution); `weighted`
    pools every user's replies (so it weighs users by their replies)."""

    mean: float
    min: float
    p10: float
    p25: float
    p50: float
    p75: float
    p90: float
    max: float
    weighted: float | None


class MissCost(TypedDict):
    """What the warm cache saves, per million valid replies: the document's
    optional `miss_cost` object (docs/sweep.md). A miss is a reply whose
    session was not in the environment's cache, so the handler paid for the
    lookup (a DynamoDB read, say); each hit saved one such miss. Money or
    time given as None stays None in the sums."""

    per_miss_ms: float | None
    per_miss_usd: float | None
    # The request-weighted warm-cache rate: hits / replies that carried a cache status.
    warm_cache_rate: float
    hits_per_million: float
    misses_per_million: float
    # Paid for by the hits (what a cache-less handler would have spent more)
    saved_ms_per_million: float | None
    saved_usd_per_million: float | None
    # Still spent on the misses
    spent_ms_per_million: float | None
    spent_usd_per_million: float | None
    # saved_ms_per_million / 1e6: the mean latency a reply gains from the cache
    saved_ms_per_request: float | None


class LostWorker(TypedDict):
    """A worker of a distributed run that sent no final snapshot."""

    index: int | None  # Locust's worker index
    id: str  # Locust's client id


class Workers(TypedDict):
    """A distributed master's document: how many workers took part."""

    count: int
    lost: list[LostWorker]


class ReplayedTrace(TypedDict):
    """`simulate --trace`'s document: what was read of the trace file (the last run's read)."""

    path: str
    rows: int
    blank_lines: int
    reordered: int
    span_s: float
    truncated: bool


class FunctionRow(TypedDict):
    """One function of a run with several (simulate --shards K, or a replay's --function-col)."""

    function: str
    users: int  # users that called it (a replayed trace's user may call several)
    requests: int
    throttled: int  # calls refused (its reserved concurrency, the account's, the scale rate)
    environments: int
    cold_starts: int
    new_environment_calls: int  # its calls first on an environment initialised ahead (no wait, an empty cache)
    max_share: float | None  # mean over its users of their max-share on it
    warm_cache_rate: float | None  # mean over its users of their warm-cache rate on it


class Reproduce(TypedDict):
    """What re-runs a command exactly: every JSON output carries it as `reproduce` (core.reproduce)."""

    version: str  # lambda-affinity's
    command: str  # simulate, sweep, calibrate or locust
    seed: int | None  # the random seed used (drawn when none was given); None: a Locust run has none
    scenario: dict[str, Any] | None  # sim.simulate.Scenario's fields but the model; None for calibrate and Locust
    model: dict[str, Any] | None  # platform.ModelConfig's fields (a Locust run: the embedded emulator's); else None
    options: dict[str, Any]  # the command's other options (the plugin's: its own and Locust's load options)


class _SummaryDoc(TypedDict):
    users: int
    requests: int
    invalid: int
    environments: int
    cold_starts: int
    new_environment_calls: int
    hit_rate: Distribution | None  # None when no user had a valid reply
    warm_cache_rate: Distribution | None  # None when no reply carried a cache status
    histogram: list[int]  # users per 0.1-wide bin of max-share, 10 bins


class SummaryDoc(_SummaryDoc, total=False):
    """The `--affinity-json` / `simulate --json` document (core.summary.summarize)."""

    per_user: list[PerUser]  # left out above PER_USER_LIMIT users
    miss_cost: MissCost  # when a cost of a miss is given
    workers: Workers  # a distributed master's
    restarted_users: int  # a distributed master's: users Locust stopped mid-run, kept out of `users` and the rates
    trace: ReplayedTrace  # simulate --trace's
    deploys: int  # simulate's, with --deploy-every or --deploy-at: deploys that happened (all runs)
    spillover: int  # simulate --provisioned's: calls that ran on an on-demand environment
    functions: list[FunctionRow]  # simulate's, when the run had several functions (--shards, --function-col)
    reproduce: Reproduce  # in the JSON outputs (simulate --json, --affinity-json)
    per_endpoint: list[EndpointRow]  # when replies carried a wrapped function's headers
