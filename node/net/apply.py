"""``meshhub net apply``: write the plan's files and run its commands, safely and idempotently.

1. Every rendered file is compared with what is on disk; identical files are
   "unchanged" and nothing is run for them. When nothing changed, nothing runs at all:
   a second apply changes nothing.
2. Changed files are first written next to their target (``NAME.new``) and checked by
   the real tools (``nft -c -f``, ``dnsmasq --test``); if a check fails, the candidates
   are removed and the files in place stay as they were.
3. The old files are kept as ``NAME.previous``, the new ones renamed into place
   (atomic), and the plan's commands run in order (the gate first). If a command
   fails, the previous files are put back, the previous gate is applied again, and the
   error names the command and its output.

Every command goes through an injectable runner (tests use fakes, or run ``nft``
inside a namespace they made); ``root`` lets the files go under a folder instead of ``/``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from node.atomic import atomic_write
from node.errors import NodeError
from node.net.plan import NetworkPlan, PlannedFile

Runner = Callable[[Sequence[str], "str | None"], tuple[int, str, str]]


class ApplyError(NodeError, RuntimeError):
    """Applying the network plan failed; the previous state was kept or restored."""


@dataclass
class ApplyReport:
    """What an apply did (or, with ``dry_run``, would do)."""

    changed: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    dry_run: bool = False


def _target(root: Path, planned: PlannedFile) -> Path:
    return root / planned.path.relative_to(planned.path.anchor)


def _same(path: Path, planned: PlannedFile) -> bool:
    try:
        return (path.read_text(encoding="utf-8") == planned.content
                and (path.stat().st_mode & 0o7777) == planned.mode)
    except (OSError, UnicodeDecodeError):
        return False


def _check_command(name: str, candidate: Path) -> list[str] | None:
    """The real tool's check-only command for a candidate file, if it has one."""
    if name == "gate.nft":
        return ["nft", "-c", "-f", str(candidate)]
    if name in ("dnsmasq.conf", "dnsmasq-walled.conf"):
        return ["dnsmasq", "--test", f"--conf-file={candidate}"]
    return None


def apply_plan(plan: NetworkPlan, runner: Runner, *, root: Path = Path("/"),
               dry_run: bool = False, run_commands: bool = True) -> ApplyReport:
    """Apply ``plan`` (see the module docstring); raises :class:`ApplyError` on failure.

    ``run_commands=False`` writes (and checks) the files only, e.g. into an image's root.
    """
    report = ApplyReport(dry_run=dry_run)
    changed = []
    for planned in plan.files:
        target = _target(root, planned)
        if _same(target, planned):
            report.unchanged.append(target)
        else:
            report.changed.append(target)
            changed.append((planned, target))
    if not changed:
        return report
    report.commands = [shlex.join(c) for c in plan.commands]
    if dry_run:
        return report
    if not run_commands:
        report.commands = []

    candidates: list[tuple[Path, Path]] = []
    try:
        for planned, target in changed:
            candidate = target.with_name(target.name + ".new")
            atomic_write(candidate, planned.content, mode=planned.mode)
            candidates.append((candidate, target))
            check = _check_command(planned.path.name, candidate)
            if check:
                code, out, err = runner(check, None)
                if code != 0:
                    raise ApplyError(f"{target}: the new file fails `{shlex.join(check)}`; "
                                     f"nothing was changed:\n{(err or out).strip()}")
    except BaseException:
        for candidate, _target_path in candidates:
            candidate.unlink(missing_ok=True)
        raise

    kept: list[tuple[Path, Path | None]] = []
    for candidate, target in candidates:
        previous = target.with_name(target.name + ".previous")
        if target.exists():
            os.replace(target, previous)
            kept.append((target, previous))
        else:
            kept.append((target, None))
        os.replace(candidate, target)

    for command in plan.commands if run_commands else ():
        code, out, err = runner(command, None)
        if code != 0:
            _restore(kept, plan, root, runner)
            raise ApplyError(f"`{shlex.join(command)}` failed ({code}); the previous files "
                             f"were put back:\n{(err or out).strip()}")
    return report


def _restore(kept: list[tuple[Path, Path | None]], plan: NetworkPlan, root: Path,
             runner: Runner) -> None:
    """Put the previous files back and re-apply the previous gate (best effort)."""
    for target, previous in kept:
        if previous is not None:
            os.replace(previous, target)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
    gate = _target(root, plan.file("gate.nft"))
    if any(t == gate and p is not None for t, p in kept):
        runner(["nft", "-f", str(gate)], None)
