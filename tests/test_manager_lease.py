"""The manager's lease (farm.manager.lease) on a real Redis: one holder at a time, tokens that
only grow, a fenced write refused once another holds the lease, and a holder whose own clock
says its lease may have lapsed refusing to act before Redis has even expired it."""

from __future__ import annotations

import threading
import time

import pytest

from farm.manager.lease import EPOCH, LEADER, Lease, LeaseLost, leader


@pytest.fixture
def redis(farm):
    farm.redis.delete(LEADER, EPOCH, "farm:test:fenced")
    yield farm.redis
    farm.redis.delete(LEADER, EPOCH, "farm:test:fenced")


def test_one_leads_the_other_waits_and_the_token_grows(redis):
    stop = threading.Event()
    # 6 s leases renewed every 2 s: on a loaded machine a renewal may come late, not 6 s late
    first, second = Lease(redis, 6, "first"), Lease(redis, 6, "second")
    token = first.acquire(stop)
    assert leader(redis) == (token, "first")
    waiting = threading.Thread(target=second.acquire, args=(stop,), kwargs={"poll": 0.1})
    waiting.start()
    time.sleep(7)  # past the lease: renewed by first's thread, second still waits
    assert waiting.is_alive() and leader(redis) == (token, "first")
    first.fenced_hset("farm:test:fenced", {"by": "first"})
    first.release()
    waiting.join(5)
    assert not waiting.is_alive() and second.token == token + 1 and leader(redis) == (token + 1, "second")
    with pytest.raises(LeaseLost):
        first.check()
    with pytest.raises(LeaseLost):
        first.fenced_hset("farm:test:fenced", {"by": "first, too late"})
    assert redis.hget("farm:test:fenced", "by") == b"first"
    second.release()


def test_a_holder_stopped_past_its_lease_finds_it_lost_by_its_own_clock(redis, monkeypatch):
    stop = threading.Event()
    lease = Lease(redis, 3, "paused")
    lease.acquire(stop)
    lease._stop.set()  # its renewals stop, as a SIGSTOPped process's do
    lease.check()
    from farm.manager.lease import _clock

    later = _clock() + 3.0
    monkeypatch.setattr("farm.manager.lease._clock", lambda: later)
    with pytest.raises(LeaseLost, match="lost the lead"):
        lease.check()
    assert redis.exists(LEADER)  # Redis has not expired it yet: the holder's own count ends first
    with pytest.raises(LeaseLost):
        lease.fenced_hset("farm:test:fenced", {"by": "paused"})
    assert not redis.exists("farm:test:fenced")
