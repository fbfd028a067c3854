"""The package boundaries of docs/architecture.md, checked on the source.

provisioning and portal may import node (and read the recipe data in
images); node may import hardware; hardware imports nothing of ours. Only
diagnostics commands may import scapy. Every module imports on its own (no
import cycles hidden by import order).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("node", "portal", "provisioning", "hardware", "images")
ALLOWED: dict[str, set[str]] = {
    "hardware": set(),
    "node": {"hardware"},
    "portal": {"node", "hardware", "images"},
    "provisioning": {"node", "hardware", "images"},
    "images": set(),
}


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


def imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_package_imports_follow_the_architecture(module: str, path: Path) -> None:
    own = module.split(".")[0]
    for name in imported_names(path):
        top = name.split(".")[0]
        if top in PACKAGES and top != own:
            assert top in ALLOWED[own], f"{module} imports {name}: {own} may not import {top}"


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_scapy_only_in_diagnostics(module: str, path: Path) -> None:
    if "diag" in module:
        return
    assert not any(n.split(".")[0] == "scapy" for n in imported_names(path)), (
        f"{module} imports scapy; only diagnostics commands may (it costs ~60 MB)")


def test_every_module_imports_on_its_own() -> None:
    names = [m for m, _ in modules() if not m.endswith("__main__")]
    code = ("import importlib, sys\n"
            "failed = []\n"
            "for name in sys.argv[1:]:\n"
            "    for loaded in [m for m in sys.modules if m.split('.')[0] in "
            f"{PACKAGES!r}]:\n"
            "        del sys.modules[loaded]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as exc:\n"
            "        failed.append(f'{name}: {exc!r}')\n"
            "print('\\n'.join(failed))\n")
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True,
                            text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.py")),
                         ids=lambda p: f"bench.{p.stem}")
def test_benchmarks_import_nothing_from_the_tests(path: Path) -> None:
    # Issue 16: what a benchmark needs lives in bench/ or the product (the tests may
    # import bench/, never the other way round), so a benchmark runs without tests/.
    imported = {n for n in imported_names(path) if n.split(".")[0] == "tests"}
    assert not imported, f"bench/{path.name} imports {sorted(imported)}"
