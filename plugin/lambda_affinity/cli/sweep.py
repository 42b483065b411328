"""`lambda-affinity sweep`: simulate's scenario at each value of one factor (sim.sweep runs it)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from functools import partial

from ..core.reproduce import reproduce
from ..files import check_output_target, write_text
from ..platform.distributions import distribution_option
from ..sim.simulate import Scenario
from ..sim.sweep import MAX_POINTS, SPREADS, Factor, Sweep, check_cost, parse_vary
from ..sim.sweep_files import SWEEP_FILES, describe, render_points, scenario_doc, sweep_files
from .executors import add_executor_options, executor_from_args, progress_bar
from .managed_options import FUNCTION_FIELDS, add_managed_options
from .options import (
    FUNCTION_OPTIONS,
    MODEL_OPTIONS,
    SCENARIO_FIELDS,
    add_function_options,
    add_miss_cost_options,
    add_model_options,
    add_random_seed,
    add_scenario_options,
    duration,
    price_from_args,
    scenario_from_args,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="vary one scenario option over a list or range; chart the rates against it",
        description="Simulate a scenario (options as simulate) at each value of one factor, --runs "
        "times each, and write sweep.csv, sweep.json, sweep.html and sweep.svg: max-share, "
        "warm-cache rate and cold starts per request against the factor, with the "
        "spread across runs (docs/sweep.md).",
    )
    p.add_argument(
        "--vary",
        required=True,
        metavar="NAME=VALUES",
        help="the factor, a simulate option without its dashes, and its values: a list (users=1,10,100; "
        "policy=mru,partitioned; model=a.yaml,b.yaml) or a range: START..STOP:step:S, "
        f"START..STOP:lin:N, START..STOP:log:N (users=1..1000:log:7); at most {MAX_POINTS} points",
    )
    factors = add_plan_and_scenario_options(p, "point", "run the points' runs")
    p.set_defaults(func=run, factor_actions=factors)


def add_plan_and_scenario_options(p: argparse.ArgumentParser, what: str, runs_help: str) -> list[argparse.Action]:
    """A plan's options (add_plan_options), every option of the scenario its points run (returned: the
    factors a sweep may vary), the miss cost's and the executor's: sweep's and compare's, alike."""
    add_plan_options(p, what)
    factors = add_scenario_options(p) + add_function_options(p) + add_model_options(p) + add_managed_options(p)
    add_miss_cost_options(p)
    add_executor_options(p, runs_help)
    return factors


def add_plan_options(p: argparse.ArgumentParser, what: str = "point") -> None:
    """--out, --runs, --random-seed, --spread, --max-invocations: how a plan of points runs (sweep, compare)."""
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the four files (made if missing)")
    p.add_argument("--runs", type=int, default=3, help=f"runs per {what}, each with its own seed (default %(default)s)")
    add_random_seed(
        p, 1, f"base random seed; run r's seed derives from it and is the same at every {what} (default %(default)s)"
    )
    p.add_argument(
        "--spread",
        choices=SPREADS,
        default="minmax",
        help="the band around each mean: min..max over runs, or mean +- one sd (default %(default)s)",
    )
    p.add_argument(
        "--max-invocations",
        type=float,
        default=20e6,
        metavar="N",
        help=f"refuse a {'sweep' if what == 'point' else 'comparison'} estimated above N simulated invocations "
        "(default %(default).0f)",
    )


def _kind(action: argparse.Action) -> str:
    if action.type is int:
        return "int"
    if action.type is duration:
        return "duration"
    if action.type is distribution_option:
        return "random_duration"
    if isinstance(action, argparse.BooleanOptionalAction):
        return "bool"
    if action.type is float:
        return "float"
    return "distribution" if action.metavar == "DIST" else "text"


def _sweep_factors(actions: list[argparse.Action]) -> dict[str, tuple[Factor, str]]:
    """name -> (sweep.Factor, argparse dest), from the options themselves:
    `keep-alive`, and the model field (`keep-alive-s`) as an alias."""
    model_fields = {flag: field for flag, field, _ in MODEL_OPTIONS}
    function_fields = {**{flag: field for flag, field, _ in FUNCTION_OPTIONS}, **FUNCTION_FIELDS}
    out = {}
    for action in actions:
        flag = action.option_strings[0]
        if flag in model_fields:
            field = f"model.{model_fields[flag]}"
        elif flag in function_fields:
            field = f"function.{function_fields[flag]}"
        else:
            field = SCENARIO_FIELDS.get(action.dest, action.dest)  # `--model FILE`: the field `model`
        factor = Factor(flag[2:], _kind(action), tuple(action.choices) if action.choices else None, field)
        alias = model_fields.get(flag) or function_fields.get(flag) or flag[2:]
        for name in {flag[2:], alias.replace("_", "-")} | {other[2:] for other in action.option_strings}:
            out[name] = (factor, action.dest)
    return out


def _say(command: str, message: str) -> None:
    print(f"lambda-affinity {command}: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    price = price_from_args(args)
    known = _sweep_factors(args.factor_actions)
    vary = parse_vary(args.vary, {name: factor for name, (factor, _) in known.items()})
    if vary.factor.field == "function.per_environment_max_concurrency" and args.env_concurrency is None:
        args.env_concurrency = vary.values[0]  # every point runs on Managed Instances: so does the base
    base = scenario_from_args(args)
    # a model file read at each point, the options given still overriding it, as simulate --model would
    at = partial(_scenario_with_model, args) if vary.factor.field == "model" else None
    plan = Sweep.over(vary, base, runs=args.runs, base_seed=args.seed, price=price, at=at)
    options = {"vary": args.vary, "runs": args.runs, "spread": args.spread, "model_file": args.model}
    return run_plan(args, plan, base, "sweep", options)


def run_plan(args: argparse.Namespace, plan: Sweep, base: Scenario, command: str, options: dict) -> int:
    """Run a sweep's plan (sweep's, or compare's over strategies), write its four files to --out (named
    `{command}.csv` ...) and print its table."""
    vary, price = plan.vary, plan.price
    cost = plan.cost()
    say = partial(_say, command)
    say(
        f"{cost['points']} points x {cost['runs']} runs: {cost['user_seconds']:,.0f} user-seconds "
        f"(users x duration), about {cost['invocations']:,.0f} invocations"
    )
    check_cost(cost, args.max_invocations)
    names = [name.replace("sweep", command, 1) for name in SWEEP_FILES]
    for name in names:  # the folder (made if missing) and each file, once the sweep is known good
        check_output_target(os.path.join(args.out, name))
    started = time.perf_counter()
    runs = cost["points"] * cost["runs"]
    with (
        executor_from_args(args, tasks=runs, work=cost["invocations"]) as executor,
        progress_bar(f"{command} ({executor.jobs} jobs)", "runs", total=runs) as progress,
    ):
        done, tty = 0, sys.stderr.isatty()

        def heard(line: str) -> None:
            nonlocal done
            done += 1
            progress(done, runs)
            if not tty:  # a log keeps a line per run; a terminal has the bar
                say(line)

        points = plan.run(progress=heard, executor=executor)
    elapsed = time.perf_counter() - started
    description = describe(vary, base, args.runs, args.seed, args.model)
    files = sweep_files(
        vary,
        points,
        description=description,
        runs=args.runs,
        base_seed=args.seed,
        spread=args.spread,
        scenario=scenario_doc(base, vary.factor),
        cost=cost,
        price=price,
        reproduce=reproduce(command, args.seed, options, dataclasses.asdict(base)),
        title=f"lambda-affinity {command}: {vary.factor.name}",
    )
    for name, text in zip(names, files.values(), strict=True):  # each whole or not at all
        write_text(os.path.join(args.out, name), text, newline="")
    print(render_points(vary, points, args.spread))
    print(
        f"{description}\nwrote {', '.join(os.path.join(args.out, n) for n in names)} "
        f"({cost['points'] * cost['runs']} runs simulated in {elapsed:.1f} s)"
    )
    return 0


def _scenario_with_model(args: argparse.Namespace, path: str) -> Scenario:
    return scenario_from_args(args, model_path=path)
