"""Message authentication shared by hamod's datagram protocols (heartbeats, witness):
per-purpose keys derived from the cluster key, HMAC-SHA256 tags, constant-time checks."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

#: The shortest cluster key accepted (``hamod cluster keygen`` makes 32 bytes).
MIN_KEY_BYTES: Final = 16
#: Length of every tag (HMAC-SHA256).
MAC_SIZE: Final = 32


def derive_key(cluster_key: bytes, label: bytes) -> bytes:
    """The key of one purpose (``label``) derived from the cluster key, so a tag made for
    one protocol never verifies in another (domain separation)."""
    if len(cluster_key) < MIN_KEY_BYTES:
        raise ValueError(f"cluster key must be at least {MIN_KEY_BYTES} bytes")
    return hmac.new(cluster_key, label, hashlib.sha256).digest()


def sign(signed: bytes, key: bytes) -> bytes:
    """HMAC-SHA256 of ``signed`` under a derived ``key``."""
    return hmac.new(key, signed, hashlib.sha256).digest()


def verify(signed: bytes, tag: bytes, key: bytes) -> bool:
    """True when ``tag`` authenticates ``signed`` under ``key`` (constant time)."""
    return hmac.compare_digest(sign(signed, key), tag)
