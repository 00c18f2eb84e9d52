"""A noise target: rounds that give samples only where the image is still noisy.

After each round the client estimates every pixel's relative standard error from the
frame's sums (the kernel sums each sample's luminance and its square), takes each cell's
root mean square of it, and plans the next round: a cell above the target gets the
samples its error says it needs (error falls as 1/sqrt(samples)), at most GROWTH times
what it has and never past max_spp (max_spp_for); a cell at or below the target gets none. Every
decision is a function of the sums, which are exact integers, so the same scene, seed and
settings give the same rounds and the same bits on any farm, whatever its buckets.
"""

from __future__ import annotations

import numpy as np

from farm import defaults
from farm.protocol.plans import Plan
from farm.protocol.tiles import AOV_LUMINANCE_SQUARE, SUM_SCALE, luminance

GROWTH = 4  # most times a cell's samples may grow in one round: early estimates are noisy
# Without --max-spp, a cell stops at the samples that bring a spread this many times its
# mean down to the target: (SPREAD / E)^2. The cells of the bundled scenes spread 0.5-1.0
# times their mean (median), 1.6-3.1 (99th percentile), 3.7 at most (64 spp at 128x128),
# so the default caps only the odd cell of those, and a firefly-ridden one for sure.
SPREAD = 3.0


def max_spp_for(noise: float, min_spp: int, max_spp: int | None) -> int:
    """The most samples a pixel gets under noise target `noise`: `max_spp` where given, else
    (SPREAD / noise)^2 (22,500 for 0.02), within min_spp and the most a job may ask
    (FARM_MAX_SPP: 65,536, which targets under 0.0117 reach)."""
    if max_spp:
        return max_spp
    return int(min(defaults.MAX_SPP, max(min_spp, np.ceil((SPREAD / noise) ** 2))))


def unmet(plan: Plan, sums: np.ndarray, counts: np.ndarray, noise: float) -> tuple[int, int]:
    """(cells above `noise`, cells) after the round of `plan`: where the rounds ended by
    themselves, the cells max_spp stopped short of the target."""
    error = cell_error(plan, sums, counts)
    return int(np.count_nonzero(error > noise)), error.size


def first_plan(width: int, height: int, min_spp: int, cell: int = defaults.NOISE_CELL) -> Plan:
    """Every cell's first min_spp samples."""
    shape = (-(-height // cell), -(-width // cell))
    return Plan.for_frame(width, height, cell, np.zeros(shape, np.int32), np.full(shape, min_spp, np.int32))


def pixel_error(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each pixel's relative standard error of its mean luminance: the standard deviation of
    its samples over sqrt(samples), over the mean (at least NOISE_FLOOR, so black and
    near-black pixels do not ask for samples nobody sees). `sums` has the AOV channels
    (the luminance's square at AOV_LUMINANCE_SQUARE)."""
    n = counts.astype(np.float64)
    mean = luminance(sums[..., :3].astype(np.float64) / SUM_SCALE) / np.maximum(n, 1)
    square = sums[..., AOV_LUMINANCE_SQUARE].astype(np.float64) / SUM_SCALE / np.maximum(n, 1)
    variance = np.maximum(square - mean * mean, 0.0) * n / np.maximum(n - 1, 1)
    return np.sqrt(variance / np.maximum(n, 1)) / np.maximum(mean, defaults.NOISE_FLOOR)


def cell_error(plan: Plan, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(cells_y, cells_x): the root mean square of pixel_error over each cell's pixels."""
    height, width = counts.shape
    rows = np.arange(height) // plan.cell
    columns = np.arange(width) // plan.cell
    cells_y, cells_x = plan.ranges.shape[:2]
    index = (rows[:, None] * cells_x + columns[None, :]).ravel()
    squares = np.bincount(index, weights=(pixel_error(sums, counts) ** 2).ravel(), minlength=cells_x * cells_y)
    pixels = np.bincount(index, minlength=cells_x * cells_y)
    return np.sqrt(squares / pixels).reshape(cells_y, cells_x)


def next_plan(plan: Plan, sums: np.ndarray, counts: np.ndarray, noise: float, max_spp: int) -> Plan:
    """The round after `plan`, whose pixels now have `counts` samples summed in `sums`: the
    cells above `noise` continue to the samples their error asks for."""
    taken = plan.ranges[..., 1].astype(np.int64)
    error = cell_error(plan, sums, counts)
    wanted = np.ceil(taken * (error / noise) ** 2 * 1.05)  # a little over, not to fall just short
    grown = np.minimum(np.minimum(wanted, taken * GROWTH), max_spp).astype(np.int64)
    end = np.where((error > noise) & (taken < max_spp), np.maximum(grown, taken + 1), taken)
    end = np.minimum(end, max_spp)
    return Plan(plan.cell, np.stack([taken, end], axis=-1).astype(np.int32))


def plans(width: int, height: int, noise: float, min_spp: int, max_spp: int, film, last=None):
    """The plans of a noise target's rounds, one after another; `film` (the rounds' Film)
    must hold each round's tiles before the next plan is asked for. With `last` (the plan of
    the last round `film` holds: a frame picked up), the plans after it."""
    plan = first_plan(width, height, min(min_spp, max_spp)) if last is None else \
        next_plan(last, film.sums, film.counts, noise, max_spp)
    while (plan.ranges[..., 1] > plan.ranges[..., 0]).any():
        yield plan
        plan = next_plan(plan, film.sums, film.counts, noise, max_spp)


def render_here(renderer, noise: float, min_spp: int, max_spp: int, bucket_size: int, aovs=("variance",)):
    """A noise target rendered in this process, bucket by bucket with `renderer` (one with
    AOVs): the reference a farm's render of the same target must equal, bit for bit.
    Returns the film and the plans of its rounds."""
    from farm.buckets import split
    from farm.client.film import Film

    scene = renderer.scene
    film, done = Film(scene.width, scene.height, tuple(aovs), scene.spp), []
    for plan in plans(scene.width, scene.height, noise, min_spp, max_spp, film):
        film.start_round(plan)
        for bucket in split(scene.width, scene.height, bucket_size):
            if plan.has_work(bucket):
                film.put(bucket, renderer.render(bucket.x, bucket.y, bucket.width, bucket.height, plan=plan))
        done.append(plan)
    return film, done
