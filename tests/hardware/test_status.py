"""Status LED patterns and the setup button, on gpiozero's mock pins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hardware.errors import DeviceClosed
from hardware.status import NodeState, SetupButton, StatusLED
from tests.node.test_store_support import FakeClock

TICK = 0.02


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.reset()
    mock.close()


def run_for(seconds: float) -> None:
    time.sleep(seconds)


def run_until(pin: object, count: int, timeout: float = 10.0) -> None:
    """Wait until ``pin`` has recorded ``count`` states: the pattern got that far, however
    slowly a loaded machine runs its thread (a fixed sleep would count ticks by luck)."""
    deadline = time.monotonic() + timeout
    while len(pin.states) < count:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"only {states(pin)} after {timeout:g} s"
        time.sleep(TICK / 4)


def states(pin: object) -> list[bool]:
    return [bool(s.state) for s in pin.states]  # type: ignore[attr-defined]


def test_steady_states(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with StatusLED(17, pin_factory=factory, tick_seconds=TICK) as led:
        led.show(NodeState.MESH_OK)
        run_until(pin, 2)
        assert pin.state is True
        led.show("off")
        assert pin.state is False
        assert led.state is NodeState.OFF
    pin.assert_states([False, True, False])


def test_starting_is_a_fast_blink(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with StatusLED(17, pin_factory=factory, tick_seconds=TICK) as led:
        led.show(NodeState.STARTING)
        run_until(pin, 6)
    assert states(pin)[:6] == [False, True, False, True, False, True]
    on_times = [s.timestamp for s in pin.states[2::2][:3]]  # time spent on before each off
    assert all(t < 4 * TICK for t in on_times)


def test_fault_is_three_blinks_then_a_pause(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with StatusLED(17, pin_factory=factory, tick_seconds=TICK) as led:
        led.show(NodeState.FAULT)
        run_until(pin, 8)
    assert states(pin)[:8] == [False, True, False, True, False, True, False, True]
    gaps = [s.timestamp for s in pin.states[3:8:2]]  # durations of the off periods
    short_gap, pause = gaps[0], gaps[2]
    assert pause > 2 * short_gap


def test_uplink_is_on_with_short_blips(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with StatusLED(17, pin_factory=factory, tick_seconds=TICK) as led:
        led.show(NodeState.UPLINK)
        run_until(pin, 4)
    assert states(pin)[:4] == [False, True, False, True]
    on_time, off_time = pin.states[2].timestamp, pin.states[3].timestamp
    assert on_time > 5 * off_time


def test_no_neighbours_is_a_slow_blink(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with StatusLED(17, pin_factory=factory, tick_seconds=TICK) as led:
        led.show(NodeState.NO_NEIGHBOURS)
        run_until(pin, 4)
    assert states(pin)[:4] == [False, True, False, True]
    assert pin.states[2].timestamp >= 8 * TICK


def test_pwm_led_and_switching_patterns_stop_the_thread() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    pin = factory.pin(18)
    before = threading.active_count()
    led = StatusLED(18, pin_factory=factory, pwm=True, brightness=0.5, tick_seconds=TICK)
    led.show(NodeState.STARTING)
    run_for(4 * TICK)
    led.show(NodeState.MESH_OK)
    assert pin.state == pytest.approx(0.5)
    assert threading.active_count() == before  # the pattern thread is gone
    led.close()
    led.close()
    with pytest.raises(DeviceClosed):
        led.show(NodeState.FAULT)
    factory.reset()
    factory.close()


def make_button(factory: MockFactory, events: list[str], done: threading.Event, *,
                clock: Callable[[], float] = time.monotonic, **timing: float) -> SetupButton:
    def status() -> None:
        events.append("status")
        done.set()

    def setup() -> None:
        events.append("setup")
        done.set()

    values = {"hold_seconds": 0.3, "short_press_seconds": 0.15, "debounce_seconds": 0.01}
    values.update(timing)
    return SetupButton(27, on_status=status, on_setup=setup, pin_factory=factory, clock=clock,
                       **values)


# The presses below last what the button's clock says (a mock pin calls the button at
# once, on the test's thread), not what a loaded machine makes of a sleep; the hold,
# timed by gpiozero's own thread in real time, is set far beyond the test.
SHORT_TEST_HOLD = 3600.0


def test_short_press_shows_status(factory: MockFactory) -> None:
    pin = factory.pin(27)
    events: list[str] = []
    done = threading.Event()
    clock = FakeClock()
    with make_button(factory, events, done, clock=clock, hold_seconds=SHORT_TEST_HOLD) as button:
        assert pin.state is True  # pulled up: not pressed
        pin.drive_low()
        assert button.is_pressed
        clock.advance(0.05)
        pin.drive_high()
        assert done.wait(10)
    assert events == ["status"]


def test_holding_enters_setup_mode_once(factory: MockFactory) -> None:
    pin = factory.pin(27)
    events: list[str] = []
    done = threading.Event()
    with make_button(factory, events, done):
        pin.drive_low()
        assert done.wait(30), "hold was not detected"
        assert events == ["setup"]  # fires while still held
        run_for(0.4)  # keep holding past another hold_time: no repeat
        pin.drive_high()
    assert events == ["setup"]


def test_bounce_and_hesitant_presses_do_nothing(factory: MockFactory) -> None:
    pin = factory.pin(27)
    events: list[str] = []
    done = threading.Event()
    clock = FakeClock()
    with make_button(factory, events, done, clock=clock, debounce_seconds=0.2,
                     short_press_seconds=0.6, hold_seconds=SHORT_TEST_HOLD):
        pin.drive_low()
        clock.advance(0.01)
        pin.drive_high()  # contact bounce: far shorter than debounce_seconds
        pin.drive_low()
        clock.advance(0.9)  # longer than a short press, shorter than the hold
        pin.drive_high()
    assert events == []


def test_a_failing_callback_does_not_break_the_button(factory: MockFactory,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    pin = factory.pin(27)
    calls: list[str] = []

    def broken() -> None:
        calls.append("status")
        raise RuntimeError("display missing")

    clock = FakeClock()
    with SetupButton(27, on_status=broken, on_setup=lambda: None, pin_factory=factory,
                     hold_seconds=SHORT_TEST_HOLD, short_press_seconds=0.15,
                     debounce_seconds=0.01, clock=clock):
        for _ in range(2):
            pin.drive_low()
            clock.advance(0.03)
            pin.drive_high()
    assert calls == ["status", "status"]
    assert "status action failed" in caplog.text


def test_button_timing_is_validated(factory: MockFactory) -> None:
    with pytest.raises(ValueError):
        SetupButton(27, on_status=lambda: None, on_setup=lambda: None, pin_factory=factory,
                    hold_seconds=0.5, short_press_seconds=1.0)
