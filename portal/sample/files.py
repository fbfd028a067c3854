"""Real files for the sample library, generated at seed time.

Each function returns the bytes of a genuine file of its type (a PDF any
reader opens, an EPUB with a proper container and package document, a WAV
that plays), so that the demo exercises the same upload path, type detection
by content and downloads as an organiser's real files would.

fpdf2 (which brings Pillow) and ebooklib are the ``demo`` extra; they are
imported only when a file of that kind is made.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Sequence
from datetime import UTC, datetime

#: A fixed creation date, so that the same sample text always gives the same PDF.
_CREATED = datetime(2024, 1, 1, tzinfo=UTC)


def make_pdf(title: str, paragraphs: Sequence[str], *, author: str = "") -> bytes:
    """A one-column A5 PDF with a heading and the given paragraphs."""
    from fpdf import FPDF  # the demo extra; heavy, so imported on use

    pdf = FPDF(format=(148, 210))  # A5 in mm
    pdf.set_title(title)
    if author:
        pdf.set_author(author)
    pdf.set_creator("meshhub sample neighbourhood")
    pdf.set_creation_date(_CREATED)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.multi_cell(0, 8, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    if author:
        pdf.set_font("Helvetica", style="I", size=10)
        pdf.multi_cell(0, 6, _latin1(author), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", size=11)
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, _latin1(paragraph), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    return bytes(pdf.output())


def make_epub(title: str, author: str, chapters: Sequence[tuple[str, Sequence[str]]],
              *, language: str = "en", identifier: str = "") -> bytes:
    """An EPUB 3 book: one XHTML file per ``(heading, paragraphs)`` chapter."""
    from html import escape

    from ebooklib import epub  # the demo extra

    book = epub.EpubBook()
    book.set_identifier(identifier or f"urn:meshhub:sample:{_slug(title)}")
    book.set_title(title)
    book.set_language(language)
    book.add_author(author)
    items = []
    for number, (heading, paragraphs) in enumerate(chapters, start=1):
        chapter = epub.EpubHtml(title=heading, file_name=f"chapter-{number}.xhtml",
                                lang=language)
        body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        chapter.content = f"<h1>{escape(heading)}</h1>{body}"
        book.add_item(chapter)
        items.append(chapter)
    book.toc = tuple(items)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    buffer = io.BytesIO()
    epub.write_epub(buffer, book)
    return buffer.getvalue()


def make_wav(seconds: float = 2.0, *, notes: Sequence[float] = (440.0,),
             rate: int = 16000) -> bytes:
    """A mono 16-bit WAV playing ``notes`` (Hz) one after another, gently faded."""
    frames = bytearray()
    per_note = max(1, int(seconds * rate / max(1, len(notes))))
    for frequency in notes:
        for i in range(per_note):
            fade = min(1.0, i / (0.02 * rate), (per_note - i) / (0.02 * rate))
            sample = 0.3 * fade * math.sin(2 * math.pi * frequency * i / rate)
            frames += struct.pack("<h", int(sample * 32767))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buffer.getvalue()


def make_png(title: str, *, width: int = 480, height: int = 320,
             colour: tuple[int, int, int] = (32, 96, 160)) -> bytes:
    """A simple poster image (PNG): a coloured panel with ``title`` written on it."""
    from PIL import Image, ImageDraw  # Pillow comes with fpdf2 (the demo extra)

    image = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((12, 12, width - 13, height - 13), outline=(255, 255, 255), width=3)
    draw.text((28, height // 2 - 10), title, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _latin1(text: str) -> str:
    """Text the PDF core fonts can draw (they cover Latin-1 only)."""
    return text.replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", "-") \
        .encode("latin-1", "replace").decode("latin-1")


def _slug(text: str) -> str:
    return "-".join("".join(c.lower() if c.isalnum() else " " for c in text).split())
