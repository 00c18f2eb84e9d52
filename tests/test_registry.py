"""The worker registry on a real Redis: alive, busy or bad, and gone when the beats stop."""

from __future__ import annotations

import pytest
import redis as redis_py

from farm.protocol import registry


@pytest.fixture
def redis(redis_server):
    client = redis_py.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/6")
    client.flushdb()
    yield client
    client.flushdb()


def test_a_beat_makes_a_worker_alive_for_a_few_seconds(redis):
    registry.beat(redis, "w1@h", busy=True, pid=1234)
    (record,) = registry.workers(redis).values()
    assert (record.hostname, record.pid, record.busy, record.bad) == ("w1@h", 1234, True, "")
    assert 0 < redis.ttl(registry.key_for("w1@h")) <= registry.TTL
    registry.beat(redis, "w1@h", busy=False)
    assert not registry.workers(redis)["w1@h"].busy


def test_bad_is_a_reason_until_cleared_and_forget_removes_a_worker(redis):
    registry.beat(redis, "w1@h", busy=False)
    registry.beat(redis, "w2@h", busy=False)
    registry.mark_bad(redis, "w2@h", "3 buckets in a row failed")
    workers = registry.workers(redis)
    assert workers["w2@h"].bad == "3 buckets in a row failed" and workers["w1@h"].bad == ""
    registry.clear_bad(redis, "w2@h")
    registry.forget(redis, "w1@h")
    assert {name: w.bad for name, w in registry.workers(redis).items()} == {"w2@h": ""}


def test_a_record_not_written_by_a_worker_is_ignored(redis):
    redis.set(registry.key_for("intruder@h"), b"{not json")
    redis.set(registry.key_for("odd@h"), b'{"hostname": "odd@h"}')  # fields missing
    registry.beat(redis, "w1@h", busy=False)
    assert list(registry.workers(redis)) == ["w1@h"]
