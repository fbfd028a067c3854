"""Uploads kept on the node while an organiser fixes the rest of the upload form.

A mistake in the form (a missing title, a language written out in full) must
not cost the organiser a second 200 MiB upload over a weak link. So when the
hub refuses an upload for anything but the file itself, the file is kept here
under a random token; the form carries the token and says "File kept", and the
next try uses the kept file when no new one is chosen. A kept file belongs to
the account that uploaded it, is removed once it is in the library, and any
kept file older than :data:`KEEP_SECONDS` is swept away on the next visit to
the upload form.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: How long a kept upload waits for its form to be fixed.
KEEP_SECONDS = 3600
_TOKEN = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Kept:
    """A kept upload: its token, the file on disk, and the name it was uploaded under."""

    token: str
    path: Path
    filename: str


class Staging:
    """The folder of kept uploads (``data_dir/upload-staging``), for one account."""

    def __init__(self, root: Path, account: str) -> None:
        self.root = root
        self.account = account

    def keep(self, stream: BinaryIO, filename: str) -> Kept:
        """Copy ``stream`` (from its start) into the folder; returns its token."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        path = self.root / token
        with contextlib.suppress(OSError, ValueError):
            stream.seek(0)
        tmp = path.with_suffix(".partial")
        try:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
            os.replace(tmp, path)
            meta = {"account": self.account, "filename": filename}
            path.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
        except BaseException:
            for leftover in (tmp, path):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            raise
        return Kept(token, path, filename)

    def get(self, token: str | None) -> Kept | None:
        """The kept upload with this token, if it exists and is this account's."""
        if not token or not _TOKEN.fullmatch(token):
            return None
        path = self.root / token
        try:
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("account") != self.account or not path.is_file():
            return None
        return Kept(token, path, str(meta.get("filename", "")))

    def discard(self, token: str | None) -> None:
        """Remove a kept upload (once it is in the library, or replaced by a new file)."""
        kept = self.get(token)
        if kept is not None:
            for path in (kept.path, kept.path.with_suffix(".json")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def sweep(self, now: float | None = None) -> None:
        """Remove every kept upload (anyone's) older than :data:`KEEP_SECONDS`."""
        if not self.root.is_dir():
            return
        cutoff = (time.time() if now is None else now) - KEEP_SECONDS
        for path in self.root.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
