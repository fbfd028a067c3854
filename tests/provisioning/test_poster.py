"""``meshhub-provision poster``: the PDF is rendered to PNG (pdftoppm) and its QR codes are
decoded back (zbarimg); the house rules are the portal's own translated texts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from bench.images import make_registry
from provisioning.poster import escape_wifi, wifi_payload
from provisioning.poster_text import PORTAL_TRANSLATIONS, RULES, RULES_INTRO, RULES_TITLE, catalogue
from tests.conftest import require_tool
from tests.provisioning.test_customise import provision


def decode_qr(pdf: Path, tmp: Path) -> list[str]:
    """Every QR code on the PDF's first page, as zbarimg reads it from a 150 dpi render."""
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(pdf), str(tmp / "page")],
                   check=True, capture_output=True)
    result = subprocess.run(["zbarimg", "-q", "--raw", "-Sdisable", "-Sqrcode.enable",
                             str(tmp / "page.png")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.split("\n") if line]


def unescape_wifi_ssid(payload: str) -> str:
    match = re.fullmatch(r'WIFI:T:nopass;S:((?:\\.|[^\\;])*);;', payload)
    assert match, payload
    return re.sub(r"\\(.)", r"\1", match.group(1))


@pytest.mark.tools
@pytest.mark.parametrize("ssid", ["elm-mesh", 'Elm; St,: "Mesh" \\ 1', "Café Olmo"],
                         ids=["plain", "special", "non-ascii"])
def test_poster_qr_codes_join_the_wifi_and_open_the_hub(tmp_path: Path, ssid: str) -> None:
    require_tool("pdftoppm", "zbarimg")
    reg = make_registry(tmp_path, ssid=ssid)
    out = tmp_path / "poster.pdf"
    result = provision("poster", "elm-1", "--registry", str(reg), "--out", str(out))
    assert result.returncode == 0, result.stderr
    codes = decode_qr(out, tmp_path)
    assert sorted(codes) == sorted([wifi_payload(ssid), "http://hub.mesh/"]), codes
    wifi = next(c for c in codes if c.startswith("WIFI:"))
    assert unescape_wifi_ssid(wifi) == ssid
    reader = PdfReader(out)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width) * 25.4 / 72), round(float(box.height) * 25.4 / 72)) == (210,
                                                                                           297)
    text = reader.pages[0].extract_text()
    assert "Elm Street" in text and "elm-1" in text and "52.52000, 13.40500" in text
    assert "House rules" in text and "Normas de uso" in text  # English and Spanish


@pytest.mark.tools
def test_poster_options_and_refusals(tmp_path: Path) -> None:
    require_tool("pdftoppm", "zbarimg")
    reg = make_registry(tmp_path, ("elm-1", "elm-2"), revoke=("elm-2",))
    out = tmp_path / "p.pdf"
    result = provision("poster", "elm-1", "-r", str(reg), "-o", str(out), "--hub-url",
                       "http://10.64.0.1/", "--language", "es", "--language", "fr",
                       "--location", "Library roof")
    assert result.returncode == 0, result.stderr
    assert "no house rules in 'fr'" in result.stdout
    assert "http://10.64.0.1/" in decode_qr(out, tmp_path)
    text = PdfReader(out).pages[0].extract_text()
    assert "Normas de uso" in text and "Library roof" in text
    for node, message in (("elm-2", "is revoked"), ("elm-9", "no node named 'elm-9'")):
        bad = provision("poster", node, "-r", str(reg), "-o", str(tmp_path / "x.pdf"))
        assert bad.returncode == 1 and message in bad.stderr
        assert not (tmp_path / "x.pdf").exists()


@pytest.mark.tools
def test_the_poster_carries_the_fingerprint_of_the_certificate_the_card_gets(
        tmp_path: Path) -> None:
    """Issue 17: organisers check the HTTPS certificate against the poster. ``customise``
    makes the certificate (kept in the secrets folder, shipped on the card), so the poster
    printed afterwards shows its fingerprint; before, there is none to show, and it says so."""
    require_tool("openssl")
    from node.tls import fingerprint
    from provisioning.customise.node_files import TLS_CERT, build_bundle

    reg = make_registry(tmp_path)
    secrets = tmp_path / "secrets"
    out = tmp_path / "poster.pdf"
    early = provision("poster", "elm-1", "-r", str(reg), "-o", str(out), "--secrets",
                      str(secrets))
    assert early.returncode == 0, early.stderr
    assert "no HTTPS certificate for elm-1" in early.stdout
    assert "fingerprint" not in PdfReader(out).pages[0].extract_text()
    bundle = build_bundle(reg, "elm-1", secrets)  # what customise writes on the card
    shown = fingerprint(bundle.files[TLS_CERT])
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", shown)
    assert bundle.tls_fingerprint == shown
    assert build_bundle(reg, "elm-1", secrets).files[TLS_CERT] == bundle.files[TLS_CERT]
    result = provision("poster", "elm-1", "-r", str(reg), "-o", str(out), "--secrets",
                       str(secrets))
    assert result.returncode == 0, result.stderr
    assert f"fingerprint (SHA-256): {shown}" in result.stdout
    text = PdfReader(out).pages[0].extract_text().replace("\n", " ")
    assert "SHA-256 fingerprint" in text and shown in text.replace(" ", "")


def test_wifi_escaping_follows_the_format() -> None:
    assert escape_wifi('a\\b;c,d:e"f') == 'a\\\\b\\;c\\,d\\:e\\"f'
    assert wifi_payload("elm-mesh") == "WIFI:T:nopass;S:elm-mesh;;"
    assert wifi_payload("CAFE12") == 'WIFI:T:nopass;S:"CAFE12";;'  # hex-looking: quoted


def test_rules_text_is_the_portals_and_translated() -> None:
    templates = Path(__file__).resolve().parents[2] / "portal" / "templates"
    template = ((templates / "residents" / "rules.html").read_text(encoding="utf-8")
                + (templates / "_house_rules.html").read_text(encoding="utf-8"))
    for text in (RULES_TITLE, *RULES):
        assert f"_('{text}')" in template, f"not a portal message any more: {text!r}"
    assert RULES_INTRO in template
    languages = sorted(p.name for p in PORTAL_TRANSLATIONS.iterdir() if p.is_dir())
    assert languages, "the portal ships no translations"
    for language in languages:
        found = catalogue(language)
        assert found is not None, language
        for text in (RULES_TITLE, RULES_INTRO, *RULES):
            assert found.gettext(text) != text, f"{language}: {text!r} is not translated"
