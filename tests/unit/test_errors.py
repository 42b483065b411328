"""Every error the package raises on purpose derives from LambdaAffinityError, so a command catches that
one class (one line, exit 2) and anything else, a bug, keeps its traceback."""

import importlib
import inspect
import pkgutil

import pytest

import lambda_affinity
from lambda_affinity.errors import LambdaAffinityError

# Exception classes that are not errors for a person to read, with the reason.
NOT_ERRORS = {
    # control flow inside the emulator's servers, never raised out of them
    "lambda_affinity.emulator.runtime_api._Wake": "wakes a waiting /next; never leaves the Runtime API",
    "lambda_affinity.emulator.wire._Stop": "ends a connection's loop; never leaves wire.py",
    "lambda_affinity.emulator.aws_shapes.Refused": "carries AWS's refusal to the answer; never leaves the front end",
}
# emulator/runtimes/ is no package (no __init__): its scripts run inside an environment's own
# process, standalone, and must not import the package; the walk does not reach them.


def package_exceptions():
    """(qualified name, class) of every Exception subclass a module of the package defines."""
    found = {}
    for info in pkgutil.walk_packages(lambda_affinity.__path__, prefix="lambda_affinity."):
        if info.name.endswith(".__main__"):
            continue  # runs the command when imported
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == info.name:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_deliberate_exception_derives_from_lambda_affinity_error():
    found = package_exceptions()
    assert "lambda_affinity.platform.config.ConfigError" in found  # the walk reaches every layer
    stray = sorted(name for name, cls in found.items() if not issubclass(cls, LambdaAffinityError))
    assert set(stray) <= set(NOT_ERRORS), [name for name in stray if name not in NOT_ERRORS]


def test_the_listed_exceptions_still_exist():
    """A class renamed or removed leaves the list: it would excuse nothing."""
    assert set(NOT_ERRORS) <= set(package_exceptions())


def test_builtin_bases_are_kept():
    from lambda_affinity.core.reply import ProbeReplyError
    from lambda_affinity.emulator.forkserver import SpawnError
    from lambda_affinity.platform import ConfigError, UnknownFunction

    assert issubclass(ProbeReplyError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(UnknownFunction, KeyError) and issubclass(SpawnError, RuntimeError)


def test_the_command_prints_a_deliberate_error_as_one_line_and_lets_a_bug_through(monkeypatch, capsys):
    from lambda_affinity import cli
    from lambda_affinity.cli import simulate

    def refuse(args):
        raise LambdaAffinityError("--users: must be >= 1")

    monkeypatch.setattr(simulate, "run", refuse)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["simulate"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "lambda-affinity simulate: error: --users: must be >= 1\n"

    def bug(args):
        return {}["missing"]

    monkeypatch.setattr(simulate, "run", bug)
    with pytest.raises(KeyError):  # not turned into a one-line exit 2: its traceback shows
        cli.main(["simulate"])
