"""The farm's shared secret: the key of the tag every tile carries, so that a client takes
pixels only from workers that hold the same key, not from anyone who can write to Redis.

Read from the file named by FARM_SECRET_FILE, else from FARM_SECRET; `farm secret` makes
one, and the embedded farm makes its own. Without one, tiles are tagged with an empty key:
still checked for damage, but anyone with broker access could forge them.
"""

from __future__ import annotations

import functools
import hmac
import os
import secrets

from farm.exceptions import FarmError

# Bytes of a new secret: 256 bits, the size of the SHA-256 block HMAC folds it into.
SECRET_BYTES = 32
TAG_BYTES = 32  # HMAC-SHA256


def new() -> str:
    """A fresh secret, as hex text (what `farm secret` prints)."""
    return secrets.token_hex(SECRET_BYTES)


def configured() -> bool:
    return bool(os.environ.get("FARM_SECRET_FILE") or os.environ.get("FARM_SECRET"))


def key() -> bytes:
    """This process's key (empty where none is configured); FarmError if the file named
    by FARM_SECRET_FILE cannot be read or is empty."""
    return _read(os.environ.get("FARM_SECRET_FILE", ""), os.environ.get("FARM_SECRET", ""))


@functools.lru_cache(maxsize=4)
def _read(path: str, text: str) -> bytes:
    if path:
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise FarmError(f"FARM_SECRET_FILE {path}: cannot read the farm's secret ({exc})") from None
        if not text:
            raise FarmError(f"FARM_SECRET_FILE {path} is empty; make a secret with `farm secret`")
    return text.encode()


def tag(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, "sha256").digest()


def matches(key: bytes, data: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(tag(key, data), expected)
