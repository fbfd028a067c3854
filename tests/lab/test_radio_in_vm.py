"""The radio lab's tests (``test_radio_lab.py``) run inside a Debian virtual machine.

This machine's kernel (and CI's) has no ``mac80211_hwsim``; Debian's kernel has. So,
once per session, this module:

1. takes the Debian base image (``image base --arch amd64``, cached:
   :mod:`tests.vmsupport`), which has hostapd, wpa_supplicant, babeld, dnsmasq,
   nftables, iw, busybox, curl, Python 3.11 (its standard library byte-compiled for
   the portal too) and the QEMU guest agent;
2. prepares, on this machine, an ext4 disk image holding a copy of this checkout and a
   virtual environment for the guest: this checkout's wheel, its dependencies for
   Debian 12's Python (``pip install --target --platform``, as ``image build`` makes a
   node's venv: :mod:`provisioning.image.venv`) and the test runner, all byte-compiled
   here at the agent's and the portal's levels with their file times kept. Under TCG an
   install and a byte-compile inside took minutes; the host's own virtual environment
   is never shared (another Python, maybe another machine);
3. boots the base image under QEMU (:class:`provisioning.vm.VirtualMachine`, its
   disk a throwaway snapshot) with that disk attached (a throwaway overlay too);
4. inside, mounts it and runs ``pytest tests/lab/test_radio_lab.py`` as root with
   ``CI=true MESHHUB_RADIO_TESTS=1`` (a missing radio or a skip is a failure there);
5. powers the machine off (kills it if it does not stop), then reports each inner
   test here, under its own name, with the inner outcome and text.

Where the kernel has mac80211_hwsim (a Debian laptop, the virtual machine itself),
``tests/lab/conftest.py`` collects ``test_radio_lab.py`` directly and not this module.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import require_root, require_tool

REPO = Path(__file__).resolve().parents[2]
INNER = "tests/lab/test_radio_lab.py"
#: Where things are inside the guest: the prepared disk (by its label) and what it holds.
DISK_LABEL, GUEST_DISK = "meshhub-radio", "/mnt/meshhub-radio"
GUEST_SRC, GUEST_VENV, GUEST_OUT = f"{GUEST_DISK}/src", f"{GUEST_DISK}/venv", "/var/tmp/radio"
#: Kernel modules the guest loads before the tests (see :func:`_guest_setup`).
PRELOADED_MODULES = ("nf_tables", "nf_conntrack", "nf_nat", "nft_chain_nat", "nft_ct",
                     "nft_redir", "nft_masq", "nft_limit", "nft_numgen", "nft_reject_inet",
                     "nf_reject_ipv4", "nf_reject_ipv6", "nft_fib_inet", "sch_netem")
#: Room on the disk beyond what it holds (bytecode pytest writes, logs of nothing else).
DISK_SPARE = 256 << 20
#: Folders of the checkout never copied into the guest (the host's venv, caches, git).
NOT_COPIED = (".venv", ".git", "var", "build", ".mypy_cache", ".ruff_cache", ".pytest_cache",
              "*.egg-info", "__pycache__")
#: Seconds, generous for TCG on a busy two-core machine.
BOOT, SETUP, RUN = 600.0, 300.0, 1800.0

#: ``MESHHUB_RADIO_VM_BENCH=1``: after the tests the guest also runs ``python -m bench.mesh
#: --radio`` (bench/mesh_radio.py), whose figures are printed here (for the issue's notes);
#: ``=only``: the benchmark instead of the tests (each selected test is then skipped).
BENCH = os.environ.get("MESHHUB_RADIO_VM_BENCH") in ("1", "only")
BENCH_ONLY = os.environ.get("MESHHUB_RADIO_VM_BENCH") == "only"
#: Seconds the benchmark may take in the guest (it stops there, its figures so far kept).
BENCH_TIME = 660.0

pytestmark = [pytest.mark.root, pytest.mark.timeout(BOOT + SETUP + RUN + 900)]


def inner_node_ids() -> dict[str, str]:
    """name -> pytest node id of each test of ``test_radio_lab.py`` (functions, and methods
    of its ``Test`` classes: one lab per class), read from its source (not imported)."""
    tree = ast.parse((REPO / INNER).read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        in_class = isinstance(node, ast.ClassDef) and node.name.startswith("Test")
        for f in node.body if isinstance(node, ast.ClassDef) and in_class else [node]:
            if isinstance(f, ast.FunctionDef) and f.name.startswith("test_"):
                found[f.name] = "::".join([INNER, *([node.name] if in_class else []), f.name])
    return found


def inner_tests() -> list[str]:
    """The names of the tests of ``test_radio_lab.py``."""
    return list(inner_node_ids())


def selected_inner(items: list[pytest.Item]) -> list[str]:
    """The inner node ids this session selected (``-k``, node ids): the whole module when
    every one is, so that a partial run (one failing test again) costs only its lab."""
    ids = inner_node_ids()
    chosen = [ids[item.callspec.params["name"]] for item in items  # type: ignore[attr-defined]
              if getattr(item, "originalname", "") == "test_radio_lab_in_a_virtual_machine"]
    return [INNER] if len(chosen) == len(ids) else chosen


@dataclass
class InnerRun:
    """What the run inside the virtual machine produced."""

    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)  #: name -> (outcome, text)
    output: str = ""  #: the inner pytest's own output (its tail explains a missing test)
    timings: dict[str, float] = field(default_factory=dict)  #: phase -> seconds
    bench: str = ""  #: what ``bench.mesh --radio`` printed (with :data:`BENCH`)


def _test_requirements() -> list[str]:
    """pytest and pytest-timeout as pyproject.toml's ``test`` extra pins them."""
    with open(REPO / "pyproject.toml", "rb") as file:
        test = tomllib.load(file)["project"]["optional-dependencies"]["test"]
    return [r for r in test if re.match(r"pytest(-timeout)?[<>=~! ]", r)]


def build_guest_wheelhouse(out: Path) -> None:
    """This checkout's wheel, its dependencies and the test runner, for Debian 12 amd64."""
    from provisioning.image.wheelhouse import NODE_PYTHON, PLATFORMS, build_meshhub_wheel

    # From a copy: setuptools builds in the source's build/ folder, where files of an
    # earlier build (a module since removed) would end up in the wheel.
    source = out.parent / f"{out.name}-source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_COPIED))
    try:
        wheel = build_meshhub_wheel(source, out)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    platforms = [arg for p in PLATFORMS["amd64"] for arg in ("--platform", p)]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "-q",
         "--only-binary=:all:", "--python-version", NODE_PYTHON, "--implementation", "cp",
         *platforms, "-d", str(out), str(wheel), *_test_requirements()],
        capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"pip download for the virtual machine failed:\n{result.stderr[-2000:]}")


def build_guest_disk(out: Path) -> Path:
    """The ext4 image (label :data:`DISK_LABEL`) of step 2 of the module docstring:
    ``src/`` (this checkout) and ``venv/``, in ``out``."""
    from pathlib import PurePosixPath

    from provisioning.image.venv import build_node_venv, compiler_python
    from provisioning.image.wheelhouse import PLATFORMS, meshhub_version

    wheels, tree = out / "wheelhouse", out / "tree"
    build_guest_wheelhouse(wheels)
    build_node_venv(wheels, meshhub_version(wheels), tree / "venv", platforms=PLATFORMS["amd64"],
                    node_path=PurePosixPath(GUEST_VENV), also=_test_requirements(),
                    invalidation="timestamp")
    shutil.copytree(REPO, tree / "src", ignore=shutil.ignore_patterns(*NOT_COPIED))
    python = compiler_python()
    if python is not None:  # else the guest compiles what it imports, only slower
        subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "-o", "0", "-o", "2",
                        "-s", str(tree / "src"), "-p", GUEST_SRC, str(tree / "src")],
                       check=True, capture_output=True, timeout=900)
    used = sum(p.lstat().st_size for p in tree.rglob("*"))
    image = out / "radio.img"
    result = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", DISK_LABEL, "-d", str(tree),
                             str(image), f"{(used * 3 // 2 + DISK_SPARE) >> 20}M"],
                            capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"mkfs.ext4 -d for the virtual machine failed: {result.stderr.strip()}")
    shutil.rmtree(tree)
    shutil.rmtree(wheels)
    return image


def _guest_setup() -> str:
    """The shell script that prepares the guest: the prepared disk, mounted."""
    return f"""set -eu
mkdir -p {GUEST_DISK} {GUEST_OUT}
mount LABEL={DISK_LABEL} {GUEST_DISK}
# What the labs' first nft commands would make the kernel load (nftables' expressions,
# conntrack and NAT): loaded here, where nothing waits on them with a deadline (under
# TCG on a busy host the first 'nft -c' of a boot took over 30 s).
modprobe -q -a {' '.join(PRELOADED_MODULES)} || true
"""


def _guest_run(tests: list[str]) -> str:
    """The shell line that runs ``tests`` (node ids) inside, their output also on the
    console."""
    return (f"cd {GUEST_SRC} && set -o pipefail && CI=true MESHHUB_RADIO_TESTS=1 "
            f"{GUEST_VENV}/bin/python -m pytest {' '.join(map(shlex.quote, tests))} "
            f"-p no:cacheprovider -v --junitxml={GUEST_OUT}/junit.xml --durations=0 "
            "-o log_cli=true --log-cli-level=INFO '--log-cli-format=%(asctime)s %(message)s' "
            "2>&1 "
            "| tee /dev/ttyS0")


def _guest_bench() -> str:
    """The shell line that runs the radio lab's benchmark, with the guest's load."""
    return (f"cd {GUEST_SRC} && set -o pipefail && uptime && {GUEST_VENV}/bin/python -m "
            "bench.mesh --radio 2>&1 | tee /dev/ttyS0; status=$?; uptime; exit $status")


def read_verdicts(lines: list[str]) -> dict[str, tuple[str, str]]:
    """name -> (outcome, text) from ``pytest -v`` lines (``...::name PASSED [ 12%]``), for a
    run that never wrote its JUnit file (the guest run was stopped at its deadline)."""
    outcomes: dict[str, tuple[str, str]] = {}
    current = None  # with live logs, the verdict comes on a line of its own after them
    for line in lines:
        named = re.search(r"::(test_\w+)\b", line)
        current = named.group(1) if named else current
        found = re.search(r"(?:^|\s)(PASSED|FAILED|ERROR|SKIPPED)\b", line)
        if found and current:
            outcomes[current] = (found.group(1).lower(),
                                 "(from the console: the run stopped before its "
                                 "report; the reason is in the failures above)")
    return outcomes


def read_junit(text: str) -> dict[str, tuple[str, str]]:
    """name -> (outcome, text) from pytest's JUnit XML; outcome is passed, failed, error or
    skipped, and text the failure's message and traceback."""
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ElementTree.fromstring(text).iter("testcase"):  # noqa: S314 (our own run)
        outcome, detail = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
                detail = f"{found.get('message', '')}\n{found.text or ''}".strip()
                break
        outcomes[case.get("name", "")] = outcome, detail
    return outcomes


@pytest.fixture(scope="module")
def radio_run(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[InnerRun]:
    """Boot, prepare, run the radio tests inside, power off: see the module docstring."""
    from node.lab.radio import hwsim_available

    if hwsim_available():  # tests/lab/conftest.py then collects test_radio_lab.py itself
        pytest.skip("this kernel has mac80211_hwsim: tests/lab/test_radio_lab.py runs here "
                    "directly, without a virtual machine")
    require_root()
    require_tool("qemu-system-x86_64", "/usr/share/ovmf/OVMF.fd", "mmdebstrap", "mkfs.ext4",
                 "mkfs.vfat", "mcopy", "sfdisk")
    from provisioning.vm import VirtualMachine, VmError
    from tests.vmsupport import base_folder, base_image

    run = InnerRun()
    started = time.monotonic()
    lines: list[str] = []
    try:
        base = base_image(base_folder(tmp_path_factory), "amd64", lines)
    except OSError as exc:
        pytest.fail(f"image base failed: {exc}\n" + "\n".join(lines[-20:]))
    run.timings["base image"] = time.monotonic() - started
    mark = time.monotonic()
    disk = build_guest_disk(tmp_path_factory.mktemp("guest-disk"))
    run.timings["guest disk"] = time.monotonic() - mark
    console_log = tmp_path_factory.mktemp("console") / "console.log"
    with open(console_log, "w", encoding="utf-8") as console:
        vm = VirtualMachine(base, snapshot=True, radios=0, memory_mb=2048, cpus=2,
                            console=console, disks=[disk])
        mark = time.monotonic()
        try:
            vm.start()
            if not vm.wait_agent(BOOT):
                pytest.fail(f"the virtual machine did not come up in {BOOT:.0f} s; console:\n"
                            + "\n".join(vm.console[-40:]))
            run.timings["boot"] = time.monotonic() - mark
            mark = time.monotonic()
            vm.run(_guest_setup(), timeout=SETUP).check()
            run.timings["guest setup"] = time.monotonic() - mark
            mark = time.monotonic()
            if not BENCH_ONLY:
                try:
                    tests = selected_inner(request.session.items)
                    result = vm.run(["/bin/bash", "-c", _guest_run(tests)], timeout=RUN)
                    run.output = result.stdout + result.stderr
                except VmError as exc:  # past RUN: what the console shows is all there is
                    run.output = f"{exc}\n" + "\n".join(vm.console[-60:])
                run.timings["radio tests"] = time.monotonic() - mark
                junit = vm.run(f"cat {GUEST_OUT}/junit.xml", timeout=60)
                run.outcomes = (read_junit(junit.stdout) if junit.returncode == 0
                                else read_verdicts(vm.console))
            if BENCH:
                mark = time.monotonic()
                try:
                    result = vm.run(["/bin/bash", "-c", _guest_bench()], timeout=BENCH_TIME)
                    run.bench = result.stdout + result.stderr
                except OSError as exc:  # past BENCH_TIME: the tests' verdicts stand
                    run.bench = f"{exc}; its figures so far:\n" + "\n".join(
                        line for line in vm.console if "(target: " in line)
                run.timings["bench"] = time.monotonic() - mark
        except OSError as exc:  # VmError, or the guest agent's socket timing out
            pytest.fail(f"in the virtual machine: {type(exc).__name__}: {exc}\nconsole:\n"
                        + "\n".join(vm.console[-60:]))
        finally:
            mark = time.monotonic()
            vm.stop(timeout=60)
            run.timings["power off"] = time.monotonic() - mark
    run.timings["total"] = time.monotonic() - started
    sys.stdout.write("radio tests in the VM, seconds: " + ", ".join(
        f"{phase} {seconds:.0f}" for phase, seconds in run.timings.items()) + "\n")
    if run.bench:
        sys.stdout.write("bench.mesh --radio in the VM:\n" + run.bench[-6000:] + "\n")
    yield run


@pytest.mark.parametrize("name", inner_tests())
def test_radio_lab_in_a_virtual_machine(radio_run: InnerRun, name: str) -> None:
    if BENCH_ONLY:
        pytest.skip("MESHHUB_RADIO_VM_BENCH=only: the benchmark ran instead of the tests")
    outcome = radio_run.outcomes.get(name)
    if outcome is None:
        tail = "\n".join(radio_run.output.splitlines()[-40:])
        pytest.fail(f"{INNER}::{name} did not run in the virtual machine; pytest there said:\n"
                    f"{tail}", pytrace=False)
    state, text = outcome
    if state != "passed":
        pytest.fail(f"{INNER}::{name} {state} in the virtual machine:\n{text}", pytrace=False)

