"""``meshhub-provision poster NODE-NAME``: a printable A4 poster for the node's window.

It shows the network name, a QR code that joins the Wi-Fi (the ``WIFI:``
payload phones' cameras understand), a QR code for the hub's address, the
house rules in the community's languages, the node's name and location, and
the SHA-256 fingerprint of the node's HTTPS certificate (made by ``customise``
and kept in the secrets folder), so that organisers can check it before they
type a password (docs/security.md).

Needs the ``provisioning`` extra (fpdf2 draws the PDF; uharfbuzz shapes Arabic
and other scripts) and a Unicode TrueType font (DejaVu Sans is looked for; pass
``--font`` otherwise).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import segno

from node.atomic import atomic_write
from node.config.schema import settings_by_key
from provisioning.errors import ProvisionError, RegistryError
from provisioning.poster_text import HouseRules, house_rules

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian, Ubuntu
    "/usr/share/fonts/TTF/DejaVuSans.ttf",  # Arch
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",  # Fedora
    "/Library/Fonts/DejaVuSans.ttf", "/opt/homebrew/share/fonts/DejaVuSans.ttf",  # macOS
)
_WIFI_SPECIAL = re.compile(r'([\\;,:"])')


class PosterError(ProvisionError, ValueError):
    """The poster cannot be made (missing font or library, unknown node); says what to do."""


@dataclass(frozen=True)
class PosterData:
    """Everything printed on the poster."""

    community: str
    ssid: str
    hub_url: str
    node_name: str
    location: str
    rules: tuple[HouseRules, ...]
    tls_fingerprint: str = ""  #: the node's HTTPS certificate's SHA-256 ("": not made yet)


def escape_wifi(text: str) -> str:
    r"""Escape ``\ ; , : "`` with a backslash, as the ``WIFI:`` QR format asks."""
    return _WIFI_SPECIAL.sub(r"\\\1", text)


def wifi_payload(ssid: str) -> str:
    """The QR payload that joins the open network ``ssid``: ``WIFI:T:nopass;S:<ssid>;;``.

    An SSID made only of hex digits is quoted, so a phone does not read it as hex.
    """
    escaped = escape_wifi(ssid)
    if re.fullmatch(r"[0-9A-Fa-f]+", ssid):
        escaped = f'"{escaped}"'
    return f"WIFI:T:nopass;S:{escaped};;"


def default_hub_url() -> str:
    """``http://<clients.hub_name>.<clients.domain>/`` from the node.toml schema defaults."""
    keys = settings_by_key()
    return f"http://{keys['clients.hub_name'].default}.{keys['clients.domain'].default}/"


def poster_data(registry: str | Path, node_name: str, *, languages: Sequence[str] = (),
                hub_url: str | None = None, location: str | None = None,
                secrets: str | Path | None = None) -> PosterData:
    """Collect the poster's content from the registry (and the node's HTTPS certificate
    from the secrets folder, when ``customise`` made it); raise if the node is unknown or
    revoked."""
    from node.tls import fingerprint
    from provisioning.customise.node_files import certificate_files
    from provisioning.registry.ops import default_secrets_dir, load_registry

    files = load_registry(Path(registry))
    community = files.community.data  # type: ignore[union-attr]
    if node_name not in files.nodes:
        raise RegistryError(f"{Path(registry) / 'nodes'}: no node named {node_name!r} "
                            "(see 'meshhub-provision registry list')")
    node = files.nodes[node_name].data
    if node["status"] != "active":
        raise RegistryError(f"{files.nodes[node_name].path}: {node_name!r} is revoked")
    if location is None:
        where = node.get("location")
        location = f"{where['lat']:.5f}, {where['lon']:.5f}" if isinstance(where, dict) else ""
    langs = list(languages) or list(community.get("languages")
                                    or settings_by_key()["portal.languages"].default)
    rules: dict[str, HouseRules] = {}
    for lang in langs:  # a language without translation falls back to English, once
        found = house_rules(lang, community["name"])
        rules.setdefault(found.language, found)
    cert, _key = certificate_files(Path(secrets or default_secrets_dir(Path(registry))),
                                   node_name)
    tls = fingerprint(cert.read_bytes()) if cert.exists() else ""
    return PosterData(community["name"], community["ssid"], hub_url or default_hub_url(),
                      node_name, location, tuple(rules.values()), tls)


def find_font(explicit: str | Path | None = None) -> Path:
    """A Unicode TrueType font: ``explicit``, DejaVu Sans, or what fontconfig suggests."""
    if explicit:
        return Path(explicit)
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    if shutil.which("fc-match"):
        found = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans:style=Book"],
                               capture_output=True, text=True, check=False).stdout.strip()
        if found.endswith((".ttf", ".otf")) and Path(found).exists():
            return Path(found)
    raise PosterError("no Unicode font found: install DejaVu Sans (Debian/Ubuntu: 'sudo apt "
                      "install fonts-dejavu-core') or pass --font FILE.ttf")


def render_pdf(data: PosterData, font: Path) -> bytes:
    """The A4 poster as PDF bytes."""
    try:
        from fpdf import FPDF
    except ImportError:
        raise PosterError("the poster needs fpdf2: pip install 'meshhub[provisioning]'") from None
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(15, 12, 15)
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_title(f"{data.community}: {data.ssid}")
    pdf.add_font("poster", "", str(font))
    bold = font.with_name(font.stem + "-Bold" + font.suffix)
    pdf.add_font("poster", "B", str(bold if bold.exists() else font))
    shaping = _shaping_available()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    pdf.set_font("poster", "B", 20)
    pdf.cell(width, 10, data.community, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("poster", "", 13)
    pdf.cell(width, 8, "Free neighbourhood Wi-Fi. Join the network:", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("poster", "B", 26)
    pdf.multi_cell(width, 12, data.ssid, align="C", new_x="LMARGIN", new_y="NEXT")

    size, top = 62.0, pdf.get_y() + 3
    for index, (payload, caption) in enumerate((
            (wifi_payload(data.ssid), "1. Scan to join the Wi-Fi"),
            (data.hub_url, f"2. Then open {data.hub_url}"))):
        x = pdf.l_margin + (width / 2 - size) / 2 + index * width / 2
        pdf.image(_qr_png(payload), x=x, y=top, w=size, h=size)
        pdf.set_xy(pdf.l_margin + index * width / 2, top + size + 1)
        pdf.set_font("poster", "", 11)
        pdf.multi_cell(width / 2, 5, caption, align="C")
    pdf.set_y(top + size + 14)

    for rules in data.rules:
        _rules_block(pdf, rules, width, shaping)
    pdf.set_y(-30 if data.tls_fingerprint else -20)
    pdf.set_font("poster", "", 9)
    footer = f"Node {data.node_name}" + (f" · {data.location}" if data.location else "")
    pdf.cell(width, 5, footer, align="C", new_x="LMARGIN", new_y="NEXT")
    if data.tls_fingerprint:
        pdf.set_font("poster", "", 8)
        pdf.multi_cell(width, 4, "Organisers: before signing in over HTTPS, check that the "
                       "certificate's SHA-256 fingerprint is\n" + data.tls_fingerprint,
                       align="C")
    return bytes(pdf.output())


def _rules_block(pdf: Any, rules: HouseRules, width: float, shaping: bool) -> None:
    if rules.rtl and not shaping:
        raise PosterError(f"{rules.language}: right-to-left text needs uharfbuzz: pip install "
                          "'meshhub[provisioning]' (or leave the language out with --language)")
    if shaping:
        pdf.set_text_shaping(True, direction="rtl" if rules.rtl else "ltr")
    align = "R" if rules.rtl else "L"
    pdf.set_font("poster", "B", 11)
    pdf.multi_cell(width, 6, rules.title, align=align, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("poster", "", 8.5)
    pdf.multi_cell(width, 4.2, rules.intro, align=align, new_x="LMARGIN", new_y="NEXT")
    for number, rule in enumerate(rules.rules, start=1):
        pdf.multi_cell(width, 4.2, f"{number}. {rule}", align=align, new_x="LMARGIN",
                       new_y="NEXT")
    pdf.ln(2)
    if shaping:
        pdf.set_text_shaping(False)


def _shaping_available() -> bool:
    try:
        import uharfbuzz  # noqa: F401
    except ImportError:
        return False
    return True


def _qr_png(payload: str) -> io.BytesIO:
    out = io.BytesIO()
    segno.make_qr(payload, error="m").save(out, kind="png", scale=10, border=4)
    out.seek(0)
    return out


@click.command("poster")
@click.argument("node_name")
@click.option("--registry", "-r", "registry_dir", envvar="MESHHUB_REGISTRY", default=".",
              show_default=True, metavar="DIR", type=click.Path(file_okay=False),
              help="The registry folder (default: $MESHHUB_REGISTRY or the current folder).")
@click.option("--out", "-o", type=click.Path(dir_okay=False),
              help="The PDF to write (default: poster-NODE_NAME.pdf).")
@click.option("--language", "languages", multiple=True, metavar="LANG",
              help="A language of the house rules, in order (repeatable; default: the "
                   "community's 'languages' or the portal's default languages).")
@click.option("--hub-url", help="The hub's address for the second QR code (default: "
                                "http://hub.mesh/).")
@click.option("--location", help="Where the node stands, in words (default: its coordinates).")
@click.option("--font", type=click.Path(dir_okay=False, exists=True),
              help="A Unicode .ttf font (default: DejaVu Sans).")
@click.option("--secrets", type=click.Path(file_okay=False),
              help="The folder with the node's keys and HTTPS certificate (default: "
                   "../secrets next to the registry); the certificate's fingerprint is printed.")
def poster(node_name: str, registry_dir: str, out: str | None, languages: tuple[str, ...],
           hub_url: str | None, location: str | None, font: str | None,
           secrets: str | None) -> None:
    """Make a printable A4 poster for NODE_NAME: Wi-Fi QR code, hub address, house rules,
    and the fingerprint of the node's HTTPS certificate (once 'customise' made it)."""
    data = poster_data(registry_dir, node_name, languages=languages, hub_url=hub_url,
                       location=location, secrets=secrets)
    target = Path(out or f"poster-{node_name}.pdf")
    atomic_write(target, render_pdf(data, find_font(font)))
    for lang in languages:
        if house_rules(lang, data.community).language != lang:
            click.echo(f"note: no house rules in {lang!r} in the portal; printed in English "
                       "instead")
    click.echo(f"wrote {target}: Wi-Fi {data.ssid!r}, hub {data.hub_url}, rules in "
               f"{', '.join(r.language for r in data.rules)}")
    if data.tls_fingerprint:
        click.echo(f"HTTPS certificate fingerprint (SHA-256): {data.tls_fingerprint}")
    else:
        click.echo(f"note: no HTTPS certificate for {node_name} in the secrets folder yet "
                   "('customise' makes it): the poster has no fingerprint; print it again "
                   "after customising the card")
