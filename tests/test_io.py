"""Atomic writes: all or nothing, and the file gets the mode a plain open() would give."""

from __future__ import annotations

import os
import stat

import pytest

from projected_grpo.core.io import atomic_path, atomic_write_text


def test_written_file_has_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text("x", tmp_path / "out.txt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
