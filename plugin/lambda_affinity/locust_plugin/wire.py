"""What travels from a worker to the master (see ..distributed): rows as
msgpack arrays (`WireRow`), the payload around them, and the checks the
master applies where it unpacks them (a malformed payload or row is rejected
alone). Pure Python, no Locust import."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, TypedDict, cast

import msgpack

from ..core.schema import UserRow
from ..errors import LambdaAffinityError


class WireRow(NamedTuple):
    """A row on the wire: schema.UserRow without max_share (max_count /
    requests, derived again by unpack_row), in UserRow's order."""

    user: str
    requests: int
    max_count: int
    warm_hits: int
    cache_known: int
    environments: int
    cold_starts: int
    new_environment_calls: int
    switches: int
    invalid: int


WIRE_FIELDS: tuple[str, ...] = WireRow._fields


MAX_LABEL = 256  # a user label longer than this is not one of ours


class Totals(TypedDict):
    """What a worker recorded in a run, sent with its final snapshot."""

    users: int
    requests: int
    invalid: int


class Payload(TypedDict, total=False):
    """Ours in a worker's message: `rows` and `envs` are msgpack blobs (packed
    WireRows, environment ids); `final` only in the final snapshot."""

    run: str | None
    rows: bytes
    envs: bytes
    restarted: list[str]  # users Locust stopped mid-run (periodic: new ones; final: all)
    endpoints: bytes  # the worker's whole per-endpoint table (core.endpoints) when it changed
    final: Totals


def pack_rows(rows: Iterable[UserRow]) -> list[WireRow]:
    return [
        WireRow(
            r["user"],
            r["requests"],
            r["max_count"],
            r["warm_hits"],
            r["cache_known"],
            r["environments"],
            r["cold_starts"],
            r["new_environment_calls"],
            r["switches"],
            r["invalid"],
        )
        for r in rows
    ]


def unpack_row(values: Sequence[Any]) -> UserRow:
    """A row as unpacked from the wire (a list in WireRow's order) back to a UserRow."""
    w = WireRow._make(values)
    return {
        "user": w.user,
        "requests": w.requests,
        "max_count": w.max_count,
        "max_share": w.max_count / w.requests if w.requests else None,
        "warm_hits": w.warm_hits,
        "cache_known": w.cache_known,
        "environments": w.environments,
        "cold_starts": w.cold_starts,
        "new_environment_calls": w.new_environment_calls,
        "switches": w.switches,
        "invalid": w.invalid,
    }


class MalformedError(LambdaAffinityError, ValueError):
    """A payload or row from a worker that is not what a worker of this plugin sends."""


def is_row(v: Any) -> bool:
    """What check_row checks, as one expression: the master tests every row
    it unpacks, so the common case must cost little (about 0.5 us a row)."""
    if type(v) is not list or len(v) != 10:
        return False
    u, rq, mc, wh, ck, ne, cs, nc, sw, iv = v
    return (
        type(u) is str
        and type(rq) is int
        and type(mc) is int
        and type(wh) is int
        and type(ck) is int
        and type(ne) is int
        and type(cs) is int
        and type(nc) is int
        and type(sw) is int
        and type(iv) is int
        and 0 <= mc <= rq
        and 0 <= wh <= ck <= rq
        and 0 <= ne <= rq
        and 0 <= cs <= cs + nc <= rq  # both >= 0, and no more than the replies
        and sw >= 0
        and iv >= 0
        and 0 < len(u) <= MAX_LABEL
    )


def check_row(values: Any) -> None:
    """Raise MalformedError unless `values` is a row as unpacked from the
    wire: a list in WireRow's order, a label, then counts that fit together."""
    if type(values) is list and len(values) == len(WIRE_FIELDS) - 1:
        # a worker from before new_environment_calls: its cold_starts counted every first call, so refuse, and say why
        raise MalformedError(
            f"a row has {len(values)} fields, a worker of an older lambda-affinity's (no new_environment_calls): "
            "run the same version on master and workers"
        )
    if type(values) is not list or len(values) != len(WIRE_FIELDS):
        raise MalformedError(f"a row is not a list of {len(WIRE_FIELDS)} fields: {str(values)[:80]}")
    user, requests, max_count, warm_hits, cache_known, envs, cold, fresh, switches, invalid = values
    if type(user) is not str or not 0 < len(user) <= MAX_LABEL:
        raise MalformedError(f"a row's user is not a label: {str(user)[:80]}")
    counts = (requests, max_count, warm_hits, cache_known, envs, cold, fresh, switches, invalid)
    if not all(type(c) is int and c >= 0 for c in counts):
        raise MalformedError(f"row {user[:80]}: counts are not whole numbers >= 0: {str(counts)[:80]}")
    if (
        max_count > requests
        or warm_hits > cache_known
        or cache_known > requests
        or envs > requests
        or cold + fresh > requests
    ):
        raise MalformedError(f"row {user[:80]}: counts that cannot be together: {counts}")


# msgpack's first byte of an array: fixarray, array 16, array 32
_ARRAY_HEADS = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])


def check_blob_head(data: Any, what: str) -> None:
    """What can be told of a blob without unpacking it (a final snapshot is
    unpacked when its rows are read; unpack_checked says the rest)."""
    if type(data) is not bytes or not data or data[0] not in _ARRAY_HEADS:
        raise MalformedError(f"its {what} are not a msgpack list")


def unblob_checked(data: Any, what: str) -> list:
    """A payload's blob unpacked, or MalformedError saying what it was."""
    if type(data) is not bytes:
        raise MalformedError(f"its {what} are not a msgpack blob")
    try:
        items = msgpack.unpackb(data, use_list=True)
    except Exception as exc:  # msgpack raises several kinds (ExtraData, FormatError, ValueError...)
        raise MalformedError(f"its {what} cannot be unpacked: {type(exc).__name__}") from None
    if type(items) is not list:
        raise MalformedError(f"its {what} are not a list")
    return items


def check_labels(items: Any, what: str) -> list[str]:
    if type(items) is not list or not all(type(x) is str and len(x) <= MAX_LABEL for x in items):
        raise MalformedError(f"its {what} are not a list of labels")
    return items


def check_totals(final: Any) -> Totals:
    if type(final) is not dict or set(final) != {"users", "requests", "invalid"}:
        raise MalformedError("its totals are not users, requests and invalid")
    if not all(type(v) is int and v >= 0 for v in final.values()):
        raise MalformedError("its totals are not whole numbers >= 0")
    return cast(Totals, dict(final))


def blob(items: Sequence[Any]) -> bytes:
    """Packed rows or environment ids as one msgpack blob (see the module doc)."""
    return msgpack.packb(items)


def unblob(data: bytes) -> list:
    return msgpack.unpackb(data, use_list=True)
