"""The client side of the sync protocol: one peer's agent, over plain HTTP on the mesh.

The requests themselves (signed, bounded, counted on the socket, one error
class) are :mod:`node.agent_client`'s; this module adds the protocol's steps
and checks what a peer answers: anything other than the protocol says raises
:class:`~node.agent_client.AgentError` with ``bad_data``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from node.agent_client import AgentClient, AgentResponse
from node.sync import protocol
from node.sync.protocol import ProtocolError

USER_AGENT = "meshhub-sync/1"
_JSON = {"Content-Type": protocol.JSON_TYPE}


class PeerClient(AgentClient):
    """Requests to one peer's ``/sync/v1`` endpoints."""

    prefix = protocol.PREFIX
    user_agent = USER_AGENT

    def _json(self, method: str, path: str, value: Any, max_bytes: int) -> Any:
        body = None if value is None else protocol.dumps(value)
        with self.exchange(method, path, body, None if body is None else _JSON) as response:
            data = self.read(response, f"{method} {path}", max_bytes)
            if response.status != 200:
                raise self.error(f"{method} {path}: HTTP {response.status} "
                                 f"{data[:120].decode('utf-8', 'replace')}",
                                 bad_data=400 <= response.status < 500)
        try:
            return protocol.loads(data, f"{method} {path}")
        except ProtocolError as exc:
            raise self.error(str(exc), bad_data=True) from None

    def _checked(self, parse: Any, value: Any, *args: Any) -> Any:
        try:
            return parse(value, *args)
        except ProtocolError as exc:
            raise self.error(str(exc), bad_data=True) from None

    # --- the protocol's steps --------------------------------------------------------
    def digest(self) -> protocol.Digest:
        """Step 1: the peer's digest (a few hundred bytes with headers)."""
        value = self._json("GET", "/digest", None, protocol.MAX_SMALL_BYTES)
        return self._checked(protocol.parse_digest, value)  # type: ignore[no-any-return]

    def vector(self, mine: dict[str, int], port: int | None) -> dict[str, int]:
        """Step 2: send this node's vector (and agent port), get the peer's."""
        value = self._json("POST", "/vector", {"vector": mine, "port": port},
                           protocol.MAX_PAGE_BYTES)
        return self._checked(protocol.parse_vector_response, value)  # type: ignore[no-any-return]

    def entries(self, since: dict[str, int], limit: int
                ) -> tuple[list[dict[str, Any]], bool]:
        """Step 3: one page of the entries after ``since``; (entries, more)."""
        value = self._json("POST", "/entries", {"since": since, "limit": limit},
                           protocol.MAX_PAGE_BYTES)
        return self._checked(  # type: ignore[no-any-return]
            protocol.parse_entries_response, value, limit)

    def bodies(self, ids: list[str]) -> list[dict[str, Any]]:
        """The entries among ``ids`` the peer holds with their body (to restore missing ones)."""
        value = self._json("POST", "/bodies", {"ids": ids}, protocol.MAX_PAGE_BYTES)
        return self._checked(  # type: ignore[no-any-return]
            protocol.parse_bodies_response, value, len(ids))

    def notify(self, digest: str, port: int | None) -> None:
        """Push: tell the peer this node has new entries (it pulls when it wants)."""
        body = protocol.dumps({"digest": digest, "port": port})
        with self.exchange("POST", "/notify", body, _JSON) as response:
            self.read(response, "POST /notify", protocol.MAX_SMALL_BYTES)
            if response.status not in (200, 202):
                raise self.error(f"POST /notify: HTTP {response.status}")

    def push(self, digest: str, port: int | None, registry: int | None,
             entries: list[dict[str, Any]]) -> bool | None:
        """Push: tell the peer this node's digest and hand it the new ``entries``.

        True when the peer will still pull (it lacks more, or could not take them all),
        False when it needs nothing more, None when it does not know ``/push`` (a node
        of an earlier release answers 404: tell it with :meth:`notify` instead).
        """
        body = protocol.dumps({"digest": digest, "port": port, "registry": registry,
                               "entries": entries})
        with self.exchange("POST", "/push", body, _JSON) as response:
            data = self.read(response, "POST /push", protocol.MAX_SMALL_BYTES)
            if response.status == 404:
                return None
            if response.status not in (200, 202):
                raise self.error(f"POST /push: HTTP {response.status} "
                                 f"{data[:160].decode('utf-8', 'replace')}")
        return response.status == 202

    def registry(self) -> bytes | None:
        """The peer's signed registry snapshot file, or None if it has none."""
        with self.exchange("GET", "/registry") as response:
            data = self.read(response, "GET /registry", protocol.MAX_REGISTRY_BYTES)
            if response.status == 404:
                return None
            if response.status != 200:
                raise self.error(f"GET /registry: HTTP {response.status}")
        return data

    def status(self) -> Any:
        """The peer's sync status document (``meshhub sync status``)."""
        return self._json("GET", "/status", None, protocol.MAX_PAGE_BYTES)

    @contextmanager
    def blob(self, sha256: str, offset: int) -> Iterator[AgentResponse]:
        """Open ``GET /sync/v1/blobs/<sha256>`` from byte ``offset`` (a Range request)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self.exchange("GET", f"/blobs/{sha256}", None, headers) as response:
            yield response
