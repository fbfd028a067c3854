"""bench/flash.py refuses a memory file system, where fsync and read-back mean nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.flash import filesystem_type, main


def memory_mount() -> Path:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "tmpfs" and Path(fields[1]).is_dir():
            return Path(fields[1])
    pytest.skip("no tmpfs mounted here")


def test_it_refuses_tmpfs(capsys: pytest.CaptureFixture[str]) -> None:
    where = memory_mount()
    assert filesystem_type(where) == "tmpfs"
    assert main(["--dir", str(where), "--size-mib", "4"]) == 2
    assert "tmpfs" in capsys.readouterr().err
