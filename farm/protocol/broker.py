"""Connections to the Redis that is both Celery's broker and the home of the jobs' data.

A farm's Redis may restart (or fail over) in the middle of a frame. Every client farm
makes retries a dropped connection with backoff for BROKER_RETRY seconds before an error
reaches the caller, so a tile is stored once Redis is back, never dropped.
"""

from __future__ import annotations

from farm import defaults
from farm.exceptions import BrokerError


def client(url: str, patient: bool = True, socket_timeout: float = 30.0):
    """A redis-py client for `url`; `patient` ones ride out an outage of BROKER_RETRY seconds."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    retry = Retry(ExponentialBackoff(cap=defaults.RETRY_BACKOFF_CAP, base=0.1), 0)
    if patient:
        retry = Retry(ExponentialBackoff(cap=defaults.RETRY_BACKOFF_CAP, base=0.1), _retries())
    try:
        return redis.Redis.from_url(
            url, socket_connect_timeout=defaults.CONNECT_TIMEOUT, socket_timeout=socket_timeout,
            health_check_interval=30, retry=retry,
            retry_on_error=[redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError],
        )
    except ValueError as exc:
        raise BrokerError(f"invalid broker URL {redacted(url)!r}: {exc}") from None


def _retries() -> int:
    """Retries that, at the backoff's cap between them, span BROKER_RETRY seconds."""
    return max(1, int(defaults.BROKER_RETRY / defaults.RETRY_BACKOFF_CAP) + 1)


def connect(url: str):
    """A patient client for `url`, proven reachable now: a broker that does not answer
    within CONNECT_TIMEOUT (even one that accepts the connection and then says nothing) is
    an error."""
    import redis

    probe = client(url, patient=False, socket_timeout=defaults.CONNECT_TIMEOUT)
    try:
        probe.ping()
    except redis.RedisError as exc:
        raise BrokerError(refusal(exc, url) or f"cannot reach broker {redacted(url)}: {exc}") from None
    finally:
        probe.close()
    return client(url)


def refusal(exc: BaseException, url: str = "") -> str | None:
    """One line for a broker that answered but a login, an ACL or a certificate stood in
    the way, wherever `exc` wraps it (kombu does): a fix to make, not a lost connection
    to wait out. None for any other error."""
    import ssl

    from redis.exceptions import AuthenticationError, NoPermissionError

    at = f" at {redacted(url)}" if url else ""
    for _ in range(8):  # down the chain of causes, which may loop
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"the broker{at} has a certificate that failed verification ({exc.verify_message}): check ssl_ca_certs"
        if isinstance(exc, AuthenticationError):
            return f"the broker{at} refused the login: {exc}"
        if isinstance(exc, NoPermissionError):
            return f"permission denied by the broker's ACL{at} (NOPERM): {exc}; the rules farm needs are in the README"
        if (exc := exc.__cause__ or exc.__context__) is None:
            break
    return None


def server_time(redis) -> float:
    """Redis's clock in seconds: the one clock every worker and client agree on."""
    seconds, microseconds = redis.time()
    return seconds + microseconds / 1e6


def redacted(url: str) -> str:
    """`url` with its password, if any, replaced by ***: safe to print."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
    except ValueError:  # unparseable: show its scheme only
        return url.split(":", 1)[0] + "://..."
