"""The emulator's YAML config -> validated objects.

Every error names the file, the key (e.g. `functions[1].timeout`) and what
is wrong, and nothing starts until the whole file is valid. With no file the
emulator serves one function, `probe`, running the bundled probe handler.

    region: us-east-1            # optional; also the SigV4 scope AWS_IAM URLs demand
    credentials:                 # access keys AWS_IAM Function URLs accept (emulator-only keys)
      - {access_key_id: AKIDEXAMPLE, secret_access_key: ...}
    network_latency: "0.06:0.1"  # modelled client round trip (A:B, exp:MEAN, fixed:X); default none
    service_time: "0.003:0.009"  # modelled time on the environment per call, on top of the handler's; default none
    model:                       # the platform model's options (ModelConfig)
      keep_alive_s: 600
    functions:
      - name: probe              # only the name is required: no `code` means the bundled probe
      - name: api
        handler: app.handler     # module.function (Node: file.export)
        code: ./src              # relative to this file
        runtime: python3.11      # python3.N or nodejsN.x
        runtime_client: builtin  # Python only: builtin | awslambdaric
        memory: 128              # MB, 128..10240
        timeout: 3               # seconds (> 0, up to 900)
        environment: {KEY: value}
        reserved_concurrency: 10
        provisioned_concurrency: 2  # environments initialised at start, kept, used first (docs/model.md)
        snapstart: false         # true: init runs once, environments are forked from it (Python 3.12+)
        url: {auth_type: NONE}   # true/false, or {enabled, auth_type: NONE | AWS_IAM}
        layers: [./layer.zip]    # zips or folders laid out as /opt (python/, nodejs/node_modules/), in order
        affinity_wrapper: true   # run the handler through the affinity wrapper (x-affinity-* headers)
        per_environment_max_concurrency: 4   # Lambda Managed Instances: emulator/managed_config.py
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from typing import Any

from .. import files
from ..core import limits
from ..errors import LambdaAffinityError
from ..platform import ConfigError, FunctionSpec, ModelConfig, model_file
from ..platform.config import snapstart_runtime_problem
from ..platform.distributions import DurationError, parse_duration
from ..platform.model_file import kind, mapping
from .managed_config import MANAGED_KEYS, managed_settings

ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RUNTIME = re.compile(r"^(python3\.\d+|nodejs\d+\.x)$")
RUNTIME_CLIENTS = ("builtin", "awslambdaric")
# Set by Lambda itself; AWS refuses them in a function's configuration.
RESERVED_ENV = {
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
}
DEFAULT_RUNTIME = f"python3.{sys.version_info.minor}"

_FUNCTION_KEYS = (
    "name",
    "handler",
    "code",
    "runtime",
    "runtime_client",
    "memory",
    "timeout",
    "environment",
    "reserved_concurrency",
    "provisioned_concurrency",
    "snapstart",
    "url",
    "layers",
    "affinity_wrapper",
    *MANAGED_KEYS,
)
_CREDENTIAL_KEYS = ("access_key_id", "secret_access_key")
# AWS's own shape is [\w]{16,128}; shorter ids are allowed as emulators and
# tests commonly use "testing". A '/' would break the credential scope.
ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9_]{1,128}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class ConfigFileError(LambdaAffinityError, ValueError):
    """A config file cannot be used; the message names the file and the key."""


@dataclass
class FunctionConfig:
    name: str
    handler: str
    code: str  # absolute folder
    runtime: str = DEFAULT_RUNTIME
    runtime_client: str = "builtin"
    memory: int = 128
    timeout: float = 3.0
    environment: dict = field(default_factory=dict)
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0
    snapstart: bool = False
    url: bool = True
    auth_type: str = "NONE"
    layers: list = field(default_factory=list)  # absolute paths of zips or folders, extracted in order as /opt
    affinity_wrapper: bool = False  # the wrapper's layer is added and its handler runs `handler`
    # $LATEST, or a version PublishVersion made ("1", "2"...): its own function in the model (`key`)
    version: str = "$LATEST"
    # Lambda Managed Instances (emulator/managed_config.py): FunctionSpec's fields; {} on-demand.
    managed: dict = field(default_factory=dict)

    @property
    def is_node(self) -> bool:
        return self.runtime.startswith("nodejs")

    @property
    def key(self) -> str:
        """The function's name in the platform model: `name`, or `name:N` for a published version."""
        return self.name if self.version == "$LATEST" else f"{self.name}:{self.version}"

    def spec(self) -> FunctionSpec:
        return FunctionSpec(
            self.key,
            reserved_concurrency=self.reserved_concurrency,
            version=self.version,
            # AWS configures it per version or alias; the emulator's key is $LATEST's, not its versions'
            provisioned_concurrency=self.provisioned_concurrency if self.version == "$LATEST" else 0,
            snapstart=self.snapstart,
            **self.managed,
        )


@dataclass
class EmulatorConfig:
    functions: list = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    region: str = "us-east-1"
    account_id: str = "000000000000"
    host: str = "127.0.0.1"
    port: int | None = None
    source: str = "<defaults>"
    # {access key id: secret access key} for AWS_IAM Function URLs; kept out
    # of repr so that printing a config never shows a secret.
    credentials: dict = field(default_factory=dict, repr=False)
    # The modelled client <-> front end round trip, in the simulator's
    # distribution syntax (docs/emulator.md); None: loopback's own, no more.
    network_latency: str | None = None
    # Modelled time an environment stays busy per invocation on top of the
    # handler's real run time (the simulator's `service`); None: none.
    service_time: str | None = None

    def function(self, name: str) -> FunctionConfig | None:
        for fn in self.functions:
            if fn.name == name:
                return fn
        return None


def probe_folder(node: bool = False) -> str:
    """The bundled probe's folder, wherever the package is installed."""
    import probe_lambda

    root = os.path.dirname(os.path.abspath(probe_lambda.__file__))
    return os.path.join(root, "node") if node else root


def default_config() -> EmulatorConfig:
    return EmulatorConfig(functions=[FunctionConfig(name="probe", handler="handler.handler", code=probe_folder())])


def load_config(path: str) -> EmulatorConfig:
    """Read and validate a YAML file; raises ConfigFileError naming file and key."""
    try:
        text = files.read_text(path)
    except files.InputFileError as exc:
        raise ConfigFileError(str(exc)) from None
    try:
        data = model_file.parse_yaml(text)
        return config_from_mapping(data, base_dir=os.path.dirname(os.path.abspath(path)), source=path)
    except ConfigError as exc:
        raise ConfigFileError(f"{path}: {exc}") from None


def config_from_mapping(data: Any, base_dir: str, source: str = "<mapping>") -> EmulatorConfig:
    """Validate an already-parsed mapping; raises ConfigError("key: problem")."""
    # the top level's shape, its keys, `model` and the modelled timings: the model file format's
    model = model_file.from_document(data, other_keys=model_file.EMULATOR_KEYS)
    data = data or {}
    cfg = EmulatorConfig(
        model=model.model, source=source, network_latency=model.network_latency, service_time=model.service_time
    )
    for key in ("region", "account_id", "host"):
        if key in data:
            value = data[key]
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
            setattr(cfg, key, value)
    if not REGION.match(cfg.region):
        raise ConfigError(f"region: expected an AWS region name such as us-east-1, got {cfg.region!r}")
    if not re.fullmatch(r"\d{12}", cfg.account_id):
        raise ConfigError(f"account_id: expected 12 digits, got {cfg.account_id!r}")
    if "port" in data:
        cfg.port = _int(data["port"], "port", 0, 65535)
    cfg.credentials = _credentials(data.get("credentials"))
    raw_functions = data.get("functions")
    if raw_functions is None:
        cfg.functions = default_config().functions
        return cfg
    if not isinstance(raw_functions, list) or not raw_functions:
        raise ConfigError(f"functions: expected a non-empty list of functions, got {kind(raw_functions)}")
    seen = set()
    for i, raw in enumerate(raw_functions):
        fn = _function(raw, f"functions[{i}]", base_dir)
        if fn.name in seen:
            raise ConfigError(f"functions[{i}].name: {fn.name!r} is defined twice")
        seen.add(fn.name)
        cfg.functions.append(fn)
    return cfg


def _function(raw: Any, where: str, base_dir: str) -> FunctionConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with at least `name`, got {kind(raw)}")
    _no_unknown_keys(raw, _FUNCTION_KEYS, where + ".")
    name = _function_name(raw.get("name"), f"{where}.name")
    runtime = _runtime(raw.get("runtime", DEFAULT_RUNTIME), f"{where}.runtime")
    node = runtime.startswith("nodejs")
    code, default_handler = _code(raw, where, base_dir, node)
    handler = _handler(raw.get("handler", default_handler), f"{where}.handler")
    client = _runtime_client(raw.get("runtime_client", "builtin"), where, runtime)
    fn = FunctionConfig(name=name, handler=handler, code=code, runtime=runtime, runtime_client=client)
    if "memory" in raw:
        fn.memory = _int(raw["memory"], f"{where}.memory", limits.MEMORY_MIN_MB, limits.MEMORY_MAX_MB)
    if "timeout" in raw:
        fn.timeout = _timeout(raw["timeout"], f"{where}.timeout")
    if raw.get("reserved_concurrency") is not None:
        fn.reserved_concurrency = _int(raw["reserved_concurrency"], f"{where}.reserved_concurrency", 0, 1_000_000)
    fn.environment = _environment(raw.get("environment"), f"{where}.environment")
    fn.url, fn.auth_type = _url(raw.get("url", True), f"{where}.url")
    fn.layers = _layers(raw.get("layers"), f"{where}.layers", base_dir)
    fn.affinity_wrapper = raw.get("affinity_wrapper", False)
    if not isinstance(fn.affinity_wrapper, bool):
        raise ConfigError(f"{where}.affinity_wrapper: expected true or false, got {fn.affinity_wrapper!r}")
    fn.managed = managed_settings(raw, where, runtime, client, fn.environment)
    _pools(fn, raw, where)
    return fn


def _pools(fn: FunctionConfig, raw: dict, where: str) -> None:
    """provisioned_concurrency and snapstart: the model's checks (FunctionSpec), and SnapStart's runtimes."""
    if raw.get("provisioned_concurrency") is not None:
        fn.provisioned_concurrency = _int(raw["provisioned_concurrency"], f"{where}.provisioned_concurrency", 0, 10_000)
    fn.snapstart = raw.get("snapstart", False)
    try:
        fn.spec()
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    if fn.snapstart:
        problem = snapstart_runtime_problem(fn.runtime)
        if problem is not None:
            raise ConfigError(f"{where}.snapstart: {problem}")
        if fn.runtime_client != "builtin":
            # the snapshot is the built-in client's process (emulator/pools.py)
            raise ConfigError(f"{where}.snapstart: the emulator restores snapshots with runtime_client builtin only")


def _layers(raw: Any, where: str, base_dir: str) -> list:
    """`layers: [path, ...]`: each a folder, or a zip file, relative to the config file; at most Lambda's 5."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > limits.LAYERS_MAX:
        raise ConfigError(f"{where}: expected a list of at most {limits.LAYERS_MAX} zips or folders, got {kind(raw)}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{where}[{i}]: expected a path to a zip or a folder, got {item!r}")
        path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(item)))
        if not os.path.isdir(path) and not zipfile.is_zipfile(path):
            raise ConfigError(f"{where}[{i}]: {path} is neither a folder nor a zip file")
        out.append(path)
    return out


def _function_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not limits.FUNCTION_NAME.match(name):
        raise ConfigError(f"{where}: expected 1-64 letters, digits, '-' or '_', got {name!r}")
    return name


def _runtime(runtime: Any, where: str) -> str:
    if not isinstance(runtime, str) or not RUNTIME.match(runtime):
        raise ConfigError(
            f"{where}: expected python3.N or nodejsN.x (e.g. {DEFAULT_RUNTIME}, nodejs20.x), got {runtime!r}"
        )
    return runtime


def _code(raw: dict, where: str, base_dir: str, node: bool) -> tuple[str, str | None]:
    """(absolute code folder, the handler to use if none is given)."""
    if "code" not in raw:  # no code: the bundled probe
        return probe_folder(node), "index.handler" if node else "handler.handler"
    code = raw["code"]
    if not isinstance(code, str) or not code:
        raise ConfigError(f"{where}.code: expected a folder path, got {code!r}")
    code = os.path.normpath(os.path.join(base_dir, os.path.expanduser(code)))
    if not os.path.isdir(code):
        raise ConfigError(f"{where}.code: folder {code} does not exist")
    return code, None


def _handler(handler: Any, where: str) -> str:
    if not isinstance(handler, str) or "." not in handler.strip(".") or handler != handler.strip():
        raise ConfigError(f"{where}: expected module.function (e.g. app.handler), got {handler!r}")
    return handler


def _runtime_client(client: Any, where: str, runtime: str) -> str:
    """The runtime client, checked against the runtime and what is installed (node on PATH too)."""
    node = runtime.startswith("nodejs")
    if client not in RUNTIME_CLIENTS:
        raise ConfigError(f"{where}.runtime_client: expected one of {', '.join(RUNTIME_CLIENTS)}, got {client!r}")
    if node and client != "builtin":
        raise ConfigError(f"{where}.runtime_client: {client} is a Python runtime client, not for {runtime}")
    if client == "awslambdaric" and importlib.util.find_spec("awslambdaric") is None:
        raise ConfigError(f"{where}.runtime_client: awslambdaric is not installed (pip install 'lambda-affinity[ric]')")
    if node and shutil.which("node") is None:
        raise ConfigError(f"{where}.runtime: {runtime} needs `node` on PATH, and none was found")
    return client


def _timeout(t: Any, where: str) -> float:
    # More than 0 rather than Lambda's 1: sub-second timeouts make the emulator's timeout paths quick to test.
    if isinstance(t, str):  # "30s", "1m": the options' duration grammar
        try:
            t = parse_duration(t)
        except DurationError:
            pass  # refused below, with the range it must be in
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= limits.TIMEOUT_MAX_S:
        raise ConfigError(f"{where}: expected seconds, more than 0 and at most {limits.TIMEOUT_MAX_S}, got {t!r}")
    return float(t)


def _url(url: Any, where: str) -> tuple[bool, str]:
    """(enabled, auth type) of `url: true | false | {enabled, auth_type}`."""
    if isinstance(url, bool):
        return url, "NONE"
    if not isinstance(url, dict):
        raise ConfigError(f"{where}: expected true, false or a mapping {{auth_type: NONE}}, got {kind(url)}")
    _no_unknown_keys(url, ("enabled", "auth_type"), f"{where}.")
    enabled = url.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: expected true or false, got {enabled!r}")
    auth = url.get("auth_type", "NONE")
    if auth not in limits.URL_AUTH_TYPES:
        raise ConfigError(f"{where}.auth_type: expected NONE or AWS_IAM, got {auth!r}")
    return enabled, auth


def _credentials(raw: Any) -> dict:
    """`credentials: [{access_key_id, secret_access_key}, ...]` -> {id: secret}.

    Messages name the entry and the key; a secret's value is never echoed.
    """
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ConfigError(f"credentials: expected a list of {{access_key_id, secret_access_key}}, got {kind(raw)}")
    keys: dict = {}
    for i, entry in enumerate(raw):
        where = f"credentials[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping {{access_key_id, secret_access_key}}, got {kind(entry)}")
        _no_unknown_keys(entry, _CREDENTIAL_KEYS, where + ".")
        for key in _CREDENTIAL_KEYS:
            if key not in entry:
                raise ConfigError(f"{where}.{key}: missing")
        key_id, secret = entry["access_key_id"], entry["secret_access_key"]
        if not isinstance(key_id, str) or not ACCESS_KEY_ID.match(key_id):
            raise ConfigError(
                f"{where}.access_key_id: expected 1-128 letters, digits or '_' "
                f"(e.g. AKIAIOSFODNN7EXAMPLE), got {_shape(key_id)}"
            )
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"{where}.secret_access_key: expected a non-empty string, got {_shape(secret)}")
        if key_id in keys:
            raise ConfigError(f"{where}.access_key_id: {key_id!r} is listed twice")
        keys[key_id] = secret
    return keys


def _shape(value: Any) -> str:
    """What is wrong with a credential's value, without the value itself: a
    secret, or one pasted into the id's field (its '/' and '+' fail the
    pattern), must not be printed."""
    if not isinstance(value, str):
        return kind(value) if isinstance(value, (dict, list, type(None))) else type(value).__name__
    if not value:
        return "an empty string"
    bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c == "_"))})
    return f"{len(value)} characters" + (f" including {' '.join(repr(c) for c in bad)}" if bad else "")


def _environment(raw: Any, where: str) -> dict:
    env = mapping(raw, where)
    out = {}
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            raise ConfigError(
                f"{where}.{key}: not a valid variable name (letters, digits, '_', starting with a letter)"
            )
        if key in RESERVED_ENV:
            raise ConfigError(f"{where}.{key}: reserved by Lambda, cannot be set")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}.{key}: expected a string (or number), got {kind(value)}")
        out[key] = str(value)
        if "\0" in out[key]:  # a process environment cannot carry it: every invoke would fail to start
            raise ConfigError(f"{where}.{key}: holds a NUL byte (at character {out[key].index(chr(0)) + 1})")
    size = sum(len(k) + len(v) for k, v in out.items())
    if size > limits.ENV_TOTAL_BYTES:
        raise ConfigError(f"{where}: variables total {size} bytes, over Lambda's {limits.ENV_TOTAL_BYTES}")
    return out


def _no_unknown_keys(data: dict, known: tuple, prefix: str) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(known)})")


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where}: expected a whole number from {lo} to {hi}, got {value!r}")
    return value
