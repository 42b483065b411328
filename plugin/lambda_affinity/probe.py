"""Old import path of core/reply.py (the probe reply contract), kept for existing locustfiles and scripts."""

from __future__ import annotations

from .core.reply import (
    MAX_ENV_ID_LEN,
    PROBE_VERSION,
    Observation,
    ProbeReplyError,
    function_error,
    http_failure,
    invoke_failure,
    parse_reply,
    snippet,
)

__all__ = [
    "MAX_ENV_ID_LEN",
    "PROBE_VERSION",
    "Observation",
    "ProbeReplyError",
    "function_error",
    "http_failure",
    "invoke_failure",
    "parse_reply",
    "snippet",
]
