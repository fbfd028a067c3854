"""Shared parts of the portal benchmarks: a loaded node, the portal and nginx as processes.

``loaded_node`` fills a temporary node with 10,000 listings and 5,000 library
items through the store's signed-entry API (one transaction per thousand
entries, so loading takes seconds, not minutes); every entry is signed and
validated exactly as an organiser's would be.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

from node.config import NodeConfig, load_config
from node.hub import open_hub
from node.runtime import byte_compile_for_portal, portal_code_folders
from node.store.models import CATEGORIES
from portal.process import portal_environment

REPO = Path(__file__).resolve().parents[1]
ADMIN = "bench"
_WORDS = ["bicycle", "sofa", "lamp", "garden", "ladder", "freezer", "tutoring", "sewing",
          "repair", "café", "books", "boxes", "kettle", "pram", "cot", "drill", "tent", "guitar",
          "piano", "heater", "fan", "desk", "chair", "table", "shelf", "radio", "laptop", "phone",
          "charger", "jacket", "boots", "coat", "hat", "scarf", "gloves", "toys", "puzzle"]


NGINX = "/usr/sbin/nginx"


def tools_missing(script: str, *tools: str) -> bool:
    """Whether one of ``tools`` (a program on PATH, or a path) is missing; if so, say which
    on stderr, as ``script`` (e.g. ``bench/portal.py``), and where it comes from."""
    for tool in tools:
        if shutil.which(tool) is None and not Path(tool).exists():
            print(f"{script}: needs {tool} (scripts/system-packages.sh)", file=sys.stderr)
            return True
    return False


def listening_socket() -> socket.socket:
    """A loopback socket bound to a port of its own and listening, to hand to a server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


def nginx_on_core0(prefix: Path, site: str,
                   sockets: tuple[socket.socket, ...]) -> subprocess.Popen[bytes]:
    """Debian's nginx pinned to core 0 (the benchmarks' server core) serving ``site`` from
    ``prefix``, on listening ``sockets`` it inherits (its ``NGINX`` variable): no port is
    released and bound again. The sockets are closed here, the process is the caller's."""
    from portal.nginx import standalone_conf

    conf = prefix / "nginx.conf"
    conf.write_text(standalone_conf(site, prefix, run_as_root=os.geteuid() == 0))
    inherited = tuple(sock.fileno() for sock in sockets)
    process = subprocess.Popen(["taskset", "-c", "0", NGINX, "-p", str(prefix), "-c", str(conf),
                                "-e", str(prefix / "error.log"), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               pass_fds=inherited,
                               env={**os.environ, "NGINX": "".join(f"{fd};" for fd in inherited)})
    for sock in sockets:
        sock.close()
    return process


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until ``url`` answers over HTTP (any status); fail if ``process`` exits first."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http://)
                response.read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def write_config(folder: Path, port: int = 8080, *, behind_proxy: bool = True,
                 threads: int | None = None) -> NodeConfig:
    """The benchmark node's node.toml (data next to it); ``threads``: portal.threads.

    ``port`` is only written down: :func:`portal_process` serves on a port of its own.
    """
    path = folder / "node.toml"
    extra = "" if threads is None else f"threads = {threads}\n"
    path.write_text(f'[node]\nname = "bench-node"\ndata_dir = "data"\n'
                    f'[portal]\nport = {port}\nbehind_proxy = {str(behind_proxy).lower()}\n'
                    f'upload_max_mb = 200\n{extra}', encoding="utf-8")
    return load_config(path)


def wav_of_size(size: int, tone: int = 0) -> bytes:
    """A valid WAV file of about ``size`` bytes (silence with a little noise)."""
    rng = random.Random(tone)
    frames = bytes(rng.getrandbits(8) for _ in range(4096)) * max(1, size // 4096)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000 + tone)
        out.writeframes(frames[:size])
    return buffer.getvalue()


def load(config: NodeConfig, *, listings: int = 10_000, items: int = 5_000,
         big_mb: int = 100) -> dict[str, str]:
    """Fill the node; returns ids worth requesting (``big_item``, ``listing``)."""
    from argon2 import PasswordHasher

    rng = random.Random(42)
    store, hub = open_hub(config, password_hasher=PasswordHasher(time_cost=1, memory_cost=8,
                                                                 parallelism=1))
    try:
        hub.create_account(None, name=ADMIN, password=secrets.token_urlsafe(16), role="admin")
        big = hub.add_library_file(ADMIN, io.BytesIO(wav_of_size(big_mb * 1024 * 1024)),
                                   filename="big.wav", title="A long recording")
        small = [hub.add_library_file(ADMIN, io.BytesIO(wav_of_size(20_000 + n, n)),
                                      filename=f"clip-{n}.wav", title=f"Clip {n}")
                 for n in range(4)]
        done = 0
        while done < listings:
            with store.batch() as add:
                for n in range(done, min(listings, done + 1000)):
                    words = rng.sample(_WORDS, 4)
                    add("listing.post", {
                        "category": CATEGORIES[n % len(CATEGORIES)],
                        "title": f"{words[0].title()} and {words[1]} number {n}",
                        "body": " ".join(rng.choice(_WORDS) for _ in range(60)),
                        "price": f"£{n % 90 + 1}", "contact": f"Flat {n % 40}, Elm Street",
                        "expires_at": None, "pinned": False}, actor=ADMIN)
            done = min(listings, done + 1000)
        done = len(small) + 1
        while done < items:
            with store.batch() as add:
                for n in range(done, min(items, done + 1000)):
                    blob = small[n % len(small)]
                    add("library.add", {
                        "title": f"Recording {n}: {rng.choice(_WORDS)} stories",
                        "author": "Riverside radio", "language": "en",
                        "description": " ".join(rng.choice(_WORDS) for _ in range(20)),
                        "collection": f"Collection {n % 12}", "media_type": blob.media_type,
                        "mime": blob.mime, "sha256": blob.sha256, "size": blob.size,
                        "filename": f"recording-{n}.wav"}, actor=ADMIN)
            done = min(items, done + 1000)
        listing = store.listings(per_page=1).items[0]
        return {"big_item": big.id, "big_sha": big.sha256, "listing": listing.id,
                "library_dir": str(hub.blobs.root)}
    finally:
        store.close()


_SERVING = re.compile(rb"serving on http://127\.0\.0\.1:(\d+)")


@contextlib.contextmanager
def portal_process(config_path: Path, *,
                   core: int | None = 0) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m portal serve`` (pinned to ``core``) on a free port: (process, port); stopped
    on exit.

    It binds port 0 itself and says which port it got ("serving on ..." in its log,
    ``portal.log`` beside the config), so no port is handed over between processes.
    Started as a node's unit starts it, with :func:`portal.process.portal_environment`
    (``PYTHONOPTIMIZE=2``: no docstrings or asserts), so that bench/memory.py and
    bench/portal.py measure what a node runs; and, as on a node, with its code
    byte-compiled at that level beforehand where this user may write the bytecode
    (measured 0.4 MB less RSS than compiling it from source at start).
    """
    packages, stdlib = portal_code_folders()
    with contextlib.suppress(subprocess.CalledProcessError):  # read-only: measured as is
        byte_compile_for_portal(sys.executable, packages, stdlib=stdlib)
    command = [sys.executable, "-m", "portal", "serve", "--config", str(config_path),
               "--port", "0"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    log = config_path.parent / "portal.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=portal_environment(),
                                   stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while not (found := _SERVING.search(log.read_bytes())):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the portal did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield process, int(found.group(1))
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after five seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
