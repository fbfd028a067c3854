"""The simulated bus behaves like i2c-dev: NACKs, EBUSY, little-endian words, limits."""

from __future__ import annotations

import errno

import pytest

from hardware.simulated import (
    SimulatedBME280,
    SimulatedI2CBus,
    SimulatedINA219,
    SimulatedINA226,
    example_bus,
)


def test_absent_address_nacks_with_errno_121() -> None:
    with pytest.raises(OSError) as info:
        SimulatedI2CBus().read_byte(0x40)
    assert info.value.errno == errno.EREMOTEIO == 121


def test_kernel_owned_address_is_busy() -> None:
    bus = SimulatedI2CBus(kernel_owned=[0x68])
    with pytest.raises(OSError) as info:
        bus.read_byte(0x68)
    assert info.value.errno == errno.EBUSY


def test_fault_injection() -> None:
    chip = SimulatedINA226()
    bus = SimulatedI2CBus({0x40: chip})
    chip.fail_next = 2
    for _ in range(2):
        with pytest.raises(OSError):
            bus.read_word_data(0x40, 0xFE)
    assert bus.read_word_data(0x40, 0xFE) == 0x4954  # 0x5449 with its bytes swapped
    chip.flaky_every = 3
    outcomes = []
    for _ in range(6):
        try:
            bus.read_byte(0x40)
            outcomes.append("ok")
        except OSError:
            outcomes.append("fail")
    assert outcomes.count("fail") == 2
    chip.flaky_every, chip.present = 0, False
    with pytest.raises(OSError):
        bus.read_byte(0x40)


def test_words_and_blocks() -> None:
    bus = SimulatedI2CBus({0x40: SimulatedINA219(), 0x76: SimulatedBME280()})
    bus.write_word_data(0x40, 0x05, 0x0010)  # low byte first: the chip gets 0x1000
    assert bus.read_i2c_block_data(0x40, 0x05, 2) == [0x10, 0x00]
    assert bus.read_byte_data(0x76, 0xD0) == 0x60
    bus.write_i2c_block_data(0x76, 0xF2, [0b001])
    assert bus.read_byte_data(0x76, 0xF2) == 0b001
    with pytest.raises(ValueError):
        bus.read_i2c_block_data(0x76, 0x88, 33)
    with pytest.raises(ValueError):
        bus.write_byte_data(0x76, 0xF2, 256)


def test_humidity_oversampling_takes_effect_on_the_ctrl_meas_write() -> None:
    chip = SimulatedBME280()
    bus = SimulatedI2CBus({0x76: chip})
    bus.write_byte_data(0x76, 0xF4, 0b001_001_01)  # forced, but ctrl_hum still 0
    while bus.read_byte_data(0x76, 0xF3) & 0x08:
        pass
    data = bus.read_i2c_block_data(0x76, 0xF7, 8)
    assert data[6:] == [0x80, 0x00]  # humidity skipped, as on the real chip


def test_example_bus_and_detach() -> None:
    with example_bus() as bus:
        assert sorted(bus.chips) == [0x40, 0x41, 0x76]
        bus.detach(0x41)
        with pytest.raises(OSError):
            bus.read_byte(0x41)
    with pytest.raises(OSError) as info:
        bus.read_byte(0x40)
    assert info.value.errno == errno.EBADF
