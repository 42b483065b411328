"""Where the tests' real fixture files live: handlers, locustfiles, emulator configs and helper scripts."""

from __future__ import annotations

import pathlib

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
HANDLERS = FIXTURES / "handlers"
LOCUSTFILES = FIXTURES / "locustfiles"
CONFIGS = FIXTURES / "configs"
SCRIPTS = FIXTURES / "scripts"
