"""Old import path of core/tracker.py, kept for existing scripts."""

from __future__ import annotations

from .core.tracker import (
    DEFAULT_MAX_ENVS,
    ROW_FIELDS,
    Tracker,
    UserTally,
)

__all__ = [
    "DEFAULT_MAX_ENVS",
    "ROW_FIELDS",
    "Tracker",
    "UserTally",
]
