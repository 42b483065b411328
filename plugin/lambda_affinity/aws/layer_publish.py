"""`deploy --layer`: the wrapper's layer published (PublishLayerVersion) as `<function>-wrapper`, reused while its
content is unchanged, and removed again by destroy. Layers take no tags: deploy marks its versions by their
description, and destroy deletes only versions that carry it."""

from __future__ import annotations

from .errors import Step, aws_step
from .layer import RUNTIMES
from .packaging import code_sha256
from .rollback import Change, Kind, Undo

MARK = "lambda-affinity wrapper (managed by `lambda-affinity deploy`)"
# Lambda's runtime ids the layer serves (CompatibleRuntimes takes at most 15).
COMPATIBLE = {
    "python": ["python3.10", "python3.11", "python3.12", "python3.13"],
    "nodejs": ["nodejs20.x", "nodejs22.x"],
}


def layer_name(function_name: str) -> str:
    return f"{function_name}-wrapper"


def ensure_layer(deployer, function_name: str, content: bytes, changes: list[Change]) -> str:
    """The ARN of a layer version holding `content`: the newest one if it already does, else a new one."""
    lam, name = deployer.lam, layer_name(function_name)
    with aws_step(Step(f"listing the versions of the layer {name}", "lambda:ListLayerVersions")):
        versions = lam.list_layer_versions(LayerName=name).get("LayerVersions", [])
    if versions:
        newest = max(versions, key=lambda v: v["Version"])
        with aws_step(Step(f"reading the layer {name} version {newest['Version']}", "lambda:GetLayerVersion")):
            current = lam.get_layer_version(LayerName=name, VersionNumber=newest["Version"])
        if current.get("Description") == MARK and current["Content"].get("CodeSha256") == code_sha256(content):
            return current["LayerVersionArn"]
    with aws_step(Step(f"publishing the layer {name}", "lambda:PublishLayerVersion")):
        published = lam.publish_layer_version(
            LayerName=name,
            Description=MARK,
            Content={"ZipFile": content},
            CompatibleRuntimes=[r for runtime in RUNTIMES for r in COMPATIBLE[runtime]],
            LicenseInfo="MIT",
        )
    version = published["Version"]
    undo = Undo(
        lambda: lam.delete_layer_version(LayerName=name, VersionNumber=version),
        "lambda:DeleteLayerVersion",
        deployer.cli_command("lambda", "delete-layer-version", "--layer-name", name, "--version-number", str(version)),
    )
    message = f"published layer {name} version {version}"
    changes.append(Change(Kind.CREATED, f"layer {name} version {version}", message, undo))
    return published["LayerVersionArn"]


def delete_layers(deployer, function_name: str) -> list[Change]:
    """Delete every version of the function's wrapper layer that deploy published (none: nothing)."""
    lam, name = deployer.lam, layer_name(function_name)
    removed = []
    with aws_step(Step(f"listing the versions of the layer {name}", "lambda:ListLayerVersions")):
        versions = lam.list_layer_versions(LayerName=name).get("LayerVersions", [])
    for v in sorted(versions, key=lambda v: v["Version"]):
        if v.get("Description") != MARK:
            continue
        with aws_step(Step(f"deleting the layer {name} version {v['Version']}", "lambda:DeleteLayerVersion")):
            lam.delete_layer_version(LayerName=name, VersionNumber=v["Version"])
        what = f"layer {name} version {v['Version']}"
        removed.append(Change(Kind.REMOVED, what, f"removed {what}"))
    return removed
