"""sim.executors.heaviest_first: the heaviest tasks go out first, the results come back in task order."""

from __future__ import annotations

from lambda_affinity.sim.executors import Serial, heaviest_first


class _Order(Serial):
    """Runs here, noting the order the tasks were handed out."""

    def __init__(self) -> None:
        self.given: list = []

    def map(self, fn, tasks, shared=None, done=None):
        self.given = list(tasks)
        return super().map(fn, tasks, shared, done)


def _square(_shared, task):
    return task * task


def test_heaviest_go_first_and_results_keep_the_tasks_order():
    ex, heard = _Order(), []
    tasks = [1, 2, 3, 4, 5]
    out = heaviest_first(ex, _square, tasks, weights=[1, 1000, 10, 1000, 100], done=heard.append)
    assert ex.given == [2, 4, 5, 3, 1]  # heaviest first, equal weights in their own order
    assert out == [1, 4, 9, 16, 25]
    assert sorted(heard) == [0, 1, 2, 3, 4] and heard[0] == 1  # done hears the tasks' own indices
