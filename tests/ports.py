"""A free port on the loopback interface, for a server a test starts (Redis, Sentinel,
Flower, a worker's metrics, the live view)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now. The kernel picks it; another program may take it
    before the test's server binds it, as with any port chosen ahead."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
