"""atomic_write / atomic_path: a reader sees the old content or the new, never a mix or a
leftover temporary file."""

from __future__ import annotations

import os
import stat

import pytest

from app.fs import atomic_path, atomic_write


def test_atomic_write_replaces_the_whole_file(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    atomic_write(target, '{"new": true}', fsync=True)
    assert target.read_text() == '{"new": true}'
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_secret_is_owner_only_from_creation(tmp_path):
    target = tmp_path / "token"
    atomic_write(target, b"s3cret\n", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"s3cret\n"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.html"]
