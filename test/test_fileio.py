"""atomic_write: the whole file or none, with the permissions an ordinary write would give."""

from __future__ import annotations

import os
import stat

import pytest

from dense_descriptor_ros.fileio import atomic_write


def test_the_file_gets_ordinary_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.txt", lambda tmp: open(tmp, "w").write("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640  # 0666 minus the umask, not mkstemp's 0600
    assert (tmp_path / "a.txt").read_text() == "x"


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "b.txt", fail)
    assert list(tmp_path.iterdir()) == []
