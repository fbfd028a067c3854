"""bench.scale_python: which interpreter the idle agents ran under, named truthfully."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import scale_python


def test_describe_names_this_interpreters_version_and_libpython() -> None:
    """The label says whether the interpreter maps a shared libpython, as this one does
    or does not (read from this process's own maps)."""
    shared = "libpython" in Path("/proc/self/maps").read_text()
    label = scale_python.describe(sys.executable)
    version = sys.version.split()[0]
    assert label == f"python {version} {'shared' if shared else 'static'} libpython"


@pytest.mark.skipif(not Path("/usr/bin/python3.11").exists(),
                    reason="needs Debian's /usr/bin/python3.11")
def test_describe_debians_interpreter_as_static() -> None:
    """Debian's python3.11, a node's interpreter, has libpython inside the executable."""
    assert scale_python.describe("/usr/bin/python3.11").endswith(" static libpython")
