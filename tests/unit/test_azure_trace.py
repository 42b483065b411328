"""The Azure Functions 2021 invocation trace (app, func, end_timestamp, duration) converted and replayed:
docs/examples/azure-functions-2021-sample.csv is written in that published format, its ids made up."""

from __future__ import annotations

import csv
import gzip
import json

import pytest
from fixture_paths import FIXTURES

from lambda_affinity import cli
from lambda_affinity.sim.azure_trace import ORIGIN, AzureTraceError, convert
from lambda_affinity.sim.trace import TraceError

SAMPLE = FIXTURES.parents[1] / "docs" / "examples" / "azure-functions-2021-sample.csv"


def test_rows_come_out_in_arrival_order_with_their_function_and_duration(tmp_path):
    out = tmp_path / "azure.csv"
    done = convert(str(SAMPLE), str(out))
    rows = list(csv.DictReader(out.open()))
    assert (done.rows, done.functions, done.apps) == (11, 4, 3)
    assert list(rows[0]) == ["time", "user", "function", "duration"]
    times = [float(r["time"]) for r in rows]
    assert times == sorted(times)
    # arrival = end - duration, dated from the trace's first day: A/f1's first call ran 0.134 s and
    # ended 5000.134 s in, so it arrived 5000 s in
    assert times[0] == pytest.approx(ORIGIN + 5000.0, abs=1e-6)
    assert {r["function"].count("/") for r in rows} == {1}  # app/func: func ids are unique only within an app
    assert all(r["user"] == r["function"] for r in rows)  # the default synthesised user
    assert done.reordered > 0  # the long calls are listed by end time, after shorter ones that arrived later


def test_the_user_can_be_the_app_instead(tmp_path):
    out = tmp_path / "azure.csv.gz"
    convert(str(SAMPLE), str(out), user_from="app")
    with gzip.open(out, "rt") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["user"] == r["function"].split("/")[0] for r in rows)


def test_replayed_it_answers_cold_start_questions_per_function(tmp_path, capsys):
    out = tmp_path / "azure.csv"
    assert cli.main(["traces", "from-azure", str(SAMPLE), "--out", str(out)]) == 0
    assert "wrote 11 invocations of 4 functions in 3 apps" in capsys.readouterr().out
    argv = ["simulate", "--trace", str(out), "--duration-col", "duration", "--function-col", "function", "--json"]
    assert cli.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    # keyed by the first 6 characters of the app and func ids (each 64 hex digits, `app/func`)
    per = {f["function"][:6] + f["function"][65:71]: f for f in doc["functions"]}
    counts = {k: (f["requests"], f["environments"], f["cold_starts"]) for k, f in per.items()}
    assert counts == {
        "f2524c1e6f1b": (5, 1, 1),  # a call a minute, 0.134 s each: one environment
        "f2524ca7f214": (1, 1, 1),
        "c4710b0e8957": (3, 3, 3),  # three 42 s calls a second apart overlap: three environments
        "73c3c3ba4c0c": (2, 2, 2),  # 900 s apart: past the 10 min keep-alive
    }
    assert doc["requests"] == 11 and doc["cold_starts"] == 7


@pytest.mark.parametrize(
    "text, message",
    [
        ("app,func,end\n", r"not the Azure Functions 2021 trace: no end_timestamp column"),
        ("app,func,end_timestamp,duration\na,f,10,-1\n", r":2: column 'duration': '-1': must be a finite number"),
        ("app,func,end_timestamp,duration\na,f,soon,1\n", r":2: column 'end_timestamp': 'soon' is not a number"),
        ("app,func,end_timestamp,duration\n,f,10,1\n", r":2: column 'app': empty"),
        ("app,func,end_timestamp,duration\na,f,10\n", r":2: 3 fields, but the header has 4"),
    ],
)
def test_a_bad_row_is_one_error_and_the_output_is_not_written(tmp_path, text, message):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(text)
    with pytest.raises(TraceError, match=message):
        convert(str(src), str(out))
    assert not out.exists()


def test_rows_further_out_of_order_than_the_window_are_refused(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("app,func,end_timestamp,duration\na,f,100,1\na,f,50,1\n")
    with pytest.raises(TraceError, match=r":3: column 'end_timestamp': arrives 50.000 s before line 2's"):
        convert(str(src), str(tmp_path / "out.csv"), max_disorder_s=10)
    assert convert(str(src), str(tmp_path / "out.csv"), max_disorder_s=60).rows == 2


def test_bad_options(tmp_path, capsys):
    with pytest.raises(AzureTraceError, match="user_from: 'user' is not one of function, app"):
        convert(str(SAMPLE), str(tmp_path / "o.csv"), user_from="user")
    (tmp_path / "o.csv").write_text("keep")
    with pytest.raises(SystemExit):
        cli.main(["traces", "from-azure", str(SAMPLE), "--out", str(tmp_path / "o.csv")])
    assert "exists: give --force to replace it" in capsys.readouterr().err
    assert (tmp_path / "o.csv").read_text() == "keep"
