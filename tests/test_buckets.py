import numpy as np
import pytest

from farm.buckets import ORDERS, frame_seconds, order, split


@pytest.mark.parametrize("width,height,size", [(257, 131, 32), (1, 1, 64), (64, 64, 64), (65, 7, 8), (300, 200, 17)])
def test_buckets_cover_every_pixel_exactly_once(width, height, size):
    coverage = np.zeros((height, width), int)
    buckets = split(width, height, size)
    for b in buckets:
        assert 0 < b.width <= size and 0 < b.height <= size
        coverage[b.y : b.y + b.height, b.x : b.x + b.width] += 1
    assert (coverage == 1).all()
    assert [b.index for b in buckets] == list(range(len(buckets)))


def test_odd_frame_has_short_edge_buckets():
    buckets = split(257, 131, 32)
    assert len(buckets) == 9 * 5
    assert buckets[8].width == 1 and buckets[-1].height == 3


@pytest.mark.parametrize("how", ORDERS)
def test_orders_are_permutations(how):
    buckets = split(257, 131, 32)
    ordered = order(buckets, how)
    assert sorted(b.index for b in ordered) == list(range(len(buckets)))


def test_spiral_starts_at_the_centre_and_grows_outwards():
    buckets = split(5 * 16, 5 * 16, 16)
    ordered = order(buckets, "spiral")
    assert (ordered[0].x, ordered[0].y) == (32, 32)
    rings = [max(abs(b.x // 16 - 2), abs(b.y // 16 - 2)) for b in ordered]
    assert rings == sorted(rings)
    assert rings.count(1) == 8 and rings.count(2) == 16


def test_top_down_is_row_major():
    buckets = split(100, 50, 32)
    assert [b.index for b in order(buckets, "top-down")] == list(range(len(buckets)))


def test_bad_split_and_order_are_errors():
    with pytest.raises(ValueError):
        split(0, 10, 8)
    with pytest.raises(ValueError, match="unknown bucket order"):
        order(split(10, 10, 8), "random")


@pytest.mark.parametrize("width,height,size", [(257, 131, 32), (1, 1, 64), (65, 7, 8)])
def test_one_bucket_by_index_matches_the_full_split(width, height, size):
    from farm.buckets import bucket_at, count

    buckets = split(width, height, size)
    assert count(width, height, size) == len(buckets)
    assert [bucket_at(width, height, size, i) for i in range(len(buckets))] == buckets
    with pytest.raises(IndexError):
        bucket_at(width, height, size, len(buckets))


def test_frame_seconds_deals_the_tasks_to_the_worker_free_first():
    """Four equal buckets on two workers: two waves. Three: the last two (the tail, one a
    worker) in two parts each, so a wave and a half. And the client's and Redis's pace, a
    task at a time, holds back a frame of many tasks."""
    bucket, free = 64 * 64 * 16 / 1e6, 1e-12
    assert frame_seconds(128, 128, 16, 64, [1e6, 1e6], 1, part_cost=free) == pytest.approx(2 * bucket)
    assert frame_seconds(192, 64, 16, 64, [1e6, 1e6], 1, part_cost=free) == pytest.approx(2 * bucket)  # no parts
    assert frame_seconds(192, 64, 16, 64, [1e6, 1e6], 2, part_cost=free) == pytest.approx(1.5 * bucket)
    # two whole buckets and two in two parts: six tasks, the last passed at 6 s
    assert frame_seconds(128, 128, 16, 64, [1e6, 1e6], 2, part_cost=1.0) == pytest.approx(6.0 + bucket / 2)
