"""The agent's threads, named for the kernel too: ``top -H``, ``ps -L`` and bench/scale.py.

Python's thread names (``meshhub-babel-monitor``, ``waitress-0``) live in the
interpreter only; the kernel knows every thread by its process's name
(``meshhub``), so a per-thread view of an agent showed a dozen ``meshhub`` lines.
:func:`name_os_threads` writes each live thread's name, shortened to the kernel's
15 bytes, to ``/proc/self/task/<id>/comm`` (any thread of a process may name any
other). A plain write: ``prctl`` through ``ctypes`` would load ctypes into the agent
for good, memory an idle agent pays for (docs/scale.md).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

#: The kernel keeps 15 bytes of a thread's name (TASK_COMM_LEN is 16, with its NUL).
COMM_BYTES = 15
#: Where this process's threads are (one folder per thread, by its native id).
TASK_DIR = Path("/proc/self/task")

_ANONYMOUS = re.compile(r"Thread-\d+ \((.+)\)")  # threading's name for Thread(target=f)


def os_thread_name(name: str) -> str:
    """The kernel's name for a Python thread named ``name``: without the ``meshhub-``
    every agent thread's name begins with (the process is the agent), an anonymous
    thread by its function (``Thread-3 (_run_loop)`` -> ``_run_loop``), cut to
    :data:`COMM_BYTES` bytes on a character's boundary."""
    name = name.removeprefix("meshhub-")
    anonymous = _ANONYMOUS.fullmatch(name)
    if anonymous:
        name = anonymous[1]
    return name.encode()[:COMM_BYTES].decode("utf-8", "ignore")


def name_os_threads(task_dir: Path = TASK_DIR) -> int:
    """Give every live thread but the main one (it keeps the process's name) its Python
    name at the kernel's level; returns how many were named. Call it after threads
    start: a thread started later keeps the process's name until the next call."""
    named = 0
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is main or thread.native_id is None:
            continue
        try:
            (task_dir / str(thread.native_id) / "comm").write_text(os_thread_name(thread.name))
        except OSError:  # not Linux, or the thread ended meanwhile
            continue
        named += 1
    return named
