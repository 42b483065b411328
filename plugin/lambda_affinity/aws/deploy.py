"""`lambda-affinity deploy` / `destroy`: the probe on a real AWS account, with boto3.

The public names of deploy, from the modules that hold them (the import path the cli and tests use):
  deploy_cli.py  the two commands: options, output (add_parser, locust_command)
  deployer.py    the AWS calls in order, with rollback (Deployer)
  spec.py        what is deployed: Spec, defaults, tags, Deployed
  rollback.py    typed changes (Change, Kind) and undoing a failed run's own part
  errors.py      AWS's errors as one line each (DeployError, explain)
  packaging.py   the probe's zip (build_zip, code_sha256)
"""

from __future__ import annotations

from .deploy_cli import LOCUSTFILE, SIGV4_OPTION, add_parser, locust_command
from .deployer import Deployer
from .errors import DEBUG_ADVICE, AwsFailure, DeployError, Step, explain, failure_of
from .packaging import build_zip, code_sha256, probe_dir
from .rollback import Change, Kind, Undo, roll_back, rollback_report
from .spec import (
    AUTH_TYPE,
    BASIC_EXECUTION,
    DEFAULT_NAME,
    FUNCTION_TAG,
    HANDLER,
    MANAGED_TAG,
    MEMORY_MB,
    PROBE_ENV,
    ROLE_PATH,
    RUNTIME,
    SID_PREFIX,
    TIMEOUT_S,
    TRUST_POLICY,
    Deployed,
    Spec,
)

__all__ = [
    "AUTH_TYPE",
    "BASIC_EXECUTION",
    "DEBUG_ADVICE",
    "DEFAULT_NAME",
    "FUNCTION_TAG",
    "HANDLER",
    "LOCUSTFILE",
    "MANAGED_TAG",
    "MEMORY_MB",
    "PROBE_ENV",
    "ROLE_PATH",
    "RUNTIME",
    "SID_PREFIX",
    "SIGV4_OPTION",
    "TIMEOUT_S",
    "TRUST_POLICY",
    "AwsFailure",
    "Change",
    "DeployError",
    "Deployed",
    "Deployer",
    "Kind",
    "Spec",
    "Step",
    "Undo",
    "add_parser",
    "build_zip",
    "code_sha256",
    "explain",
    "failure_of",
    "locust_command",
    "probe_dir",
    "roll_back",
    "rollback_report",
]
