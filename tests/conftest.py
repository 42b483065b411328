"""Shared fixtures. Emulator fixtures are prefixed `emulator_`."""

from __future__ import annotations

# Locust patches the process with gevent when imported, and patching ssl after
# urllib3 (boto3, requests) has loaded it recurses: so the suite imports Locust
# first, the way a Locust process does, and the plugin's tests run in-process.
import locust  # noqa: F401  isort: skip

import pathlib
import shutil

import pytest
from fixture_paths import HANDLERS

TESTS = pathlib.Path(__file__).parent


def pytest_ignore_collect(collection_path, config):
    """`-m "not slow"` selects nothing under tests/e2e (its conftest marks every test there slow), so the
    folder is not even imported: its modules load moto, Playwright and boto3, seconds of the fast half's
    time. Any other -m expression collects it as usual. None (not False) lets other rules decide."""
    if collection_path == TESTS / "e2e" and " ".join(config.getoption("markexpr", "").split()) == "not slow":
        return True
    return None


@pytest.fixture(scope="session")
def emulator_code(tmp_path_factory):
    """Folders of test functions: {"faults": dir, "initfail": dir}, copies of tests/fixtures/handlers/ (a
    run's caches stay out of the source tree)."""
    root = tmp_path_factory.mktemp("emulator-functions")
    return {name: shutil.copytree(HANDLERS / name, root / name) for name in ("faults", "initfail")}


@pytest.fixture(scope="session")
def emulator_lambda_client():
    """A factory: a boto3 Lambda client for an emulator endpoint, no retries."""
    import boto3
    from botocore.config import Config

    def make(endpoint: str, read_timeout: float = 30.0):
        return boto3.client(
            "lambda",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}, read_timeout=read_timeout, connect_timeout=5),
        )

    return make


@pytest.fixture(scope="session")
def emulator_descendants():
    """A function: the pids of every process below a pid (an emulator's
    fork-server and environments)."""
    import psutil

    def descendants(pid: int) -> set:
        try:
            return {p.pid for p in psutil.Process(pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    return descendants
