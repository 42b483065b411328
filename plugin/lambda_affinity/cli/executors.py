"""Where a command's runs execute (`--jobs`, `--executor`) and its progress bar.

One place for the choice: `--jobs N` worker processes on this machine (the
default: every core; 1 runs in this process), or `--executor dask://HOST:PORT`,
a Dask cluster's scheduler (the `dask` extra: `pip install
'lambda-affinity[dask]'`; distributed is imported only then). The runs are the
same wherever they execute (sim/executors.py says why), so the results are too.

The progress bar (tqdm) goes to stderr, only when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import LambdaAffinityError
from ..sim.executors import Done, Executor, Processes, Serial, TaskFn, call, cores

DASK = "dask://"
# Without --jobs, work estimated below this many simulated invocations (a
# second or two) runs in this process: starting workers would cost more.
SMALL_WORK = 300_000


class ExecutorError(LambdaAffinityError, ValueError):
    """A bad --jobs or --executor, or a cluster that cannot be reached."""


def add_executor_options(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("execution")
    g.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help=f"{what} in N worker processes (default: one per core, {cores()} here; 1: in this process); "
        "the results are the same for any N",
    )
    g.add_argument(
        "--executor",
        metavar="dask://HOST:PORT",
        help="run them on a Dask cluster instead (its scheduler's address; needs the `dask` extra)",
    )


class Dask:
    """A Dask cluster's workers, through distributed's Client; the shared data is scattered once."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client  # the optional extra: only here
        except ImportError:
            raise ExecutorError(
                "--executor dask://: the distributed package is not installed (pip install 'lambda-affinity[dask]')"
            ) from None
        try:
            self.client = Client(address, timeout=10, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(f"--executor {DASK}{address}: cannot reach the scheduler: {exc}") from None
        self.jobs = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))
        self._shared: Any = None
        self._scattered: Any = None

    def map(self, fn: TaskFn, tasks: Sequence, shared: Any = None, done: Done | None = None) -> list:
        from distributed import as_completed

        if shared is not None and shared is not self._shared:
            self._scattered = self.client.scatter(shared, broadcast=True, hash=False)
            self._shared = shared
        futures = self.client.map(
            _apply, [fn] * len(tasks), list(tasks), shared=self._scattered if shared is not None else None, pure=False
        )
        index = {f.key: i for i, f in enumerate(futures)}
        out: list = [None] * len(tasks)
        for future in as_completed(futures, loop=self.client.loop):  # this client's: it is not the default
            i = index[future.key]
            out[i] = future.result()
            if done is not None:
                done(i)
        return out

    def close(self) -> None:
        self.client.close()


def _apply(fn: TaskFn, task: Any, shared: Any = None) -> Any:
    return call(fn, shared, task)


@contextmanager
def executor_from_args(args: argparse.Namespace, tasks: int, work: float) -> Iterator[Executor]:
    """The executor the options ask for, closed on leaving. With no --jobs, a
    single task, or small `work` (simulated invocations), runs here."""
    ex: Executor
    if args.executor:
        if not args.executor.startswith(DASK) or not args.executor[len(DASK) :]:
            raise ExecutorError(f"--executor {args.executor!r}: expected {DASK}HOST:PORT")
        ex = Dask("tcp://" + args.executor[len(DASK) :])
    else:
        jobs = args.jobs
        if jobs is None:
            jobs = cores() if work >= SMALL_WORK else 1
        if jobs < 1:
            raise ExecutorError(f"--jobs {jobs}: must be >= 1")
        ex = Serial() if jobs == 1 or tasks <= 1 else Processes(min(jobs, tasks))
    try:
        yield ex
    finally:
        ex.close()


@contextmanager
def progress_bar(what: str, unit: str, estimate: str = "", total: int = 0) -> Iterator[Callable[[int, int], None]]:
    """A `(done, total)` callback drawing a bar on stderr (after the `estimate` line, if any),
    or doing nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from tqdm import tqdm

    if estimate:
        print(f"lambda-affinity {estimate}", file=sys.stderr, flush=True)

    bar = tqdm(total=total or None, desc=what, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
