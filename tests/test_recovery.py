"""The retry policy: what happens to a bucket whose delivery went wrong (pure decisions)."""

from __future__ import annotations

import pytest

from farm.exceptions import AssetError, FarmError
from farm.protocol.deliveries import BucketView
from farm.protocol.recovery import Action, RetryPolicy

POLICY = RetryPolicy(max_failures=3, bad_worker_failures=2, pass_on_limit=2)


def seen(crashes=0, failures=0, last_error=""):
    return BucketView(stored=False, leases=(), crashes=crashes, failures=failures, last_error=last_error, now=0.0)


def never():
    raise AssertionError("not asked")


def test_a_fresh_bucket_is_rendered_without_asking_who_is_idle():
    assert POLICY.on_delivery(seen(), "w1@h", others_idle=never, passes=never).action is Action.RENDER


def test_a_bucket_that_went_wrong_too_often_fails_the_job_naming_both_causes():
    decision = POLICY.on_delivery(seen(crashes=1, failures=2, last_error="boom (on w2@h)"), "w1@h", never, never)
    assert decision.action is Action.GIVE_UP
    assert decision.reason == "3 attempts went wrong (raised 2 times, last: boom (on w2@h); killed its render process 1 time)"
    assert POLICY.on_lost(seen(crashes=3)).reason == "3 attempts went wrong (killed its render process 3 times)"


def test_a_bucket_failed_here_before_goes_to_an_idle_worker_a_bounded_number_of_times():
    failed_here = seen(failures=1, last_error="boom (on w1@h)")
    passes = iter([1, 2, 3])
    assert POLICY.on_delivery(failed_here, "w1@h", lambda: True, lambda: next(passes)).action is Action.PASS_ON
    assert POLICY.on_delivery(failed_here, "w1@h", lambda: True, lambda: next(passes)).action is Action.PASS_ON
    assert POLICY.on_delivery(failed_here, "w1@h", lambda: True, lambda: next(passes)).action is Action.RENDER
    assert POLICY.on_delivery(failed_here, "w1@h", lambda: False, never).action is Action.RENDER, "no one idle"
    assert POLICY.on_delivery(failed_here, "w2@h", never, never).action is Action.RENDER, "failed elsewhere"


@pytest.mark.parametrize("failures, action", [(1, Action.SEND_AGAIN), (2, Action.SEND_AGAIN), (3, Action.GIVE_UP)])
def test_a_failure_sends_the_bucket_again_until_the_limit(failures, action):
    assert POLICY.on_failure(seen(failures=failures, last_error="x"), FarmError("x")).action is action


def test_a_missing_asset_gives_up_at_once_with_its_own_message():
    decision = POLICY.on_failure(seen(failures=1), AssetError("tiles.png: chunk 0 of 1 missing"))
    assert decision.action is Action.GIVE_UP and decision.reason == "tiles.png: chunk 0 of 1 missing"


def test_a_worker_is_bad_after_its_limit_of_failures_in_a_row():
    assert not POLICY.worker_is_bad(1) and POLICY.worker_is_bad(2)
