"""``meshhub diag``: a technician's checks of DHCP, the captive portal and the radio.

The work is in :mod:`node.diag`, imported only when a check runs: it needs scapy
(``pip install 'meshhub[diagnostics]'``), which nothing else in meshhub loads.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from node.config import find_config, load_config

#: Exit codes beyond 0 (all well) and 1 (could not run): see docs/diagnostics.md.
EXIT_NO_OFFER = 3
EXIT_FOUND_PROBLEM = 2


def _diag(name: str) -> ModuleType:
    """Import ``node.diag.<name>``, or say how to install scapy when it is missing."""
    from node.diag import SCAPY_HINT, DiagError

    try:
        return importlib.import_module(f"node.diag.{name}")
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "scapy":
            raise DiagError(SCAPY_HINT) from None
        raise


def _node_config(ctx: click.Context) -> Any | None:
    """The node.toml if one exists here (a technician's laptop usually has none)."""
    path = find_config((ctx.find_root().obj or {}).get("config_path"))
    return load_config(path) if path.exists() else None


def _expected_server(ctx: click.Context, expect: str | None) -> str | None:
    """The DHCP server that should answer: ``--expect``, else the node's portal address."""
    if expect:
        return expect
    cfg = _node_config(ctx)
    if cfg is None:
        return None
    from node.net import address_plan

    return str(address_plan(cfg).portal_address)


def _print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group()
def diag() -> None:
    """Diagnostics for technicians: rogue DHCP, what a phone sees, a radio survey.

    They send and capture raw packets: run them as root. They need scapy
    (pip install 'meshhub[diagnostics]'). See docs/diagnostics.md.
    """


@diag.command("dhcp")
@click.argument("iface")
@click.option("--timeout", default=6.0, show_default=True, type=click.FloatRange(0.5, 60),
              metavar="S", help="Seconds to listen for offers (dnsmasq checks an address "
              "with a ping, up to 3 s, before offering it).")
@click.option("--expect", metavar="IP", default=None,
              help="The DHCP server that should answer (default: this node's portal address "
                   "from node.toml, if there is one).")
@click.option("--random-mac", is_flag=True,
              help="Ask as a stranger: a random locally administered client MAC.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def diag_dhcp(ctx: click.Context, iface: str, timeout: float, expect: str | None,
              random_mac: bool, as_json: bool) -> None:
    """Send a DHCP DISCOVER on IFACE and list every server that offers an address.

    Servers other than the expected one are flagged ROGUE. Exit status: 0 no rogue,
    2 a rogue (or several servers and none expected), 3 no server answered.
    """
    dhcp = _diag("dhcp")
    report = dhcp.discover(iface, timeout=timeout, expected=_expected_server(ctx, expect),
                           random_mac=random_mac)
    if as_json:
        _print_json({"expected": report.expected, "client_mac": report.chaddr,
                     "offers": [dataclasses.asdict(o) | {"rogue": report.is_rogue(o)}
                                for o in report.offers]})
    else:
        click.echo(dhcp.format_report(report))
    if not report.offers:
        ctx.exit(EXIT_NO_OFFER)
    if report.rogues:
        ctx.exit(EXIT_FOUND_PROBLEM)


@diag.command("portal")
@click.argument("iface")
@click.option("--timeout", default=3.0, show_default=True, type=click.FloatRange(0.5, 60),
              metavar="S", help="Seconds to wait for each DNS and HTTP answer (DHCP gets "
              "at least 6).")
@click.option("--expect", metavar="IP", default=None,
              help="Take the lease from this DHCP server (default: this node's portal "
                   "address from node.toml, else the first to offer).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def diag_portal(ctx: click.Context, iface: str, timeout: float, expect: str | None,
                as_json: bool) -> None:
    """Join through IFACE like a phone and say what a resident would see.

    A DHCP lease, the captive API of option 114, then the checks of Apple, Android,
    Windows, Firefox and NetworkManager through the offered DNS. Traffic never leaves
    through another interface. Exit status: 0 all systems agree (sheet, or online),
    2 they do not (or get no answer).
    """
    portal = _diag("portal")
    report = portal.visit(iface, expected=_expected_server(ctx, expect), timeout=timeout)
    if as_json:
        _print_json(dataclasses.asdict(report) | {"summary": report.summary})
    else:
        click.echo(portal.format_report(report))
    if not report.consistent:
        ctx.exit(EXIT_FOUND_PROBLEM)


def _channel_list(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give channel numbers like 1,6,11") from None


@diag.command("survey")
@click.argument("iface", required=False)
@click.option("--seconds", default=20.0, show_default=True, type=click.FloatRange(1, 3600),
              metavar="S", help="How long to listen in all (split over the channels).")
@click.option("--pcap", "pcap", type=click.Path(dir_okay=False, path_type=Path),
              help="Analyse this capture instead of listening.")
@click.option("--country", default=None, help="Country for the allowed channels "
              "(default: wifi.country from node.toml, else DE).")
@click.option("--band", type=click.Choice(["g", "a"]), default=None,
              help="g = 2.4 GHz, a = 5 GHz (default: wifi.hw_mode from node.toml, else g).")
@click.option("--channels", default=None, metavar="LIST",
              help="Channels to hop over, e.g. 1,6,11 (default: all allowed on the band).")
@click.pass_context
def diag_survey(ctx: click.Context, iface: str | None, seconds: float, pcap: Path | None,
                country: str | None, band: str | None, channels: str | None) -> None:
    """Count networks and stations per channel and suggest the least busy channel.

    Needs IFACE to be a radio in monitor mode (iw dev IFACE info: type monitor), or
    --pcap FILE with a capture to analyse.
    """
    if not iface and not pcap:
        raise click.UsageError("give IFACE (a radio in monitor mode) or --pcap FILE")
    cfg = _node_config(ctx)
    country = (country or (cfg.wifi.country if cfg else "DE")).upper()
    band = band or (cfg.wifi.hw_mode if cfg else "g")
    from node.net.regulatory import allowed_channels

    hop = _channel_list(channels) or allowed_channels(country, band)
    survey = _diag("survey")
    if pcap:
        result, source = survey.analyse_pcap(pcap), str(pcap)
    else:
        result, source = survey.listen(iface, seconds, hop), f"{iface} ({seconds:g}s)"
    click.echo(survey.format_report(result, survey.recommend(result, country, band), source))
