"""`lambda-affinity simulate` as a command: JSON schema, table, bad options."""

import json
import re

import pytest
from commands import cli

from lambda_affinity import __version__


def test_cli_json_matches_schema():
    p = cli("simulate", "--runs", "2", "--seed", "3", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) == {
        "users",
        "requests",
        "invalid",
        "environments",
        "cold_starts",
        "new_environment_calls",
        "hit_rate",
        "warm_cache_rate",
        "histogram",
        "per_user",
        "reproduce",
    }
    assert set(doc["hit_rate"]) == {"mean", "min", "p10", "p25", "p50", "p75", "p90", "max", "weighted"}
    assert len(doc["histogram"]) == 10 and doc["users"] == 20
    # a line of the per-user CSV, field for field; users named as the plugin names them
    assert list(doc["per_user"][0]) == [
        "user",
        "requests",
        "max_count",
        "max_share",
        "warm_hits",
        "cache_known",
        "environments",
        "cold_starts",
        "new_environment_calls",
        "switches",
        "invalid",
    ]
    assert sorted(u["user"] for u in doc["per_user"]) == sorted(f"r{r}-u{n}" for r in (0, 1) for n in range(1, 11))


def test_a_run_given_no_seed_says_its_seed_and_re_runs_exactly_from_its_json():
    # Before: the JSON had no seed, scenario or model and the seed was never printed.
    table = cli("simulate", "--users", "4", "--duration", "5")
    [seed] = re.findall(r"^random seed (\d+) \(--random-seed \1 repeats this run\)$", table.stdout, re.M)
    args = ["--users", "4", "--duration", "5", "--keep-alive", "30", "--json"]
    first = json.loads(cli("simulate", *args).stdout)
    again = cli("simulate", *args, "--random-seed", str(first["reproduce"]["seed"]))
    assert json.loads(again.stdout) == first
    assert first["reproduce"]["version"] == __version__ and first["reproduce"]["command"] == "simulate"
    assert first["reproduce"]["scenario"]["users"] == 4 and first["reproduce"]["model"]["keep_alive_s"] == 30
    rerun = cli("simulate", "--users", "4", "--duration", "5", "--random-seed", seed)
    assert untimed(rerun.stdout) == untimed(table.stdout)


def untimed(out: str) -> list[str]:
    return [line for line in out.splitlines() if "simulated in" not in line]


def test_cli_table_and_rates_line():
    p = cli("simulate", "--seed", "1")
    assert p.returncode == 0, p.stderr
    assert "max-share hit" in p.stdout and "warm-cache hit" in p.stdout
    rates = [line for line in p.stdout.splitlines() if line.startswith("rates: ")]
    assert len(rates) == 1 and len(rates[0][7:].split(",")) == 10


@pytest.mark.parametrize(
    "args,message",
    [
        (("--think", "soon"), "think: 'soon' is not a distribution"),
        (
            ("--keep-alive", "-3"),
            "argument --keep-alive: '-3' is not a duration: must be a finite number of seconds >= 0",
        ),
        (("--keep-alive", "10x"), "argument --keep-alive: '10x' is not a duration: cannot read '10x'; use seconds"),
        (("--users", "0"), "users: must be >= 1"),
        (("--runs", "0"), "runs: must be >= 1"),
        (("--duration", "0"), "duration: must be a finite number > 0"),
        (
            ("--duration", "nan"),
            "argument --duration: 'nan' is not a duration: must be a finite number of seconds >= 0",
        ),
        (
            ("--duration", "inf"),
            "argument --duration: 'inf' is not a duration: must be a finite number of seconds >= 0",
        ),
        (("--keep-alive", "nan"), "argument --keep-alive: 'nan' is not a duration: must be a finite number"),
    ],
)
def test_cli_bad_options(args, message):
    p = cli("simulate", *args)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


def test_cli_prices_a_miss():
    p = cli("simulate", "--seed", "3", "--json", "--miss-cost-ms", "5", "--miss-cost-usd", "0.00000025")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    cost = doc["miss_cost"]
    assert cost["warm_cache_rate"] == doc["warm_cache_rate"]["weighted"]
    assert cost["saved_ms_per_million"] == pytest.approx(5e6 * doc["warm_cache_rate"]["weighted"])
    p = cli("simulate", "--seed", "3", "--miss-cost-ms", "5")
    assert p.returncode == 0 and "cost of a miss 5 ms: per million replies the warm cache" in p.stdout
    p = cli("simulate", "--miss-cost-ms", "-5")
    assert p.returncode == 2 and "miss-cost-ms: must be a finite number >= 0, got -5.0" in p.stderr


def test_random_seed_is_the_option_and_seed_still_works():
    by_new = cli("simulate", "--random-seed", "4", "--json")
    by_old = cli("simulate", "--seed", "4", "--json")
    assert by_new.returncode == 0 and by_new.stdout == by_old.stdout
    assert "--random-seed" in cli("simulate", "--help").stdout and "--seed " not in cli("simulate", "--help").stdout
