"""Neighbours' base URLs from several sources (settings, babeld, zeroconf), merged.

Replication (:mod:`node.sync.service`) and updates (:mod:`node.update.service`)
both ask every source for URLs each time they need neighbours. A source that
fails or a URL that is not a plain ``http://host:port`` must not stop either:
they are reported through callbacks (each service logs them once) and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: A callable listing neighbours' base URLs.
PeerSource = Callable[[], Iterable[str]]


def gather_urls(sources: Iterable[PeerSource], normalise: Callable[[str], str], *,
                source_failed: Callable[[Exception], None],
                bad_url: Callable[[str, ValueError], None]) -> set[str]:
    """The union of every source's URLs, each passed through ``normalise``.

    A source that raises is reported to ``source_failed``; a URL for which
    ``normalise`` raises ValueError is reported to ``bad_url`` and left out.
    """
    found: set[str] = set()
    for source in list(sources):
        try:
            urls = list(source())
        except Exception as exc:  # a discovery failure must not stop the caller
            source_failed(exc)
            continue
        for url in urls:
            try:
                found.add(normalise(url))
            except ValueError as exc:
                bad_url(url, exc)
    return found
