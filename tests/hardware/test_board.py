"""Board facts from fixture trees: Pi 4, Pi Zero 2 W, generic x86-64 and arm64 Debian."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from hardware.board import (
    decode_throttled,
    i2c_buses,
    parse_throttled,
    read_board,
    read_model,
    read_soc_temperature,
    read_throttled,
)


def tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


PI4 = {
    "proc/device-tree/model": b"Raspberry Pi 4 Model B Rev 1.4\x00",
    "proc/cpuinfo": "processor\t: 0\nHardware\t: BCM2835\n"
                    "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n",
    "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
    "sys/class/thermal/thermal_zone0/temp": "48312\n",
    "sys/devices/platform/soc/soc:firmware/get_throttled": "50005\n",
    "dev/i2c-1": "", "dev/i2c-20": "", "dev/i2c-21": "",
}
PI_ZERO_2W = {
    # An older kernel without the device-tree file in the image: cpuinfo only.
    "proc/cpuinfo": "processor\t: 0\nBogoMIPS\t: 38.40\nHardware\t: BCM2835\n"
                    "Revision\t: 902120\nModel\t\t: Raspberry Pi Zero 2 W Rev 1.0\n",
    "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
    "sys/class/thermal/thermal_zone0/temp": "41856\n",
    "dev/i2c-1": "",
}
X86_DEBIAN = {
    "proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) "
                    "Celeron(R) N4000\nmodel\t\t: 122\n",
    "sys/class/dmi/id/sys_vendor": "LENOVO\n",
    "sys/class/dmi/id/product_name": "81MT\n",
    "sys/class/thermal/thermal_zone0/type": "acpitz\n",
    "sys/class/thermal/thermal_zone0/temp": "27800\n",
    "sys/class/thermal/thermal_zone1/type": "x86_pkg_temp\n",
    "sys/class/thermal/thermal_zone1/temp": "39000\n",
}
ARM64_DEBIAN = {
    "proc/cpuinfo": "processor\t: 0\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd\n"
                    "CPU implementer\t: 0x41\n",
    "sys/class/thermal/thermal_zone0/type": "soc-thermal\n",
    "sys/class/thermal/thermal_zone0/temp": "garbage\n",
    "sys/class/thermal/thermal_zone1/type": "gpu-thermal\n",
    "sys/class/thermal/thermal_zone1/temp": "44500\n",
}


def no_vcgencmd(argv: Sequence[str]) -> str:
    raise FileNotFoundError(argv[0])


def test_pi4(tmp_path: Path) -> None:
    facts = read_board(tree(tmp_path, PI4), run=no_vcgencmd)
    assert facts.model == "Raspberry Pi 4 Model B Rev 1.4"  # NUL stripped
    assert facts.is_raspberry_pi
    assert facts.soc_temperature_c == pytest.approx(48.312)
    assert facts.throttled is not None and facts.throttled.raw == 0x50005
    assert facts.throttled.under_voltage and facts.throttled.throttled
    assert facts.i2c_buses == [1, 20, 21]


def test_pi_zero_2w_from_cpuinfo_and_vcgencmd(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def vcgencmd(argv: Sequence[str]) -> str:
        calls.append(list(argv))
        return "throttled=0x0\n"

    facts = read_board(tree(tmp_path, PI_ZERO_2W), run=vcgencmd)
    assert facts.model == "Raspberry Pi Zero 2 W Rev 1.0"
    assert facts.soc_temperature_c == pytest.approx(41.856)
    assert calls == [["vcgencmd", "get_throttled"]]
    assert facts.throttled is not None and facts.throttled.active == []


def test_x86_debian(tmp_path: Path) -> None:
    facts = read_board(tree(tmp_path, X86_DEBIAN), run=no_vcgencmd)
    assert facts.model == "LENOVO 81MT"
    assert not facts.is_raspberry_pi
    assert facts.soc_temperature_c == pytest.approx(39.0)  # x86_pkg_temp preferred to acpitz
    assert facts.throttled is None  # no firmware file, no vcgencmd
    assert facts.i2c_buses == []


def test_arm64_debian_skips_a_garbage_zone(tmp_path: Path) -> None:
    root = tree(tmp_path, ARM64_DEBIAN)
    assert read_model(root) is None
    assert read_soc_temperature(root) == pytest.approx(44.5)


def test_empty_root_gives_nothing(tmp_path: Path) -> None:
    facts = read_board(tmp_path, run=None)
    assert (facts.model, facts.soc_temperature_c, facts.throttled) == (None, None, None)
    assert i2c_buses(tmp_path / "missing") == []


def test_cpuinfo_hardware_line_when_no_model(tmp_path: Path) -> None:
    tree(tmp_path, {"proc/cpuinfo": "processor\t: 0\nHardware\t: Allwinner sun50i\n"})
    assert read_model(tmp_path) == "Allwinner sun50i"


def test_throttled_bits_are_named() -> None:
    flags = parse_throttled("throttled=0x50005")
    assert flags is not None
    assert flags.active == ["under_voltage", "throttled", "under_voltage_occurred",
                            "throttled_occurred"]
    every = decode_throttled(0xF000F)
    assert all(every.as_dict()[name] for name in every.active) and len(every.active) == 8
    soft = decode_throttled(1 << 3 | 1 << 19 | 1 << 1 | 1 << 17)
    assert soft.soft_temperature_limit and soft.soft_temperature_limit_occurred
    assert soft.frequency_capped and soft.frequency_capped_occurred
    assert not soft.under_voltage


@pytest.mark.parametrize("text", ["", "throttled=", "error=1 error_msg=\"Command not registered\"",
                                  "0x1234567890"])
def test_unparseable_throttled_output(text: str) -> None:
    assert parse_throttled(text) is None


def test_failing_vcgencmd_gives_none(tmp_path: Path) -> None:
    def failing(argv: Sequence[str]) -> str:
        raise subprocess.CalledProcessError(255, list(argv))

    assert read_throttled(tmp_path, run=failing) is None
    assert read_throttled(tmp_path, run=no_vcgencmd) is None


def test_sysfs_preferred_over_vcgencmd(tmp_path: Path) -> None:
    tree(tmp_path, {"sys/devices/platform/soc/soc:firmware/get_throttled": "80000\n"})

    def must_not_run(argv: Sequence[str]) -> str:
        raise AssertionError("vcgencmd run although sysfs has the value")

    flags = read_throttled(tmp_path, run=must_not_run)
    assert flags is not None and flags.active == ["soft_temperature_limit_occurred"]
