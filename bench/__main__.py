"""``make bench``: run the portal-side benchmarks in turn and fail when any figure misses.

Each benchmark prints its figures as ``name: value unit (target: ...; verdict; load)``
through :class:`bench.measure.Report` and exits non-zero on a miss or a measuring error;
this runner runs them one after the other (never two at once: they pin cores 0 and 1),
prints a summary and exits non-zero if any of them did. A benchmark named here but
missing from bench/ counts as a miss. Pass names to run only some::

    .venv/bin/python -m bench [street zim ...]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

#: The benchmarks of ``make bench``, in order (the lab, VM and image ones need root or
#: minutes of building: run them by hand, see docs/serving.md and each module).
SUITE = ("street", "burst", "portal", "memory", "zim", "flash")
BENCH = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Run the named benchmarks (default :data:`SUITE`); 0 only if every one passed."""
    names = argv or list(SUITE)
    outcome: dict[str, str] = {}
    for name in names:
        script = BENCH / f"{name}.py"
        print(f"# --- bench/{name}.py", flush=True)
        if not script.is_file():
            outcome[name] = "missing"
            print(f"# bench/{name}.py does not exist", flush=True)
            continue
        started = time.monotonic()
        code = subprocess.run([sys.executable, str(script)], check=False).returncode
        outcome[name] = "passed" if code == 0 else f"failed (exit {code})"
        print(f"# bench/{name}.py {outcome[name]} in {time.monotonic() - started:.0f} s",
              flush=True)
    print("# summary: " + ", ".join(f"{n} {o}" for n, o in outcome.items()), flush=True)
    return 0 if all(o == "passed" for o in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
