"""The model file: a YAML document whose `model:` mapping sets the platform model.

`lambda-affinity calibrate --out` writes one; `simulate --model`, `sweep --vary model=...`, the
emulator's config and --affinity-emulator-config read one. An emulator config is a model file with
more keys (functions, region...), which the emulator checks itself; here they are only allowed.

    model:                       # ModelConfig's fields (docs/model.md)
      keep_alive_s: 600
    network_latency: "0.06:0.1"  # modelled client round trip (A:B, exp:MEAN, fixed:X); optional
    service_time: "0.003:0.009"  # modelled time on the environment per call; optional

Pure: it parses text a caller has read, so each edge names its file in its own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import ConfigError, ModelConfig
from .distributions import parse_distribution

# The rest of an emulator config's top level: a model file may be one.
EMULATOR_KEYS = ("functions", "region", "account_id", "host", "port", "credentials")
TIMING_KEYS = ("network_latency", "service_time")


@dataclass(frozen=True)
class ModelFile:
    """What a model file says: the model, and the modelled timings it gives (None: not given)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    network_latency: str | None = None
    service_time: str | None = None


def parse_yaml(text: str) -> Any:
    """The YAML document in `text`, read by the one loader every YAML reader uses (model files, emulator
    configs, sweeps' model files): platform.yaml_loader's, safe, aliases and nesting bounded, `1:30` the text
    "1:30" (as YAML 1.2 reads it), never YAML 1.1's sexagesimal 90. ConfigError "line L, column C: ..." if the
    text is not such a document."""
    import yaml

    from .yaml_loader import BoundedLoader

    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()  # over its bounds: a ConfigError naming line and column
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def from_document(data: Any, other_keys: tuple[str, ...] = EMULATOR_KEYS) -> ModelFile:
    """A parsed document -> ModelFile; ConfigError("key: problem") naming the first bad key.
    `other_keys` are allowed at the top level and left to whoever reads them."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"(top level): expected a mapping with `functions` and `model`, got {kind(data)}")
    known = (*other_keys[:1], "model", *other_keys[1:], *TIMING_KEYS)  # the order an emulator config lists them
    for key in data:
        if key not in known:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(known)})")
    model = ModelConfig.from_mapping(mapping(data.get("model"), "model"), where="model")
    timings = {key: distribution(data[key], key) for key in TIMING_KEYS if key in data}
    return ModelFile(model, **timings)


def from_text(text: str) -> ModelFile:
    """A model file's text -> ModelFile (other keys of an emulator config allowed)."""
    return from_document(parse_yaml(text))


def to_text(model: Mapping[str, Any], comments: list[str] | tuple[str, ...] = ()) -> str:
    """A model file: `# comment` lines, then the `model:` mapping (keys in the order given)."""
    import yaml

    head = "".join(f"# {line}\n" for line in comments)
    return head + yaml.safe_dump({"model": dict(model)}, sort_keys=False)


def distribution(value: Any, where: str) -> str:
    """A distribution's text (`A:B`, `exp:MEAN`, `fixed:X` or a number), checked now."""
    # str() of a bool or a list would read as text; only numbers and strings are meant
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: expected seconds as A:B (uniform), exp:MEAN or a number, got {kind(value)}")
    try:
        parse_distribution(value, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return str(value).strip()


def mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {kind(value)}")
    return value


def kind(value: Any) -> str:
    """A YAML value's kind, for messages."""
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), repr(value))
