"""Function code is contained: it cannot read the environment or memory of
the emulator, its fork-server or the process that embeds the emulator; what
it starts, even in a new session, ends with its environment; its memory is
limited as on AWS; and a runtime that exits says so as AWS does."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import yaml
from fixture_paths import HANDLERS, LOCUSTFILES, SCRIPTS

from lambda_affinity.emulator.forkserver import ZYGOTE
from lambda_affinity.emulator.process import EmulatorProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's"),
]

HANDLER = HANDLERS / "containment/app.py"

LAUNCHER = SCRIPTS / "containment_launcher.py"
SECRET = "do-not-leak-0123456789"

# A Locust worker loading the plugin: it holds the user's credentials too, though it starts no emulator.
WORKER_LOCUSTFILE = LOCUSTFILES / "containment_worker.py"

# Runs the fork-server's sweep and the emulator's tree memory on a real tree
# (2 children, each with a child), recording every /proc path touched.
TREE_WALK = SCRIPTS / "tree_walk.py"


def _config(tmp_path, **function) -> str:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    shutil.copyfile(HANDLER, (code / "app.py"))
    path = tmp_path / "emu.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"init_delay_s": 0},
                "functions": [{"name": "f", "handler": "app.handler", "code": str(code), **function}],
            }
        )
    )
    return str(path)


def _invoke(lam, **event):
    out = lam.invoke(FunctionName="f", Payload=json.dumps(event).encode())
    return out.get("FunctionError"), json.loads(out["Payload"].read())


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids, timeout=5.0) -> list:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _only_the_fork_server_left(emu, timeout=5.0) -> list:
    """The emulator's descendants once they are down to one (or the timeout), by script."""
    deadline = time.monotonic() + timeout
    while len(left := psutil.Process(emu.proc.pid).children(recursive=True)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p.cmdline()[1:2] for p in left]


def test_function_code_cannot_read_the_emulator_or_its_parent(tmp_path, emulator_lambda_client):
    launcher = subprocess.Popen(
        [sys.executable, str(LAUNCHER), _config(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "LAUNCHER_SECRET": SECRET},
    )
    try:
        doc = json.loads(launcher.stdout.readline())
        error, seen = _invoke(emulator_lambda_client(doc["endpoint"]), action="spy")
        assert error is None, seen
        _zygote, emulator, parent = (int(pid) for pid in seen)
        assert emulator == doc["pid"] and parent == launcher.pid
        for pid, files in seen.items():
            for name, outcome in files.items():
                assert outcome.startswith("PermissionError"), (pid, name, outcome[:200])
        assert SECRET not in json.dumps(seen)
    finally:
        launcher.stdin.close()
        launcher.wait(30)


def test_function_code_gets_lambdas_1024_open_files_not_the_emulators_raised_limit(tmp_path, emulator_lambda_client):
    import resource

    expected = min(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1])  # the emulator inherits our hard limit
    with EmulatorProcess(config_path=_config(tmp_path)) as emu:
        assert psutil.Process(emu.proc.pid).rlimit(psutil.RLIMIT_NOFILE)[0] > 1024  # raised for its connections
        assert _invoke(emulator_lambda_client(emu.endpoint), action="rlimit") == (None, [expected, expected])


def test_the_sweep_and_the_memory_check_walk_only_their_own_tree_not_all_of_proc():
    """Both run often (the sweep after every exit, the memory check every
    second of a long call): a scan of all of /proc would cost in proportion
    to every process on the machine."""
    out = json.loads(
        subprocess.run([sys.executable, str(TREE_WALK)], capture_output=True, check=True, timeout=30).stdout
    )
    assert out["stray"] == out["kids"][1:]
    assert len(out["tree"]) == 4 and out["rss"] > 0
    mine = {out["me"], *out["tree"]}
    assert "/proc" not in [p.rstrip("/") for p in out["touched"]]  # no listing of every process
    others = [p for p in out["touched"] if p.split("/")[2].isdigit() and int(p.split("/")[2]) not in mine]
    assert others == []


def test_a_locust_worker_loading_the_plugin_is_not_readable_by_function_code(tmp_path):
    """make_undumpable() in every Locust role, not only in the process that
    starts the emulator: a worker's /proc/PID/environ must be closed to the
    user's other processes (function code included). Each process says whether
    it is dumpable (as root, we could read its /proc anyway)."""
    locustfile = tmp_path / "locustfile.py"
    shutil.copyfile(WORKER_LOCUSTFILE, locustfile)
    marks = {role: tmp_path / f"{role}-dumpable" for role in ("master", "worker")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    locust = [sys.executable, "-m", "locust", "-f", str(locustfile)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    # A worker fires init once its master answers: a real master, headless, waiting for it.
    master = subprocess.Popen(
        [
            *locust,
            "--master",
            "--headless",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            "1",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "30s",
        ],
        env={**os.environ, "INIT_MARK": str(marks["master"])},
        **quiet,
    )
    worker = None
    try:
        worker = subprocess.Popen(
            [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            env={**os.environ, "INIT_MARK": str(marks["worker"])},
            **quiet,
        )
        deadline = time.monotonic() + 20
        while not all(m.exists() and m.read_text() for m in marks.values()):
            assert worker.poll() is None and master.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert {role: m.read_text() for role, m in marks.items()} == {"master": "0", "worker": "0"}
    finally:
        for proc in (worker, master):
            if proc is not None:
                proc.kill()
                proc.wait(10)


def test_a_setsid_grandchild_dies_with_an_emulator_killed_by_sigkill(tmp_path, emulator_lambda_client):
    emu = EmulatorProcess(config_path=_config(tmp_path)).start()
    try:
        error, out = _invoke(emulator_lambda_client(emu.endpoint), action="spawn")
        assert error is None, out
        grandchild = out["pid"]
        assert _alive(grandchild) and psutil.Process(grandchild).pid == os.getsid(grandchild)
        below = {p.pid for p in psutil.Process(emu.proc.pid).children(recursive=True)}
        assert grandchild in below
        emu.proc.send_signal(signal.SIGKILL)
        emu.proc.wait(5)
        assert _wait_gone(below) == []
    finally:
        emu.stop()


def test_a_setsid_grandchild_dies_with_its_environment(tmp_path, emulator_lambda_client):
    """The environment is recycled (timeout) while the emulator keeps running."""
    with EmulatorProcess(config_path=_config(tmp_path, timeout=1)) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        error, out = _invoke(lam, action="spawn", then_sleep=0.2)
        grandchild = out["pid"]
        env_pid = psutil.Process(grandchild).ppid()
        error, out = _invoke(lam, action="spawn", then_sleep=5)  # killed at its 1 s timeout
        assert error == "Unhandled" and out["errorType"] == "Sandbox.Timedout"
        assert _wait_gone([grandchild, env_pid]) == []
        assert _only_the_fork_server_left(emu) == [[ZYGOTE]]  # the second call's grandchild is gone too


def test_a_runtime_that_exits_with_status_0_is_reported_as_aws_does(tmp_path, emulator_lambda_client):
    with EmulatorProcess(config_path=_config(tmp_path)) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        out = lam.invoke(FunctionName="f", Payload=b'{"action": "exit0"}')
        doc = json.loads(out["Payload"].read())
        assert out["FunctionError"] == "Unhandled"
        assert doc == {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {out['ResponseMetadata']['RequestId']} "
            "Error: Runtime exited without providing a reason",
        }
        assert _invoke(lam)[0] is None  # a fresh environment serves the next call


@pytest.mark.parametrize("hold,after", [(1.0, 0.0), (0.0, 0.5)], ids=["held", "freed"])
def test_going_over_the_memory_size_kills_the_environment_with_runtime_out_of_memory(
    tmp_path, emulator_lambda_client, hold, after
):
    """300 MB under `memory: 128`, held for a second, or freed at once while
    the handler runs on (the peak counts, not only what is resident when checked)."""
    with EmulatorProcess(config_path=_config(tmp_path, memory=128)) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        error, first = _invoke(lam)
        assert error is None
        event = {"action": "alloc", "mb": 300, "hold": hold, "after": after}
        out = lam.invoke(FunctionName="f", Payload=json.dumps(event).encode(), LogType="Tail")
        doc = json.loads(out["Payload"].read())
        assert out["FunctionError"] == "Unhandled"
        assert doc == {
            "errorType": "Runtime.OutOfMemory",
            "errorMessage": f"RequestId: {out['ResponseMetadata']['RequestId']} "
            "Error: Runtime exited with error: signal: killed",
        }
        [report] = [
            line for line in base64.b64decode(out["LogResult"]).decode().splitlines() if line.startswith("REPORT")
        ]
        assert "\tMemory Size: 128 MB\tMax Memory Used: 128 MB\t" in report  # as AWS reports it
        assert _wait_gone([first["pid"]]) == []
        error, after = _invoke(lam, action="alloc", mb=40)  # within its size: fine, on a fresh environment
        assert error is None and after == {"allocated": 40 << 20}


def test_the_memory_of_processes_the_handler_starts_counts_too(tmp_path, emulator_lambda_client):
    with EmulatorProcess(config_path=_config(tmp_path, memory=128, timeout=10)) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        out = lam.invoke(FunctionName="f", Payload=json.dumps({"action": "alloc_child", "mb": 300, "hold": 5}).encode())
        doc = json.loads(out["Payload"].read())
        assert out["FunctionError"] == "Unhandled" and doc["errorType"] == "Runtime.OutOfMemory", doc
        assert _only_the_fork_server_left(emu) == [[ZYGOTE]]
