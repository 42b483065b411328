"""The emulator's own cap on live environments: derived from the machine
unless `max_environments` is set, and when it refuses a call the 429 says it
is this machine's limit, not AWS's (once on stderr, counted in the
introspection's `local_cap`). AWS's 429s carry no Retry-After."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml
from fixture_paths import HANDLERS

from lambda_affinity.emulator import machine
from lambda_affinity.emulator.process import EmulatorProcess


# -- the emulator -------------------------------------------------------------------
def _post(url: str, data: bytes = b"{}") -> tuple[int, dict, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=30) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def _introspect(emu) -> dict:
    with urllib.request.urlopen(emu.introspection_url, timeout=30) as r:
        return json.loads(r.read())


HOLD_HANDLER = HANDLERS / "hold/app.py"


@contextlib.contextmanager
def _one_call_busy(tmp_path, **model):
    """An emulator serving `hold` with these model options, one invocation
    holding its environment until the block ends (no race with a clock);
    yields (emulator, its Invoke URL, a callable that releases it early)."""
    code = tmp_path / "hold"
    code.mkdir()
    shutil.copyfile(HOLD_HANDLER, code / "app.py")
    release = tmp_path / "release"
    config = tmp_path / "emu.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"init_delay_s": 0, **model},
                "functions": [{"name": "hold", "handler": "app.handler", "code": str(code)}],
            }
        )
    )
    with EmulatorProcess(config_path=str(config)) as emu:
        invoke = f"{emu.endpoint}/2015-03-31/functions/hold/invocations"
        busy = threading.Thread(target=_post, args=(invoke, json.dumps({"hold": str(release)}).encode()))
        busy.start()
        try:
            deadline = time.monotonic() + 10
            while not any(e["state"] == "busy" for e in _introspect(emu)["environments"]):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            yield emu, invoke, release.touch
        finally:
            release.touch()
            busy.join(10)


@pytest.mark.slow
def test_the_local_cap_answers_429_saying_it_is_this_machines_limit(tmp_path):
    with _one_call_busy(tmp_path, max_environments=1) as (emu, invoke, _):
        status, headers, body = _post(invoke)
        url_status, _, url_body = _post(emu.function_urls["hold"])
        doc = _introspect(emu)
        log = emu.read_log()
    message = (
        "Rate Exceeded. The local Lambda emulator's cap of 1 live environments (model.max_environments in "
        "the config) was hit: a limit of this machine, not AWS's account concurrency limit."
    )
    assert status == 429 and "Retry-After" not in headers
    assert headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert body == {"Type": "User", "message": message, "Reason": "ConcurrentInvocationLimitExceeded"}
    assert url_status == 429 and url_body == {"Message": message}
    assert doc["local_cap"] == {"max_environments": 1, "source": "config", "decided_by": None, "throttled": 2}
    assert log.count("lambda-affinity emulator: " + message) == 1


@pytest.mark.slow
def test_the_account_limit_keeps_aws_words_and_the_default_cap_comes_from_the_machine(tmp_path):
    with _one_call_busy(tmp_path, account_concurrency=1) as (emu, invoke, _):
        status, headers, body = _post(invoke)
        cap = _introspect(emu)["local_cap"]
    assert status == 429 and "Retry-After" not in headers
    assert body == {"Type": "User", "message": "Rate Exceeded.", "Reason": "ConcurrentInvocationLimitExceeded"}
    machine.raise_fd_limit()  # as the emulator does before it derives its cap, so both read the same limit
    expected = machine.derive_cap(machine.read_limits(), machine.COSTS["builtin"])
    assert cap["source"] == "machine" and cap["throttled"] == 0 and cap["decided_by"] == expected.decided_by
    assert abs(cap["max_environments"] - expected.cap) <= 0.05 * expected.cap  # available memory moves a little


@pytest.mark.slow
def test_event_calls_retried_behind_the_cap_are_not_counted_as_refused(tmp_path):
    """An Event call the cap holds back is answered 202 and retried: its
    retries are no 429s, so local_cap.throttled (the summary's "refused N
    calls with 429") and the throttle count stay at the calls answered 429."""
    events = 3
    with _one_call_busy(tmp_path, max_environments=1) as (emu, invoke, release):
        for _ in range(events):
            with urllib.request.urlopen(
                urllib.request.Request(invoke, data=b"{}", method="POST", headers={"X-Amz-Invocation-Type": "Event"}),
                timeout=30,
            ) as r:
                assert r.status == 202
        status, _, _ = _post(invoke)
        time.sleep(1.0)  # backing off from 50 ms: several retries each, all refused by the cap
        held = _introspect(emu)
        release()
        deadline = time.monotonic() + 20
        while (done := _introspect(emu))["invocations"] < events + 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert status == 429
    assert held["local_cap"]["throttled"] == 1 and held["throttled"] == 1
    assert done["local_cap"]["throttled"] == 1 and done["throttled"] == 1 and done["async_dropped"] == 0
