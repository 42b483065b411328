"""The wrapper's Lambda layer: a deterministic zip laid out as AWS mounts layers under /opt
(`python/lambda_affinity_wrapper/...` on the Python path, `nodejs/node_modules/lambda-affinity-wrapper/...` for
Node.js), built from the wrapper's sources wherever the package is installed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from .errors import DeployError

RUNTIMES = ("python", "nodejs")
# The handler to configure for each runtime, the app's own going into AFFINITY_HANDLER.
WRAPPER_HANDLER = {
    "python": "lambda_affinity_wrapper.handler",
    "nodejs": "/opt/nodejs/node_modules/lambda-affinity-wrapper/index.handler",
}
_PREFIX = {"python": "python/lambda_affinity_wrapper/", "nodejs": "nodejs/node_modules/lambda-affinity-wrapper/"}
_PATTERNS = {"python": ("*.py",), "nodejs": ("*.mjs", "package.json")}


def source_dir(runtime: str) -> Path:
    """The wrapper's source folder for a runtime (the Node.js files ship as lambda_affinity_wrapper.nodejs data)."""
    import lambda_affinity_wrapper

    root = Path(lambda_affinity_wrapper.__file__).resolve().parent
    if runtime == "python":
        return root
    import importlib

    nodejs = importlib.import_module("lambda_affinity_wrapper.nodejs")  # mapped onto wrapper/nodejs/ by setup.cfg
    return Path(nodejs.__file__ or "").resolve().parent


def layer_files(runtime: str) -> list[tuple[str, bytes]]:
    """(path under /opt, content) of the wrapper for one runtime, sorted."""
    if runtime not in RUNTIMES:
        raise DeployError(f"unknown layer runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    src = source_dir(runtime)
    paths = sorted({p for pattern in _PATTERNS[runtime] for p in src.glob(pattern)})
    if not paths:
        raise DeployError(f"no wrapper sources in {src}: is the lambda_affinity_wrapper package complete?")
    return [(_PREFIX[runtime] + p.name, p.read_bytes()) for p in paths]


def deterministic_zip(files: list[tuple[str, bytes]]) -> bytes:
    """A zip of (name, content) with fixed timestamps and modes: the same files give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def build_layer(runtimes: tuple[str, ...] = RUNTIMES) -> bytes:
    """The layer zip for the given runtimes (both by default: one layer serves Python and Node.js functions)."""
    return deterministic_zip([f for runtime in runtimes for f in layer_files(runtime)])
