"""The status LED and the setup button, through gpiozero.

A node on a roof has no screen and no keyboard, and a Raspberry Pi has no
reset button: one LED tells a technician on a ladder how the node is doing,
and one push button lets them ask for more or put the node into setup mode.

LED patterns (one tick is ``tick_seconds``, 0.1 s by default; ``#`` on,
``.`` off; each pattern repeats):

============== ============================ =======================================
state          pattern                      looks like
============== ============================ =======================================
starting       ``#.``                       fast blink (5 per second)
mesh_ok        ``#``                        steady on
no_neighbours  ``#`` ×10, ``.`` ×10         slow blink (1 s on, 1 s off)
uplink         ``#`` ×19, ``.``             on, with a short off-blip every 2 s
fault          ``##..##..##`` + ``.`` ×10   three blinks, a pause (SOS-like)
off            ``.``                        off
============== ============================ =======================================

``uplink`` means "mesh ok and this node also reaches the internet"; one LED
is enough, so no second LED pin is needed.

Button: a short press (shorter than 1 s) calls ``on_status``; holding it for
``hold_seconds`` (5 s) calls ``on_setup`` once, while still held. Letting go
between the two does nothing, so a hesitant press does neither. Presses
shorter than ``debounce_seconds`` are contact bounce and are ignored (gpiozero's
``bounce_time`` filters them too on real pins).

Every device takes ``pin_factory``: on a node gpiozero picks the real one; the
tests pass ``gpiozero.pins.mock.MockFactory()``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from hardware.errors import DeviceClosed

log = logging.getLogger("meshhub.hardware.status")

TICK_SECONDS = 0.1
SHORT_PRESS_SECONDS = 1.0
HOLD_SECONDS = 5.0
DEBOUNCE_SECONDS = 0.05


class NodeState(StrEnum):
    """What the status LED can show."""

    STARTING = "starting"
    MESH_OK = "mesh_ok"
    NO_NEIGHBOURS = "no_neighbours"
    UPLINK = "uplink"
    FAULT = "fault"
    OFF = "off"


#: Each state's pattern: one character per tick, ``#`` on and ``.`` off.
PATTERNS: dict[NodeState, str] = {
    NodeState.STARTING: "#.",
    NodeState.MESH_OK: "#",
    NodeState.NO_NEIGHBOURS: "#" * 10 + "." * 10,
    NodeState.UPLINK: "#" * 19 + ".",
    NodeState.FAULT: "##..##..##" + "." * 10,
    NodeState.OFF: ".",
}


class StatusLED:
    """One LED showing a :class:`NodeState` by its pattern.

    ``pwm=True`` drives a ``gpiozero.PWMLED`` (for a dimmable LED), otherwise
    a ``gpiozero.LED``. Patterns run on gpiozero's own background thread,
    which :meth:`show` replaces and :meth:`close` stops.
    """

    def __init__(self, pin: int | str, *, pin_factory: Any = None, pwm: bool = False,
                 active_high: bool = True, tick_seconds: float = TICK_SECONDS,
                 brightness: float = 1.0) -> None:
        from gpiozero import LED, PWMLED

        if tick_seconds <= 0:
            raise ValueError("tick_seconds must be above 0")
        self.tick_seconds = tick_seconds
        self._on = brightness if pwm else 1
        self._led: Any = (PWMLED if pwm else LED)(pin, active_high=active_high,
                                                  initial_value=False, pin_factory=pin_factory)
        self._state = NodeState.OFF

    @property
    def state(self) -> NodeState:
        """The state shown now."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._led is None

    def show(self, state: NodeState | str) -> None:
        """Show ``state``'s pattern from now on (replacing the previous one)."""
        if self._led is None:
            raise DeviceClosed("the status LED is closed")
        state = NodeState(state)
        pattern = PATTERNS[state]
        values = [self._on if mark == "#" else 0 for mark in pattern]
        self._led.source = None
        if len(set(values)) == 1:
            self._led.value = values[0]
        else:
            self._led.source_delay = self.tick_seconds
            self._led.source = itertools.cycle(values)
        self._state = state

    def close(self) -> None:
        """Stop the pattern thread and release the pin. Safe to call twice."""
        if self._led is not None:
            self._led.close()
            self._led = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _guarded(callback: Callable[[], object], what: str) -> Callable[[], None]:
    """Run a callback, logging (not raising) its errors so the button keeps working."""

    def run() -> None:
        try:
            callback()
        except Exception:
            log.exception("setup button: the %s action failed", what)

    return run


class SetupButton:
    """The push button: short press -> ``on_status``, held ``hold_seconds`` -> ``on_setup``.

    Wire it between the GPIO pin and ground (the internal pull-up is used).
    Callbacks run on gpiozero's threads: keep them short (set a flag, wake a
    queue); their errors are logged and the button keeps working.
    """

    def __init__(self, pin: int | str, *, on_status: Callable[[], object],
                 on_setup: Callable[[], object], pin_factory: Any = None,
                 hold_seconds: float = HOLD_SECONDS,
                 short_press_seconds: float = SHORT_PRESS_SECONDS,
                 debounce_seconds: float = DEBOUNCE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from gpiozero import Button

        if not 0 < debounce_seconds < short_press_seconds <= hold_seconds:
            raise ValueError("need 0 < debounce_seconds < short_press_seconds <= hold_seconds")
        self.short_press_seconds, self.debounce_seconds = short_press_seconds, debounce_seconds
        self._on_status = _guarded(on_status, "status")
        self._on_setup = _guarded(on_setup, "setup mode")
        self._clock = clock
        self._lock = threading.Lock()
        self._pressed_at: float | None = None
        self._held = False
        self._button: Any = Button(pin, pull_up=True, bounce_time=debounce_seconds,
                                   hold_time=hold_seconds, pin_factory=pin_factory)
        self._button.when_pressed = self._pressed
        self._button.when_held = self._held_down
        self._button.when_released = self._released

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._button is None

    @property
    def is_pressed(self) -> bool:
        """Whether the button is down now."""
        if self._button is None:
            raise DeviceClosed("the setup button is closed")
        return bool(self._button.is_pressed)

    def _pressed(self) -> None:
        with self._lock:
            self._pressed_at, self._held = self._clock(), False

    def _held_down(self) -> None:
        with self._lock:
            if self._held:
                return
            self._held = True
        self._on_setup()

    def _released(self) -> None:
        with self._lock:
            pressed_at, held = self._pressed_at, self._held
            self._pressed_at = None
        if held or pressed_at is None:
            return
        duration = self._clock() - pressed_at
        if self.debounce_seconds <= duration < self.short_press_seconds:
            self._on_status()

    def close(self) -> None:
        """Stop the hold thread and release the pin. Safe to call twice."""
        if self._button is not None:
            self._button.close()
            self._button = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
