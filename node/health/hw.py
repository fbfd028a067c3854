"""Plugs the ``hardware`` package into the collector's :class:`~node.health.collector.Sources`.

The drivers report values with short unit suffixes (``bus_voltage_v``,
``humidity_percent``); health documents and metrics use Prometheus base
units (``bus_voltage_volts``, ``relative_humidity_ratio``).  The conversion
lives here, in one table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hardware import board
from node.health.collector import SensorReading

if TYPE_CHECKING:  # the drivers load only on a node with sensors (node.health.monitor)
    from hardware.sensors import SensorReader

#: driver key -> (document key, factor)
UNIT_KEYS: dict[str, tuple[str, float]] = {
    "bus_voltage_v": ("bus_voltage_volts", 1.0),
    "shunt_voltage_v": ("shunt_voltage_volts", 1.0),
    "current_a": ("current_amperes", 1.0),
    "power_w": ("power_watts", 1.0),
    "temperature_c": ("temperature_celsius", 1.0),
    "pressure_pa": ("pressure_pascals", 1.0),
    "humidity_percent": ("relative_humidity_ratio", 0.01),
}


def board_sources(root: str | Path = "/", run: board.Runner | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`Sources`: SoC temperature, throttling, model.

    ``run`` runs ``vcgencmd`` when the sysfs throttling file is absent; the
    default (``None``) reads sysfs only, so the agent never forks per sample.
    """

    def throttling() -> dict[str, bool] | None:
        flags = board.read_throttled(root, run)
        if flags is None:
            return None
        return {k: bool(v) for k, v in flags.as_dict().items() if k != "raw"}

    return {"soc_temperature_celsius": lambda: board.read_soc_temperature(root),
            "throttling": throttling,
            "board_model": lambda: board.read_model(root)}


def convert_values(values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Driver values -> document values in base units; unknown keys are dropped."""
    out: dict[str, float | None] = {}
    for key, value in values.items():
        if key in UNIT_KEYS:
            name, factor = UNIT_KEYS[key]
            out[name] = None if value is None else value * factor
    return out


def sensor_source(reader: SensorReader, chips: Mapping[str, str] | None = None
                  ) -> Callable[[], list[SensorReading]]:
    """A ``Sources.sensors`` callable reading every sensor of ``reader``.

    The sensor's name is its category (``power``, ``environment``, as
    :func:`hardware.sensors.standard_openers` names them); ``chips`` names
    the chip of each, for labels.
    """
    chips = dict(chips or {})

    def read() -> list[SensorReading]:
        found = []
        for name, result in reader.read_all().items():
            found.append(SensorReading(
                name=name, category=name, chip=chips.get(name, "unknown"),
                available=result.available, values=convert_values(result.values),
                reason=result.problem or ""))
        return found

    return read
