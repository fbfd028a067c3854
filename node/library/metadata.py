"""Titles, authors and languages read from the library files themselves.

An organiser uploading a file, or importing a whole folder, should not have to
type what the file already says: an EPUB's OPF package document (Dublin Core
``dc:title``, ``dc:creator``, ``dc:language``, ``dc:description``), a PDF's
Info dictionary (``/Title``, ``/Author``, ``/Subject``), an audio file's tags
(ID3, Vorbis comments, MP4 atoms, via mutagen) and a ZIM archive's metadata.
What the organiser typed always wins; these only fill empty fields.

Files come from anywhere, so every reader is defensive: the OPF is parsed with
defusedxml (no entities, no DTDs), sizes are bounded, and a file whose
metadata cannot be read simply yields none — except a ZIM archive, which must
open and pass its checksum to be accepted at all (:func:`node.library.zim.inspect_zim`).
"""

from __future__ import annotations

import logging
import posixpath
import re
import zipfile
from pathlib import Path
from typing import Any

from node.store.validate import LIMITS

__all__ = ["FIELDS", "normalise_language", "read_metadata"]

log = logging.getLogger(__name__)

#: The library item fields a file's own metadata may fill.
FIELDS = ("title", "author", "language", "description")
#: Largest OPF document read from an EPUB (real ones are a few KB).
OPF_MAX_BYTES = 1024 * 1024
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_TAGS = re.compile(r"<[^>]*>")


def read_metadata(path: str | Path, media_type: str, *, verify_zim: bool = True
                  ) -> dict[str, str]:
    """Metadata found in the file at ``path`` of ``media_type``: a subset of :data:`FIELDS`.

    Values are cleaned (whitespace, length, a valid language tag). Raises
    ``ValidationError({"file": ...})`` only for a ZIM archive that is damaged.
    """
    path = Path(path)
    readers = {"epub": _epub, "pdf": _pdf, "audio": _audio, "video": _audio, "zim": _zim}
    reader = readers.get(media_type)
    if reader is None:
        return {}
    if media_type == "zim":
        found = _zim(path, verify=verify_zim)
    else:
        try:
            found = reader(path)
        except Exception as exc:  # a reader's failure must never refuse a readable file
            log.info("no metadata from %s (%s): %s", path.name, media_type, exc)
            found = {}
    return _clean(found)


def normalise_language(value: str) -> str:
    """A BCP 47-ish tag from what files say: 'eng' -> 'en', 'en_GB' -> 'en-GB', 'eng,fra' -> 'en'.

    Returns "" when the value is not a language tag at all.
    """
    first = re.split(r"[,;\s]+", value.strip())[0].replace("_", "-") if value.strip() else ""
    if not _LANGUAGE.fullmatch(first):
        return ""
    primary, _, rest = first.partition("-")
    primary = primary.lower()
    if len(primary) == 3:
        from babel.core import get_global

        primary = get_global("language_aliases").get(primary, primary)
        if "_" in primary or not _LANGUAGE.fullmatch(primary):  # e.g. an alias to "sr_Latn"
            primary = primary.split("_")[0]
    return f"{primary}-{rest}" if rest else primary


def _clean(found: dict[str, Any]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for name in FIELDS:
        value = found.get(name)
        if not isinstance(value, str):
            continue
        value = value.replace("\x00", "")
        if name == "description":
            value = re.sub(r"[ \t]+", " ", _TAGS.sub(" ", value))
            value = re.sub(r" ([.,;:!?])", r"\1", value).strip()
        else:
            value = " ".join(value.split())
        if name == "language":
            value = normalise_language(value)
        if value:
            clean[name] = value[:LIMITS[name]].strip()
    return clean


# --- EPUB: META-INF/container.xml names the OPF; Dublin Core inside it --------------
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"


def _epub(path: Path) -> dict[str, str]:
    from defusedxml import ElementTree

    with zipfile.ZipFile(path) as book:
        container = ElementTree.fromstring(_read_member(book, "META-INF/container.xml"))
        rootfile = container.find(f".//{_CONTAINER}rootfile")
        if rootfile is None or not rootfile.get("full-path"):
            return {}
        opf_path = posixpath.normpath(rootfile.get("full-path", ""))
        package = ElementTree.fromstring(_read_member(book, opf_path))
    found: dict[str, str] = {}
    for field, tag in (("title", "title"), ("language", "language"),
                       ("description", "description")):
        element = package.find(f".//{_DC}{tag}")
        if element is not None and element.text:
            found[field] = element.text
    creators = [e.text.strip() for e in package.iter(f"{_DC}creator") if e.text and e.text.strip()]
    if creators:
        found["author"] = ", ".join(creators[:3])
    return found


def _read_member(book: zipfile.ZipFile, name: str) -> bytes:
    info = book.getinfo(name)
    if info.file_size > OPF_MAX_BYTES:
        raise ValueError(f"{name} is {info.file_size} bytes; at most {OPF_MAX_BYTES} are read")
    with book.open(info) as member:
        return member.read(OPF_MAX_BYTES + 1)[:OPF_MAX_BYTES]


# --- PDF: the trailer's Info dictionary ----------------------------------------------
def _pdf(path: Path) -> dict[str, str]:
    import pypdf

    reader = pypdf.PdfReader(path, strict=False)
    info = reader.metadata
    if info is None:
        return {}
    found: dict[str, str] = {}
    for field, key in (("title", "/Title"), ("author", "/Author"), ("description", "/Subject")):
        value = info.get(key)
        if value is not None:
            found[field] = str(value)
    return found


# --- audio and video: tags through mutagen's format-independent "easy" interface ------
def _audio(path: Path) -> dict[str, str]:
    import mutagen

    tagged = mutagen.File(path, easy=True)
    if tagged is None or not tagged.tags:
        return {}
    tags = tagged.tags

    def first(*keys: str) -> str:
        for key in keys:
            try:
                values = tags.get(key)
            except (KeyError, ValueError):
                values = None
            if values:
                return str(values[0])
        return ""

    found = {"title": first("title"), "author": first("artist", "albumartist", "composer"),
             "language": first("language"), "description": first("album")}
    return {k: v for k, v in found.items() if v}


# --- ZIM: the archive's own metadata (and it must be intact) -------------------------
def _zim(path: Path, *, verify: bool = True) -> dict[str, str]:
    from node.library.zim import inspect_zim

    info = inspect_zim(path, verify=verify)
    return {"title": info.title, "author": info.creator or info.publisher,
            "language": info.language, "description": info.description}
