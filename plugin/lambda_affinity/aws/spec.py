"""What deploy makes: the probe function's settings (Spec), their defaults, and the names and tags it uses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..core import limits
from .errors import DeployError
from .layer import WRAPPER_HANDLER
from .rollback import Change

MANAGED_TAG = "lambda-affinity:managed"
FUNCTION_TAG = "lambda-affinity:function"
SID_PREFIX = "lambda-affinity-"
ROLE_PATH = "/lambda-affinity/"
DEFAULT_NAME = "lambda-affinity-probe"
# Defaults shared with probe_lambda/template.yaml (a test holds them equal).
RUNTIME = "python3.13"
HANDLER = "handler.handler"
MEMORY_MB = 128
TIMEOUT_S = 10
AUTH_TYPE = "AWS_IAM"
PROBE_ENV = {"AFFINITY_CACHE_SIZE": 10000, "AFFINITY_CACHE_TTL_S": 900, "AFFINITY_MISS_DELAY_MS": 0}
BASIC_EXECUTION = "arn:{partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_INVOKER = re.compile(r"^(\d{12}|arn:aws[a-z-]*:iam::\d{12}:(root|(role|user)/[\w+=,.@/-]+))$")


@dataclass
class Spec:
    name: str = DEFAULT_NAME
    memory: int = MEMORY_MB
    timeout: int = TIMEOUT_S
    auth_type: str = AUTH_TYPE
    runtime: str = RUNTIME
    role_arn: str | None = None
    invoker: str | None = None  # AWS_IAM: principal allowed to call the URL (default: this account)
    env: dict = field(default_factory=lambda: {k: str(v) for k, v in PROBE_ENV.items()})
    layer: bool = False  # --layer: publish the wrapper's layer and run the probe through it

    def check(self) -> None:
        if not limits.FUNCTION_NAME.match(self.name):
            raise DeployError(f"function name {self.name!r}: use 1-64 letters, digits, '-' or '_'")
        if not limits.MEMORY_MIN_MB <= self.memory <= limits.MEMORY_MAX_MB:
            raise DeployError(
                f"--memory {self.memory}: Lambda allows {limits.MEMORY_MIN_MB} to {limits.MEMORY_MAX_MB} MB"
            )
        if not limits.TIMEOUT_MIN_S <= self.timeout <= limits.TIMEOUT_MAX_S:
            raise DeployError(
                f"--timeout {self.timeout}: Lambda allows {limits.TIMEOUT_MIN_S} to {limits.TIMEOUT_MAX_S} seconds"
            )
        if self.auth_type not in limits.URL_AUTH_TYPES:
            raise DeployError(f"--auth-type {self.auth_type!r}: use AWS_IAM or NONE")
        if self.role_arn is not None and not _ROLE_ARN.match(self.role_arn):
            raise DeployError(
                f"--role-arn {self.role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
            )
        if self.invoker is not None and self.auth_type != "AWS_IAM":
            raise DeployError("--invoker only applies to --auth-type AWS_IAM (a NONE URL is public)")
        if self.invoker is not None and not _INVOKER.match(self.invoker):
            raise DeployError(
                f"--invoker {self.invoker!r}: give a 12-digit account id or an IAM ARN "
                "(arn:aws:iam::123456789012:role/NAME, :user/NAME or :root)"
            )

    @property
    def role_name(self) -> str:
        return f"{self.name[:59]}-role"  # IAM role names stop at 64 characters

    def function_config(self, role_arn: str, layer_arn: str | None = None) -> dict:
        """The function's configuration, as CreateFunction and UpdateFunctionConfiguration take it.

        With the wrapper's layer, the wrapper is the handler and the probe's own goes into AFFINITY_HANDLER, as
        an app is configured (docs/own-function.md); without it, no layer (one attached before is detached).
        """
        env = dict(self.env)
        if layer_arn is not None:
            env["AFFINITY_HANDLER"] = HANDLER
        return {
            "Role": role_arn,
            "Runtime": self.runtime,
            "Handler": WRAPPER_HANDLER["python"] if layer_arn is not None else HANDLER,
            "MemorySize": self.memory,
            "Timeout": self.timeout,
            "Environment": {"Variables": env},
            "Layers": [layer_arn] if layer_arn is not None else [],
            "Description": "lambda-affinity probe (managed by `lambda-affinity deploy`)",
        }


@dataclass
class Deployed:
    function_name: str
    function_url: str
    region: str
    auth_type: str
    changes: list[Change]
    layer_arn: str | None = None  # --layer: the wrapper's layer version the function runs

    @property
    def messages(self) -> list[str]:
        """The changes, as deploy lists them."""
        return [change.message for change in self.changes if change.message]
