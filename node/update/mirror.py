"""Fetching releases from mirrors: another node's agent at ``/update/v1/``.

A mirror is only a courier: nothing it sends is trusted. The requests
(signed, bounded, counted on the socket, one error class) are
:mod:`node.agent_client`'s; the manifest is read within
:data:`~node.update.manifest.MAX_MANIFEST_BYTES` and then parsed and verified
by the caller (:mod:`node.update.manifest`); each file is fetched by its
SHA-256, streamed into ``.partial-<sha256>`` beside its final place, resumed
with ``Range: bytes=N-`` when a transfer broke off, and hashed before it is
renamed into place: bytes that do not match are thrown away.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from node import transfer
from node.agent_client import AgentClient, ByteCounter, NodeKeys
from node.identity import Identity
from node.update.manifest import MAX_MANIFEST_BYTES, ReleaseFile

PREFIX = "/update/v1"
USER_AGENT = "meshhub-update/1"


class MirrorClient(AgentClient):
    """Requests to one mirror's ``/update/v1`` endpoints.

    ``files`` (when given) counts the bytes of release files received, so that
    a status shows each file crossed a link once; ``counter`` counts everything
    on the socket.
    """

    prefix = PREFIX
    user_agent = USER_AGENT
    #: A web server listed in ``update.mirrors`` names no node: it is asked unsigned and
    #: its answers taken unsigned, as releases carry the admins' signatures and hashes.
    plain_servers = True

    def __init__(self, url: str, *, timeout: float = 10.0, counter: ByteCounter | None = None,
                 files: ByteCounter | None = None, identity: Identity | None = None,
                 keys: NodeKeys | None = None) -> None:
        super().__init__(url, timeout=timeout, counter=counter, identity=identity, keys=keys)
        self.files = files or ByteCounter()

    def manifest(self) -> bytes | None:
        """The mirror's newest manifest file (bytes, at most the manifest limit); None if none."""
        with self.exchange("GET", "/manifest") as response:
            data = self.read(response, "GET /manifest", MAX_MANIFEST_BYTES)
            if response.status == 404:
                return None
            if response.status != 200:
                raise self.error(f"GET /manifest: HTTP {response.status}")
        return data

    def notify(self, port: int | None) -> None:
        """Tell the mirror (a neighbour's agent) this node holds a new release."""
        body = b"" if port is None else str(port).encode()
        with self.exchange("POST", "/notify", body, {"Content-Type": "text/plain"}) as response:
            self.read(response, "POST /notify", 1024)
            if response.status not in (200, 202):
                raise self.error(f"POST /notify: HTTP {response.status}")

    def fetch_file(self, item: ReleaseFile, folder: Path, *,
                   stop: Callable[[], bool] = lambda: False) -> bool:
        """Fetch ``item`` into ``folder/item.path``; True when stored, False if the mirror lacks it.

        Raises :class:`~node.agent_client.AgentError` for a broken transfer (the
        partial file stays, to be resumed from any mirror) or wrong bytes (removed).
        """
        partial = folder / f".partial-{item.sha256}"
        offset = transfer.resume_offset(partial, item.size)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        where = f"{item.path} ({item.sha256[:12]})"
        with self.exchange("GET", f"/files/{item.sha256}", None, headers) as response:
            if not transfer.receive(response, partial, offset=offset, size=item.size,
                                    where=where, authority="the manifest", fail=self.error,
                                    stop=stop,
                                    on_chunk=lambda n: self.files.add(received=n)):
                return False
        transfer.install(partial, folder / item.path, sha256=item.sha256, where=where,
                         authority="the manifest", fail=self.error)
        return True
