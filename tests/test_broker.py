"""Connections to Redis: a clear error for a bad or unreachable URL, Redis's clock, and the
private names of Celery and kombu that farm relies on (pinned in pyproject.toml)."""

from __future__ import annotations

import inspect
import socket
import time
from importlib.metadata import version

import pytest
from celery.app.amqp import AMQP
from celery.events.dispatcher import EventDispatcher
from celery.worker import state
from celery.worker.consumer import Consumer
from celery.worker.heartbeat import Heart
from celery.worker.request import Request
from kombu.transport.redis import Channel

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


def test_the_private_celery_and_kombu_names_farm_uses_still_exist():
    """pyproject.toml pins celery and kombu to the minor versions tested because farm uses
    these names, which their owners may change in any release: an upgrade past the pin fails
    here, naming every one that went, rather than in a worker mid-frame."""
    used = {  # owner: names farm reads, calls or overrides there
        AMQP: ["_event_dispatcher", "as_task_v2"],  # farm/protocol/queue.py
        EventDispatcher: ["_prepare_event"],  # farm/protocol/queue.py
        Channel: ["_create_client", "pool"],  # farm/protocol/broker.py
        Consumer: ["on_send_event_buffered", "_flush_events"],  # farm/worker/consumer.py
        state: ["active_requests"],  # farm/worker/process.py
        Request: ["worker_pid"],  # farm/worker/process.py
    }
    missing = []
    for owner, names in used.items():
        label = f"{owner.__module__}.{owner.__qualname__}" if inspect.isclass(owner) else owner.__name__
        missing += [f"{label}.{name}" for name in names if not _has(owner, name)]
    arguments = {  # the arguments farm passes, by name
        (AMQP, "as_task_v2"): ["countdown", "argsrepr", "kwargsrepr", "create_sent_event"],
        (EventDispatcher, "_prepare_event"): ["type", "fields"],
        (Channel, "_create_client"): ["asynchronous"],
        (Heart, "__init__"): ["eventer"],  # farm/worker/process.py: the heartbeat_sent sender's eventer
    }
    for (owner, function), names in arguments.items():
        if _has(owner, function):  # a missing one is listed above
            parameters = inspect.signature(getattr(owner, function)).parameters
            missing += [f"{owner.__name__}.{function}({name}=)" for name in names if name not in parameters]
    made = inspect.getsource(EventDispatcher.__init__)  # attributes of an instance: farm/worker/consumer.py
    missing += [f"EventDispatcher().{name}" for name in ("_group_buffer", "buffer_limit") if f"self.{name} =" not in made]
    # farm's own Consumer keeps these; Celery's must not have come to use the same names
    missing += [f"Consumer.{name} (now Celery's too)" for name in ("_flush_pending", "_flush_later") if _has(Consumer, name)]
    assert not missing, f"celery {version('celery')} / kombu {version('kombu')} changed: {', '.join(missing)}"


def _has(owner, name: str) -> bool:
    """Whether `owner` has `name`, without running a property or cached_property."""
    try:
        inspect.getattr_static(owner, name)
    except AttributeError:
        return False
    return True
