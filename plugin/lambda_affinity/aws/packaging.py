"""The probe's deployment package: a deterministic zip of probe_lambda/, and the CodeSha256 Lambda gives it."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from .errors import DeployError
from .layer import deterministic_zip, layer_files


def probe_dir() -> Path:
    import probe_lambda

    return Path(probe_lambda.__file__).resolve().parent


def build_zip(src: Path | None = None) -> bytes:
    """The probe's deployment package: its top-level modules, handler.py at the root.

    Deterministic (sorted names, fixed timestamps and modes), so an unchanged
    probe has an unchanged CodeSha256 and redeploying it uploads nothing.
    Skips __init__.py (a package marker for this repo), __pycache__, the
    template and the node/ variant. The wrapper's Python package goes beside
    handler.py: the probe imports its session cache from there.
    """
    src = src or probe_dir()
    files = sorted(p for p in src.glob("*.py") if p.name != "__init__.py")
    if not any(p.name == "handler.py" for p in files):
        raise DeployError(f"no handler.py in {src}: is the probe_lambda package complete?")
    wrapper = [(name.removeprefix("python/"), content) for name, content in layer_files("python")]
    return deterministic_zip([(p.name, p.read_bytes()) for p in files] + wrapper)


def code_sha256(package: bytes) -> str:
    """Lambda's CodeSha256: base64 of the package's SHA-256."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()
