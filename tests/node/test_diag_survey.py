"""The radio survey's parsing and recommendation, on crafted 802.11 frames in a pcap."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.dot11 import Dot11, Dot11Beacon, Dot11Elt, Dot11ProbeResp, RadioTap
from scapy.packet import Packet
from scapy.utils import wrpcap

from node.cli import cli
from node.diag import DiagError
from node.diag.survey import (
    Survey,
    analyse_pcap,
    channel_of_frequency,
    load,
    monitor_interface,
    parse_frame,
    recommend,
)
from tests.conftest import require_tool


def freq(channel: int) -> int:
    return 2407 + 5 * channel if channel <= 13 else 5000 + 5 * channel


def beacon(bssid: str, ssid: str, channel: int, heard_on: int | None = None,
           probe_response: bool = False) -> Packet:
    """A beacon (or probe response) of ``ssid`` on ``channel``, heard while tuned to
    ``heard_on`` (adjacent 2.4 GHz channels leak)."""
    body = (Dot11ProbeResp(cap="ESS") if probe_response else Dot11Beacon(cap="ESS"))
    return (RadioTap(present="Channel", ChannelFrequency=freq(heard_on or channel),
                     ChannelFlags="2GHz")
            / Dot11(type=0, subtype=5 if probe_response else 8, addr1="ff:ff:ff:ff:ff:ff",
                    addr2=bssid, addr3=bssid)
            / body / Dot11Elt(ID="SSID", info=ssid.encode())
            / Dot11Elt(ID="Rates", info=b"\x82\x84\x8b\x96")
            / Dot11Elt(ID="DSset", info=bytes([channel])))


def data(station: str, bssid: str, channel: int, to_ds: bool = True) -> Packet:
    """A data frame between ``station`` and its access point, heard on ``channel``."""
    if to_ds:
        dot11 = Dot11(type=2, subtype=0, FCfield="to_DS", addr1=bssid, addr2=station,
                      addr3="ff:ff:ff:ff:ff:ff")
    else:
        dot11 = Dot11(type=2, subtype=0, FCfield="from_DS", addr1=station, addr2=bssid,
                      addr3=bssid)
    return RadioTap(present="Channel", ChannelFrequency=freq(channel),
                    ChannelFlags="2GHz") / dot11 / b"payload"


def busy_air() -> list[Packet]:
    """Channel 1: three networks, one heard twice and once as a probe response, with
    four stations; channel 3: one network (heard while tuned to 1); channel 11: one
    network, no stations; channel 6: nothing."""
    frames = [
        beacon("02:aa:00:00:00:01", "Cafe", 1), beacon("02:aa:00:00:00:01", "Cafe", 1),
        beacon("02:aa:00:00:00:02", "Flat 4", 1),
        beacon("02:aa:00:00:00:03", "Printer", 1, probe_response=True),
        beacon("02:aa:00:00:00:04", "Neighbour", 3, heard_on=1),
        beacon("02:aa:00:00:00:11", "Shop", 11),
    ]
    for number in range(4):
        frames.append(data(f"02:bb:00:00:00:0{number}", "02:aa:00:00:00:01", 1,
                           to_ds=number % 2 == 0))
    # Neither counts as a station: a broadcast from the AP, and a WDS frame.
    frames.append(data("ff:ff:ff:ff:ff:ff", "02:aa:00:00:00:01", 1, to_ds=False))
    frames.append(RadioTap(present="Channel", ChannelFrequency=2412, ChannelFlags="2GHz")
                  / Dot11(type=2, FCfield="to_DS+from_DS", addr1="02:cc:00:00:00:01",
                          addr2="02:cc:00:00:00:02", addr3="02:cc:00:00:00:03",
                          addr4="02:cc:00:00:00:04"))
    return frames


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "air.pcap"
    wrpcap(str(path), busy_air())
    return path


def test_frequencies_map_to_channels() -> None:
    assert [channel_of_frequency(f) for f in (2412, 2437, 2462, 2472, 2484, 5180, 5825)] == \
        [1, 6, 11, 13, 14, 36, 165]
    assert channel_of_frequency(None) is None and channel_of_frequency(900) is None


def test_beacons_use_their_own_channel_and_data_frames_the_tuned_one() -> None:
    seen = parse_frame(beacon("02:aa:00:00:00:04", "Neighbour", 3, heard_on=1))
    assert seen is not None and (seen.channel, seen.bssid, seen.ssid) == \
        (3, "02:aa:00:00:00:04", "Neighbour")
    up = parse_frame(data("02:bb:00:00:00:01", "02:aa:00:00:00:01", 6, to_ds=True))
    down = parse_frame(data("02:bb:00:00:00:02", "02:aa:00:00:00:01", 6, to_ds=False))
    assert up is not None and (up.channel, up.station) == (6, "02:bb:00:00:00:01")
    assert down is not None and (down.channel, down.station) == (6, "02:bb:00:00:00:02")


def test_a_capture_is_tallied_per_channel(capture: Path) -> None:
    survey = analyse_pcap(capture)
    assert survey.frames == len(busy_air())
    assert sorted(survey.channels) == [1, 3, 11]
    one = survey.channels[1]
    assert one.beacons == 4 and len(one.bssids) == 3
    assert one.ssids == {"Cafe", "Flat 4", "Printer"}
    assert len(one.stations) == 4  # the broadcast and the WDS frame are not stations
    assert survey.channels[3].bssids == {"02:aa:00:00:00:04"}
    assert survey.channels[11].ssids == {"Shop"} and not survey.channels[11].stations


def test_the_least_busy_of_1_6_11_is_recommended(capture: Path) -> None:
    survey = analyse_pcap(capture)
    # Channel 1: 3 networks + 4 stations, plus channel 3's network at 3/5 weight.
    assert load(survey, 1) == pytest.approx(7 + 0.6)
    # Channel 6: nothing on it, but channel 3 (3 away) at 2/5; channel 11 too far.
    assert load(survey, 6) == pytest.approx(0.4)
    assert load(survey, 11) == pytest.approx(1.0)
    result = recommend(survey, "DE", "g")
    assert result.channel == 6 and set(result.scores) == {1, 6, 11}


def test_ties_prefer_the_earlier_channel_and_5ghz_counts_only_its_own() -> None:
    assert recommend(Survey(), "US", "g").channel == 1
    survey = Survey()
    for frame in (beacon("02:aa:00:00:00:01", "A", 36), beacon("02:aa:00:00:00:02", "B", 40)):
        survey.add(frame)
    result = recommend(survey, "DE", "a")
    assert result.channel == 44 and set(result.scores) == {36, 40, 44, 48}
    assert recommend(survey, "US", "a").scores.keys() >= {149, 165}


def test_the_command_reads_a_pcap(capture: Path) -> None:
    result = CliRunner().invoke(cli, ["diag", "survey", "--pcap", str(capture),
                                      "--country", "DE"])
    assert result.exit_code == 0, result.output
    assert "Least busy 2.4 GHz channel: 6" in result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("1 "))
    assert row.split()[:4] == ["1", "3", "4", "4"]  # channel, networks, beacons, stations
    assert "Cafe, Flat 4, Printer" in row
    assert "wifi.channel = 6" in result.output


def test_a_bad_capture_is_refused_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pcap"
    bad.write_text("not a capture")
    with pytest.raises(DiagError, match="not a readable pcap"):
        analyse_pcap(bad)
    with pytest.raises(DiagError, match="no capture file"):
        analyse_pcap(tmp_path / "missing.pcap")


def test_without_a_monitor_radio_the_survey_says_so() -> None:
    require_tool("iw")
    with pytest.raises(DiagError, match="monitor mode"):
        monitor_interface("lo")
    result = CliRunner().invoke(cli, ["diag", "survey", "lo", "--seconds", "1"])
    assert result.exit_code != 0
    assert "monitor mode" in str(result.exception)
    usage = CliRunner().invoke(cli, ["diag", "survey"])
    assert usage.exit_code == 2 and "--pcap FILE" in usage.output
