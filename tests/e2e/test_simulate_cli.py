"""`lambda-affinity simulate` as a command: JSON schema, table, bad options."""
import json

import pytest

from commands import cli


def test_cli_json_matches_schema():
    p = cli("simulate", "--runs", "2", "--seed", "3", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) == {"users", "requests", "invalid", "environments", "cold_starts", "hit_rate",
                        "warm_cache_rate", "histogram", "per_user"}
    assert set(doc["hit_rate"]) == {"mean", "min", "p10", "p25", "p50", "p75", "p90", "max", "weighted"}
    assert len(doc["histogram"]) == 10 and doc["users"] == 20
    assert set(doc["per_user"][0]) == {"user", "requests", "max_share", "warm_hits", "environments",
                                       "cold_starts", "switches"}


def test_cli_table_and_rates_line():
    p = cli("simulate", "--seed", "1")
    assert p.returncode == 0, p.stderr
    assert "max-share hit" in p.stdout and "warm-cache hit" in p.stdout
    rates = [line for line in p.stdout.splitlines() if line.startswith("rates: ")]
    assert len(rates) == 1 and len(rates[0][7:].split(",")) == 10


@pytest.mark.parametrize("args,message", [
    (("--think", "soon"), "think: 'soon' is not a distribution"),
    (("--keep-alive", "-3"), "keep_alive_s: must be >= 0"),
    (("--users", "0"), "users: must be >= 1"),
    (("--runs", "0"), "runs: must be >= 1"),
    (("--duration", "nan"), "duration: must be a finite number > 0"),
    (("--duration", "inf"), "duration: must be a finite number > 0"),
    (("--keep-alive", "nan"), "keep_alive_s: expected a finite number, got nan"),
])
def test_cli_bad_options(args, message):
    p = cli("simulate", *args)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
