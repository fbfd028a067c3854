"""``meshhub hw``: what hardware this node has, and what it reads.

The glue between ``node.toml`` and the ``hardware`` package: settings are read
here and handed over as plain values (``hardware`` never imports ``node``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from node.cli.common import load_node_config
from node.errors import NodeError

if TYPE_CHECKING:
    from hardware.bus import I2CBus
    from hardware.detect import Found

ENABLE_I2C_HELP = ("enable I2C with 'sudo raspi-config' (Interface Options, I2C) or add "
                   "'dtparam=i2c_arm=on' to /boot/firmware/config.txt and reboot")


class HardwareCommandError(NodeError, RuntimeError):
    """A ``meshhub hw`` command cannot do what was asked; the message says what to do."""


@click.group()
def hw() -> None:
    """Look at this node's hardware: I2C sensors, the board, throttling."""


def _print_found(title: str, found: list[Found]) -> None:
    click.echo(title)
    if not found:
        click.echo("  nothing answers: check wiring, power and the pull-up resistors")
    for item in found:
        driver = f"driver: {item.driver}" if item.driver else "no driver"
        note = f"  ({item.note})" if item.note else ""
        click.echo(f"  {item.address:#04x}  {item.chip:<8}  {driver}{note}")


@hw.command("detect")
@click.option("--bus", "buses", type=click.IntRange(0, 255), multiple=True, metavar="N",
              help="Scan /dev/i2c-N (repeatable; default: every I2C bus the kernel offers).")
@click.option("--simulate", is_flag=True,
              help="Scan a simulated bus with example chips instead: shows what the output "
                   "looks like on a laptop.")
@click.option("--root", type=click.Path(file_okay=False), default="/", hidden=True,
              help="Look for /dev/i2c-* under this directory (for tests).")
def hw_detect(buses: tuple[int, ...], simulate: bool, root: str) -> None:
    """List the chips answering on the I2C buses and which driver fits each.

    Probes every address from 0x08 to 0x77 with one read, as 'i2cdetect -r'
    does; addresses a kernel driver owns are listed as in use. Power monitors
    at 0x40-0x4F are told apart by the INA226's ID registers; 0x76/0x77 by the
    BME280's chip ID (a BMP280 is reported as pressure-only).
    """
    from hardware.board import i2c_buses
    from hardware.bus import open_bus
    from hardware.detect import detect

    if simulate:
        from hardware.simulated import example_bus

        for number in buses or (1,):
            with example_bus(number) as simulated:
                _print_found(f"simulated bus {number} (example chips; no hardware touched):",
                             detect(simulated))
        return
    numbers = list(buses) or i2c_buses(root)
    if not numbers:
        raise HardwareCommandError(
            f"no I2C bus found ({Path(root, 'dev')}/i2c-*): {ENABLE_I2C_HELP}.\n"
            "Try 'meshhub hw detect --simulate' to see what the output looks like.")
    for number in numbers:
        try:
            bus = open_bus(number)
        except FileNotFoundError as exc:
            raise HardwareCommandError(f"/dev/i2c-{number} does not exist: {ENABLE_I2C_HELP}"
                                       ) from exc
        except PermissionError as exc:
            raise HardwareCommandError(f"/dev/i2c-{number}: permission denied: run as root or "
                                       "add this user to the 'i2c' group") from exc
        try:
            _print_found(f"bus {number} (/dev/i2c-{number}):", detect(bus))
        finally:
            bus.close()


@hw.command("board")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--root", type=click.Path(file_okay=False), default="/", hidden=True,
              help="Read /proc and /sys under this directory (for tests or a copied card).")
def hw_board(as_json: bool, root: str) -> None:
    """Print the board's model, SoC temperature, throttling flags and I2C buses."""
    from dataclasses import asdict

    from hardware.board import read_board

    facts = read_board(root, run=None) if root != "/" else read_board()
    if as_json:
        click.echo(json.dumps(asdict(facts), indent=2))
        return
    temperature = (f"{facts.soc_temperature_c:.1f} °C" if facts.soc_temperature_c is not None
                   else "not available")
    if facts.throttled is None:
        throttling = "not available (no Raspberry Pi firmware)"
    else:
        names = ", ".join(facts.throttled.active) or "none"
        throttling = f"{names} ({facts.throttled.raw:#x})"
    click.echo(f"model:            {facts.model or 'unknown'}")
    click.echo(f"SoC temperature:  {temperature}")
    click.echo(f"throttling:       {throttling}")
    click.echo(f"I2C buses:        {', '.join(map(str, facts.i2c_buses)) or 'none'}")


@hw.command("read")
@click.option("--simulate", is_flag=True,
              help="Read from a simulated bus with example chips (a power monitor at 0x40 and "
                   "a BME280 at 0x76 unless node.toml names others).")
@click.pass_context
def hw_read(ctx: click.Context, simulate: bool) -> None:
    """Read the sensors configured in node.toml's [hardware] section once."""
    from hardware.bus import open_bus
    from hardware.sensors import SensorReader, standard_openers

    cfg = load_node_config(ctx, required=False)
    hw = cfg.hardware
    power_monitor, ina_address, bme280_address = (hw.power_monitor, hw.ina_address,
                                                  hw.bme280_address)
    if simulate:
        from hardware.simulated import example_bus

        bus: I2CBus = example_bus()
        if power_monitor == "none" and not bme280_address:
            power_monitor, ina_address, bme280_address = "ina219", 0x40, 0x76
    else:
        number = cfg.hardware.i2c_bus
        try:
            bus = open_bus(number)
        except OSError as exc:
            raise HardwareCommandError(f"cannot open /dev/i2c-{number} (hardware.i2c_bus): "
                                       f"{exc.strerror or exc}; {ENABLE_I2C_HELP}") from exc
    openers = standard_openers(bus, power_monitor=power_monitor, ina_address=ina_address,
                               shunt_ohms=hw.ina_shunt_ohms, max_amps=hw.ina_max_amps,
                               bme280_address=bme280_address)
    if not openers:
        click.echo("no sensors configured: set hardware.power_monitor or "
                   "hardware.bme280_address in node.toml")
    with SensorReader(openers) as reader:
        for name, result in reader.read_all().items():
            if not result.available:
                click.echo(f"{name}: unavailable: {result.problem}")
                continue
            values = ", ".join(f"{key}={value:.6g}" for key, value in result.values.items()
                               if value is not None)
            click.echo(f"{name}: {values}")
    bus.close()
