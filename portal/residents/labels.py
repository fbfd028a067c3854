"""Translatable names for the store's fixed vocabularies (categories, media types, kinds)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

CATEGORY_LABELS: dict[str, LazyString] = {
    "for-sale": _l("For sale"),
    "free": _l("Free"),
    "wanted": _l("Wanted"),
    "services": _l("Services"),
    "jobs": _l("Jobs"),
    "events": _l("Events"),
}
MEDIA_LABELS: dict[str, LazyString] = {
    "pdf": _l("PDF documents"),
    "epub": _l("E-books (EPUB)"),
    "audio": _l("Audio"),
    "video": _l("Video"),
    "zim": _l("Offline encyclopaedias (ZIM)"),
    "image": _l("Images"),
    "other": _l("Other files"),
}
KIND_LABELS: dict[str, LazyString] = {
    "listing": _l("Listing"),
    "notice": _l("Notice"),
    "library": _l("Library"),
}

