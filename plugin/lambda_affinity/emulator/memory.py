"""Lambda's memory limit, enforced: an environment that goes over its
function's memory size is killed, as Lambda does (docs/emulator.md says what
this misses). Runs on the emulator's one loop, beside the invocations."""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent

from .runtimes.proctree import descendants

MEMORY_POLL_S = 0.1  # how often the memory of running environments is checked
TREE_POLL_EVERY = 10  # ... and, every this many checks, the descendants' of those busy for
TREE_AFTER_S = 1.0  #   longer than this (a walk of its tree: not on every short call's account)


class MemoryWatch:
    """The sandboxes whose memory is checked (initializing or running), and the loop that checks them."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.watched: set = set()
        self._report = report  # where the line about a killed environment goes

    def add(self, sandbox) -> None:
        """Check its memory until it is idle again (called as it starts and at each invocation)."""
        self.watched.add(sandbox)

    def run(self, stopping: Callable[[], bool]) -> None:
        """Until `stopping()`: kill an environment that goes over its memory
        size. Its peak resident memory (VmHWM, so a spike between two checks
        counts) and, every second, the current memory of its descendants when
        its invocation has run for a while."""
        ticks = 0
        while not stopping():
            gevent.sleep(MEMORY_POLL_S)
            if not self.watched:
                continue
            ticks += 1
            long_running = set()
            if ticks % TREE_POLL_EVERY == 0:
                since = time.monotonic() - TREE_AFTER_S
                long_running = {sb for sb in self.watched if sb.current is not None and sb.current.started < since}
            for sandbox in list(self.watched):
                used = sandbox.peak_memory_mb() or 0
                if sandbox in long_running and sandbox.pid is not None:
                    used = max(used, tree_rss_mb(sandbox.pid))
                if used > sandbox.fn.memory and not sandbox.out_of_memory:
                    self._report(f"{sandbox.log_prefix}memory {used} MB over its {sandbox.fn.memory} MB: killed")
                    sandbox.over_memory()
                if not sandbox.watched():
                    self.watched.discard(sandbox)


def tree_rss_mb(pid: int) -> int:
    """Resident memory of a process and all its descendants, MB (shared pages
    counted in each). Walks only this tree (proctree), not all of /proc: this
    runs on the emulator's one loop, and the machine may hold 1,000s of processes."""
    import psutil

    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            total += psutil.Process(p).memory_info().rss
        except psutil.Error:
            pass
    return total >> 20
