"""Traces with outcomes made by the simulator with a known model (what calibrate reads)."""

from __future__ import annotations

import random

from lambda_affinity.core.tracker import OutcomeRecorder
from lambda_affinity.platform import ModelConfig
from lambda_affinity.sim.replay import replay
from lambda_affinity.sim.simulate import Scenario
from lambda_affinity.sim.trace import TraceRow, TraceWriter


def simulated_trace(path, model: ModelConfig, users: int, span: float, gap: float, seed: int) -> str:
    """A trace with outcomes, as the plugin writes it, of `users` calling every 0.2..`gap` s for `span` s."""
    rng = random.Random(seed)
    arrivals = []
    for u in range(users):
        t = rng.uniform(0, 1)
        while t < span:
            arrivals.append((1764547200.0 + t, f"u{u}"))
            t += rng.uniform(0.2, gap)
    arrivals.sort()
    recorder = OutcomeRecorder()
    replay(arrivals, Scenario(latency="0", service="0.05", model=model), seed=seed, tracker=recorder)
    with TraceWriter(str(path)) as w:
        for (send, user), (env, cold, hit) in zip(arrivals, recorder.outcomes, strict=True):
            recv = send + 0.05 + (model.init_delay_s if cold else 0.0)
            w.write_row(TraceRow(send, recv, user, user, env, cold, hit, True))
    return str(path)
