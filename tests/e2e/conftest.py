"""End-to-end tests: real processes (emulator, Locust, moto's server, Chromium).

Every test collected under tests/e2e is marked `slow` here, so `-m "not slow"` runs tests/unit only and no
file in this folder needs its own marker.
"""

from __future__ import annotations

import pathlib

import pytest
from locust_runs import Cluster

E2E = pathlib.Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection reads the markers
def pytest_collection_modifyitems(items):
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(*args, **kwargs):
        c = Cluster(tmp_path, *args, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        assert c.close() == []
