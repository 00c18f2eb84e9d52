"""Connections to the Redis that is both Celery's broker and the home of the jobs' data.

A farm's Redis may restart (or fail over) in the middle of a frame. Every client farm
makes retries a dropped connection with backoff for BROKER_RETRY seconds before an error
reaches the caller, so a tile is stored once Redis is back, never dropped.

The URL is kombu's, so that one URL serves Celery and the job data: redis://, rediss://,
or sentinel://host:port;sentinel://host2:port... for a master that Redis Sentinel fails
over. A client of a sentinel:// URL asks the sentinels where the master is before every
attempt to connect and drops a connection to a demoted master, so its retries follow a
failover.
"""

from __future__ import annotations

import functools

from farm import defaults, settings
from farm.exceptions import BrokerError

# Sentinel's port, and kombu's default for a sentinel:// address without one.
SENTINEL_PORT = 26379


def client(url: str, patient: bool = True, socket_timeout: float = 30.0):
    """A redis-py client for `url`; `patient` ones ride out an outage of BROKER_RETRY seconds
    (a failover included)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    retry = Retry(ExponentialBackoff(cap=defaults.RETRY_BACKOFF_CAP, base=0.1), 0)
    if patient:
        retry = Retry(ExponentialBackoff(cap=defaults.RETRY_BACKOFF_CAP, base=0.1), _retries())
    options = {
        "socket_connect_timeout": defaults.CONNECT_TIMEOUT, "socket_timeout": socket_timeout,
        "health_check_interval": 30, "retry": retry,
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError],
    }
    try:
        if is_sentinel(url):
            return _master(url, options)
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise BrokerError(f"invalid broker URL {redacted(url)!r}: {exc}") from None


def is_sentinel(url: str) -> bool:
    """Whether `url` names Redis Sentinels (kombu's sentinel:// form) rather than a Redis."""
    return url.split("://", 1)[0].lower() == "sentinel"


def sentinel_transport_options() -> dict:
    """kombu's transport options for a sentinel:// broker, which the farm's own clients
    use too: the master's name (FARM_SENTINEL_MASTER), and how to reach the sentinels,
    with FARM_SENTINEL_PASSWORD where they ask for one (the URL's login is the master's).
    kombu's plain redis transport ignores both."""
    # One try per sentinel and look-up (retry None): the master's connection retries the
    # look-up itself, and redis-py's default retries made a dead sentinel cost 8 s a pool.
    sentinel_kwargs = {"socket_connect_timeout": defaults.CONNECT_TIMEOUT, "socket_timeout": defaults.CONNECT_TIMEOUT,
                       "retry": None}
    if settings.value("FARM_SENTINEL_PASSWORD"):
        sentinel_kwargs["password"] = settings.value("FARM_SENTINEL_PASSWORD")
    return {"master_name": defaults.SENTINEL_MASTER, "sentinel_kwargs": sentinel_kwargs}


def _master(url: str, options: dict):
    """A client of the master that the sentinels in `url` name, as kombu makes one."""
    from redis.sentinel import Sentinel

    addresses, login = _sentinel_addresses(url)
    transport = sentinel_transport_options()
    sentinels = Sentinel(addresses, sentinel_kwargs=transport["sentinel_kwargs"])
    return sentinels.master_for(transport["master_name"], connection_class=_following_connection(), **login, **options)


@functools.cache
def _following_connection():
    """redis-py's connection to a sentinel-named master asks the sentinels where it is only
    when the pool hands it out: a command's own retries reconnect to the address it had,
    a dead master's, for as long as they last (redis-py issue 3874). This one asks before
    every attempt to connect."""
    from redis.sentinel import SentinelManagedConnection

    class FollowingConnection(SentinelManagedConnection):
        def _connect(self):
            self.host, self.port = self.connection_pool.get_master_address()
            return super()._connect()

    return FollowingConnection


def _sentinel_addresses(url: str) -> tuple[list[tuple[str, int]], dict]:
    """The sentinels' (host, port) in `url`, and the master's login and database, which
    every address must repeat: kombu logs in with those of the address it is using, and
    moves on to the next address whenever a connection fails."""
    from urllib.parse import unquote, urlsplit

    addresses, logins = [], set()
    for address in url.split(";"):
        parts = urlsplit(address)
        if parts.scheme.lower() != "sentinel" or not parts.hostname:
            raise ValueError("each address must read sentinel://[user:password@]host[:port][/db]")
        if parts.query or parts.fragment:
            raise ValueError("a sentinel:// URL takes no options (TLS through Sentinel is not supported)")
        addresses.append((parts.hostname, parts.port or SENTINEL_PORT))
        database = parts.path.strip("/") or "0"
        if not database.isdigit():
            raise ValueError(f"the database must be a number, not {database!r}")
        logins.add((parts.username or None, parts.password, int(database)))
    if len(logins) > 1:
        raise ValueError("every sentinel:// address must repeat the same user, password and database")
    username, password, database = logins.pop()
    return addresses, {"username": username and unquote(username),
                       "password": None if password is None else unquote(password), "db": database}


def _retries() -> int:
    """Retries that, at the backoff's cap between them, span BROKER_RETRY seconds."""
    return max(1, int(defaults.BROKER_RETRY / defaults.RETRY_BACKOFF_CAP) + 1)


def connect(url: str):
    """A patient client for `url`, proven reachable now: a broker that does not answer
    within CONNECT_TIMEOUT (even one that accepts the connection and then says nothing) is
    an error."""
    import redis
    from redis.sentinel import MasterNotFoundError

    probe = client(url, patient=False, socket_timeout=defaults.CONNECT_TIMEOUT)
    try:
        probe.ping()
    except MasterNotFoundError:
        raise BrokerError(f"cannot reach broker {redacted(url)}: {_no_master(url)}") from None
    except redis.RedisError as exc:
        raise BrokerError(refusal(exc, url) or f"cannot reach broker {redacted(url)}: {exc}") from None
    finally:
        probe.close()
        if (sentinels := getattr(probe.connection_pool, "sentinel_manager", None)) is not None:
            sentinels.close()
    return client(url)


def _no_master(url: str) -> str:
    """Why no sentinel in `url` named the master, each sentinel's answer in a few words."""
    import redis

    transport = sentinel_transport_options()
    name, answers = transport["master_name"], []
    for host, port in _sentinel_addresses(url)[0]:
        sentinel = redis.Redis(host, port, **transport["sentinel_kwargs"])
        try:
            state = sentinel.sentinel_master(name)
            answers.append(f"{host}:{port} says it is down ({state.get('flags')})")
        except redis.AuthenticationError:
            answers.append(f"{host}:{port} refused FARM_SENTINEL_PASSWORD" if "password" in transport["sentinel_kwargs"]
                           else f"{host}:{port} wants a password: set FARM_SENTINEL_PASSWORD")
        except redis.ResponseError as exc:
            answers.append(f"{host}:{port} knows no master {name!r} ({exc}): check FARM_SENTINEL_MASTER")
        except redis.RedisError as exc:
            answers.append(f"{host}:{port} did not answer ({exc})")
        finally:
            sentinel.close()
    return "no sentinel names the master: " + "; ".join(answers)


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
            return f"permission denied by the broker's ACL{at} (NOPERM): {exc}; the rules farm needs are in docs/deploy.md"
        if (exc := exc.__cause__ or exc.__context__) is None:
            break
    return None


def server_time(redis) -> float:
    """Redis's clock in seconds: the one clock every worker and client agree on."""
    seconds, microseconds = redis.time()
    return seconds + microseconds / 1e6


def redacted(url: str) -> str:
    """`url` with its password, if any, replaced by ***: safe to print. A sentinel:// URL's
    addresses, separated by ';', are redacted one by one."""
    if is_sentinel(url):
        return ";".join(_redacted(address) for address in url.split(";"))
    return _redacted(url)


def _redacted(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc:
            return url
        # redis://SECRET@host is a password too (redis-py takes it as a user name, people
        # write it as the password): userinfo without a colon is hidden whole
        user = "***" if parts.password is None else f"{parts.username or ''}:***"
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{user}@{host}{port}"))
    except ValueError:  # unparseable: show its scheme only
        return url.split(":", 1)[0] + "://..."


def reuse_kombu_clients() -> None:
    """Make kombu's Redis channel build one redis-py client per connection pool, not one
    per command: kombu 5.7's `Channel._create_client` makes a new client object for every
    acknowledgement, every unacked-index append and every fanout publish, and redis-py 8
    builds a table of about 200 response callbacks in each. py-spy put that at a tenth of a
    worker's main process (issue 14). The client object holds nothing but the pool, which
    it borrows a connection from per command, so sharing it changes no behaviour; a new
    pool (after a reconnect) gets a new client."""
    from kombu.transport import redis as transport

    # private (and `self.pool` below undocumented): no kombu setting makes the channel reuse its client
    build = transport.Channel._create_client
    if getattr(build, "reuses_clients", False):
        return

    def create_client(self, asynchronous=False):
        if asynchronous:
            return build(self, asynchronous)
        made = self.__dict__.get("_farm_client")
        if made is None or made.connection_pool is not self.pool:
            made = self.__dict__["_farm_client"] = build(self)
        return made

    create_client.reuses_clients = True
    transport.Channel._create_client = create_client
