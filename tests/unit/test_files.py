"""Outputs are written whole or not at all; inputs are regular files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from lambda_affinity.errors import LambdaAffinityError
from lambda_affinity.files import (
    InputFileError,
    OutputFileError,
    atomic_output,
    check_input_file,
    check_output_target,
    write_bytes,
    write_text,
)


def leftovers(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def test_write_replaces_whole_and_keeps_mode(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_text(str(target), "new\n")
    assert target.read_text() == "new\n"
    assert os.stat(target).st_mode & 0o777 == 0o640
    assert leftovers(tmp_path) == []


def test_error_midway_leaves_target_and_no_temp(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(str(target)) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_missing_folder_is_made(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    write_bytes(str(target), b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_symlink_target_written_through(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_text(str(link), "new")
    assert link.is_symlink() and real.read_text() == "new"


@pytest.mark.parametrize("kind", ["dir", "fifo", "device"])
def test_non_regular_target_refused(tmp_path, kind):
    if kind == "dir":
        target = str(tmp_path / "d")
        os.mkdir(target)
    elif kind == "fifo":
        target = str(tmp_path / "f")
        os.mkfifo(target)
    else:
        target = "/dev/null"
    with pytest.raises(OutputFileError, match="refusing to replace it") as info:
        write_text(target, "x")
    assert isinstance(info.value, LambdaAffinityError)
    assert leftovers(tmp_path) == []


def test_folder_that_is_a_file_refused(tmp_path):
    (tmp_path / "plain").write_text("")
    with pytest.raises(OutputFileError, match=r"out\.json: cannot write: Not a directory"):
        check_output_target(str(tmp_path / "plain" / "out.json"))


def test_full_disk_leaves_old_file(tmp_path):
    """A file-size limit (ulimit -f) fails the write as a full disk does, after the temp file has begun."""
    target = tmp_path / "out.txt"
    target.write_text("old")
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from lambda_affinity.files import write_text, OutputFileError
        try:
            write_text({str(target)!r}, "x" * 100_000)
        except OutputFileError as exc:
            print(exc)
            sys.exit(2)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == f"{target}: cannot write: File too large"
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_inputs(tmp_path):
    check_input_file("-")
    plain = tmp_path / "in.csv"
    plain.write_text("")
    check_input_file(str(plain))
    with pytest.raises(InputFileError, match="no such file"):
        check_input_file(str(tmp_path / "missing"))
    with pytest.raises(InputFileError, match="is a directory, not a regular file"):
        check_input_file(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="is a FIFO, not a regular file"):
        check_input_file(str(fifo))
    with pytest.raises(InputFileError, match="is a device, not a regular file"):
        check_input_file("/dev/zero")
