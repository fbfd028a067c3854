"""Being told when files change (Linux inotify), instead of reading them on a timer.

:class:`FolderWatch` watches one folder and reports the names of the files in it
that were written, created, moved in or removed. It is a descriptor a selector can
wait on (:meth:`FolderWatch.fileno`), so one thread — the agent's
:class:`~node.scheduler.Scheduler` — waits for every watched folder and timer at once
and uses no processor while nothing happens. Where inotify is missing (not Linux,
or the kernel's watch limit reached), :func:`open_folder_watch` returns None and the
caller falls back to polling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import struct
from pathlib import Path

log = logging.getLogger("meshhub.watch")

# From <sys/inotify.h>.
IN_MODIFY = 0x00000002
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
#: What counts as a change of a file in the folder: written (a commit's pages reach
#: SQLite's WAL as writes), created, moved in or out (our atomic writes), removed. Not
#: IN_CLOSE_WRITE: SQLite opens the WAL read-write for every connection, a read-only
#: reader's too, so closing a reader fired it; the gate's look at the store (a reader)
#: then woke its own watch, for ever: an idle lab agent used 28 % of a core.
CHANGES = IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then ``len`` bytes of name
#: A name that stands for "anything may have changed" (the kernel's queue overflowed).
OVERFLOW = "*"


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1, libc.inotify_add_watch  # noqa: B018 (present, or AttributeError)
    except (OSError, AttributeError, TypeError):
        return None
    return libc


class FolderWatch:
    """An inotify descriptor watching one folder; :meth:`changed` reads what changed."""

    def __init__(self, fd: int, folder: Path) -> None:
        self._fd = fd
        self.folder = folder

    def fileno(self) -> int:
        """The descriptor, readable when something changed (for a selector)."""
        return self._fd

    def changed(self) -> set[str]:
        """Names of the files that changed since the last call (without blocking);
        :data:`OVERFLOW` among them when the kernel dropped events."""
        names: set[str] = set()
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return names
            except OSError:
                return names | {OVERFLOW}
            if not data:
                return names
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size: offset + _EVENT.size + length]
                offset += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    names.add(OVERFLOW)
                elif raw:
                    names.add(raw.split(b"\0", 1)[0].decode("utf-8", "replace"))

    def close(self) -> None:
        """Stop watching (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_folder_watch(folder: Path) -> FolderWatch | None:
    """A watch on ``folder``, or None where inotify cannot be used (then poll)."""
    libc = _libc()
    if libc is None:
        return None
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        log.info("watch: no inotify (%s); polling instead", os.strerror(ctypes.get_errno()))
        return None
    if libc.inotify_add_watch(fd, os.fsencode(folder), CHANGES) < 0:
        log.info("watch: cannot watch %s (%s); polling instead", folder,
                 os.strerror(ctypes.get_errno()))
        os.close(fd)
        return None
    return FolderWatch(fd, folder)
