"""Uploaded code (UpdateFunctionCode's ZipFile) is untrusted: every entry lands inside its own folder, sizes
are bounded, a refused or damaged zip leaves nothing behind, and the store's root goes at close."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import zipfile

import pytest

from lambda_affinity.emulator import code_store
from lambda_affinity.emulator.code_store import CANNOT_UNZIP, CodeError, CodeStore, folder_code


def zip_of(*entries: tuple) -> bytes:
    """(name, content[, unix mode]) each."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content, *mode in entries:
            info = zipfile.ZipInfo(name)
            if mode:
                info.external_attr = mode[0] << 16
            zf.writestr(info, content)
    return buf.getvalue()


@pytest.fixture
def store():
    s = CodeStore()
    yield s
    s.close()


def test_a_zip_is_extracted_into_a_folder_of_its_own_with_aws_digest(store):
    data = zip_of(("app.py", "X = 1\n"), ("pkg/mod.py", "Y = 2\n"), ("run.sh", "#!/bin/sh\n", 0o100755))
    code = store.extract(data)
    with open(os.path.join(code.folder, "pkg", "mod.py")) as fh:
        assert fh.read() == "Y = 2\n"
    assert os.stat(os.path.join(code.folder, "run.sh")).st_mode & 0o111
    assert not os.stat(os.path.join(code.folder, "app.py")).st_mode & 0o111
    assert code.sha256 == base64.b64encode(hashlib.sha256(data).digest()).decode() and code.size == len(data)
    again = store.extract(data)
    assert again.folder != code.folder and os.path.dirname(again.folder) == store.root
    root = store.root
    store.close()
    assert not os.path.exists(root)


@pytest.mark.parametrize("name", ["../evil.py", "a/../../evil.py", "/etc/evil.py", "C:/evil.py", "..\\evil.py"])
def test_zip_slip_entries_are_refused_and_nothing_is_written(store, tmp_path, name):
    with pytest.raises(CodeError) as exc:
        store.extract(zip_of(("ok.py", "1"), (name, "2")))
    assert str(exc.value).startswith(CANNOT_UNZIP) and "points outside the function's folder" in str(exc.value)
    assert store.root is None or os.listdir(store.root) == []
    assert not (tmp_path.parent / "evil.py").exists()


def test_a_symlink_entry_is_refused(store):
    with pytest.raises(CodeError, match="points outside"):
        store.extract(zip_of(("link", "/etc/passwd", stat.S_IFLNK | 0o777)))


def test_unzipped_size_and_entry_count_are_bounded(store, monkeypatch):
    monkeypatch.setattr(code_store, "UNZIPPED_MAX", 1000)
    with pytest.raises(CodeError, match=r"^Unzipped size must be smaller than 1000 bytes$"):
        store.extract(zip_of(("big.bin", b"\0" * 1001)))  # compresses to a few bytes: the declared size counts
    monkeypatch.setattr(code_store, "ENTRIES_MAX", 3)
    with pytest.raises(CodeError, match="4 entries; the local emulator takes at most 3"):
        store.extract(zip_of(*[(f"f{i}", "x") for i in range(4)]))


def test_damaged_zips_are_refused_with_aws_words_and_leave_nothing(store):
    for data in (b"not a zip", zip_of(("a.py", "x" * 5000))[:-30]):
        with pytest.raises(CodeError) as exc:
            store.extract(data)
        assert str(exc.value).startswith(CANNOT_UNZIP)
    good = bytearray(zip_of(("a.py", "hello " * 200)))
    good[40] ^= 0xFF  # inside the entry's compressed data: its CRC check fails while extracting
    with pytest.raises(CodeError):
        store.extract(bytes(good))
    assert store.root is None or os.listdir(store.root) == []


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_repeated_entry_name_is_refused(store):
    with pytest.raises(CodeError, match=CANNOT_UNZIP[:20]):
        store.extract(zip_of(("a.py", "1"), ("a.py", "2")))


def test_folder_code_is_stable_and_changes_with_content(tmp_path):
    (tmp_path / "a.py").write_text("1")
    first = folder_code(str(tmp_path))
    assert folder_code(str(tmp_path)) == first and first.size == 1
    (tmp_path / "a.py").write_text("2")
    assert folder_code(str(tmp_path)).sha256 != first.sha256
