"""lambda-affinity sweep: the --vary grammar and its errors, and the files a sweep writes (chart against CSV)."""

import csv
import io
import json
import statistics
import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest

from lambda_affinity import cli
from lambda_affinity.cli import sweep as cli_sweep
from lambda_affinity.sim.sweep import SpecError, parse_vary

SVG = "{http://www.w3.org/2000/svg}"


def factors():
    """The factors as the real sweep parser defines them (no second list to drift)."""
    args = cli.build_parser().parse_args(["sweep", "--vary", "users=1", "--out", "unused"])
    return {name: factor for name, (factor, _) in cli_sweep._sweep_factors(args.factor_actions).items()}


@pytest.mark.parametrize(
    "spec, values, numeric, log",
    [
        ("users=1,10,100", (1, 10, 100), True, False),
        ("users=1..1000:log:7", (1, 3, 10, 32, 100, 316, 1000), True, True),
        ("users=1..4", (1, 2, 3, 4), True, False),
        ("users=1..10:log:20", (1, 2, 3, 4, 5, 6, 7, 8, 9, 10), True, True),  # rounded, repeats dropped
        ("keep_alive=60..600:step:60", tuple(float(v) for v in range(60, 601, 60)), True, False),
        ("keep-alive-s=0..1:lin:5", (0.0, 0.25, 0.5, 0.75, 1.0), True, False),
        ("busy_overhead_s=0..0.03:step:0.01", (0.0, 0.01, 0.02, 0.03), True, False),
        ("think=0:1,exp:5", ("0:1", "exp:5"), False, False),
        ("think=0..2:step:1", ("0", "1", "2"), True, False),
        ("policy=mru,partitioned", ("mru", "partitioned"), False, False),
        ("router-policy=lru,mru", ("lru", "mru"), False, False),
        ("model=a.yaml,b.yaml", ("a.yaml", "b.yaml"), False, False),
    ],
)
def test_vary_specs(spec, values, numeric, log):
    vary = parse_vary(spec, factors())
    assert (vary.values, vary.numeric, vary.log) == (values, numeric, log)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("users", "expected NAME=VALUES, e.g. users=1,10,100"),
        ("=1,2", "expected NAME=VALUES"),
        ("colour=1,2", "unknown factor 'colour' (one of: "),
        ("users=", "no values after '='"),
        ("users=1,,3", "value 2 is empty"),
        ("users=1,x", "'x' is not a whole number (users takes one)"),
        ("users=1,1", "'1' is listed twice"),
        ("keep-alive=1,inf", "'inf' is not a duration: must be a finite number of seconds >= 0"),
        ("keep-alive=1m,10x", "'10x' is not a duration: cannot read '10x'"),
        ("keep-alive=1m..1h:step:0", "range step must be > 0"),
        ("policy=mru,fifo", "'fifo' is not one of mru, lru, random, partitioned"),
        ("policy=a..b", "policy takes a list, not a range (e.g. policy=A,B)"),
        ("think=0:1,soon", "think: 'soon' is not a distribution"),
        ("users=10..1:log:3", "range START must be below STOP, got 10..1"),
        ("users=x..10:log:3", "range START 'x' is not a number"),
        ("users=0..1000:log:7", "a log range needs START > 0, got 0"),
        ("users=1..1000:log:1", "range point count must be 2..50, got 1"),
        ("users=1..1000:log:seven", "range point count 'seven' is not a whole number"),
        (
            "users=1..1000:geo:7",
            "'geo:7' is not a range form: START..STOP:step:S, START..STOP:lin:N or START..STOP:log:N",
        ),
        ("users=1..1000:log", "'log' is not a range form"),
        ("keep-alive=0..60", "say how to step through the range"),
        ("keep-alive=0..60:step:0", "range step must be > 0, got 0"),
        ("users=1..1000", "1000 points; at most 50 (a larger step, or :log:N)"),
        ("users=1..5..9:step:1", "one '..' per range"),
    ],
)
def test_bad_vary_specs_say_what_is_wrong(spec, message):
    with pytest.raises(SpecError) as exc:
        parse_vary(spec, factors())
    assert f"--vary {spec!r}: " in str(exc.value) and message in str(exc.value)


def run_sweep(*args, capsys=None):
    code = cli.main(["sweep", *args])
    out = capsys.readouterr() if capsys else None
    return code, out


def read(directory, name):
    with open(directory / name, encoding="utf-8") as fh:
        return fh.read()


def test_the_chart_draws_what_the_csv_holds(tmp_path, capsys):
    code, out = run_sweep(
        "--vary", "users=1..30:log:4", "--runs", "3", "--duration", "5", "--out", str(tmp_path), capsys=capsys
    )
    assert code == 0
    assert "4 points x 3 runs: 660 user-seconds" in out.err and "point 4/4 users=30, run 3/3" in out.err
    rows = list(csv.DictReader(io.StringIO(read(tmp_path, "sweep.csv"))))
    assert len(rows) == 12 and {r["factor"] for r in rows} == {"users"}
    # (1 + 3 + 10 + 30) users x 5 s x 3 runs = 660
    assert [int(r["users"]) for r in rows] == [1] * 3 + [3] * 3 + [10] * 3 + [30] * 3
    by_value = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for key in ("max_share", "warm_cache_rate", "cold_per_request"):
            by_value[float(r["value"])][key].append(float(r[key]))
        assert float(r["cold_per_request"]) == pytest.approx(int(r["cold_starts"]) / int(r["requests"]))
    root = ET.fromstring(read(tmp_path, "sweep.svg"))
    legend = {
        "max-share (mean over users)": "max_share",
        "warm-cache rate (mean over users)": "warm_cache_rate",
        "cold starts per request": "cold_per_request",
    }
    groups = [g for g in root.iter(f"{SVG}g") if g.get("data-series")]
    assert [g.get("data-series") for g in groups] == list(legend)
    for g in groups:
        key = legend[g.get("data-series")]
        drawn = [
            (float(c.get("data-x")), float(c.get("data-y")), float(c.get("data-low")), float(c.get("data-high")))
            for c in g.iter(f"{SVG}circle")
        ]
        expected = [(x, statistics.fmean(v[key]), min(v[key]), max(v[key])) for x, v in by_value.items()]
        assert drawn == [pytest.approx(e) for e in expected]
    # the HTML page holds the same chart (auto theme) and a row per point
    page = read(tmp_path, "sweep.html")
    assert page.count("<svg") == 1 and page.count('data-series="max-share (mean over users)"') == 1
    assert page.count("<tr>") == 1 + 4
    doc = json.loads(read(tmp_path, "sweep.json"))
    assert doc["values"] == [1, 3, 10, 30] and doc["factor"] == "users" and len(doc["seeds"]) == 3
    assert doc["points"][2]["stats"]["max_share"]["mean"] == pytest.approx(statistics.fmean(by_value[10]["max_share"]))
    assert "users" not in doc["scenario"] and doc["scenario"]["model"]["policy"] == "partitioned"
    assert doc["reproduce"]["command"] == "sweep" and doc["reproduce"]["scenario"]["users"] == 10
    assert doc["reproduce"]["model"]["policy"] == "partitioned" and doc["reproduce"]["options"]["runs"] == 3


def test_a_sweep_is_reproducible_from_its_seed(tmp_path):
    args = ["--vary", "policy=mru,lru", "--runs", "2", "--duration", "3"]
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert run_sweep(*args, "--seed", seed, "--out", str(tmp_path / name))[0] == 0
    for f in ("sweep.csv", "sweep.json", "sweep.svg", "sweep.html"):
        assert read(tmp_path / "a", f) == read(tmp_path / "b", f)
    assert read(tmp_path / "a", "sweep.csv") != read(tmp_path / "c", "sweep.csv")
    # run r has one seed at every point; the runs differ
    rows = list(csv.DictReader(io.StringIO(read(tmp_path / "a", "sweep.csv"))))
    assert [r["seed"] for r in rows[:2]] == [r["seed"] for r in rows[2:]] and rows[0]["seed"] != rows[1]["seed"]
    # categories: the x axis names the policies, points are not joined by a line
    root = ET.fromstring(read(tmp_path / "a", "sweep.svg"))
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "x-tick"] == ["mru", "lru"]
    assert not [p for p in root.iter(f"{SVG}polyline")]


def test_miss_cost_prices_each_run(tmp_path, capsys):
    code, out = run_sweep(
        "--vary",
        "keep-alive=0,600",
        "--runs",
        "2",
        "--duration",
        "3",
        "--miss-cost-ms",
        "4",
        "--miss-cost-usd",
        "0.00000025",
        "--out",
        str(tmp_path),
        capsys=capsys,
    )
    assert code == 0 and "seconds saved per million requests" in out.out
    rows = list(csv.DictReader(io.StringIO(read(tmp_path, "sweep.csv"))))
    for r in rows:
        hits = float(r["warm_cache_weighted"]) * 1e6
        assert float(r["saved_ms_per_million"]) == pytest.approx(4 * hits)
        assert float(r["saved_usd_per_million"]) == pytest.approx(0.00000025 * hits)
    # keep-alive 0: every call is cold, nothing is cached, nothing saved
    assert {float(r["saved_ms_per_million"]) for r in rows if r["value"] == "0.0"} == {0.0}
    assert read(tmp_path, "sweep.html").count("<svg") == 3
    doc = json.loads(read(tmp_path, "sweep.json"))
    assert doc["miss_cost"] == {"per_miss_ms": 4.0, "per_miss_usd": 2.5e-07}
    assert "keep_alive_s" not in doc["scenario"]["model"] and doc["scenario"]["model"]["policy"] == "partitioned"


def test_model_files_as_the_factor(tmp_path):
    for name, policy in (("one.yaml", "mru"), ("two.yaml", "lru")):
        (tmp_path / name).write_text(f"model:\n  policy: {policy}\n")
    spec = f"model={tmp_path / 'one.yaml'},{tmp_path / 'two.yaml'}"
    assert run_sweep("--vary", spec, "--runs", "2", "--duration", "3", "--out", str(tmp_path / "out"))[0] == 0
    rows = list(csv.DictReader(io.StringIO(read(tmp_path / "out", "sweep.csv"))))
    mru = [float(r["max_share"]) for r in rows if r["value"].endswith("one.yaml")]
    lru = [float(r["max_share"]) for r in rows if r["value"].endswith("two.yaml")]
    assert min(mru) > max(lru)  # mru concentrates calls, lru spreads them (docs/model.md)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("--vary", "users=1..1000:log:7", "--max-invocations", "1000"),
            "invocations estimated, over --max-invocations 1,000: fewer points, runs or users",
        ),
        (("--vary", "keep_alive=-1,5"), "--vary 'keep_alive=-1,5': '-1' is not a duration: must be a finite number"),
        (("--vary", "scale-window=10,0"), "--vary scale-window=0: scale_window_s: must be > 0"),
        (("--vary", "routers=0,2"), "--vary routers=0: routers: must be"),
        (("--vary", "model=/nonexistent.yaml"), "--vary model=/nonexistent.yaml: --model"),
        (("--vary", "users=1,2", "--runs", "0"), "runs: must be >= 1"),
        (("--vary", "users=1,2", "--miss-cost-usd", "-1"), "miss-cost-usd: must be a finite number >= 0, got -1.0"),
        (("--vary", "bogus=1"), "unknown factor 'bogus'"),
    ],
)
def test_bad_sweeps_are_refused_before_running(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "point 1/" not in err, err
    assert not (tmp_path / "out").exists()
