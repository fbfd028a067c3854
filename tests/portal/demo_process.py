"""Run ``python -m portal demo`` as a real process and talk to it like a browser.

Shared by the crash-safety and CLI tests: the demo is what ``make run``
starts, so these tests exercise exactly that path (waitress, seeding,
generated passwords) over real HTTP.
"""

from __future__ import annotations

import http.cookiejar
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from portal.cli import DEMO_PASSWORDS_FILE

_URL = re.compile(r"open\s+(http://127\.0\.0\.1:\d+)")
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
REPO = Path(__file__).resolve().parents[2]
#: Seconds a Ctrl-C'd demo may take to stop. It stops in well under a second on an idle
#: machine, most of it the interpreter's final garbage collection; a loaded 2-core CI
#: machine has been seen to need several times that.
STOP_TIMEOUT_SECONDS = 30.0


def _ctrl_c_reaches_it() -> None:
    """In the demo's child process: SIGINT acts as at a terminal (KeyboardInterrupt).

    A shell starts a background job (``make test &``, a CI runner's script) with SIGINT
    ignored, the process's children inherit that, and Python then leaves it ignored: the
    demo would sleep through the test's Ctrl-C and be killed (exit -9). A person's
    ``make run`` in a terminal gets SIGINT's default action, which this restores.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class DemoProcess:
    """A running demo: its process, URL, folder and console output file."""

    process: subprocess.Popen[bytes]
    folder: Path
    log: Path
    url: str = ""

    @classmethod
    def start(cls, folder: Path, timeout: float = 60.0) -> DemoProcess:
        """Start the demo in ``folder`` and wait until it serves; it binds its portal's
        and its agent's ports itself (any free ones) and says which."""
        log = folder.parent / f"{folder.name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "portal", "demo", "--data", str(folder), "--port", "0",
                 "--agent-port", "0"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_ctrl_c_reaches_it)
        demo = cls(process, folder, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _URL.search(log.read_text(errors="replace"))
            if match:
                demo.url = match.group(1)
                return demo
            if process.poll() is not None:
                break
            time.sleep(0.05)
        demo.stop()
        raise AssertionError(f"the demo did not start:\n{log.read_text(errors='replace')}")

    def output(self) -> str:
        """Everything the demo printed so far."""
        return self.log.read_text(errors="replace")

    def passwords(self) -> dict[str, str]:
        """The generated organiser passwords, from the demo folder."""
        lines = (self.folder / DEMO_PASSWORDS_FILE).read_text().splitlines()
        return dict(line.split() for line in lines if line and not line.startswith("#"))

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to tidy anything."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """Ctrl-C (SIGINT), then SIGKILL if it lingers; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 302 is the acknowledgement itself: do not follow it


@dataclass
class Browser:
    """A cookie-keeping client that does not follow redirects (urllib + cookiejar)."""

    base: str
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        """GET ``path``: (status, text)."""
        try:
            with self.opener.open(self.base + path, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def post(self, path: str, fields: dict[str, str], timeout: float = 10) -> int:
        """POST a form; the status (302 = accepted). Raises OSError if the server is gone."""
        data = urllib.parse.urlencode(fields).encode()
        try:
            with self.opener.open(self.base + path, data=data, timeout=timeout) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            error.read()
            return int(error.code)

    def token(self, path: str) -> str:
        """The CSRF token of the form at ``path``."""
        status, text = self.get(path)
        match = _TOKEN.search(text)
        assert status == 200 and match, f"no form with a CSRF token at {path} ({status})"
        return match.group(1)

    def sign_in(self, name: str, password: str) -> None:
        """Sign in as an organiser through the real form."""
        token = self.token("/organisers/sign-in")
        status = self.post("/organisers/sign-in",
                           {"csrf_token": token, "name": name, "password": password})
        assert status == 302, f"sign-in as {name} failed ({status})"
