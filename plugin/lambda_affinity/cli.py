"""The `lambda-affinity` command: one subcommand per part."""
from __future__ import annotations

import argparse
import json
import sys
import time

from . import deploy
from .emulator import cli as emulator_cli
from .platform import POLICIES, ConfigError, ModelConfig


def _add_model_options(p: argparse.ArgumentParser) -> None:
    d = ModelConfig()
    g = p.add_argument_group("platform model")
    g.add_argument("--policy", choices=POLICIES, default=d.policy, help=f"placement of invocations on idle environments (default {d.policy})")
    g.add_argument("--routers", type=int, default=d.routers, help=f"routers for the partitioned policy (default {d.routers})")
    g.add_argument("--router-policy", choices=("mru", "lru", "random"), default=d.router_policy, help="placement inside each router")
    g.add_argument("--init-delay", type=float, default=d.init_delay_s, metavar="S", help=f"modelled cold-start delay, seconds (default {d.init_delay_s})")
    g.add_argument("--busy-overhead", type=float, default=d.busy_overhead_s, metavar="S", help=f"time an environment stays reserved after each reply, seconds (default {d.busy_overhead_s:g})")
    g.add_argument("--keep-alive", type=float, default=d.keep_alive_s, metavar="S", help=f"idle keep-alive, seconds (default {d.keep_alive_s:g})")
    g.add_argument("--max-lifetime", type=float, default=d.max_lifetime_s, metavar="S", help=f"maximum environment lifetime, seconds (default {d.max_lifetime_s:g})")
    g.add_argument("--account-concurrency", type=int, default=d.account_concurrency, help="account concurrency limit")
    g.add_argument("--max-environments", type=int, default=None, help="cap on live environments")
    g.add_argument("--scale-limit", type=int, default=d.scale_limit, help=f"new environments per function per --scale-window (default {d.scale_limit})")
    g.add_argument("--scale-window", type=float, default=d.scale_window_s, metavar="S", help=f"window of --scale-limit, seconds (default {d.scale_window_s:g})")


def _model_from_args(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(
        policy=args.policy, routers=args.routers, router_policy=args.router_policy,
        init_delay_s=args.init_delay, busy_overhead_s=args.busy_overhead, keep_alive_s=args.keep_alive,
        max_lifetime_s=args.max_lifetime, account_concurrency=args.account_concurrency,
        max_environments=args.max_environments, scale_limit=args.scale_limit, scale_window_s=args.scale_window,
    )


def _simulate_parser(sub) -> None:
    from .simulate import Scenario

    d = Scenario()
    p = sub.add_parser("simulate", help="predict per-user hit rates in virtual time",
                       description="Replay user activity against the platform model in virtual time.")
    p.add_argument("--users", type=int, default=d.users)
    p.add_argument("--duration", type=float, default=d.duration_s, metavar="S", help="seconds users keep sending")
    p.add_argument("--think", default=d.think, help="think time: A:B uniform seconds, exp:MEAN, or fixed seconds (default %(default)s)")
    p.add_argument("--burst", type=int, default=d.burst, help="requests per session (0: one endless session)")
    p.add_argument("--gap", default=d.gap, help="pause between sessions, same forms as --think (default %(default)s)")
    p.add_argument("--start", choices=("together", "spread"), default=d.start, help="all users at t=0, or after a first think")
    p.add_argument("--latency", default=d.latency, help="network round trip, seconds (default %(default)s)")
    p.add_argument("--service", default=d.service, help="time on the environment per invocation, seconds (default %(default)s)")
    p.add_argument("--runs", type=int, default=1, help="independent runs; per-user rates are pooled")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of the table")
    _add_model_options(p)
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import Scenario, run_many
    from .summary import rates_line, render_table, summarize

    scenario = Scenario(
        users=args.users, duration_s=args.duration, think=args.think, burst=args.burst, gap=args.gap,
        start=args.start, latency=args.latency, service=args.service, model=_model_from_args(args),
    )
    started = time.perf_counter()
    tracker, totals = run_many(scenario, runs=args.runs, seed=args.seed)
    elapsed = time.perf_counter() - started
    rows = tracker.rows()
    doc = summarize(rows, tracker.environments)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(render_table(doc, title="Simulated Lambda affinity"))
    if len(rows) <= 50:
        print(rates_line(rows))
    print(f"{totals['invocations']} invocations, {totals['throttled']} throttled, simulated in {elapsed:.2f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambda-affinity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _simulate_parser(sub)
    emulator_cli.add_parser(sub)
    deploy.add_parser(sub)
    # Listed for --help; main() hands its arguments to Locust untouched.
    sub.add_parser("locust", help="run Locust with the lambda-affinity plugin loaded, so its --affinity-* "
                                  "options work and show in `lambda-affinity locust --help`", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["locust"]:
        # Imported only here: Locust's gevent patching must come before
        # anything else loads ssl or threading.
        from . import locust_plugin

        return locust_plugin.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError) as exc:
        parser.exit(2, f"lambda-affinity {args.command}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
