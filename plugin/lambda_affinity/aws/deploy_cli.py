"""`lambda-affinity deploy` / `destroy`: their options, and what they print.

deploy packages probe_lambda/ into a zip, creates or updates the deployment
(deployer.py: role, function, Function URL, its resource policy) and prints
the URL and the `locust` command to run against it; destroy removes what
deploy created. Every failure is one line on stderr (exit 1); --debug adds
the traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import traceback

from botocore.exceptions import BotoCoreError

from ..core import limits
from ..platform.distributions import duration_option
from .deployer import Deployer
from .errors import DEBUG_ADVICE, DeployError, Step, explain, failure_of
from .packaging import build_zip
from .spec import AUTH_TYPE, DEFAULT_NAME, MEMORY_MB, PROBE_ENV, RUNTIME, TIMEOUT_S, Deployed, Spec

LOCUSTFILE = "locustfiles/function_url.py"
SIGV4_OPTION = "--affinity-sigv4"


def locust_command(deployed: Deployed, default_region: str | None, profile: str | None) -> str:
    """The exact command to run the Function URL locustfile against the deployment."""
    env = []
    if profile:
        env.append(f"AWS_PROFILE={shlex.quote(profile)}")
    if deployed.auth_type == "AWS_IAM" and default_region != deployed.region:
        env.append(f"AWS_REGION={deployed.region}")  # the signer's region must be the function's
    cmd = ["locust", "-f", LOCUSTFILE, "--host", deployed.function_url]
    if deployed.auth_type == "AWS_IAM":
        cmd.append(SIGV4_OPTION)
    return " ".join(env + [shlex.quote(c) for c in cmd])


# -- command line --------------------------------------------------------------


def _session(args):
    from .sigv4 import chain_session

    try:
        return chain_session(args.profile, args.region)
    except ValueError as exc:
        raise DeployError(str(exc)) from None


def _run(args, body) -> int:
    """body(), with every failure one message on stderr and exit code 1; the traceback only with --debug."""
    try:
        return body()
    except Exception as exc:  # the user gets a line, --debug the whole story
        if args.debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        if isinstance(exc, DeployError):
            message = str(exc)
        elif isinstance(exc, BotoCoreError):  # outside any step: the config, the endpoint...
            message = explain(Step(f"{args.command} setting up AWS", "-"), failure_of(exc))
        else:
            message = f"unexpected {type(exc).__name__}: {exc} ({DEBUG_ADVICE})"
        print(f"lambda-affinity {args.command}: error: {message}", file=sys.stderr)
        return 1


def _env_pair(text: str):
    name, sep, value = text.partition("=")
    if not sep or name not in PROBE_ENV:
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=VALUE with NAME one of {', '.join(PROBE_ENV)}")
    return name, value


def _cmd_deploy(args) -> int:
    def body() -> int:
        env = {k: str(v) for k, v in PROBE_ENV.items()}
        env.update(dict(args.env or []))
        spec = Spec(
            name=args.name,
            memory=args.memory,
            timeout=args.timeout,
            auth_type=args.auth_type,
            runtime=args.runtime,
            role_arn=args.role_arn,
            invoker=args.invoker,
            env=env,
            layer=args.layer,
        )
        package = build_zip()
        session = _session(args)
        deployer = Deployer(session, wait_s=args.wait, profile=args.profile)
        deployed = deployer.deploy(spec, package)
        command = locust_command(deployed, _region_without_flag(args.profile), args.profile)
        if args.json:
            json.dump(
                {
                    "function_name": deployed.function_name,
                    "function_url": deployed.function_url,
                    "region": deployed.region,
                    "auth_type": deployed.auth_type,
                    "layer_arn": deployed.layer_arn,
                    "changes": deployed.messages,
                    "locust_command": command,
                },
                sys.stdout,
            )
            print()
            return 0
        for change in deployed.messages or ["nothing to change: already up to date"]:
            print(f"  {change}")
        print(
            f"Function:     {deployed.function_name} ({deployed.region}, {spec.runtime}, {spec.memory} MB, "
            f"timeout {spec.timeout} s)"
        )
        print(f"Function URL: {deployed.function_url}  (auth type {deployed.auth_type})")
        if deployed.layer_arn:
            print(f"Layer:        {deployed.layer_arn}  (the affinity wrapper; attach it to your own functions too)")
        print("Run:")
        print(f"  {command}")
        if deployed.auth_type == "NONE":
            print("The URL is public: anyone who finds it can invoke the function at your expense.")
        print(f"Remove it with: {deployer.destroy_command(deployed.function_name)}")
        return 0

    return _run(args, body)


def _region_without_flag(profile: str | None) -> str | None:
    """The region Locust's signer finds on its own (no --region there); None if none or malformed."""
    from .sigv4 import chain_region

    try:
        found = chain_region(None, profile)
    except ValueError:
        return None
    return found.name if found else None


def _cmd_destroy(args) -> int:
    def body() -> int:
        deployer = Deployer(_session(args), wait_s=0, profile=args.profile)
        removed = deployer.destroy(args.name)
        if not removed:
            print(
                f"nothing to destroy: no function or role of lambda-affinity deploy named {args.name} "
                f"in {deployer.region}"
            )
            return 0
        for change in removed:
            print(f"  {change.message}")
        logs = deployer.cli_command("logs", "delete-log-group", "--log-group-name", f"/aws/lambda/{args.name}")
        print(
            f"Left alone: the log group /aws/lambda/{args.name} (Lambda made it, not deploy); delete it with `{logs}`"
        )
        return 0

    return _run(args, body)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=DEFAULT_NAME, help="function name (default %(default)s)")
    p.add_argument(
        "--region",
        help="AWS region (default, as the AWS CLI v2: AWS_REGION, AWS_DEFAULT_REGION, then the profile's region)",
    )
    p.add_argument("--profile", help="AWS profile (default: boto3's chain)")
    p.add_argument("--debug", action="store_true", help="on an error, print the Python traceback too")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "deploy",
        help="deploy the probe to AWS (function, Function URL, role)",
        description="Create or update the probe Lambda, its Function URL and execution role "
        "with boto3, then print the URL and the locust command to run against it.",
    )
    _common(p)
    p.add_argument("--memory", type=int, default=MEMORY_MB, metavar="MB", help="memory size (default %(default)s)")
    p.add_argument("--timeout", type=int, default=TIMEOUT_S, metavar="S", help="function timeout (default %(default)s)")
    p.add_argument(
        "--auth-type",
        choices=limits.URL_AUTH_TYPES,
        default=AUTH_TYPE,
        help="Function URL auth: AWS_IAM needs SigV4-signed requests, NONE is public (default %(default)s)",
    )
    p.add_argument("--runtime", default=RUNTIME, help="Python runtime (default %(default)s)")
    p.add_argument("--role-arn", help="use this execution role instead of creating one")
    p.add_argument(
        "--invoker",
        metavar="ACCOUNT_OR_ARN",
        help="AWS_IAM: principal the URL's resource policy admits (default: this account)",
    )
    p.add_argument(
        "--env",
        action="append",
        type=_env_pair,
        metavar="NAME=VALUE",
        help=f"probe setting, repeatable: {', '.join(PROBE_ENV)}",
    )
    p.add_argument(
        "--wait",
        type=duration_option,
        default=300.0,
        metavar="DURATION",
        help="how long to wait for the function to be active: seconds, or 5m... (default %(default)g)",
    )
    p.add_argument(
        "--layer",
        action="store_true",
        help="publish the affinity wrapper's layer (<name>-wrapper) and run the probe through it, as an app "
        "wrapped by configuration runs (docs/own-function.md)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_deploy)

    p = sub.add_parser(
        "destroy",
        help="remove what deploy created (and nothing else)",
        description="Delete the probe function and the role deploy created for it. "
        "Refuses functions deploy did not create.",
    )
    _common(p)
    p.set_defaults(func=_cmd_destroy)
