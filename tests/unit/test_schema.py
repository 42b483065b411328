"""The schema's three descriptions agree: the types (core/schema.py and the
report's), what the code really writes, and docs/schema.md; and the
dashboard's script reads only fields the types (and so the document) have."""

from __future__ import annotations

import csv
import dataclasses
import io
import pathlib
import re
import types
import typing

import msgpack

from lambda_affinity.core import schema, summary
from lambda_affinity.core.tracker import ROW_FIELDS, Tracker
from lambda_affinity.locust_plugin import distributed
from lambda_affinity.report import render, timeline, webui

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_MD = ROOT / "docs" / "schema.md"
SCRIPT = ROOT / "plugin" / "lambda_affinity" / "report" / "static" / "affinity.js"

# Every type docs/schema.md describes, by the name its heading gives in backquotes.
DOCUMENTED = {
    "SummaryDoc": schema.SummaryDoc,
    "Distribution": schema.Distribution,
    "PerUser": schema.PerUser,
    "MissCost": schema.MissCost,
    "Workers": schema.Workers,
    "LostWorker": schema.LostWorker,
    "ReplayedTrace": schema.ReplayedTrace,
    "FunctionRow": schema.FunctionRow,
    "Reproduce": schema.Reproduce,
    "UserRow": schema.UserRow,
    "EndpointRow": schema.EndpointRow,
    "TimelineJSON": webui.TimelineJSON,
    "TimelinePoint": timeline.TimelinePoint,
    "Dashboard": webui.Dashboard,
    "Figure": timeline.Figure,
}


def fields(tp) -> list[str]:
    if dataclasses.is_dataclass(tp):
        return [f.name for f in dataclasses.fields(tp)]
    return list(tp.__annotations__)  # a TypedDict's, its bases' first


def nullable(tp) -> dict[str, bool]:
    hints = typing.get_type_hints(tp)
    return {name: isinstance(h, types.UnionType) and type(None) in h.__args__ for name, h in hints.items()}


def documented_tables() -> dict[str, list[tuple[str, str]]]:
    """Heading's type name -> its table's rows (field, type cell)."""
    tables: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in SCHEMA_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            m = re.search(r"\(`(\w+)`\)\s*$", line)
            current = m.group(1) if m else None
            if current is not None:
                assert current not in tables, f"docs/schema.md describes {current} twice"
                tables[current] = []
            continue
        m = re.match(r"\| `(\w+)` \| ([^|]+) \|", line)
        if m and current is not None:
            tables[current].append((m.group(1), m.group(2)))
    return tables


def test_docs_describe_exactly_the_types():
    tables = documented_tables()
    assert sorted(tables) == sorted(DOCUMENTED), "a heading of docs/schema.md per type, named (`Type`)"
    for name, tp in DOCUMENTED.items():
        listed = [f for f, _ in tables[name]]
        assert listed == fields(tp), f"docs/schema.md, {name}: fields as the type declares them, in its order"


def test_docs_say_null_where_the_type_allows_none():
    for name, (tp, rows) in {n: (DOCUMENTED[n], documented_tables()[n]) for n in DOCUMENTED}.items():
        allows = nullable(tp)
        for field, type_cell in rows:
            assert ("null" in type_cell) == allows[field], f"docs/schema.md, {name}.{field}: {type_cell!r}"


def test_row_fields_and_wire_fields_derive_from_the_types():
    assert tuple(schema.UserRow.__annotations__) == ROW_FIELDS
    assert tuple(f for f in ROW_FIELDS if f != "max_share") == distributed.WIRE_FIELDS
    assert tuple(schema.Distribution.__annotations__) == summary.STAT_KEYS
    assert summary.MissCost is schema.MissCost  # still importable where it was defined first


def _tracker() -> Tracker:
    t = Tracker()
    t.register("idle")  # a user with no valid reply: max_share None
    for i, (env, cold, hit) in enumerate([("A", True, None), ("A", False, True), ("B", True, False)]):
        t.record("u1", env, cold, hit)
        t.record("u2", "C", i == 0, None)
    t.record_invalid("u2")
    return t


def test_the_code_writes_what_the_types_declare():
    t = _tracker()
    rows = t.rows()
    assert all(list(r) == fields(schema.UserRow) for r in rows)
    doc = summary.summarize(rows, t.environments, per_miss_ms=2.0)
    required, optional = schema.SummaryDoc.__required_keys__, schema.SummaryDoc.__optional_keys__
    assert required <= set(doc) <= required | optional
    assert [k for k in doc if k in required] == [k for k in fields(schema.SummaryDoc) if k in required]
    assert list(doc["hit_rate"]) == fields(schema.Distribution)
    assert list(doc["miss_cost"]) == fields(schema.MissCost)
    assert all(list(p) == fields(schema.PerUser) for p in doc["per_user"])
    line = timeline.Timeline(start=0.0)
    line.add(1.0, doc)
    board = webui.dashboard(doc, line)
    assert list(board) == fields(webui.Dashboard)
    assert list(webui.timeline_json(line)) == fields(webui.TimelineJSON)
    assert all(list(f) == fields(timeline.Figure) for f in board["headline"])
    assert all(list(p) == fields(timeline.TimelinePoint) for p in board["points"])
    assert list(webui.page_config()) == fields(webui.PageConfig)


def test_a_wire_row_is_the_list_it_was_on_the_wire():
    rows = _tracker().rows()
    packed = distributed.pack_rows(rows)
    assert all(isinstance(w, distributed.WireRow) for w in packed)
    # a WireRow packs as the positional list it replaced: the same bytes
    assert distributed.blob(packed) == msgpack.packb([[r[f] for f in distributed.WIRE_FIELDS] for r in rows])
    unpacked = [distributed.unpack_row(v) for v in distributed.unblob(distributed.blob(packed))]
    assert unpacked == rows
    assert all(list(row) == list(ROW_FIELDS) for row in unpacked)


# -- what the dashboard's script reads ------------------------------------------

# The script's names for what it reads, and the type each holds. `r` is a per-user row
# (the fetch's response is `resp`), `p` a timeline point, `f` a headline figure,
# `c`/`spec` a chart of the page config, `s` one of its series.
SCRIPT_VARIABLES = {
    "data": webui.Dashboard,
    "f": timeline.Figure,
    "p": timeline.TimelinePoint,
    "r": schema.PerUser,
    "ep": schema.EndpointRow,
    "CONFIG": webui.PageConfig,
    "c": timeline.ChartSpec,
    "spec": timeline.ChartSpec,
    "s": timeline.ChartSeries,
}


def script_reads() -> dict[str, set[str]]:
    """Variable -> the fields the script reads of it (obj.field, not obj.method())."""
    src = SCRIPT.read_text(encoding="utf-8")
    names = "|".join(map(re.escape, SCRIPT_VARIABLES))
    reads: dict[str, set[str]] = {name: set() for name in SCRIPT_VARIABLES}
    for m in re.finditer(rf"(?<![\w.$])({names})\.([A-Za-z_$][\w$]*)(?!\s*\()", src):
        reads[m.group(1)].add(m.group(2))
    for m in re.finditer(r"\bpoints\[[^\]]*\]\.(\w+)", src):  # points[0].t
        reads["p"].add(m.group(1))
    columns = re.search(r"var COLUMNS = (\[.*?\]\]);", src, re.S)
    assert columns, "the per-user table's COLUMNS"
    reads["r"].update(re.findall(r'\["(\w+)", "', columns.group(1)))  # r[c[0]]
    endpoint_columns = re.search(r"var ENDPOINT_COLUMNS = (\[.*?\]\]);", src, re.S)
    assert endpoint_columns, "the per-endpoint table's ENDPOINT_COLUMNS"
    reads["ep"].update(re.findall(r'\["(\w+)", "', endpoint_columns.group(1)))  # ep[c[0]]
    sort = re.search(r'sort: "(\w+)"', src)
    assert sort, "the table's first sort key"
    reads["r"].add(sort.group(1))  # a[state.sort]
    return reads


def test_the_script_reads_only_documented_fields():
    reads = script_reads()
    assert reads["data"] and reads["f"] and reads["p"] and reads["r"] and reads["ep"], "the extraction finds the reads"
    documented = {name: {f for f, _ in rows} for name, rows in documented_tables().items()}
    for var, tp in SCRIPT_VARIABLES.items():
        name = tp.__name__
        known = documented.get(name, set(fields(tp)))  # the page config's types are the package's own
        assert reads[var] <= known, f"affinity.js reads {sorted(reads[var] - known)} of {var} ({name})"
    # p[s.field]: the charts plot timeline fields
    for chart in webui.page_config()["charts"]:
        for series in chart["series"]:
            assert series["field"] in documented["TimelinePoint"]


def test_the_document_and_the_per_user_csv_carry_the_same_fields_per_user():
    t = _tracker()
    doc = summary.summarize(t.rows(), t.environments)
    header = render.rows_csv(t.rows()).splitlines()[0].split(",")
    assert all(list(p) == header for p in doc["per_user"])
    assert [{k: "" if v is None else str(v) for k, v in p.items()} for p in doc["per_user"]] == list(
        csv.DictReader(io.StringIO(render.rows_csv(t.rows())))
    )
