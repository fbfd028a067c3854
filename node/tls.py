"""The node's own certificate, so that nginx serves organisers' pages over HTTPS.

An offline mesh has no name a public authority would certify, so each node has
a self-signed certificate: made by ``meshhub-provision customise`` on the
volunteer's laptop (so that the poster can print its fingerprint) and installed
by first boot, or else made once by the node (``meshhub-portal tls-cert``, run by
first boot):
an ECDSA P-256 key and a ten-year certificate for the node's addresses and hub
names, in ``data_dir/tls/`` (key mode 0600). Browsers warn the first time;
organisers compare the SHA-256 fingerprint shown there with the one the node's
technician gives them (``meshhub-portal tls-cert`` prints it), once per device.

The key and certificate are made by the ``openssl`` program in a short-lived
child: the portal's own process never loads OpenSSL (docs/serving.md, "Memory").
The fingerprint is computed here from the certificate's DER bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from node.config import NodeConfig
from node.errors import ConfigError
from node.frozen import frozen

__all__ = ["Certificate", "certificate_paths", "ensure_certificate", "fingerprint"]

#: Days the self-signed certificate is valid for (a node lives for years offline).
VALID_DAYS = 3650
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


@frozen
class Certificate:
    """Where the node's certificate and key are, and the certificate's fingerprint."""

    cert: Path
    key: Path
    fingerprint: str


def certificate_paths(config: NodeConfig) -> tuple[Path, Path]:
    """``(certificate, key)`` paths of this node (``data_dir/tls/node.crt``, ``node.key``)."""
    folder = config.data_dir / "tls"
    return folder / "node.crt", folder / "node.key"


def fingerprint(pem: bytes) -> str:
    """The SHA-256 fingerprint of the first certificate in ``pem``: ``AB:CD:...`` (as
    browsers show it)."""
    match = _PEM.search(pem)
    if match is None:
        raise ValueError("no PEM certificate found")
    digest = hashlib.sha256(base64.b64decode(b"".join(match.group(1).split()))).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)).upper()


def _subject_names(config: NodeConfig) -> list[str]:
    """``subjectAltName`` entries: the hub names and the node's portal and mesh addresses."""
    from node.net import address_plan

    plan = address_plan(config)
    return [*(f"DNS:{name}" for name in plan.hub_names),
            f"IP:{plan.portal_address}", f"IP:{plan.mesh_address}"]


def ensure_certificate(config: NodeConfig, *, openssl: str = "openssl",
                       paths: tuple[Path, Path] | None = None) -> Certificate:
    """This node's certificate, made first if it does not exist yet (idempotent).

    ``paths`` (certificate, key) default to the node's own (:func:`certificate_paths`);
    ``customise`` gives the secrets folder's. Raises :class:`ConfigError` naming what
    to do when ``openssl`` is missing or fails.
    """
    cert, key = paths or certificate_paths(config)
    if not (cert.exists() and key.exists()):
        program = shutil.which(openssl)
        if program is None:
            raise ConfigError([f"cannot make {cert}: the 'openssl' program is missing; "
                               "install Debian's openssl package"])
        _make(config, program, cert, key)
    return Certificate(cert, key, fingerprint(cert.read_bytes()))


def _make(config: NodeConfig, program: str, cert: Path, key: Path) -> None:
    """Make key and certificate in a private temporary folder, then move them in place."""
    cert.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    names = _subject_names(config)
    with tempfile.TemporaryDirectory(dir=cert.parent, prefix=".new-") as work:
        new_key, new_cert = Path(work) / "node.key", Path(work) / "node.crt"
        old_umask = os.umask(0o077)  # the key is never readable by others, not even briefly
        try:
            done = subprocess.run(
                [program, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", str(VALID_DAYS),
                 "-subj", f"/CN={config.node.name}/O=meshhub",
                 "-addext", "subjectAltName=" + ",".join(names),
                 "-keyout", str(new_key), "-out", str(new_cert)],
                capture_output=True, text=True, timeout=60, check=False)
        finally:
            os.umask(old_umask)
        if done.returncode != 0:
            raise ConfigError([f"cannot make {cert}: openssl failed: "
                               f"{done.stderr.strip() or done.stdout.strip()}"])
        new_cert.chmod(0o644)
        for path in (new_key, new_cert):
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(new_key, key)  # the key first: a certificate never points at no key
        os.replace(new_cert, cert)
