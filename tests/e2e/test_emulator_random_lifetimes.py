"""Environments that die at random, and proactive replacement, in the emulator: real environment
processes, a real client (boto3), the model's clock shrunk to seconds (R1, R2 and replacement; the
model's own tests, at AWS's scale: tests/unit/test_random_lifetimes.py)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from concurrent_calls import together

from lambda_affinity.emulator.config import config_from_mapping
from lambda_affinity.emulator.server import Emulator

pytestmark = pytest.mark.slow

POLL_S = 0.05


def emulator(tmp_path, **model):
    cfg = config_from_mapping(
        {"model": {"init_delay_s": 0.0, **model}, "functions": [{"name": "probe"}]}, str(tmp_path)
    )
    return Emulator(cfg)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def burst(endpoint: str, client, n: int) -> list:
    """n first calls at once, a client per thread (a boto3 client pools 10 connections): their replies."""
    clients = [client(endpoint) for _ in range(n)]

    def call(i: int) -> dict:
        out = clients[i].invoke(FunctionName="probe", Payload=json.dumps({"session": f"u{i}"}).encode())
        return json.loads(out["Payload"].read())

    return together(n, call)


def watch(url: str, seconds: float) -> dict:
    """Poll the introspection endpoint every POLL_S for `seconds` (or until no environment is left):
    each environment's first view (its fields then, `seen_at`) and `gone_at`, the first poll it was
    missing from."""
    envs: dict = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.monotonic()
        live = {e["id"]: e for e in get_json(url)["environments"]}
        for env_id, e in live.items():
            envs.setdefault(env_id, {**e, "seen_at": now})
        for env_id, e in envs.items():
            if env_id not in live and "gone_at" not in e:
                e["gone_at"] = now
        if not live:
            break
        time.sleep(POLL_S)
    return envs


def test_r1_a_uniform_keep_alive_loses_idle_environments_gradually(tmp_path, emulator_lambda_client):
    """R1 at seconds scale: keep-alive 1:3 s, 30 environments idle from about the same moment: each
    idles out after the keep-alive it drew (shown at /_emulator/environments), about 3 in 4 are still
    alive 1.5 s into their idle spell and 1 in 4 at 2.5 s, as uniform 1..3 s says."""
    with emulator(tmp_path, keep_alive_s="1:3", init_delay_s=0.3) as emu:
        replies = burst(emu.endpoint, emulator_lambda_client, 30)
        assert all(r["cold"] for r in replies)
        envs = watch(emu.introspection_url, 6.0)
        doc = get_json(emu.introspection_url)
    assert len(envs) == 30 and doc["retired"] == {"keep-alive": 30}
    lived = []  # how long each stayed alive idle
    for e in envs.values():
        idle_since = e["seen_at"] - e["idle_s"]
        lived.append(e["gone_at"] - POLL_S / 2 - idle_since)
        assert 1.0 <= e["keep_alive_s"] <= 3.0
        assert abs(lived[-1] - e["keep_alive_s"]) <= 0.25  # it went when its own keep-alive ran out
    assert len({e["keep_alive_s"] for e in envs.values()}) >= 25  # drawn, not one constant
    for at, share in ((1.5, 0.75), (2.5, 0.25)):
        alive = sum(t > at for t in lived) / len(lived)
        assert abs(alive - share) <= 0.25, (at, alive, sorted(lived))


def test_r2_jittered_lifetimes_retire_spread_out(tmp_path, emulator_lambda_client):
    """R2 at seconds scale: 20 environments made together with lifetime 2:6 s (keep-alive long, no
    replacement) retire each at the lifetime it drew, over seconds: never more than 4 in one 50 ms
    poll (the simulator holds 10 % of 100 per minute of a 2 h lifetime)."""
    with emulator(
        tmp_path, max_lifetime_s="2:6", keep_alive_s=60, init_delay_s=0.3, proactive_replacement=False
    ) as emu:
        burst(emu.endpoint, emulator_lambda_client, 20)
        envs = watch(emu.introspection_url, 8.0)
        doc = get_json(emu.introspection_url)
    assert len(envs) == 20 and doc["retired"] == {"max-lifetime": 20}
    for e in envs.values():
        assert 2.0 <= e["lifetime_s"] <= 6.0
        died_at_age = e["gone_at"] - POLL_S / 2 - (e["seen_at"] - e["age_s"])
        assert abs(died_at_age - e["lifetime_s"]) <= 0.25
    gone = sorted(e["gone_at"] for e in envs.values())
    assert gone[-1] - gone[0] >= 1.5
    assert max(gone.count(t) for t in gone) <= 4


def serial_calls(lam, seconds: float) -> list:
    """Calls one after another, 0.1 s apart, for `seconds`: (when each was sent, its reply)."""
    replies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sent = time.monotonic()
        replies.append((sent, json.loads(lam.invoke(FunctionName="probe", Payload=b'{"s": 1}')["Payload"].read())))
        time.sleep(0.1)
    return replies


def test_proactive_replacement_starts_a_process_ahead_and_the_next_call_is_not_cold(tmp_path, emulator_lambda_client):
    """A user calling every 0.1 s, lifetime 1.2 s: the replacement's process starts 0.3 s before the
    old environment's lifetime ends (a quarter of it) with no call waiting, and takes the calls after
    it: one cold start in all, the rest new-environment calls and warm ones. Without replacement
    every lifetime ends in a cold start."""
    with emulator(tmp_path, max_lifetime_s=1.2, keep_alive_s=60, init_delay_s=0.3) as emu:
        seen: dict = {}  # environment id -> its views, polled while the calls run
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                for e in get_json(emu.introspection_url)["environments"]:
                    seen.setdefault(e["id"], []).append(e)
                time.sleep(0.02)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            replies = serial_calls(emulator_lambda_client(emu.endpoint), 2.5)
        finally:
            done.set()
            poller.join(10)
        doc = get_json(emu.introspection_url)
    ids = list(dict.fromkeys(r["env_id"] for _, r in replies))
    assert len(ids) >= 2
    before_its_first_call = [e for e in seen[ids[1]] if e["invocations"] == 0]
    # seen before any call reached it: initializing, or already idle when a loaded machine polled late
    assert before_its_first_call and {e["state"] for e in before_its_first_call} <= {"initializing", "idle"}
    assert any(e["pid"] for e in before_its_first_call)  # its process started ahead
    assert doc["cold_starts"] == 1 and doc["new_environment_calls"] == len(ids) - 1
    assert doc["retired"]["max-lifetime"] >= 1
    with emulator(tmp_path, max_lifetime_s=1.2, keep_alive_s=60, init_delay_s=0.3, proactive_replacement=False) as emu:
        replies = serial_calls(emulator_lambda_client(emu.endpoint), 2.0)
        doc = get_json(emu.introspection_url)
    assert doc["cold_starts"] == len({r["env_id"] for _, r in replies}) >= 2 and doc["new_environment_calls"] == 0
