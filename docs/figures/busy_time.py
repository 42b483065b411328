"""Redraw docs/figures/busy-time.svg: the seed scenario's mean max-share
against the busy overhead (how long an environment stays reserved after its
reply, on top of the 3-9 ms handler time), for each placement policy.

    python docs/figures/busy_time.py [--runs 50] [--out docs/figures/busy-time.svg]

Prints the figures as a Markdown table too (docs/model.md quotes it).
Each point pools `--runs` independent simulated runs of the seed scenario
(10 users together, think U(0,1) s, 10 s, 60-100 ms round trip).
"""

from __future__ import annotations

import argparse
import os
import sys

from lambda_affinity.core.summary import summarize
from lambda_affinity.platform import ModelConfig
from lambda_affinity.sim.simulate import Scenario, run_many

OVERHEADS_MS = [0, 2, 5, 10, 15, 20, 25, 30, 40, 50]
SERIES = [  # label, model options, colour
    ("partitioned, 2 routers (default)", {"policy": "partitioned", "routers": 2}, "#1f77b4"),
    ("partitioned, 3 routers", {"policy": "partitioned", "routers": 3}, "#17becf"),
    ("mru (one pool)", {"policy": "mru"}, "#d62728"),
    ("lru", {"policy": "lru"}, "#2ca02c"),
    ("random", {"policy": "random"}, "#9467bd"),
]
SEED_MEAN, SEED_TOLERANCE = 0.43, 0.05


def measure(runs: int, seed: int = 7) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for label, options, _ in SERIES:
        means = []
        for ms in OVERHEADS_MS:
            scenario = Scenario(
                users=10, think="0:1", duration_s=10, model=ModelConfig(busy_overhead_s=ms / 1000, **options)
            )
            tracker, _ = run_many(scenario, runs=runs, seed=seed)
            means.append(summarize(tracker.rows(), tracker.environments)["hit_rate"]["mean"])
        out[label] = means
    return out


def svg(data: dict[str, list[float]], width: int = 640, height: int = 380) -> str:
    left, right, top, bottom = 56, 200, 20, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max, y_max = OVERHEADS_MS[-1], 0.7

    def x(ms: float) -> float:
        return left + plot_w * ms / x_max

    def y(rate: float) -> float:
        return top + plot_h * (1 - rate / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        # the seed's mean and the tolerance the model is held to (C5)
        f'<rect x="{left}" y="{y(SEED_MEAN + SEED_TOLERANCE):.1f}" width="{plot_w}" '
        f'height="{y(SEED_MEAN - SEED_TOLERANCE) - y(SEED_MEAN + SEED_TOLERANCE):.1f}" fill="#f3e3b5"/>',
        f'<line x1="{left}" x2="{left + plot_w}" y1="{y(SEED_MEAN):.1f}" y2="{y(SEED_MEAN):.1f}" '
        f'stroke="#b8860b" stroke-dasharray="4 3"/>',
        f'<text x="{left + plot_w - 4}" y="{y(SEED_MEAN - SEED_TOLERANCE) + 14:.1f}" text-anchor="end" '
        f'fill="#8a6508">seed 0.43 \u00b1 0.05</text>',
    ]
    for i in range(8):
        rate = i * 0.1
        parts.append(
            f'<line x1="{left - 4}" x2="{left + plot_w}" y1="{y(rate):.1f}" y2="{y(rate):.1f}" '
            f'stroke="#ddd"/><text x="{left - 8}" y="{y(rate) + 4:.1f}" text-anchor="end">{rate:.1f}</text>'
        )
    for ms in range(0, x_max + 1, 10):
        parts.append(f'<text x="{x(ms):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{ms}</text>')
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#333"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>'
    )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">busy overhead after each '
        f"reply, ms (on top of a 3-9 ms handler)</text>"
    )
    parts.append(
        f'<text transform="translate(16 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        f"mean per-user max-share</text>"
    )
    for n, (label, _, colour) in enumerate(SERIES):
        points = " ".join(f"{x(ms):.1f},{y(rate):.1f}" for ms, rate in zip(OVERHEADS_MS, data[label], strict=True))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for ms, rate in zip(OVERHEADS_MS, data[label], strict=True):
            parts.append(f'<circle cx="{x(ms):.1f}" cy="{y(rate):.1f}" r="2.5" fill="{colour}"/>')
        ly = top + 14 + 18 * n
        parts.append(
            f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 30}" y1="{ly - 4}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="2"/><text x="{left + plot_w + 34}" y="{ly}">{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def table(data: dict[str, list[float]]) -> str:
    lines = ["| policy | " + " | ".join(f"{ms} ms" for ms in OVERHEADS_MS) + " |", "|---|" + "---|" * len(OVERHEADS_MS)]
    for label, means in data.items():
        lines.append(f"| {label} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "busy-time.svg"))
    args = parser.parse_args(argv)
    data = measure(args.runs)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(svg(data))
    print(table(data))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
