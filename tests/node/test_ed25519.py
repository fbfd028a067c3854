"""Ed25519 through libsodium (node.ed25519): RFC 8032's vectors, the same keys and
signatures as PyNaCl's own API, refusals; and an agent that does without PyNaCl's
Python layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from node import ed25519
from node.identity import Identity, verify_signature
from node.runtime import agent_environment

ROOT = Path(__file__).resolve().parents[2]

#: RFC 8032 §7.1, tests 1-3: (secret key, i.e. the seed; public key; message; signature).
RFC_8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6"
     "1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e45"
     "8f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae"
     "67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC_8032)
def test_the_rfc_8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    identity = Identity(bytes.fromhex(seed))
    assert identity.public_key == public
    assert identity.sign(bytes.fromhex(message)) == signature
    assert verify_signature(public, bytes.fromhex(message), signature)


def test_keys_and_signatures_are_pynacls() -> None:
    for _ in range(20):
        seed, message = os.urandom(32), os.urandom(int.from_bytes(os.urandom(1), "big"))
        theirs = SigningKey(seed)
        mine = Identity(seed)
        assert mine.public_key == theirs.verify_key.encode().hex()
        assert mine.sign(message) == theirs.sign(message).signature.hex()
        theirs.verify_key.verify(message, bytes.fromhex(mine.sign(message)))


def test_a_changed_message_key_or_signature_is_refused() -> None:
    identity, other = Identity.generate(), Identity.generate()
    signature = identity.sign(b"water off on Tuesday")
    assert verify_signature(identity.public_key, b"water off on Tuesday", signature)
    assert not verify_signature(identity.public_key, b"water off on Thursday", signature)
    assert not verify_signature(other.public_key, b"water off on Tuesday", signature)
    flipped = f"{int(signature[:2], 16) ^ 1:02x}{signature[2:]}"
    assert not verify_signature(identity.public_key, b"water off on Tuesday", flipped)
    for public, sig in ((identity.public_key[:-2], signature), (identity.public_key,
                                                                signature[:-2]),
                        ("zz" * 32, signature), (identity.public_key, "")):
        assert not verify_signature(public, b"water off on Tuesday", sig)
    assert not ed25519.verify(bytes(31), b"x", bytes(64))


def test_a_seed_or_secret_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Identity(bytes(31))
    with pytest.raises(ValueError, match="64 bytes"):
        ed25519.sign(bytes(32), b"x")


def test_the_seed_is_not_in_an_identitys_repr() -> None:
    identity = Identity(bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(identity)
    assert str(bytes(range(32))) not in repr(identity)
    assert identity == Identity(bytes(range(32))) != Identity.generate()


#: A fresh agent process signs and checks as the agent does, without ``nacl.signing``
#: and the bindings it imports (0.39 MiB of an agent's memory, docs/scale.md session 11).
AGENT_SIGNS = """
import json, sys
from node.runtime import agent_process
agent_process()
import node.agent
from node.identity import Identity, verify_signature
identity = Identity.generate()
print(json.dumps({"checked": verify_signature(identity.public_key, b"x", identity.sign(b"x")),
                  "loaded": sorted(n for n in sys.modules if n.startswith("nacl."))}))
"""


def test_the_agent_signs_without_pynacls_python_layer() -> None:
    done = subprocess.run([sys.executable, "-c", AGENT_SIGNS], env=agent_environment(),
                          capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"checked": True, "loaded": ["nacl._sodium"]}
