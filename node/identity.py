"""The node's Ed25519 identity: created once, kept private, shown as a fingerprint.

The private key signs every entry this node adds to the hub; its public key
is what the community registers and what every other node checks.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import field
from pathlib import Path

from node import ed25519
from node.atomic import atomic_write
from node.errors import IdentityError
from node.frozen import frozen

KEY_FILE_NAME = "identity.key"
#: RFC 4648's base-32 digits, as ``base64.b32encode`` writes them.
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_HEADER = b"meshhub-ed25519-seed-v1\n"


@frozen
class Identity:
    """A node's signing key and the public key others know it by (Ed25519, libsodium's:
    :mod:`node.ed25519`), from its 32-byte secret seed."""

    seed: bytes = field(repr=False)  #: the secret; never shown
    _public: bytes = field(init=False, repr=False, compare=False)
    _secret: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        public, secret = ed25519.key_pair(self.seed)  # ValueError for a wrong length
        object.__setattr__(self, "_public", public)
        object.__setattr__(self, "_secret", secret)

    @property
    def public_key(self) -> str:
        """The public key as 64 lower-case hex digits (the form used everywhere)."""
        return self._public.hex()

    @property
    def fingerprint(self) -> str:
        """A short, readable fingerprint of the public key (see :func:`fingerprint`)."""
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message`` as 128 hex digits."""
        return ed25519.sign(self._secret, message).hex()

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity (used at first start and by provisioning)."""
        return cls(os.urandom(ed25519.SEED_BYTES))

    def seed_bytes(self) -> bytes:
        """The 32-byte secret seed; handle with care."""
        return self.seed


def fingerprint(public_key_hex: str) -> str:
    """Five groups of four base32 digits from SHA-256 of the key, e.g. ``ABCD-EFGH-...``.

    Short enough to read aloud or compare on a poster, long enough (100 bits
    shown) that two registered keys do not collide by accident.
    """
    digest = hashlib.sha256(bytes.fromhex(public_key_hex)).digest()
    # The first 20 digits of base32(digest), i.e. its first 100 bits, five at a time;
    # base64.b32encode would build (and keep for good) a 1,024-entry table at its first
    # use, 44 KiB of an agent's memory (docs/scale.md, session 12).
    bits = int.from_bytes(digest[:13], "big") >> 4
    text = "".join(_BASE32[(bits >> shift) & 31] for shift in range(95, -1, -5))
    return "-".join(text[i:i + 4] for i in range(0, 20, 4))


def verify_signature(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is ``public_key_hex``'s signature of ``message``."""
    try:
        return ed25519.verify(bytes.fromhex(public_key_hex), message,
                              bytes.fromhex(signature_hex))
    except (ValueError, TypeError):  # not hex
        return False


def load_or_create_identity(data_dir: str | os.PathLike[str]) -> Identity:
    """The identity stored in ``data_dir``, created (mode 0600, atomically) if absent."""
    path = Path(data_dir) / KEY_FILE_NAME
    if path.exists():
        return load_identity(path)
    identity = Identity.generate()
    save_identity(identity, path)
    return identity


def load_identity(path: str | os.PathLike[str]) -> Identity:
    """Read an identity file, refusing one that others could read."""
    file = Path(path)
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
        raw = file.read_bytes()
    except OSError as exc:
        raise IdentityError(f"{file}: cannot read the identity key ({exc.strerror})") from None
    # 0600, or 0640 where the node's service group (portal + agent) shares it
    # (docs/images.md); never writable by the group, never readable by others.
    if mode & 0o027:
        raise IdentityError(f"{file}: identity key is open to others (mode {mode:o}); "
                            f"run 'chmod 600 {file}' (or 640 for the node's service group)")
    if not raw.startswith(_HEADER):
        raise IdentityError(f"{file}: not a meshhub identity key file")
    try:
        seed = bytes.fromhex(raw[len(_HEADER):].decode("ascii").strip())
        return Identity(seed)
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise IdentityError(f"{file}: identity key is damaged ({exc}); restore it from "
                            "backup or re-register the node") from None


def save_identity(identity: Identity, path: str | os.PathLike[str]) -> Path:
    """Write ``identity`` to ``path`` with mode 0600, atomically."""
    return atomic_write(path, _HEADER + identity.seed_bytes().hex().encode() + b"\n", mode=0o600)
