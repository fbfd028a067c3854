"""The roaming keys: what every node computes alone, so that no key ever travels.

Every node of a community holds the same **roaming secret** (32 random bytes, written
by ``meshhub-provision`` beside the node keys and put on each card; never in the
registry, the store or a message). From it each node derives the **day key**

    K(d) = HMAC-SHA256(secret, "meshhub-roam-v1 day " + str(d))

for the UTC day number ``d = floor(unix time / 86400)``, and a device's **tag**

    tag(d, MAC) = first 16 bytes of HMAC-SHA256(K(d), the MAC's 6 bytes), as hex.

Every node computes the same tag for the same MAC on the same day without asking
anyone, yet the tag cannot be turned back into the MAC without the secret (the space
of MAC addresses is small enough to try them all, which is why the hash is *keyed*).
A new key each day means two days' tags of one phone cannot be linked by someone who
collects the messages: an acceptance made on day ``d`` is announced with ``tag(d, MAC)``
and looked up with the key of that day, whichever day the phone arrives.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from node.hexsecret import read_hex_secret

#: Bytes of a tag (128 bits: no two devices of a mesh collide by accident).
TAG_BYTES = 16
SECONDS_PER_DAY = 86_400
#: The secret's file in ``node.data_dir`` when ``roam.secret_file`` is empty.
SECRET_FILE_NAME = "roaming.secret"  # noqa: S105 (a file name)


def day_number(unix_seconds: float) -> int:
    """The UTC day number of a moment (days since 1970-01-01)."""
    return int(unix_seconds // SECONDS_PER_DAY)


def day_key(secret: bytes, day: int) -> bytes:
    """The key of day ``day``, derived from the community's roaming secret."""
    return hmac.new(secret, f"meshhub-roam-v1 day {int(day)}".encode("ascii"),
                    hashlib.sha256).digest()


def mac_bytes(mac: str) -> bytes:
    """The 6 bytes of a colon-separated MAC address (any case)."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def device_tag(key: bytes, mac: str) -> str:
    """The tag of device ``mac`` under a day key (32 hex digits)."""
    return hmac.new(key, mac_bytes(mac), hashlib.sha256).digest()[:TAG_BYTES].hex()


def load_secret(path: Path) -> bytes:
    """The roaming secret in ``path`` (64 hex digits); ConfigError saying what to do."""
    return bytes.fromhex(read_hex_secret(
        path, "roaming secret", "copy the community's roaming.secret there "
        "(meshhub-provision customise does) or set roam.enabled = false"))
