"""Connections to Redis: a clear error for a bad or unreachable URL, and Redis's clock."""

from __future__ import annotations

import socket
import time

import pytest

from farm import defaults
from farm.exceptions import BrokerError
from farm.protocol.broker import _retries, client, connect, redacted, server_time


def test_an_unreachable_broker_is_one_clear_error_within_the_connect_timeout():
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"cannot reach broker redis://127\.0\.0\.1:1/0"):
        connect("redis://127.0.0.1:1/0")
    assert time.monotonic() - started < defaults.CONNECT_TIMEOUT + 5


def test_a_malformed_url_is_named():
    with pytest.raises(BrokerError, match="invalid broker URL 'http://nowhere'"):
        client("http://nowhere")


def test_the_redis_clock_is_the_one_clock(redis_server):
    redis = connect(redis_server.url)
    assert abs(server_time(redis) - time.time()) < 5  # the same machine here; elsewhere it may differ


def test_patient_clients_retry_for_about_broker_retry_seconds():
    assert _retries() * defaults.RETRY_BACKOFF_CAP >= defaults.BROKER_RETRY


def test_a_broker_that_accepts_and_never_answers_is_an_error_within_the_connect_timeout():
    """A port that takes the connection (the kernel's backlog) but never says a word."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(BrokerError, match="cannot reach broker"):
            connect(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        assert time.monotonic() - started < defaults.CONNECT_TIMEOUT + 3  # not the 30 s socket timeout


def test_a_password_is_never_printed():
    with pytest.raises(BrokerError) as raised:
        connect("redis://farm:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in str(raised.value) and "redis://farm:***@127.0.0.1:1/0" in str(raised.value)
    with pytest.raises(BrokerError) as raised:
        client("http://:s3cret@nowhere")
    assert "s3cret" not in str(raised.value)
    assert redacted("rediss://:pw@[::1]:6380/0?ssl_cert_reqs=required") == "rediss://:***@[::1]:6380/0?ssl_cert_reqs=required"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
