"""Node identity: created once, private, stable fingerprint, signatures verify."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.errors import IdentityError
from node.identity import fingerprint, load_or_create_identity, verify_signature


def test_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path)
    second = load_or_create_identity(tmp_path)
    assert first.public_key == second.public_key
    assert (tmp_path / "identity.key").stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_fingerprint_is_short_and_stable(tmp_path: Path) -> None:
    ident = load_or_create_identity(tmp_path)
    assert ident.fingerprint == fingerprint(ident.public_key)
    assert len(ident.fingerprint) == 24 and ident.fingerprint.count("-") == 4


def test_signature_verifies_and_tampering_is_detected(tmp_path: Path) -> None:
    ident = load_or_create_identity(tmp_path)
    sig = ident.sign(b"hello")
    assert verify_signature(ident.public_key, b"hello", sig)
    assert not verify_signature(ident.public_key, b"hellO", sig)
    assert not verify_signature(ident.public_key, b"hello", "00" * 64)


def test_world_readable_key_is_refused(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    (tmp_path / "identity.key").chmod(0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create_identity(tmp_path)


def test_damaged_key_is_reported(tmp_path: Path) -> None:
    key = tmp_path / "identity.key"
    key.write_bytes(b"meshhub-ed25519-seed-v1\nzz\n")
    key.chmod(0o600)
    with pytest.raises(IdentityError, match="damaged"):
        load_or_create_identity(tmp_path)


def test_group_readable_key_for_the_service_group_is_accepted(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path)
    (tmp_path / "identity.key").chmod(0o640)
    assert load_or_create_identity(tmp_path).public_key == first.public_key
    (tmp_path / "identity.key").chmod(0o660)
    with pytest.raises(IdentityError, match="open to others"):
        load_or_create_identity(tmp_path)


def test_fingerprint_is_base32_of_the_keys_digest_without_base64s_table() -> None:
    """The first 20 digits of base32(SHA-256(key)) in groups of four, as
    ``base64.b32encode`` gives them, without building the 1,024-entry table that function
    keeps for good (44 KiB of an agent's memory: docs/scale.md, session 12)."""
    for key in [bytes(32), b"\xff" * 32, *(os.urandom(32) for _ in range(200))]:
        text = base64.b32encode(hashlib.sha256(key).digest()).decode()[:20]
        assert fingerprint(key.hex()) == "-".join(text[i:i + 4] for i in range(0, 20, 4))
    probe = ("import base64, sys; from node.identity import fingerprint; "
             "fingerprint('ab' * 32); print(len(base64._b32tab2))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "0"
