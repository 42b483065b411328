"""What travels from a worker to the master (see ..distributed): rows in
columns (`pack_columns`: the users' labels, then one array of unsigned
integers per count of `WireRow`), the payload around them, and the checks
the master applies where it unpacks them (a malformed payload or row is
rejected alone). Pure Python, no Locust import."""

from __future__ import annotations

import hashlib
import sys
from array import array
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
    """Ours in a worker's message: `cols`, the rows in columns (a msgpack
    blob, see pack_columns); `envh`, the environment ids' digests (see
    pack_digests); `final` only in the final snapshot. (Before, rows and ids
    travelled as `rows` and `envs`, one msgpack array per row and a list of
    ids: a master refuses such a payload and says why.)"""

    run: str | None
    cols: bytes
    envh: bytes
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
    # C-level passes (map, set, max), not a Python loop: a final snapshot carries thousands
    if type(items) is not list or not set(map(type, items)) <= {str} or max(map(len, items), default=0) > MAX_LABEL:
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


# Rows in columns. A row check per row in Python cost the master 1.2 us a row
# (msgpack arrays, is_row); a final snapshot of 5 000 users in columns is
# unpacked by array.frombytes (the counts cannot be anything but whole
# numbers >= 0) and checked in one pass (all_rows), about a third of that.
COUNTS = len(WIRE_FIELDS) - 1  # the columns after the labels
_TYPECODES = {array(t).itemsize: t for t in "QLIHB"}  # bytes per number -> array typecode (1, 2, 4, 8)
_SWAP = sys.byteorder != "little"  # the wire's numbers are little-endian


def _column(values: Sequence[int]) -> bytes:
    """One count column: the narrowest of 1, 2, 4 or 8 bytes per number that holds its largest."""
    top = max(values, default=0)
    width = next(w for w in (1, 2, 4, 8) if top < 1 << (8 * w))
    column = array(_TYPECODES[width], values)
    if _SWAP:
        column.byteswap()
    return column.tobytes()


def pack_columns(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows in WireRow's order as one msgpack blob: `[labels, c1, ..., c9]`,
    each `c` the bytes of one count for every row, unsigned little-endian,
    1, 2, 4 or 8 bytes each (its length over the number of labels)."""
    if not rows:
        return msgpack.packb([[], *([b""] * COUNTS)])
    labels, *counts = zip(*rows, strict=True)
    return msgpack.packb([list(labels), *map(_column, counts)])


class Columns(NamedTuple):
    """A blob of rows unpacked: the labels, the count arrays in WireRow's order."""

    labels: list
    counts: list[array]

    def rows(self) -> Iterable[tuple]:
        """Each row as a tuple in WireRow's order."""
        return zip(self.labels, *self.counts, strict=True)


def unpack_columns(data: Any, what: str = "rows") -> Columns:
    """A blob of pack_columns unpacked, or MalformedError when it is not one
    (the rows themselves are checked by bad_rows)."""
    items = unblob_checked(data, what)
    if len(items) != len(WIRE_FIELDS) or type(items[0]) is not list or not all(type(c) is bytes for c in items[1:]):
        if items and all(type(row) is list for row in items[:2]):
            raise MalformedError(
                f"its {what} are one list per row, as a worker of an older lambda-affinity sends them: "
                "run the same version on master and workers"
            )
        raise MalformedError(f"its {what} are not a list of labels and {COUNTS} count columns")
    labels, *raw = items
    n = len(labels)
    counts = []
    for column in raw:
        width, rest = divmod(len(column), n) if n else (1, len(column))
        if rest or width not in _TYPECODES:
            raise MalformedError(f"its {what} have a count column that is not {n} numbers of 1, 2, 4 or 8 bytes")
        numbers = array(_TYPECODES[width])
        numbers.frombytes(column)
        if _SWAP:
            numbers.byteswap()
        counts.append(numbers)
    return Columns(labels, counts)


def all_rows(columns: Columns) -> bool:
    """Whether every row in `columns` is a row (what is_row and check_row
    say, the counts being whole numbers >= 0 already) and no label repeats:
    one pass with every comparison inline, allocating nothing per row (a
    check through C-level map/all passes cost more, 0.37 us a row, than this
    and the label set, 0.25 us). When not, row_table says which."""
    requests, max_count, warm_hits, cache_known, envs, cold, fresh, _switches, _invalid = columns.counts
    for user, rq, mc, wh, ck, ne, cs, nc in zip(
        columns.labels, requests, max_count, warm_hits, cache_known, envs, cold, fresh, strict=True
    ):
        if not (
            mc <= rq
            and wh <= ck <= rq
            and ne <= rq
            and cs + nc <= rq
            and type(user) is str
            and 0 < len(user) <= MAX_LABEL
        ):
            return False
    return len(set(columns.labels)) == len(columns.labels)


def row_table(columns: Columns, bad: list[tuple]) -> dict[str, tuple]:
    """user -> row of the rows in `columns` that are rows, the others
    appended to `bad`; a label repeated keeps its last row. The common case,
    every row a row, costs all_rows' one pass; otherwise each row is checked
    as is_row checks one."""
    if all_rows(columns):
        return dict(zip(columns.labels, columns.rows(), strict=True))
    table = {}
    for row in columns.rows():
        if is_row(list(row)):
            table[row[0]] = row
        else:
            bad.append(row)
    return table


def column_rows(data: bytes) -> list[list]:
    """The rows of a pack_columns blob, as lists in WireRow's order, unchecked (tests, benches)."""
    return [list(row) for row in unpack_columns(data).rows()]


# Environment ids as 64-bit digests. The master only counts the distinct ids
# of all workers, and every worker's final snapshot carries every id it saw
# (at 8 workers x 5 000 users, 5 000 ids each: 40 % of the master's
# aggregation as strings, to unpack, check and hash). As BLAKE2b digests
# packed 8 bytes each they are one array.frombytes and a set update of ints,
# nothing to check (any 8 bytes are a digest). Two of N distinct ids share a
# digest with a chance of about N * N / 2**65: 3e-8 for a million.
_DIGEST = _TYPECODES[8]


def env_digest(env_id: str) -> int:
    """An environment id's 64-bit digest (BLAKE2b of its UTF-8), as the master counts it."""
    return int.from_bytes(hashlib.blake2b(env_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def pack_digests(env_ids: Iterable[str]) -> bytes:
    """Environment ids as their digests, 8 bytes each, little-endian."""
    digests = array(_DIGEST, map(env_digest, env_ids))
    if _SWAP:
        digests.byteswap()
    return digests.tobytes()


def unpack_digests(data: Any, what: str = "environment ids") -> array:
    """A blob of pack_digests unpacked, or MalformedError."""
    if type(data) is not bytes or len(data) % 8:
        raise MalformedError(f"its {what} are not 8-byte digests")
    digests = array(_DIGEST)
    digests.frombytes(data)
    if _SWAP:
        digests.byteswap()
    return digests
