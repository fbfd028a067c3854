"""The portal's process runs without OpenSSL (portal.process.keep_tls_out) and does all it did.

Both checks run the interpreter as a node runs the portal's, at optimisation level 2
(portal.process.portal_environment): no module may need its docstrings or asserts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from portal.process import portal_environment
from tests.import_walk import import_walk_script, run_import_walk
from tests.portal.conftest import write_node_toml

ROOT = Path(__file__).resolve().parents[2]

#: Run in a fresh interpreter: keep OpenSSL out, import every portal module and then,
#: until nothing new appears, everything any loaded portal or node module imports
#: anywhere (inside functions too: the imports a request may trigger later). The demo's
#: own modules are left out: the demo lets TLS back in.
IMPORT_EVERYTHING = import_walk_script(
    setup="from portal.process import keep_tls_out\nkeep_tls_out()\nimport portal",
    packages=("portal", "node"),
    skipped=("portal.sample", "fpdf", "ebooklib", "tomli_w"),
    first="for info in pkgutil.walk_packages(portal.__path__, 'portal.'):\n"
          "    if not info.name.endswith('__main__'):  # that one runs the program\n"
          "        attempt(info.name, 'portal package')",
    report='{"failed": failed, "ssl": sys.modules.get("ssl") is None, '
           '"hashlib_openssl": sys.modules.get("_hashlib") is not None}')


def test_everything_the_portal_can_import_works_without_openssl() -> None:
    report = run_import_walk(IMPORT_EVERYTHING, portal_environment(),
                             "these imports need OpenSSL")
    assert report["ssl"] and not report["hashlib_openssl"], "OpenSSL was loaded after all"


def test_the_served_portal_maps_no_openssl_and_serves(tmp_path: Path) -> None:
    config = write_node_toml(tmp_path)
    command = [sys.executable, "-m", "portal", "serve", "--config", str(config.path),
               "--port", "0"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    process = subprocess.Popen(command, cwd=ROOT, env=portal_environment(),
                               stderr=subprocess.PIPE, text=True, stdout=subprocess.DEVNULL)
    try:
        assert process.stderr is not None
        said = []
        while not said or ("serving on http://" not in said[-1] and said[-1]):
            said.append(process.stderr.readline())  # a warning first when run as root
        assert "serving on http://" in said[-1], "".join(said)
        url = said[-1].split("serving on ", 1)[1].strip()
        with urllib.request.urlopen(url + "/search?q=bicycle", timeout=30) as response:  # noqa: S310
            assert response.status == 200
        with urllib.request.urlopen(url + "/organisers/sign-in",  # noqa: S310
                                    timeout=30) as response:
            assert b'name="csrf_token"' in response.read()
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONOPTIMIZE=2" in environ and b"PYTHONNODEBUGRANGES=1" in environ
        mapped = Path(f"/proc/{process.pid}/maps").read_text(encoding="utf-8")
        assert "libcrypto" not in mapped and "libssl" not in mapped
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
