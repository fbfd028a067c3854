"""Writing small ZIM archives with libzim's writer (tests, benchmarks, sample content).

Real encyclopaedias come from Kiwix's library (docs/library.md); this module
makes little ones whose content we know, so that tests and ``bench/zim.py``
exercise the same reader code as a real Wikipedia archive would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from node.frozen import frozen

__all__ = ["ZimArticle", "build_zim"]


@frozen
class ZimArticle:
    """One entry to write: an HTML article (a "front article") or any other resource."""

    path: str
    title: str
    content: bytes | str
    mimetype: str = "text/html"

    @property
    def is_front(self) -> bool:
        """HTML entries are articles (counted, indexed, suggested); others are resources."""
        return self.mimetype == "text/html"


@dataclass
class ZimSpec:
    """Metadata of an archive to build."""

    title: str = "Test encyclopaedia"
    language: str = "eng"
    description: str = "A small encyclopaedia made for tests"
    creator: str = "meshhub"
    publisher: str = "meshhub"
    main_path: str | None = None
    redirects: dict[str, tuple[str, str]] = field(default_factory=dict)  #: path -> (title, target)
    illustration_png: bytes | None = None
    fulltext: bool = True


def build_zim(path: str | Path, articles: Iterable[ZimArticle], spec: ZimSpec | None = None
              ) -> Path:
    """Write a ZIM archive to ``path`` (with a title index, and a full-text index if asked)."""
    from libzim.writer import Creator, Hint, Item, StringProvider

    spec = spec or ZimSpec()
    path = Path(path)

    class _Item(Item):
        def __init__(self, article: ZimArticle) -> None:
            super().__init__()
            self.article = article

        def get_path(self) -> str:
            return self.article.path

        def get_title(self) -> str:
            return self.article.title

        def get_mimetype(self) -> str:
            return self.article.mimetype

        def get_contentprovider(self) -> StringProvider:
            return StringProvider(self.article.content)

        def get_hints(self) -> dict[Hint, bool]:
            return {Hint.FRONT_ARTICLE: self.article.is_front,
                    Hint.COMPRESS: self.article.mimetype.startswith("text/")}

    creator = Creator(str(path)).config_indexing(spec.fulltext, spec.language)
    with creator:
        if spec.main_path:
            creator.set_mainpath(spec.main_path)
        for article in articles:
            creator.add_item(_Item(article))
        for source, (title, target) in spec.redirects.items():
            creator.add_redirection(source, title, target, {Hint.FRONT_ARTICLE: True})
        for name, value in (("Title", spec.title), ("Language", spec.language),
                            ("Description", spec.description), ("Creator", spec.creator),
                            ("Publisher", spec.publisher), ("Name", "meshhub_test"),
                            ("Date", "2024-01-01")):
            creator.add_metadata(name, value)
        if spec.illustration_png is not None:
            creator.add_illustration(48, spec.illustration_png)
    return path
