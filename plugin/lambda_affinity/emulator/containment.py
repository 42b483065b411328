"""Keep function code away from the processes that run it.

Function code runs as the user who started the emulator, so by default it
could read `/proc/<pid>/environ` and `/proc/<pid>/mem` of the emulator and of
the Locust process that embeds it, which hold the user's real AWS
credentials. A non-dumpable process's /proc entries can only be opened by a
process with CAP_SYS_PTRACE, and environment processes have no capabilities
(runtimes/zygote.py drops them), so the reads fail with EACCES/EPERM.

    from lambda_affinity.emulator.containment import make_undumpable
    make_undumpable()    # in any process that starts or embeds the emulator

Linux only (prctl through ctypes); elsewhere a no-op that logs one line.
"""

from __future__ import annotations

import ctypes
import logging
import sys

PR_SET_DUMPABLE = 4

log = logging.getLogger("lambda_affinity.emulator")


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def make_undumpable() -> bool:
    """Make this process non-dumpable: same-user processes without
    CAP_SYS_PTRACE can no longer read its environment or memory (nor attach a
    debugger; no core dumps). True when it holds; idempotent."""
    prctl = _prctl()
    if prctl is None:
        log.info(
            "lambda-affinity: cannot make this process non-dumpable on %s: function code run by the emulator "
            "could read its environment",
            sys.platform,
        )
        return False
    if prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.info("lambda-affinity: prctl(PR_SET_DUMPABLE, 0) failed (errno %d)", ctypes.get_errno())
        return False
    return True
