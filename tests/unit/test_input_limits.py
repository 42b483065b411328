"""Every file the tools read is bounded (issue 22, item 3): trace lines and times, the one YAML loader
(aliases, nesting, YAML 1.1's sexagesimal `1:30`), config sizes, regular files only."""

from __future__ import annotations

import gzip
import os
import tracemalloc

import pytest
from trace_rows import rows_fixture, write

from lambda_affinity.emulator.config import ConfigFileError, load_config
from lambda_affinity.platform import ConfigError, ModelConfig
from lambda_affinity.platform.model_file import from_text, parse_yaml
from lambda_affinity.platform.yaml_loader import MAX_NODES
from lambda_affinity.sim import calibrate
from lambda_affinity.sim.trace import (
    TraceError,
    TraceWriter,
    merge,
    parse_time,
    read_arrivals,
    read_rows,
)
from lambda_affinity.sim.trace_reader import MAX_LINE_BYTES

READERS = [read_arrivals, read_rows]
HEADER = "send,recv,user,session,env_id,cold,cache_hit,valid\n"  # the plugin's: both readers take it

# -- times a trace can hold ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        ("1e22", "'1e22' is past the year 9999"),
        ("1" * 400, "is not a finite time (too large"),
        (10**400, "a number of 401 digits is too large for a time"),
        ("-1e300", "'-1e300' is a negative time"),
        ("-1.5", "'-1.5' is a negative time"),
        ("1969-12-31T23:59:59Z", "is a negative time"),
        ("inf", "'inf' is not a finite time"),
        ("nan", "'nan' is not a finite time"),
        (float("-inf"), "is not a finite time"),
    ],
)
def test_times_out_of_range_are_refused(text, words):
    with pytest.raises(ValueError, match="^.*" + words.replace("(", r"\(")):
        parse_time(text)


def test_times_in_range_still_read():
    assert parse_time("0") == 0.0
    assert parse_time("99999999999") == 99999999999.0  # seconds, year 5138
    assert parse_time("253402300799000") == 253402300799.0  # milliseconds, 9999-12-31T23:59:59Z
    assert parse_time(1764590400123) == 1764590400.123  # milliseconds


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("value", ["1e22", "1" * 400, "-1e300", "-3", "inf"])
def test_a_bad_time_names_file_line_and_column(tmp_path, reader, value):
    header = HEADER
    ok = "100.0,100.1,u1,u1-x,e1,1,0,1\n"
    path = write(tmp_path, header + ok + f"{value},,u1,u1-x,e1,1,0,1\n")
    with pytest.raises(TraceError, match=r"t\.csv:3: column 'send': "):
        list(reader(path))


def test_a_json_integer_of_thousands_of_digits_is_one_error(tmp_path):
    path = write(tmp_path, '{"time": ' + "9" * 5000 + ', "user": "a"}\n', "t.jsonl")
    with pytest.raises(TraceError, match=r"t\.jsonl:1: not valid JSON: Exceeds the limit"):
        list(read_arrivals(path))
    path = write(tmp_path, '{"time": ' + "9" * 400 + ', "user": "a"}\n', "t.jsonl")
    with pytest.raises(TraceError, match=r"t\.jsonl:1: column 'time': a number of 400 digits"):
        list(read_arrivals(path))


# -- what a CSV row may be ----------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("closed", [False, True])
def test_an_unterminated_quote_does_not_swallow_the_next_rows(tmp_path, reader, closed):
    header = HEADER
    rows = '100.0,100.1,"u1,u1-x,e1,1,0,1\n101.0,101.1,u2,u2-x,e2,1,0,1\n102.0,102.1,u3,u3-x,e3,1,0,1\n'
    if closed:  # a stray quote further on closes it: before, rows 3 and 4 became one
        rows = rows.replace("u2-x", 'u2-x"')
    path = write(tmp_path, header + rows)
    with pytest.raises(TraceError, match=r"t\.csv:2: a quoted field runs on to line [34]: an unterminated quote"):
        list(reader(path))


@pytest.mark.parametrize("reader", READERS)
def test_a_duplicate_header_is_refused(tmp_path, reader):
    path = write(tmp_path, "send,recv,user,session,env_id,cold,cache_hit,valid,user\n100.0,100.1,u1,s,e,1,0,1,u2\n")
    with pytest.raises(TraceError, match=r"t\.csv:1: column 'user': appears twice in the header"):
        list(reader(path))


def test_a_quoted_comma_on_one_line_still_reads(tmp_path):
    path = write(tmp_path, 'time,user\n1.0,"a,b"\n2.0,c\n')
    assert list(read_arrivals(path)) == [(1.0, "a,b"), (2.0, "c")]


# -- line length, gzip or not -----------------------------------------------------------------------


def one_long_line_gz(path, mib: int) -> str:
    """A gzip of `mib` MiB without a newline after the header, as concatenated members: ~1 KB per MiB,
    made in milliseconds (a single stream of 1 GiB takes seconds to compress)."""
    member = gzip.compress(b"1" * (1 << 20), compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(HEADER.encode()))
        for _ in range(mib):
            fh.write(member)
    return str(path)


@pytest.mark.parametrize("reader", READERS)
def test_a_gzip_of_one_huge_line_is_refused_early(tmp_path, reader):
    path = one_long_line_gz(tmp_path / "bomb.csv.gz", 64)
    tracemalloc.start()
    try:
        with pytest.raises(TraceError, match=r"bomb\.csv\.gz:2: a line longer than 1,048,576 bytes: not a trace"):
            list(reader(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MAX_LINE_BYTES, peak  # not the 64 MiB line, nor the gigabyte one it stands for


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", ["t.csv", "t.jsonl"])
def test_a_plain_long_line_is_refused(tmp_path, reader, name):
    fields = '"recv": 1.1, "session": "s", "env_id": "e", "cold": 1, "cache_hit": 0, "valid": 1'
    first = HEADER if name == "t.csv" else '{"send": 1, "user": "u", ' + fields + "}\n"
    path = write(tmp_path, first + "x" * (MAX_LINE_BYTES + 1) + "\n", name)
    with pytest.raises(TraceError, match=rf"{name}:2: a line longer than 1,048,576 bytes"):
        list(reader(path))


def test_a_line_of_exactly_the_bound_is_read(tmp_path):
    line = '{"time": 2, "user": "' + "x" * (MAX_LINE_BYTES - 23) + '"}'
    assert len(line) == MAX_LINE_BYTES
    path = write(tmp_path, '{"time": 1, "user": "u"}\n' + line + "\n", "t.jsonl")
    assert [t for t, _ in read_arrivals(path)] == [1.0, 2.0]


# -- regular files only ---------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
def test_only_regular_files_are_read(tmp_path, reader):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, words in (("/dev/zero", "is a device"), (str(fifo), "is a FIFO"), (str(tmp_path), "is a directory")):
        with pytest.raises(TraceError, match=f"{path}: {words}"):
            reader(path)  # refused when called, not when the first row is wanted


# -- --max-disorder 0 ------------------------------------------------------------------------------


def test_max_disorder_zero_reads_rows_in_order(tmp_path):
    path = str(tmp_path / "t.csv")
    with TraceWriter(path) as w:
        for r in rows_fixture():
            w.write_row(r)
    assert list(read_rows(path, 0)) == rows_fixture()  # was IndexError
    assert merge([path], str(tmp_path / "m.csv"), 0) == 4
    measured = calibrate.measure([path], 0)
    assert measured.requests + measured.invalid == 4
    assert [t for t, _ in read_arrivals(path, max_disorder_s=0)] == [r.send for r in rows_fixture()]


# -- the YAML loader ----------------------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\nmodel: *a8\n"


def test_an_alias_bomb_is_refused_fast():
    with pytest.raises(ConfigError, match=rf"line 6, column 5: expands to more than {MAX_NODES:,} values"):
        parse_yaml(alias_bomb())


def test_aliases_in_reason_still_load():
    data = parse_yaml("base: &b {keep_alive_s: 60}\nmodel: *b\n")
    assert data["model"] == {"keep_alive_s": 60}


def test_deep_nesting_is_refused():
    with pytest.raises(ConfigError, match="nested deeper than 100"):
        parse_yaml("[" * 5000 + "]" * 5000)


def test_the_emulator_config_and_model_files_share_the_loader(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    with pytest.raises(ConfigFileError, match=r"bomb\.yaml: line 6, column 5: expands to more than"):
        load_config(str(bomb))
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigFileError, match=r"big\.yaml: larger than 1,048,576 bytes"):
        load_config(str(big))
    with pytest.raises(ConfigFileError, match="is a device, not a regular file"):
        load_config("/dev/zero")


@pytest.mark.parametrize("unquoted", ["1:30", "1:30.5", "0:20"])
def test_an_unquoted_a_colon_b_is_the_text_not_a_sexagesimal_number(unquoted):
    """YAML 1.1 reads `1:30` as 90 (base 60); the loader reads it as YAML 1.2 does, the text "1:30", so a
    distribution key gets uniform 1..30 s, as quoted or on the command line."""
    assert parse_yaml(f"v: {unquoted}\n") == {"v": unquoted}
    assert from_text(f"network_latency: {unquoted}\n").network_latency == unquoted
    assert from_text(f'service_time: "{unquoted}"\n').service_time == unquoted  # quoted: the same


def test_an_unquoted_a_colon_b_where_a_number_is_wanted_is_refused():
    with pytest.raises(ConfigError, match=r"model\.init_delay_s: '1:30' is not a duration"):
        from_text("model:\n  init_delay_s: 1:30\n")
    # where a distribution is wanted it is one: uniform 1..30 s, never 90
    assert from_text("model:\n  keep_alive_s: 1:30\n").model.keep_alive.mean == 15.5


def test_other_yaml_numbers_are_unchanged():
    assert parse_yaml("a: 12\nb: 1.5\nc: 0x10\nd: 1_000\ne: .inf\nf: -2\n") == {
        "a": 12,
        "b": 1.5,
        "c": 16,
        "d": 1000,
        "e": float("inf"),
        "f": -2,
    }


def test_a_model_number_past_a_float_is_one_error():
    with pytest.raises(ConfigError, match="keep_alive_s: expected a finite number"):
        ModelConfig(keep_alive_s=10**400)
    with pytest.raises(ConfigError, match=r"model\.init_delay_s: expected a finite number"):
        from_text("model:\n  init_delay_s: " + "9" * 400 + "\n")
    with pytest.raises(ConfigError, match=r"model\.scale_limit: must be <= 9007199254740992, got a larger number"):
        from_text("model:\n  scale_limit: " + "9" * 400 + "\n")  # was an OverflowError in the simulator
    assert ModelConfig(scale_limit=2**53).scale_limit == 2**53
