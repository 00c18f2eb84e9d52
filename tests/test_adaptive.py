"""The noise target in one process: its plans, and the error it promises, measured."""

import numpy as np

from farm import defaults
from farm.client import adaptive
from farm.protocol.plans import Plan
from farm.protocol.tiles import SUM_SCALE, mean_of
from tests import frames


def test_a_plan_gives_each_cell_what_its_error_asks_within_the_limits():
    """Cells under the target get nothing more; the others what 1/sqrt(n) asks, a little
    over, at most GROWTH times what they have and never past max_spp."""
    plan = adaptive.first_plan(24, 8, 16)
    assert plan.ranges.shape == (1, 3, 2) and (plan.ranges == [0, 16]).all()
    counts = np.full((8, 24), 16)
    sums = np.zeros((8, 24, 12), np.int64)
    # every sample 1 (no spread) on the left cell; 0 or 2 on alternate samples elsewhere:
    # luminance mean 1, variance of a sample 16/15, of the mean 1/15
    sums[..., :3] = 16 * SUM_SCALE
    sums[:, :8, 10] = 16 * SUM_SCALE
    sums[:, 8:, 10] = 32 * SUM_SCALE
    error = adaptive.cell_error(plan, sums, counts)
    assert error[0, 0] == 0 and np.allclose(error[0, 1:], np.sqrt(1 / 15))
    following = adaptive.next_plan(plan, sums, counts, noise=0.2, max_spp=1000)
    wanted = int(np.ceil(16 * (1 / 15) / 0.04 * 1.05))  # 28
    assert following.ranges.tolist() == [[[16, 16], [16, wanted], [16, wanted]]]
    assert adaptive.next_plan(plan, sums, counts, noise=0.01, max_spp=1000).ranges.tolist() == [
        [[16, 16], [16, 64], [16, 64]]]  # at most 4 times
    assert adaptive.next_plan(plan, sums, counts, noise=0.01, max_spp=20).ranges.tolist() == [
        [[16, 16], [16, 20], [16, 20]]]


def test_without_max_spp_the_target_sets_the_cap_and_a_cap_short_of_it_says_so():
    """--max-spp defaults to (SPREAD / E)^2, not the scene's spp; rounds that ended with
    cells still above the target (stopped by the cap) end in one line with their share.
    (Rounds a time limit cut end before it: FrameRender calls it where its loop ran out.)"""
    from types import SimpleNamespace

    from farm.client.rounds import unmet_target

    assert adaptive.max_spp_for(0.02, 16, None) == 22_500 and adaptive.max_spp_for(0.02, 16, 300) == 300
    assert adaptive.max_spp_for(0.5, 64, None) == 64  # never under min_spp
    assert adaptive.max_spp_for(0.01, 16, None) == defaults.MAX_SPP == 65_536  # nor past what a job may ask
    plan = Plan(8, np.array([[[0, 16], [0, 16], [0, 16]]], np.int32))
    counts = np.full((8, 24), 16)
    sums = np.zeros((8, 24, 12), np.int64)
    sums[..., :3] = 16 * SUM_SCALE
    sums[:, :8, 10] = 16 * SUM_SCALE  # no spread: met
    sums[:, 8:, 10] = 32 * SUM_SCALE  # error sqrt(1/15) = 0.26
    film = SimpleNamespace(sums=sums, counts=counts)
    said = []
    unmet_target(film, plan, SimpleNamespace(noise=0.1, min_spp=4, max_spp=16), said.append)
    unmet_target(film, plan, SimpleNamespace(noise=0.1, min_spp=4, max_spp=None), said.append)
    unmet_target(film, plan, SimpleNamespace(noise=0.5, min_spp=4, max_spp=16), said.append)  # all met: nothing
    unmet_target(film, plan, SimpleNamespace(noise=None, min_spp=4, max_spp=16), said.append)  # no target: nothing
    assert said == [
        "noise target 0.1 not reached in 2 of 3 cells (66.7%): they stopped at 16 samples per pixel (--max-spp); "
        "a higher --max-spp gives them more",
        "noise target 0.1 not reached in 2 of 3 cells (66.7%): they stopped at 900 samples per pixel (the default "
        "--max-spp for this target); a higher --max-spp gives them more"]


def test_the_noise_target_is_met_where_samples_stopped(cornell_document, device):
    """Against a frame of 2048 spp: in the cells the target let stop before max_spp, the
    measured relative error of the luminance (RMS over the cell, as the target reads it) is
    about the target (the reference's own noise adds a little), and a fraction of what the
    first round's 16 samples left there."""
    document = {**cornell_document, "film": {"width": 48, "height": 48, "spp": 2048}}
    renderer = frames.renderer(device, document, aovs=True)
    noise = 0.05
    film, plans = adaptive.render_here(renderer, noise, 16, 512, 16)
    assert len(plans) >= 3
    truth = mean_of(renderer.render(0, 0, 48, 48, plan=Plan.uniform(48, 48, 0, 2048)), 2048)[..., :3]
    first = mean_of(renderer.render(0, 0, 48, 48, plan=Plan.uniform(48, 48, 0, 16)), 16)[..., :3]
    stopped = plans[-1].ranges[..., 1] < 512
    assert stopped.sum() >= 18
    measured, before = _cell_error(film.pixels, truth)[stopped], _cell_error(first, truth)[stopped]
    assert np.median(measured) <= 1.2 * noise and (measured <= 2 * noise).mean() >= 0.9
    assert np.median(measured / before) < 0.5


def _cell_error(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(6, 6): the RMS over each 8-px cell of the relative error of the luminance."""
    weights = np.array([0.2126, 0.7152, 0.0722], np.float32)
    relative = np.abs(image @ weights - truth @ weights) / np.maximum(truth @ weights, 0.01)
    return np.sqrt((relative.reshape(6, 8, 6, 8) ** 2).mean(axis=(1, 3)))


def test_a_noise_target_picked_up_after_a_round_plans_the_same_rounds(cornell_document, device):
    """A frame picked up after its second round (its film's sums and the last plan, as a
    shot's record keeps them) plans the rounds the uninterrupted render planned."""
    from farm.buckets import split
    from farm.client.film import Film

    document = {**cornell_document, "film": {"width": 32, "height": 32, "spp": 64}}
    renderer = frames.renderer(device, document, aovs=True)
    film, whole, kept = Film(32, 32, ("variance",), 64), [], None
    for plan in adaptive.plans(32, 32, 0.05, 8, 256, film):
        film.start_round(plan)
        for bucket in split(32, 32, 16):
            if plan.has_work(bucket):
                film.put(bucket, renderer.render(bucket.x, bucket.y, bucket.width, bucket.height, plan=plan))
        whole.append(plan.to_bytes())
        if len(whole) == 2:
            kept = (plan, film.sums.copy())
    assert len(whole) >= 4
    picked = Film(32, 32, ("variance",), 64)
    picked.start_round(kept[0])
    picked.sums[...] = kept[1]
    assert [p.to_bytes() for p in adaptive.plans(32, 32, 0.05, 8, 256, picked, last=kept[0])][:1] == whole[2:3]
