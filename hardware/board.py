"""Facts about the board itself: model, SoC temperature, throttling and undervoltage.

Every reader takes ``root`` (default ``/``) so that tests, and a technician
looking at a copied SD card, can point it at any directory tree. A file that
is missing or unreadable gives ``None``, never an exception: not every board
has every file.

Throttling flags come from the Raspberry Pi firmware: the sysfs file
``/sys/devices/platform/soc/soc:firmware/get_throttled`` where the kernel
offers it, else ``vcgencmd get_throttled`` (the command runner is injectable;
no vcgencmd -> ``None``).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("meshhub.hardware.board")

#: Runs a command and returns its standard output; raises OSError when absent.
Runner = Callable[[Sequence[str]], str]

THROTTLED_SYSFS = "sys/devices/platform/soc/soc:firmware/get_throttled"
#: Bit -> flag name, as documented for ``vcgencmd get_throttled``.
THROTTLE_BITS: dict[int, str] = {
    0: "under_voltage",
    1: "frequency_capped",
    2: "throttled",
    3: "soft_temperature_limit",
    16: "under_voltage_occurred",
    17: "frequency_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temperature_limit_occurred",
}
PREFERRED_THERMAL_TYPES = ("cpu-thermal", "soc-thermal", "x86_pkg_temp", "cpu_thermal")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_model(root: str | Path = "/") -> str | None:
    """The board's model, e.g. "Raspberry Pi 4 Model B Rev 1.4".

    Tried in order: ``/proc/device-tree/model`` (NUL-terminated), the
    ``Model``/``Hardware`` lines of ``/proc/cpuinfo``, and the DMI vendor and
    product of a PC (``/sys/class/dmi/id``).
    """
    base = Path(root)
    text = _read_text(base / "proc/device-tree/model")
    if text and text.strip("\x00\n "):
        return text.split("\x00", 1)[0].strip()
    cpuinfo = _read_text(base / "proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip(), value.strip())
    for key in ("Model", "Hardware"):
        if key in fields:
            return fields[key]
    dmi = [(_read_text(base / f"sys/class/dmi/id/{name}") or "").strip()
           for name in ("sys_vendor", "product_name")]
    return " ".join(part for part in dmi if part) or None


def read_soc_temperature(root: str | Path = "/") -> float | None:
    """The SoC's temperature in °C from ``/sys/class/thermal``, or ``None``.

    A zone whose type is ``cpu-thermal`` (Raspberry Pi) or another CPU type is
    preferred; otherwise the first zone that gives a number.
    """
    zones = sorted(Path(root, "sys/class/thermal").glob("thermal_zone*"),
                   key=lambda p: int(re.sub(r"\D", "", p.name) or 0))

    def rank(zone: Path) -> int:
        kind = (_read_text(zone / "type") or "").strip()
        return (PREFERRED_THERMAL_TYPES.index(kind) if kind in PREFERRED_THERMAL_TYPES
                else len(PREFERRED_THERMAL_TYPES))

    for zone in sorted(zones, key=rank):
        text = (_read_text(zone / "temp") or "").strip()
        try:
            millidegrees = int(text)
        except ValueError:
            if text:
                log.debug("%s: not a temperature: %r", zone / "temp", text[:40])
            continue
        return millidegrees / 1000.0
    return None


@dataclass(frozen=True)
class ThrottleFlags:
    """The firmware's throttling word, decoded. ``raw`` keeps the original bits."""

    raw: int
    under_voltage: bool
    frequency_capped: bool
    throttled: bool
    soft_temperature_limit: bool
    under_voltage_occurred: bool
    frequency_capped_occurred: bool
    throttled_occurred: bool
    soft_temperature_limit_occurred: bool

    @property
    def active(self) -> list[str]:
        """Names of the flags that are set, for a status line."""
        return [name for name in THROTTLE_BITS.values() if getattr(self, name)]

    def as_dict(self) -> dict[str, Any]:
        """All flags by name, with ``raw``."""
        return asdict(self)


def decode_throttled(raw: int) -> ThrottleFlags:
    """The throttling word (e.g. 0x50005) -> named flags."""
    return ThrottleFlags(raw=raw, **{name: bool(raw >> bit & 1)
                                     for bit, name in THROTTLE_BITS.items()})


def parse_throttled(text: str) -> ThrottleFlags | None:
    """Parse ``vcgencmd get_throttled`` output (``throttled=0x50005``) or the sysfs value.

    The sysfs file holds bare hex digits ("50005"). Anything else gives ``None``.
    """
    match = re.fullmatch(r"\s*(?:throttled=)?(?:0x)?([0-9a-fA-F]{1,8})\s*", text)
    return decode_throttled(int(match.group(1), 16)) if match else None


def _run_command(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(argv[0])
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=5,
                          check=True).stdout


def read_throttled(root: str | Path = "/", run: Runner | None = _run_command
                   ) -> ThrottleFlags | None:
    """Throttling and undervoltage flags, or ``None`` where the board has none to give.

    The sysfs file is read first (no subprocess); then ``vcgencmd`` through
    ``run`` (pass ``run=None`` to skip it, as tests on fixture trees do).
    """
    text = _read_text(Path(root, THROTTLED_SYSFS))
    if text is not None:
        flags = parse_throttled(text)
        if flags is not None:
            return flags
        log.debug("%s: unexpected content %r", THROTTLED_SYSFS, text[:40])
    if run is None:
        return None
    try:
        return parse_throttled(run(["vcgencmd", "get_throttled"]))
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("vcgencmd get_throttled: %s", exc)
        return None


def i2c_buses(root: str | Path = "/") -> list[int]:
    """Numbers of the I2C buses the kernel offers (``/dev/i2c-N``), sorted."""
    numbers = []
    for path in Path(root, "dev").glob("i2c-*"):
        suffix = path.name.removeprefix("i2c-")
        if suffix.isdigit():
            numbers.append(int(suffix))
    return sorted(numbers)


@dataclass(frozen=True)
class BoardFacts:
    """What ``meshhub hw board`` prints and the health collector reports."""

    model: str | None
    is_raspberry_pi: bool
    soc_temperature_c: float | None
    throttled: ThrottleFlags | None
    i2c_buses: list[int]


def read_board(root: str | Path = "/", run: Runner | None = _run_command) -> BoardFacts:
    """Every board fact at once."""
    model = read_model(root)
    return BoardFacts(model=model, is_raspberry_pi=bool(model and "Raspberry Pi" in model),
                      soc_temperature_c=read_soc_temperature(root),
                      throttled=read_throttled(root, run), i2c_buses=i2c_buses(root))
