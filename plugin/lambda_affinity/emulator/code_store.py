"""Function code uploaded through UpdateFunctionCode: a zip, checked and extracted into a folder of its own.

Uploads are untrusted input: every entry must land inside its folder (no absolute name, no `..`, no drive,
no link), the entries' sizes together stay under AWS's unzipped limit and their count under ours, and a
damaged zip leaves nothing behind. Each upload gets a new folder under one root, so environments still
running the code of before keep theirs; the root goes at the emulator's shutdown (`close`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from io import BytesIO

from ..errors import LambdaAffinityError

# AWS: a deployment package's unzipped contents are at most 250 MB (262,144,000 bytes): Lambda quotas.
UNZIPPED_MAX = 262_144_000
# Ours (AWS documents none): more entries than any real package holds, few enough to check quickly.
ENTRIES_MAX = 20_000
# AWS's words for a zip it cannot read (InvalidParameterValueException).
CANNOT_UNZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
_CHUNK = 1 << 16


class CodeError(LambdaAffinityError, ValueError):
    """An upload that is not a usable deployment package; the message is AWS's (plus why, where AWS says less)."""


@dataclass(frozen=True)
class Code:
    """A function's code as GetFunctionConfiguration reports it: where it is, its digest and size."""

    folder: str
    sha256: str  # base64 of the SHA-256 of the zip (of the folder's files, for a config's folder)
    size: int  # bytes of the zip (of the folder's files)


def zip_code(data: bytes) -> tuple[str, int]:
    """(CodeSha256, CodeSize) of an uploaded zip, as AWS computes them: of the zip's bytes."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode(), len(data)


def folder_code(folder: str) -> Code:
    """A config's code folder, digested over its files' relative paths and contents (sorted): stable
    across runs, so a client's CodeSha256 precondition means the same code."""
    digest, size = hashlib.sha256(), 0
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if not os.path.isfile(path):
                continue
            digest.update(os.path.relpath(path, folder).encode("utf-8", "surrogateescape") + b"\0")
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(_CHUNK), b""):
                    digest.update(chunk)
                    size += len(chunk)
    return Code(folder, base64.b64encode(digest.digest()).decode(), size)


class CodeStore:
    """The folders uploads are extracted into, under one temporary root made on first use."""

    def __init__(self) -> None:
        self.root: str | None = None
        # Folders whose extraction has finished: only these are ever pruned (one being written is not yet here).
        self._done: set[str] = set()

    def extract(self, data: bytes) -> Code:
        """The zip `data` extracted into a new folder; CodeError (nothing left behind) if it is not usable."""
        entries = _checked_entries(data)
        if self.root is None:
            self.root = tempfile.mkdtemp(prefix="lambda-affinity-code-")
        folder = tempfile.mkdtemp(prefix="code-", dir=self.root)
        try:
            with zipfile.ZipFile(BytesIO(data)) as zf:
                for info, parts in entries:
                    _extract_one(zf, info, parts, folder)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise CodeError(f"{CANNOT_UNZIP} ({exc})") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._done.add(folder)
        sha, size = zip_code(data)
        return Code(folder, sha, size)

    def discard(self, code: Code) -> None:
        """An extracted upload no environment will run (a DryRun's)."""
        self.prune(self._done - {code.folder})

    def prune(self, keep: set[str]) -> None:
        """Remove every finished upload not in `keep` (the code environments and versions still run)."""
        for folder in self._done - keep:
            self._done.discard(folder)
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self._done.clear()


def _checked_entries(data: bytes) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Each entry and its path parts, once every entry has passed; CodeError naming the first that does not."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CodeError(f"{CANNOT_UNZIP} ({exc})") from None
    if len(infos) > ENTRIES_MAX:
        raise CodeError(f"{CANNOT_UNZIP} ({len(infos)} entries; the local emulator takes at most {ENTRIES_MAX})")
    total = sum(info.file_size for info in infos)
    if total > UNZIPPED_MAX:
        raise CodeError(f"Unzipped size must be smaller than {UNZIPPED_MAX} bytes")
    out = []
    for info in infos:
        parts = _safe_parts(info)
        if parts is None:
            raise CodeError(f"{CANNOT_UNZIP} (entry {info.filename!r} points outside the function's folder)")
        if parts:
            out.append((info, parts))
    return out


def _safe_parts(info: zipfile.ZipInfo) -> list[str] | None:
    """The entry's path parts, or None when it would land outside its folder or is a link."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or "\0" in name or stat.S_ISLNK(info.external_attr >> 16):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or (parts and ":" in parts[0]):
        return None
    return parts


def _extract_one(zf: zipfile.ZipFile, info: zipfile.ZipInfo, parts: list[str], folder: str) -> None:
    target = os.path.join(folder, *parts)
    if info.is_dir():
        os.makedirs(target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    executable = (info.external_attr >> 16) & 0o111
    # O_EXCL | O_NOFOLLOW: a repeated name or a path through something not a folder fails instead of writing elsewhere
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if executable else 0o644)
    with os.fdopen(fd, "wb") as out, zf.open(info) as src:
        # zipfile stops at the entry's declared size and checks its CRC, so the sizes summed above bound this
        shutil.copyfileobj(src, out, _CHUNK)
