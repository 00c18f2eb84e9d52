"""The farm's shared secret: the key of the tag every tile carries, so that a client takes
pixels only from workers that hold the same key, not from anyone who can write to Redis.

Read from the file named by FARM_SECRET_FILE, else from FARM_SECRET; `farm secret` makes
one, and the embedded farm makes its own. Without one, tiles are tagged with an empty key:
still checked for damage, but anyone with broker access could forge them.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from farm import defaults, settings
from farm.exceptions import FarmError

# Bytes of a new secret: 256 bits, the size of the SHA-256 block HMAC folds it into.
SECRET_BYTES = 32
TAG_BYTES = 32  # HMAC-SHA256


def new() -> str:
    """A fresh secret, as hex text (what `farm secret` prints)."""
    return secrets.token_hex(SECRET_BYTES)


def configured() -> bool:
    return bool(settings.value("FARM_SECRET_FILE") or settings.value("FARM_SECRET"))


def key() -> bytes:
    """This process's key (empty where none is configured); FarmError if the file named
    by FARM_SECRET_FILE cannot be read or is empty."""
    return _read(settings.value("FARM_SECRET_FILE"), settings.value("FARM_SECRET"))


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


def guard(broker_url: str) -> str | None:
    """Redis's protected mode, for the farm's secret: without one, a broker off the
    loopback is refused (FarmError: anyone who reaches it could put pixels into every
    frame) unless FARM_ALLOW_NO_SECRET says so; on the loopback, or so allowed, the line of
    warning to print. None where a secret is configured."""
    if configured():
        return None
    local = all(_loopback(host) for host in _hosts(broker_url))
    if not local and not defaults.ALLOW_NO_SECRET:
        from farm.protocol.broker import redacted

        raise FarmError(f"no farm secret (FARM_SECRET or FARM_SECRET_FILE) for the broker {redacted(broker_url)}, "
                        f"which is not on this machine's loopback: anyone who can reach it could put pixels into "
                        f"every frame. Make one with `farm secret` and give it to every worker and client, or set "
                        f"FARM_ALLOW_NO_SECRET=1 to run without")
    return ("warning: no farm secret (FARM_SECRET or FARM_SECRET_FILE): tiles are checked for damage, not for "
            "who made them" + ("" if local else " (FARM_ALLOW_NO_SECRET is set)"))


def _hosts(broker_url: str) -> list[str]:
    """The host of each address in a broker URL (a sentinel:// URL names several, ';'-separated)."""
    hosts = []
    for address in broker_url.split(";"):
        parts = urlsplit(address.strip())
        if parts.scheme in ("unix", "redis+socket", "socket"):
            hosts.append("localhost")
        else:
            hosts.append(parts.hostname or "localhost")
    return hosts


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: only localhost is known to stay on this machine
        return False
