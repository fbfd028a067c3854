"""The portal's interpreter settings (node/runtime.py): -OO, and bytecode made for it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.runtime import (
    OPTIMIZE_VARIABLE,
    PORTAL_OPTIMIZE_LEVEL,
    byte_compile_for_portal,
    portal_code_folders,
    portal_environment,
)
from portal import process

ROOT = Path(__file__).resolve().parents[2]
TAG = sys.implementation.cache_tag


def opt_pyc(source: Path) -> Path:
    """Where the portal's interpreter looks for ``source``'s bytecode."""
    return Path(importlib.util.cache_from_source(str(source),
                                                 optimization=PORTAL_OPTIMIZE_LEVEL))


def test_the_portal_environment_sets_level_2_and_keeps_the_rest() -> None:
    base = {"PATH": "/usr/bin", "LANG": "C.UTF-8", OPTIMIZE_VARIABLE: "1"}
    env = portal_environment(base)
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "PYTHONOPTIMIZE": "2",
                   "PYTHONNODEBUGRANGES": "1"}
    assert base[OPTIMIZE_VARIABLE] == "1", "the caller's mapping is left alone"
    assert portal_environment()["PATH"] == os.environ["PATH"]
    # The portal's own module offers the same (node may not import portal).
    assert process.OPTIMIZE_LEVEL == PORTAL_OPTIMIZE_LEVEL == 2
    assert process.portal_environment is portal_environment


def test_a_process_started_with_it_drops_docstrings_asserts_and_columns() -> None:
    # Columns: of the portal's own code (however its bytecode was compiled); its lines stay.
    code = ("import sys, portal.process\n"
            "try:\n    assert False\nexcept AssertionError:\n    print('asserts kept')\n"
            "print(sys.flags.optimize, portal.process.keep_tls_out.__doc__)\n"
            "where = list(portal.process.keep_tls_out.__code__.co_positions())\n"
            "print(sorted({c for _, _, c, _ in where if c is not None}),"
            " len({n for n, _, _, _ in where if n}) > 3)\n")
    done = subprocess.run([sys.executable, "-c", code], env=portal_environment(), cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["2", "None", "[]", "True"]


def make_tree(root: Path) -> tuple[Path, Path]:
    """A venv-like ``lib`` and a standard-library-like ``python3.11`` folder."""
    site = root / "lib" / "python3.11" / "site-packages"
    for name in ("hub/__init__.py", "hub/views.py", "hub/tests/test_views.py",
                 "pip/__init__.py", "setuptools/__init__.py"):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text('"""Docstring."""\nVALUE = 1\n')
    stdlib = root / "stdlib" / "python3.11"
    for name in ("json/__init__.py", "test/test_json.py", "site-packages/other.py"):
        (stdlib / name).parent.mkdir(parents=True, exist_ok=True)
        (stdlib / name).write_text("X = 1\n")
    return root / "lib", stdlib


def test_byte_compiling_writes_level_2_bytecode_and_skips_what_the_portal_never_imports(
        tmp_path: Path) -> None:
    lib, stdlib = make_tree(tmp_path)
    site = lib / "python3.11" / "site-packages"
    byte_compile_for_portal(sys.executable, [lib], stdlib=stdlib)
    assert opt_pyc(site / "hub/__init__.py").exists()
    assert opt_pyc(site / "hub/views.py").exists()
    assert opt_pyc(stdlib / "json/__init__.py").exists()
    for skipped in (site / "hub/tests/test_views.py", site / "pip/__init__.py",
                    site / "setuptools/__init__.py", stdlib / "test/test_json.py",
                    stdlib / "site-packages/other.py"):
        assert not opt_pyc(skipped).exists(), skipped
    assert not list(tmp_path.rglob(f"*.{TAG}.pyc")), "level 0 is pip's business"
    # A second run finds everything up to date and writes nothing.
    made = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pyc")}
    byte_compile_for_portal(sys.executable, [lib], stdlib=stdlib)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pyc")} == made


def test_a_module_that_does_not_compile_fails_and_says_which(tmp_path: Path) -> None:
    lib, _ = make_tree(tmp_path)
    broken = lib / "python3.11" / "site-packages" / "hub" / "broken.py"
    broken.write_text("def (:\n")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        byte_compile_for_portal(sys.executable, [lib])
    assert "broken.py" in failed.value.stdout + failed.value.stderr


def test_nothing_to_compile_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no folder, compileall would compile all of sys.path at level 0 instead.
    ran: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **_: ran.append(argv))
    byte_compile_for_portal(sys.executable, [])
    assert ran == []
    byte_compile_for_portal(sys.executable, [], stdlib="/usr/lib/python3.11")
    assert len(ran) == 1 and ran[0][-1] == "/usr/lib/python3.11"


def test_the_portal_code_folders_are_the_checkout_site_packages_and_stdlib() -> None:
    packages, stdlib = portal_code_folders()
    assert ROOT / "portal" in packages and ROOT / "node" in packages
    assert any(p.name == "site-packages" for p in packages)
    assert (stdlib / "json" / "__init__.py").exists()
    assert not any(a != b and a in b.parents for a in packages for b in packages)


def test_the_portal_code_folders_are_asked_of_the_portals_user(tmp_path: Path) -> None:
    # A stand-in for 'setpriv --reuid=...': notes what it ran, then runs it.
    run_as = tmp_path / "run-as"
    run_as.write_text(f'#!/bin/sh\necho "$1" >>{tmp_path / "ran"}\nexec "$@"\n')
    run_as.chmod(0o755)
    assert portal_code_folders([str(run_as)]) == portal_code_folders()
    assert (tmp_path / "ran").read_text() == f"{sys.executable}\n"
