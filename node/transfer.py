"""Files named by their SHA-256 between nodes over HTTP: served with Range, fetched with resume.

Both replication (library files, :mod:`node.sync`) and updates (release
files, :mod:`node.update`) move large files over slow mesh links, so both
use the same two halves:

* the server side, :func:`serve_file`, answers ``GET``/``HEAD`` for a file
  whole or from a strictly parsed ``Range: bytes=N-`` / ``bytes=N-M``
  (anything else, or a start past the end, is 416);
* the client side, :func:`receive` and :func:`install`, streams a response
  into ``.partial-<sha256>``, resumes it with ``Range: bytes=N-`` when a
  transfer broke off (:func:`resume_offset`), never accepts more bytes than
  the file's stated size, and hashes the whole file before it is renamed
  into place: bytes that do not match are thrown away.

The caller owns the connection and says which exception to raise
(:class:`Fail`): :meth:`node.agent_client.AgentClient.error`, an
:class:`~node.agent_client.AgentError` with ``bad_data`` for the sender's fault.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from node.atomic import fsync_dir

#: Bytes read or written at a time while streaming a file.
CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d{1,15})-(\d{0,15})")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")

StartResponse = Callable[..., Any]


class Fail(Protocol):
    """Makes the exception a failed transfer raises (``bad_data``: the sender's fault)."""

    def __call__(self, reason: str, *, bad_data: bool = False) -> Exception:
        """The exception to raise for ``reason``."""
        ...


class Response(Protocol):
    """What :func:`receive` needs of an HTTP response (:class:`node.agent_client.AgentResponse`)."""

    status: int

    def read(self, amt: int | None = None, /) -> bytes:
        """Up to ``amt`` bytes of the body."""
        ...

    def getheader(self, name: str) -> str | None:
        """A response header (None when absent)."""
        ...


# --- serving ---------------------------------------------------------------------------

def serve_file(path: os.PathLike[str], size: int, environ: dict[str, Any],
               start_response: StartResponse) -> Iterable[bytes]:
    """A WSGI response with the file at ``path`` (``size`` bytes), whole or from a byte range.

    One range ``bytes=N-`` or ``bytes=N-M`` is served (206); N at or beyond
    the end is answered 416 with ``Content-Range: bytes */size``, so that the
    client starts over. Any other ``Range`` (a suffix ``bytes=-N``, several
    ranges, another unit, ``M < N``) is ignored and the whole file sent, as
    HTTP allows (RFC 9110 §14.2). ``HEAD`` gets the headers only.
    """
    start, end = 0, size - 1
    status = "200 OK"
    headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
    wanted = environ.get("HTTP_RANGE")
    match = _RANGE.fullmatch(wanted.strip()) if wanted else None
    if match is not None and match.group(2) and int(match.group(2)) < int(match.group(1)):
        match = None  # an invalid range: ignored
    if match is not None:
        if int(match.group(1)) >= size:
            start_response("416 Range Not Satisfiable",
                           [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
            return [b""]
        start = int(match.group(1))
        end = min(size - 1, int(match.group(2))) if match.group(2) else size - 1
        status = "206 Partial Content"
        headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    length = max(0, end - start + 1)
    start_response(status, [*headers, ("Content-Length", str(length))])
    if environ.get("REQUEST_METHOD") == "HEAD":
        return [b""]
    return file_chunks(path, start, length)


def file_chunks(path: os.PathLike[str], start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of ``path`` from ``start``, :data:`CHUNK` at a time (fewer if it shrank)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


# --- fetching --------------------------------------------------------------------------

def resume_offset(partial: Path, size: int) -> int:
    """Bytes already in ``partial`` to resume from; 0 (``partial`` removed) if it is not short."""
    offset = partial.stat().st_size if partial.exists() else 0
    if offset >= size and offset:
        partial.unlink()
        offset = 0
    return offset


def receive(response: Response, partial: Path, *, offset: int, size: int, where: str,
            authority: str, fail: Fail, stop: Callable[[], bool] = lambda: False,
            on_chunk: Callable[[int], None] = lambda count: None) -> bool:
    """Stream ``response`` (to a request from byte ``offset``) into ``partial``.

    False when the sender lacks the file (404). True when ``partial`` holds
    all ``size`` bytes. Raises ``fail(...)`` for a refused range (``partial``
    removed, to start over), a Content-Range that does not continue
    ``partial``, more bytes than ``size`` (``authority`` is what states it,
    e.g. "the manifest"), another status, or a transfer that broke off or was
    stopped (``partial`` kept, to be resumed). ``where`` names the file in
    messages; ``on_chunk`` counts received body bytes.
    """
    if response.status == 404:
        response.read(4096)
        return False
    if response.status == 416:
        partial.unlink(missing_ok=True)
        raise fail(f"{where}: range from {offset} refused (416); starting over next time")
    if response.status == 206:
        header = response.getheader("Content-Range") or ""
        match = _CONTENT_RANGE.fullmatch(header)
        if not match or int(match.group(1)) != offset or int(match.group(3)) != size:
            raise fail(f"{where}: Content-Range {header!r} does not continue byte {offset} "
                       f"of {size}", bad_data=True)
        mode = "ab"
    elif response.status == 200:
        offset, mode = 0, "wb"
    else:
        raise fail(f"{where}: HTTP {response.status}")
    received = offset
    with open(partial, mode) as out:
        try:
            while not stop():
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                on_chunk(len(chunk))
                received += len(chunk)
                if received > size:
                    raise fail(f"{where}: more than the {size} bytes {authority} states",
                               bad_data=True)
                out.write(chunk)
        finally:
            out.flush()
            os.fsync(out.fileno())
    if received != size:
        raise fail(f"{where}: transfer broke off at {received} of {size} bytes; will resume")
    return True


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path`` (hex), read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def install(partial: Path, final: Path, *, sha256: str, where: str, authority: str,
            fail: Fail, mode: int | None = None) -> None:
    """Rename the complete ``partial`` to ``final`` if its bytes hash to ``sha256``.

    Otherwise ``partial`` is removed and ``fail(..., bad_data=True)`` raised,
    naming ``authority`` (what names the hash). ``mode``, when given, is set
    on the file before the rename; the folder is fsynced after it.
    """
    actual = file_sha256(partial)
    if actual != sha256:
        partial.unlink(missing_ok=True)
        raise fail(f"{where}: its bytes hash to {actual[:12]}…, not to the SHA-256 "
                   f"{authority} names (a different or tampered file); discarded",
                   bad_data=True)
    if mode is not None:
        os.chmod(partial, mode)
    os.replace(partial, final)
    fsync_dir(final.parent)
