"""Every hardware module imports on its own, and none pulls in node/portal/provisioning."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import hardware

MODULES = sorted(f"hardware.{m.name}" for m in pkgutil.iter_modules(hardware.__path__))


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone_without_node(module: str) -> None:
    code = (f"import sys, {module}\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "{'node', 'portal', 'provisioning', 'scapy'}]\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_public_surface() -> None:
    assert set(hardware.__all__) <= set(dir(hardware))
    assert {"INA219", "INA226", "BME280", "SensorReader", "StatusLED", "SetupButton",
            "read_board", "HardwareWarning"} <= set(hardware.__all__)
