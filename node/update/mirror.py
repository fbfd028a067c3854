"""Fetching releases from mirrors: another node's agent (or any web server) at ``/update/v1/``.

A mirror is only a courier: nothing it sends is trusted. The manifest is read
with a size cap and then parsed and verified by the caller
(:mod:`node.update.manifest`); each file is fetched by its SHA-256, streamed
into ``.partial-<sha256>`` beside its final place, resumed with
``Range: bytes=N-`` when a transfer broke off, and hashed before it is renamed
into place: bytes that do not match are thrown away.
"""

from __future__ import annotations

import functools
import http.client
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from node import transfer
from node.agent_auth import HEADER as AUTH_HEADER
from node.agent_auth import sign_request
from node.errors import NodeError
from node.identity import Identity
from node.update.manifest import MAX_MANIFEST_BYTES, ReleaseFile

PREFIX = "/update/v1"
USER_AGENT = "meshhub-update/1"


class MirrorError(NodeError, OSError):
    """A mirror was unreachable, or sent something other than what was asked for.

    ``bad_data`` is True when the mirror sent wrong or oversized bytes.
    """

    def __init__(self, mirror: str, reason: str, *, bad_data: bool = False) -> None:
        self.mirror = mirror
        self.reason = reason
        self.bad_data = bad_data
        super().__init__(f"{mirror}: {reason}")


class Counter:
    """Response bytes received from mirrors (thread-safe): what the benchmark reports."""

    def __init__(self) -> None:
        self.manifest_bytes = 0
        self.file_bytes = 0
        self._lock = threading.Lock()

    def add(self, *, manifest: int = 0, file: int = 0) -> None:
        """Count received body bytes."""
        with self._lock:
            self.manifest_bytes += manifest
            self.file_bytes += file


def base_url(url: str) -> str:
    """``http://host:port`` of a mirror; ValueError unless a plain http base URL."""
    parts = urlsplit(url.strip())
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise ValueError(f"not a mirror base URL (http://host:port): {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{parts.port or 80}"


class MirrorClient:
    """Requests to one mirror's ``/update/v1`` endpoints, each with a timeout."""

    def __init__(self, url: str, *, timeout: float = 10.0, counter: Counter | None = None,
                 identity: Identity | None = None) -> None:
        self.url = base_url(url)
        self.identity = identity  #: signs requests: agents answer registered nodes only
        parts = urlsplit(self.url)
        self._host = parts.hostname or ""
        self._port = parts.port
        self.timeout = timeout
        self.counter = counter or Counter()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if self.identity is not None:
            headers[AUTH_HEADER] = sign_request(self.identity, method, path, body)
        return headers

    def manifest(self) -> bytes | None:
        """The mirror's newest manifest file (bytes, at most the manifest limit); None if none."""
        conn = self._connect()
        try:
            conn.request("GET", f"{PREFIX}/manifest",
                         headers=self._headers("GET", f"{PREFIX}/manifest"))
            response = conn.getresponse()
            data = response.read(MAX_MANIFEST_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise MirrorError(self.url, f"GET {PREFIX}/manifest: {type(exc).__name__}: "
                                        f"{str(exc)[:160] or 'connection failed'}") from None
        finally:
            conn.close()
        self.counter.add(manifest=len(data))
        if response.status == 404:
            return None
        if response.status != 200:
            raise MirrorError(self.url, f"GET {PREFIX}/manifest: HTTP {response.status}")
        return data  # the caller refuses it, with the reason, when it is too large

    def notify(self, port: int | None) -> None:
        """Tell the mirror (a neighbour's agent) this node holds a new release."""
        conn = self._connect()
        body = b"" if port is None else str(port).encode()
        try:
            conn.request("POST", f"{PREFIX}/notify", body=body,
                         headers={**self._headers("POST", f"{PREFIX}/notify", body),
                                  "Content-Type": "text/plain"})
            response = conn.getresponse()
            response.read(1024)
        except (OSError, http.client.HTTPException) as exc:
            raise MirrorError(self.url, f"POST {PREFIX}/notify: {type(exc).__name__}: "
                                        f"{str(exc)[:160]}") from None
        finally:
            conn.close()
        if response.status not in (200, 202):
            raise MirrorError(self.url, f"POST {PREFIX}/notify: HTTP {response.status}")

    def fetch_file(self, item: ReleaseFile, folder: Path, *,
                   stop: Callable[[], bool] = lambda: False) -> bool:
        """Fetch ``item`` into ``folder/item.path``; True when stored, False if the mirror lacks it.

        Raises :class:`MirrorError` for a broken transfer (the partial file
        stays, to be resumed from any mirror) or wrong bytes (removed).
        """
        partial = folder / f".partial-{item.sha256}"
        offset = transfer.resume_offset(partial, item.size)
        headers = self._headers("GET", f"{PREFIX}/files/{item.sha256}")
        if offset:
            headers["Range"] = f"bytes={offset}-"
        conn = self._connect()
        where = f"{item.path} ({item.sha256[:12]})"
        fail = functools.partial(MirrorError, self.url)
        try:
            conn.request("GET", f"{PREFIX}/files/{item.sha256}", headers=headers)
            response = conn.getresponse()
            if not transfer.receive(response, partial, offset=offset, size=item.size,
                                    where=where, authority="the manifest", fail=fail,
                                    stop=stop, on_chunk=lambda n: self.counter.add(file=n)):
                return False
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, MirrorError):
                raise
            raise MirrorError(self.url, f"{where}: {type(exc).__name__}: "
                                        f"{str(exc)[:160] or 'connection failed'}") from None
        finally:
            conn.close()
        transfer.install(partial, folder / item.path, sha256=item.sha256, where=where,
                         authority="the manifest", fail=fail)
        return True
