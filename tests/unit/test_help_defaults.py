"""Every option's default shows in `--help`: lambda-affinity's subcommands (and the model options,
whose default is ModelConfig's) and the plugin's Locust options."""

from __future__ import annotations

import argparse
import re

import pytest
from locust.argument_parser import get_parser

from lambda_affinity.cli import build_parser
from lambda_affinity.cli.options import MODEL_OPTIONS
from lambda_affinity.locust_plugin import options as plugin_options
from lambda_affinity.platform import ModelConfig

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def shown(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's help as --help prints it (its %(default)s expanded), on one line."""
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    return " ".join(text.split())


def says(text: str, default) -> bool:
    if isinstance(default, bool):  # a switch (--X / --no-X): on or off
        return f"default {'on' if default else 'off'}" in text
    if isinstance(default, (int, float)):
        return any(float(n) == default for n in NUMBER.findall(text))
    return str(default) in text


def subcommands():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [(name, p) for name, p in sub.choices.items() if name != "locust"]


def with_defaults(parser):
    model = {flag: field for flag, field, _ in MODEL_OPTIONS}
    d = ModelConfig()
    for action in parser._actions:
        flag = action.option_strings[0] if action.option_strings else None
        if flag in model:
            default = getattr(d, model[flag])
            yield action, "none" if default is None else default  # None here: ModelConfig's (or the file's)
        elif flag and action.default not in (None, argparse.SUPPRESS) and not isinstance(action.default, bool):
            yield action, action.default


CASES = [
    (name, action.option_strings[0], action, default, p)
    for name, p in subcommands()
    for action, default in with_defaults(p)
]


@pytest.mark.parametrize("command, flag, action, default, parser", CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_every_lambda_affinity_option_shows_its_default(command, flag, action, default, parser):
    assert action.help and action.help is not argparse.SUPPRESS, f"{command} {flag} has no help"
    text = shown(parser, action)
    assert "default" in text and says(text, default), f"{command} {flag}: {text!r} does not show {default!r}"


def test_the_cases_cover_every_subcommand_and_the_model_options():
    commands = {c[0] for c in CASES}
    assert {"simulate", "sweep", "calibrate", "merge-traces", "deploy"} <= commands
    assert {"--keep-alive", "--duration", "--max-disorder", "--runs", "--users"} <= {c[1] for c in CASES}


def test_every_plugin_option_with_a_default_shows_it():
    parser = get_parser()
    plugin_options.add_arguments(parser)
    flags = {flags[0] for flags, _ in plugin_options.OPTIONS}
    checked = 0
    for action in parser._actions:
        if not action.option_strings or action.option_strings[0] not in flags:
            continue
        if action.default in (None, argparse.SUPPRESS) or isinstance(action.default, bool):
            continue
        text = shown(parser, action)
        assert "default" in text and says(text, action.default), f"{action.option_strings[0]}: {text!r}"
        checked += 1
    assert checked >= 1  # --affinity-function's default, probe
