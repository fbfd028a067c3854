"""Ed25519 keys and signatures: libsodium's, through the binding PyNaCl compiles.

PyNaCl is how the project gets libsodium (its wheels carry the library and a cffi
module, ``nacl._sodium``, that exposes libsodium's functions). Its Python API,
``nacl.signing``, imports every binding PyNaCl has (``nacl.bindings``: boxes, secret
streams, password hashing, ...): 0.39 MiB kept in every agent, which uses three
functions (docs/scale.md, session 11). They are called here as
``nacl.bindings.crypto_sign`` calls them: a key pair from a seed, a signature, its
check. The crypto is libsodium's; keys and signatures are the same bytes as
``nacl.signing``'s (tests/node/test_ed25519.py checks RFC 8032's vectors and PyNaCl).
"""

from __future__ import annotations

from nacl._sodium import ffi, lib

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
#: libsodium's secret key: the seed followed by the public key.
SECRET_KEY_BYTES = 64
SIGNATURE_BYTES = 64


def _initialise() -> None:
    if lib.sodium_init() == -1:
        raise RuntimeError("libsodium could not be initialised")


# Once per process, under the name PyNaCl uses, so that it is not done twice when PyNaCl's
# own API is loaded too (tests, the provisioning tools).
ffi.init_once(_initialise, "libsodium")


def key_pair(seed: bytes) -> tuple[bytes, bytes]:
    """The public key (32 bytes) and libsodium's secret key (64) for a 32-byte ``seed``;
    ValueError for a seed of another length."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes, not {len(seed)}")
    public = ffi.new("unsigned char[]", PUBLIC_KEY_BYTES)
    secret = ffi.new("unsigned char[]", SECRET_KEY_BYTES)
    if lib.crypto_sign_seed_keypair(public, secret, seed) != 0:
        raise RuntimeError("libsodium could not derive an Ed25519 key pair")
    return ffi.buffer(public, PUBLIC_KEY_BYTES)[:], ffi.buffer(secret, SECRET_KEY_BYTES)[:]


def sign(secret_key: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` by ``secret_key`` (from :func:`key_pair`)."""
    if len(secret_key) != SECRET_KEY_BYTES:
        raise ValueError(f"an Ed25519 secret key is {SECRET_KEY_BYTES} bytes")
    signed = ffi.new("unsigned char[]", len(message) + SIGNATURE_BYTES)
    length = ffi.new("unsigned long long *")
    if lib.crypto_sign(signed, length, message, len(message), secret_key) != 0:
        raise RuntimeError("libsodium could not sign")
    return ffi.buffer(signed, SIGNATURE_BYTES)[:]  # the signed message starts with it


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``message`` (False for keys
    or signatures of the wrong length, as for a forged or corrupt one)."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    signed = signature + message
    opened = ffi.new("unsigned char[]", len(signed))
    length = ffi.new("unsigned long long *")
    return bool(lib.crypto_sign_open(opened, length, signed, len(signed), public_key) == 0)
