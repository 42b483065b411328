"""Files the tools write and read.

Outputs appear whole or not at all: each is written to a temporary file beside its target, flushed to disk
and renamed over it, so a full disk, a kill or an error midway leaves the old file (or none), never a
truncated one. A target that exists and is not a regular file (a folder, a FIFO, a device such as /dev/null)
is refused, never replaced.

Inputs are regular files, or "-" for standard input: a FIFO would block for ever and a device such as
/dev/zero would never end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from typing import IO, Any

from .errors import LambdaAffinityError

STDIN = "-"


class OutputFileError(LambdaAffinityError, OSError):
    """An output file that cannot be written; the target is left as it was."""


class InputFileError(LambdaAffinityError, OSError):
    """An input that is missing or not a regular file."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output_target(path: str) -> str:
    """Refuse a target that cannot be replaced whole, before any input is read; return the path to write
    (a symlink's target, so the link itself stays). The target's folder is made if missing."""
    if not path:
        raise OutputFileError("an output path is empty")
    real = os.path.realpath(path)
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputFileError(f"{path}: cannot write: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputFileError(f"{path}: exists and is {_kind(mode)}; refusing to replace it")
    folder = os.path.dirname(real)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(f"{path}: cannot make its folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputFileError(f"{path}: cannot write in {folder}: permission denied")
    return real


@contextlib.contextmanager
def atomic_output(
    path: str, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing; when the block ends without error, flush it to disk
    and rename it over `path`. On any error the temporary file goes and `path` is untouched; an OSError
    (a full disk, a quota) comes out as one OutputFileError naming the target."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_output writes whole files: mode 'w' or 'wb', not {mode!r}")
    real = check_output_target(path)
    folder, base = os.path.split(real)
    temp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
    try:
        # 0o666 through the umask, as open() would make the target; an existing target keeps its mode
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise OutputFileError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        text = mode == "w"
        with open(fd, mode, encoding=encoding if text else None, newline=newline if text else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temp, stat.S_IMODE(os.stat(real).st_mode))
        os.replace(temp, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError) and not isinstance(exc, LambdaAffinityError):
            raise OutputFileError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise


def write_text(path: str, text: str, newline: str | None = None) -> None:
    """Write `text` to `path` whole or not at all."""
    with atomic_output(path, newline=newline) as fh:
        fh.write(text)


def write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` whole or not at all."""
    with atomic_output(path, "wb") as fh:
        fh.write(data)


def check_input_file(path: str) -> None:
    """A readable regular file, or "-" for standard input; anything else is one clear error."""
    if path == STDIN:
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise InputFileError(f"{path}: is {_kind(mode)}, not a regular file")
    if not os.access(path, os.R_OK):
        raise InputFileError(f"{path}: cannot read: permission denied")


def open_input(path: str, binary: bool = True) -> IO[Any]:
    """Open an input checked by check_input_file ("-" is standard input, not closed by the caller's `with`)."""
    check_input_file(path)
    if path == STDIN:
        stream = sys.stdin.buffer if binary else sys.stdin
        return os.fdopen(os.dup(stream.fileno()), "rb" if binary else "r")
    return open(path, "rb") if binary else open(path, encoding="utf-8", newline="")
