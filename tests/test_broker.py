"""Connections to Redis: a clear error for a bad or unreachable URL, and Redis's clock."""

from __future__ import annotations

import time

import pytest

from farm import defaults
from farm.exceptions import BrokerError
from farm.protocol.broker import _retries, client, connect, server_time


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
