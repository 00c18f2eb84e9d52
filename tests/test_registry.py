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


def test_a_worker_s_speed_is_said_when_it_changes_and_read_back_where_it_is_plausible(redis, monkeypatch):
    from farm.worker import speed as speed_module
    from farm.worker.speed import SpeedMeter

    clock = [100.0]
    monkeypatch.setattr(speed_module.time, "monotonic", lambda: clock[0])
    meter = SpeedMeter()
    assert meter.add("scene-a", 500, 1.0) == registry.Speed("scene-a", 500.0)  # said alone, then left out
    assert meter.add("scene-a", 1000, 1.0) == registry.Speed("scene-a", 1000.0)  # 100% off the first
    assert meter.add("scene-a", 1100, 1.0) is None  # 1050/s: within SPEED_CHANGE of the 1000 said
    clock[0] += registry.SPEED_REFRESH
    assert meter.add("scene-a", 1000, 1.0) == registry.Speed("scene-a", 1033.3333333333333)  # said again, in time
    assert meter.add("scene-a", 5000, 1.0) == registry.Speed("scene-a", 2025.0)  # 8100 in 4 s: 96% off
    assert meter.add("scene-b", 10, 1.0) == registry.Speed("scene-b", 10.0)  # a new scene starts over
    assert meter.add("scene-b", 0, 0.0) is None
    registry.note_speed(redis, "w1@h", registry.Speed("scene-a", 2.5e6))
    for name, raw in (("nan@h", '{"scene": "a", "samples_per_second": NaN}'),
                      ("zero@h", '{"scene": "a", "samples_per_second": 0}'),
                      ("tiny@h", '{"scene": "a", "samples_per_second": 5e-324}'),
                      ("huge@h", '{"scene": "a", "samples_per_second": 1' + '0' * 400 + '}'),
                      ("text@h", '{"scene": "a", "samples_per_second": "fast"}'),
                      ("bool@h", '{"scene": "a", "samples_per_second": true}'), ("list@h", '[1, 2]'),
                      ("junk@h", "{not json"), ("scene@h", '{"scene": 7, "samples_per_second": 1}')):
        redis.set(registry.key_for(name, "speed"), raw)
    registry.beat(redis, "w1@h", busy=False)
    names = ["w1@h", "nan@h", "zero@h", "tiny@h", "huge@h", "text@h", "bool@h", "list@h", "junk@h", "scene@h", "none@h"]
    assert registry.speeds(redis, names) == {"w1@h": registry.Speed("scene-a", 2.5e6)}
    assert list(registry.workers(redis)) == ["w1@h"]  # a speed is no worker


def test_buckets_are_sized_from_the_speeds_of_the_healthy_live_workers(redis):
    from farm import defaults
    from farm.client.sizing import self_sized

    assert self_sized(redis, "scene-a", 3840, 2160, 64, True) is None  # nobody has measured: BUCKET_SIZE stays
    for name, speed in (("cpu1@h", registry.Speed("scene-a", 1.5e6)), ("cpu2@h", registry.Speed("scene-a", 1.6e6)),
                        ("gpu@h", registry.Speed("scene-b", 5e8)), ("gone@h", registry.Speed("scene-a", 9e9))):
        registry.note_speed(redis, name, speed)
    for name in ("cpu1@h", "cpu2@h", "gpu@h"):
        registry.beat(redis, name, busy=False)
    side, said = self_sized(redis, "scene-a", 3840, 2160, 64, True, seconds=1.0)  # the median: sqrt(1.6e6 / 64)
    assert side == 160 and "on the median of 3 worker(s) (1.6 M samples/s on their last scenes, 2 of them this one" in said
    assert self_sized(redis, "scene-b", 3840, 2160, 1024, True, seconds=1.0)[0] == 40
    registry.mark_bad(redis, "cpu1@h", "failing")  # cpu2 and the GPU: sqrt(2.508e8 / 1024) = 495
    assert self_sized(redis, "scene-c", 3840, 2160, 1024, True, seconds=1.0)[0] == 496
    assert self_sized(redis, "scene-c", 3840, 2160, 1, True, seconds=100.0)[0] == defaults.MAX_BUCKET_SIZE
    assert self_sized(redis, "scene-c", 100, 60, 1, True, seconds=100.0)[0] == 104  # no larger than the frame
    # rounds, or a shot of few frames, keep two buckets a worker: sqrt(1920 * 1080 / 4) = 720
    assert self_sized(redis, "scene-c", 1920, 1080, 16, False, seconds=100.0)[0] == 720
    # no smaller than keeps the frame within FARM_MAX_BUCKETS: 7680x4320 in 8 px would be 518,400
    assert self_sized(redis, "scene-c", 7680, 4320, 1 << 20, True, seconds=0.01)[0] == 16
