"""Where independent runs execute: in this process, or in worker processes.

calibrate (candidates x replays), sweep (points x runs) and `simulate --runs`
hand an executor a list of tasks; each task is `fn(shared, task)`, with `fn`
a module-level function (workers import it by name, so any start method works,
spawn included) and `shared` the data every task reads (a trace's arrivals),
sent to each worker once, not once per task. Results come back in task order,
and every random draw of a task comes from the seed the task carries, so the
results do not depend on where, in what order or on how many workers the tasks
ran: `--jobs 4` gives what `--jobs 1` gives.

cli/executors.py chooses one from `--jobs` and `--executor` (a Dask cluster,
whose client is an optional extra and must not be imported here: sim stays
pure of what the distributed runtime brings in).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol

from ..errors import LambdaAffinityError

TaskFn = Callable[[Any, Any], Any]
Done = Callable[[int], None]  # hears the index of each task that finished


class Executor(Protocol):
    """Runs `fn(shared, task)` for every task; results in task order. `done` hears each finished task."""

    jobs: int

    def map(self, fn: TaskFn, tasks: Sequence, shared: Any = None, done: Done | None = None) -> list: ...

    def close(self) -> None: ...


class Serial:
    """Every task here, one after another (`--jobs 1`)."""

    jobs = 1

    def map(self, fn: TaskFn, tasks: Sequence, shared: Any = None, done: Done | None = None) -> list:
        out = []
        for i, task in enumerate(tasks):
            out.append(fn(shared, task))
            if done is not None:
                done(i)
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A worker process's copy of the shared data (installed once, when it starts).
_SHARED: Any = None


def _install(shared: Any, parent: int) -> None:
    global _SHARED
    _SHARED = shared
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: int) -> None:
    """A worker ends when the process that started it is gone (killed: it cannot shut its pool down),
    rather than replay on for nobody. `parent` is passed in: it may be gone before this worker starts."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


class TaskError(LambdaAffinityError, RuntimeError):
    """A task's deliberate error, carried back from a worker as its one line (an
    error class with its own constructor arguments does not survive pickling)."""


def call(fn: TaskFn, shared: Any, task: Any) -> Any:
    """`fn(shared, task)` in a worker: a deliberate error comes back as a TaskError."""
    try:
        return fn(shared, task)
    except LambdaAffinityError as exc:
        raise TaskError(str(exc)) from None


def _call(fn: TaskFn, task: Any) -> Any:
    return call(fn, _SHARED, task)


class Processes:
    """`jobs` worker processes on this machine, started by spawn (no state
    inherited by accident) when first needed and kept for the next map with
    the same shared data; a map with other shared data starts fresh workers."""

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None
        self._shared: Any = None

    def _pool_for(self, shared: Any) -> ProcessPoolExecutor:
        if self._pool is None or shared is not self._shared:
            self.close()
            self._pool = ProcessPoolExecutor(
                self.jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_install,
                initargs=(shared, os.getpid()),
            )
            self._shared = shared
        return self._pool

    def map(self, fn: TaskFn, tasks: Sequence, shared: Any = None, done: Done | None = None) -> list:
        if len(tasks) <= 1:  # not worth a worker's start
            return Serial().map(fn, tasks, shared, done)
        pool = self._pool_for(shared)
        futures = {pool.submit(_call, fn, task): i for i, task in enumerate(tasks)}
        out: list = [None] * len(tasks)
        try:
            for future in as_completed(futures):
                i = futures[future]
                out[i] = future.result()
                if done is not None:
                    done(i)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._shared = None

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def heaviest_first(
    executor: Executor, fn: TaskFn, tasks: Sequence, weights: Sequence[float], done: Done | None = None
) -> list:
    """`executor.map` with the heaviest tasks started first (a pool's workers then finish together, not
    one of them alone on a big task at the end); results and `done`'s indices in the tasks' own order."""
    order = sorted(range(len(tasks)), key=lambda i: -weights[i])  # stable: equal weights keep their order
    got = executor.map(fn, [tasks[i] for i in order], done=None if done is None else lambda k: done(order[k]))
    out: list = [None] * len(tasks)
    for k, i in enumerate(order):
        out[i] = got[k]
    return out


def cores() -> int:
    """The cores this process may run on (the default --jobs)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
