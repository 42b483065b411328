"""The `lambda-affinity` command: one subcommand per part."""

from __future__ import annotations

import argparse
import os
import sys

from ..aws import deploy
from ..emulator import cli as emulator_cli
from ..errors import LambdaAffinityError
from . import azure, calibrate, compare, layer, logs, simulate, sweep, traces


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's default in its help, as ArgumentDefaultsHelpFormatter does, but not where
    there is none to show (None, a flag's False) or the help already says it in its own words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or "default" in text
        ):
            return action.help
        return f"{text} (default %(default){'g' if isinstance(default, float) else 's'})".lstrip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambda-affinity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    simulate.add_parser(sub)
    sweep.add_parser(sub)
    compare.add_parser(sub)
    calibrate.add_parser(sub)
    traces.add_parser(sub)
    azure.add_parser(sub)
    logs.add_parser(sub)
    emulator_cli.add_parser(sub)
    deploy.add_parser(sub)
    layer.add_parser(sub)
    # Listed for --help; main() hands its arguments to Locust untouched.
    sub.add_parser(
        "locust",
        help="run Locust with the lambda-affinity plugin loaded, so its --affinity-* "
        "options work and show in `lambda-affinity locust --help`",
        add_help=False,
    )
    for command in sub.choices.values():
        command.formatter_class = DefaultsHelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. An error raised on purpose (LambdaAffinityError) is one line on stderr and
    exit 2; anything else is a bug and shows its traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["locust"]:
        # Imported only here: Locust's gevent patching must come before
        # anything else loads ssl or threading.
        from .. import locust_plugin

        return locust_plugin.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit, so a reader that went away is seen below
        return code
    except LambdaAffinityError as exc:
        parser.exit(2, f"lambda-affinity {args.command}: error: {exc}\n")
    except BrokenPipeError:
        # The reader stopped reading (`| head -2`): no traceback. Python's documented recipe: point stdout at
        # devnull so the interpreter's last flush cannot fail again, and exit 1 as Python does on EPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0
