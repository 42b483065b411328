"""Calls started at once from threads, for the emulator's tests of simultaneous invocations."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def together(n: int, call: Callable[[int], Any], timeout: float = 60, catch: tuple = ()) -> list:
    """`call(i)` for i in 0..n-1, each in its own thread, released together by a barrier; their results in
    order (an exception of a `catch` class is the result; None for a call still running after `timeout`)."""
    out: list = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        try:
            out[i] = call(i)
        except catch as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return out
