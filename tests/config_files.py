"""Helpers for the emulator config tests: write a config file, load a bad one and check its message."""

from __future__ import annotations

import pytest

from lambda_affinity.emulator.config import ConfigFileError, load_config

KEY_ID = "AKIDEMULATORTEST0001"
SECRET = "emu/s3cr3t+only-for-tests"


def write(tmp_path, text):
    path = tmp_path / "emu.yaml"
    path.write_text(text)
    return str(path)


def config_error(tmp_path, text, key, words) -> str:
    """Load a bad config: its message names the file, then the key, then says `words`."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {key}: ") and words in msg, msg
    return msg
