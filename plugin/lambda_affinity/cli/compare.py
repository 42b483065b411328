"""`lambda-affinity compare`: one scenario under each strategy (on-demand, reserved concurrency, shards...)
side by side, as a sweep over the strategies (sim.compare) with sweep's files and table."""

from __future__ import annotations

import argparse

from ..sim.compare import STRATEGIES, compare_plan, pick
from .options import price_from_args, scenario_from_args
from .sweep import add_plan_and_scenario_options, run_plan


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="strategies side by side (on-demand, provisioned, Managed Instances, reserved, shards) for one scenario",
        description="Simulate one scenario (options as simulate; the seed's by default) under each strategy, "
        "--runs times each with the same seeds, and write compare.csv, compare.json, compare.html and "
        "compare.svg to --out: max-share, warm-cache rate, cold starts per request and, with --miss-cost-*, "
        "what the cache saves per million requests, per strategy (docs/sweep.md). Strategies: "
        + "; ".join(f"{s.name}: {s.what}" for s in STRATEGIES)
        + ".",
    )
    p.add_argument(
        "--strategies",
        metavar="NAME,...",
        help=f"the strategies to compare, in this order (default all: {','.join(s.name for s in STRATEGIES)})",
    )
    add_plan_and_scenario_options(p, "strategy", "run the strategies' runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    price = price_from_args(args)
    strategies = pick([n.strip() for n in args.strategies.split(",")] if args.strategies else None)
    base = scenario_from_args(args)
    plan = compare_plan(base, strategies, runs=args.runs, base_seed=args.seed, price=price)
    options = {"strategies": list(plan.vary.values), "runs": args.runs, "spread": args.spread, "model_file": args.model}
    return run_plan(args, plan, base, "compare", options)
