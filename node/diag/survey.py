"""``meshhub diag survey``: who else is on the air, per channel, and the quietest channel.

A radio in monitor mode hears every 802.11 frame on the channel it is tuned to.
Beacons and probe responses tell the networks (BSSID, SSID) and, in their DS
Parameter Set, the channel they really use (on 2.4 GHz a beacon from channel 3 is
often heard while listening on 1). Data frames tell the stations; their channel
is the one the radio was tuned to (RadioTap's channel field). A live survey hops
over the allowed channels with ``iw``; ``--pcap`` reads a capture instead.

The recommendation counts, for each candidate channel, the networks and stations
on it; on 2.4 GHz only 1, 6 and 11 are candidates (they do not overlap) and
neighbouring channels count in proportion to their overlap (20 MHz channels 5 MHz
apart: a network 4 channels away still weighs 1/5).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.dot11 import Dot11, Dot11Beacon, Dot11Elt, Dot11ProbeResp, RadioTap
from scapy.packet import Packet

from node.diag import DiagError
from node.frozen import frozen
from node.net.regulatory import allowed_channels

#: The non-overlapping 2.4 GHz channels, preferred for an access point.
PREFERRED_24 = (1, 6, 11)
#: 2.4 GHz channels closer than this interfere (20 MHz wide, 5 MHz apart).
OVERLAP_24 = 5
ELT_SSID, ELT_DS = 0, 3


def channel_of_frequency(mhz: int | None) -> int | None:
    """The Wi-Fi channel number of a centre frequency in MHz (None if not Wi-Fi)."""
    if not mhz:
        return None
    if mhz == 2484:
        return 14
    if 2412 <= mhz <= 2472:
        return (mhz - 2407) // 5
    if 5000 < mhz < 5900:
        return (mhz - 5000) // 5
    return None


@frozen
class Observation:
    """What one frame says: a network (``bssid`` with ``ssid``) or a station on a channel."""

    channel: int
    bssid: str | None = None
    ssid: str | None = None
    station: str | None = None


def _elements(packet: Packet) -> Iterator[Dot11Elt]:
    element = packet.getlayer(Dot11Elt)
    while isinstance(element, Dot11Elt):
        yield element
        element = element.payload.getlayer(Dot11Elt)


def _unicast(mac: str | None) -> bool:
    return bool(mac) and int(str(mac).split(":")[0], 16) & 1 == 0


def parse_frame(packet: Packet) -> Observation | None:
    """The :class:`Observation` in an 802.11 ``packet``, or None when it tells nothing."""
    if Dot11 not in packet:
        return None
    radiotap = packet.getlayer(RadioTap)
    tuned = channel_of_frequency(getattr(radiotap, "ChannelFrequency", None)) if radiotap \
        else None
    dot11 = packet[Dot11]
    if Dot11Beacon in packet or Dot11ProbeResp in packet:
        ssid, channel = None, tuned
        for element in _elements(packet):
            if element.ID == ELT_SSID and ssid is None:
                ssid = bytes(element.info).decode("utf-8", "replace")
            elif element.ID == ELT_DS and element.info:
                channel = bytes(element.info)[0]
        if channel is None:
            return None
        return Observation(channel, bssid=str(dot11.addr3), ssid=ssid)
    if dot11.type != 2 or tuned is None:
        return None
    flags = int(dot11.FCfield)
    to_ds, from_ds = bool(flags & 1), bool(flags & 2)
    if to_ds and from_ds:
        return None  # a wireless bridge (WDS/mesh): no station of a network
    if to_ds:
        bssid, station = dot11.addr1, dot11.addr2
    elif from_ds:
        bssid, station = dot11.addr2, dot11.addr1
    else:
        bssid, station = dot11.addr3, dot11.addr2
    if not _unicast(station) or station == bssid:
        return None
    return Observation(tuned, bssid=None, station=str(station))


@dataclass
class ChannelTally:
    """Everything heard on one channel."""

    beacons: int = 0
    bssids: set[str] = field(default_factory=set)
    ssids: set[str] = field(default_factory=set)
    stations: set[str] = field(default_factory=set)

    @property
    def busy(self) -> int:
        """How crowded the channel is: networks plus stations."""
        return len(self.bssids) + len(self.stations)


@dataclass
class Survey:
    """The tallies of a survey, by channel."""

    channels: dict[int, ChannelTally] = field(default_factory=dict)
    frames: int = 0
    listened: tuple[int, ...] = ()

    def add(self, packet: Packet) -> None:
        """Count one captured frame."""
        self.frames += 1
        seen = parse_frame(packet)
        if seen is None:
            return
        tally = self.channels.setdefault(seen.channel, ChannelTally())
        if seen.bssid:
            tally.beacons += 1
            tally.bssids.add(seen.bssid)
            if seen.ssid:
                tally.ssids.add(seen.ssid)
        if seen.station:
            tally.stations.add(seen.station)

    def busy(self, channel: int) -> int:
        """Networks plus stations heard on exactly ``channel``."""
        tally = self.channels.get(channel)
        return tally.busy if tally else 0


@frozen
class Recommendation:
    """The suggested channel and how each candidate scored (lower is quieter)."""

    channel: int | None
    scores: dict[int, float]
    band: str


def load(survey: Survey, channel: int) -> float:
    """How busy ``channel`` would be, counting overlapping 2.4 GHz neighbours."""
    if channel > 14:
        return float(survey.busy(channel))
    return sum(tally.busy * (1 - abs(other - channel) / OVERLAP_24)
               for other, tally in survey.channels.items()
               if other <= 14 and abs(other - channel) < OVERLAP_24)


def recommend(survey: Survey, country: str, hw_mode: str) -> Recommendation:
    """The least busy channel allowed in ``country`` on ``hw_mode`` ('g' or 'a').

    On 2.4 GHz only 1, 6 and 11 compete; ties go to the earlier candidate.
    """
    allowed = allowed_channels(country, hw_mode)
    candidates = [c for c in PREFERRED_24 if c in allowed] if hw_mode == "g" else list(allowed)
    scores = {c: round(load(survey, c), 2) for c in candidates}
    best = min(candidates, key=lambda c: (scores[c], candidates.index(c)), default=None)
    return Recommendation(best, scores, "2.4 GHz" if hw_mode == "g" else "5 GHz")


def monitor_interface(iface: str) -> None:
    """Fail clearly unless ``iface`` is a radio in monitor mode (``iw dev IFACE info``)."""
    if shutil.which("iw") is None:
        raise DiagError("the survey needs 'iw' (Debian package iw) to check the radio")
    result = subprocess.run(["iw", "dev", iface, "info"], capture_output=True, text=True,
                            check=False, timeout=10)
    if result.returncode != 0:
        raise DiagError(f"{iface} is not a wireless interface ({result.stderr.strip()}): the "
                        "survey needs a radio in monitor mode; or analyse a capture with "
                        "--pcap FILE")
    kind = re.search(r"^\s*type (\S+)", result.stdout, re.MULTILINE)
    if not kind or kind.group(1) != "monitor":
        phy = re.search(r"^\s*wiphy (\d+)", result.stdout, re.MULTILINE)
        name = f"phy{phy.group(1)}" if phy else "phyN"
        raise DiagError(
            f"{iface} is a radio in {kind.group(1) if kind else 'an unknown'} mode, not monitor "
            f"mode: no survey possible on it. If the radio supports it: iw phy {name} "
            f"interface add mon0 type monitor && ip link set mon0 up, then "
            f"'meshhub diag survey mon0' (see docs/diagnostics.md)")


def tune(iface: str, channel: int) -> bool:
    """Move the monitor radio to ``channel``; False when the driver refuses."""
    return subprocess.run(["iw", "dev", iface, "set", "channel", str(channel)],
                          capture_output=True, check=False, timeout=10).returncode == 0


def listen(iface: str, seconds: float, channels: Iterable[int]) -> Survey:
    """Hop over ``channels`` on the monitor ``iface`` for ``seconds`` in all."""
    from scapy.sendrecv import sniff

    monitor_interface(iface)
    survey = Survey()
    hops = list(channels)
    dwell = max(seconds / max(len(hops), 1), 0.2)
    heard: list[int] = []
    for channel in hops:
        if tune(iface, channel):
            heard.append(channel)
            sniff(iface=iface, prn=survey.add, store=False, timeout=dwell)
    if not heard:  # the driver would not hop (a shared radio): listen where it is
        sniff(iface=iface, prn=survey.add, store=False, timeout=seconds)
    survey.listened = tuple(heard)
    return survey


def analyse_pcap(path: Path) -> Survey:
    """A survey of a capture file (radiotap or plain 802.11 link type)."""
    from scapy.error import Scapy_Exception
    from scapy.utils import PcapReader

    survey = Survey()
    try:
        with PcapReader(str(path)) as reader:
            for packet in reader:
                survey.add(packet)
    except FileNotFoundError:
        raise DiagError(f"no capture file {path}") from None
    except (Scapy_Exception, EOFError, OSError) as exc:
        raise DiagError(f"{path} is not a readable pcap capture ({exc})") from exc
    return survey


def format_report(survey: Survey, recommendation: Recommendation, source: str) -> str:
    """The plain-text answer of ``meshhub diag survey``."""
    lines = [f"Survey of {source}: {survey.frames} frames."]
    if survey.listened:
        lines.append("Listened on channels " + ", ".join(map(str, survey.listened)) + ".")
    if not survey.channels:
        lines.append("No networks or stations heard.")
    else:
        lines.append(f"{'channel':>7}  {'networks':>8}  {'beacons':>7}  {'stations':>8}  SSIDs")
        for channel in sorted(survey.channels):
            tally = survey.channels[channel]
            ssids = ", ".join(sorted(tally.ssids)) or "-"
            lines.append(f"{channel:>7}  {len(tally.bssids):>8}  {tally.beacons:>7}  "
                         f"{len(tally.stations):>8}  {ssids}")
    scores = ", ".join(f"{c}: {s:g}" for c, s in recommendation.scores.items())
    if recommendation.channel is None:
        lines.append(f"No channel allowed on {recommendation.band} here.")
    else:
        lines.append(f"Least busy {recommendation.band} channel: {recommendation.channel} "
                     f"(load by channel, lower is quieter: {scores}).")
        lines.append(f"To use it: set wifi.channel = {recommendation.channel} in node.toml, "
                     "then 'meshhub net plan' and apply.")
    return "\n".join(lines)
