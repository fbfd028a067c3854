"""Test support for the image build: a fake wheel.

(The synthetic base image, shared with the benchmarks, is ``bench.images.make_base_image``.)
The fake wheel is a real wheel named ``meshhub`` whose ``meshhub`` and ``meshhub-portal``
commands are tiny stand-ins, so pip installs it offline in a second.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

MIB = 1024 * 1024

FAKE_CLI = '''"""Stand-in for meshhub's commands in image tests."""
import sys


def main():
    print("meshhub (test stand-in)", " ".join(sys.argv[1:]))


def portal():
    if sys.argv[1:2] == ["nginx-conf"]:
        print("# nginx site rendered by the test stand-in")
        print("server { listen 80; }")
        return
    print("meshhub-portal (test stand-in)", " ".join(sys.argv[1:]))
'''


def make_fake_wheel(folder: Path, version: str = "9.9.0") -> Path:
    """A pure-Python wheel named meshhub with ``meshhub``/``meshhub-portal`` stand-ins."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"meshhub-{version}.dist-info"
    files = {
        "meshhub_fake_cli.py": FAKE_CLI.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: meshhub\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: meshhub-tests\nRoot-Is-Purelib: true\n"
                         b"Tag: py3-none-any\n",
        f"{dist}/entry_points.txt": b"[console_scripts]\nmeshhub = meshhub_fake_cli:main\n"
                                    b"meshhub-portal = meshhub_fake_cli:portal\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"meshhub-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel
