"""The library beyond single files: ZIM archives, file metadata and bulk import.

``node.library.zim`` reads ZIM archives (offline encyclopaedias) safely from
many threads with a bounded cache of open archives; ``metadata`` reads titles
and authors from EPUB, PDF, audio and ZIM files; ``importer`` adds files from
the node's disk (``meshhub library add``/``import``). The portal's browsing
and OPDS pages use these; nothing here imports the portal.
"""

from __future__ import annotations

from node.library.importer import Importer, ImportResult, ImportSummary, library_usage
from node.library.metadata import normalise_language, read_metadata
from node.library.zim import ArchiveCache, OpenArchive, ZimHit, ZimInfo, inspect_zim

__all__ = ["ArchiveCache", "ImportResult", "ImportSummary", "Importer", "OpenArchive", "ZimHit",
           "ZimInfo", "inspect_zim", "library_usage", "normalise_language", "read_metadata"]
