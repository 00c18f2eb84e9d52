"""The rounds of a render and the split of its tail: which samples each round of
`submit --progressive` or `--noise` takes, and how `--split-tail` cuts the last buckets.
Pure but for the live workers the split counts."""

from __future__ import annotations

from farm import defaults
from farm.buckets import count, tail_split
from farm.protocol import registry
from farm.protocol.plans import Plan


def progressive_rounds(spp: int) -> list[tuple[int, int]]:
    """The samples of each round of `submit --progressive`: 1, 2, 4, ... per pixel in all,
    the last round ending at spp."""
    ends, total = [], 1
    while total < spp:
        ends.append(total)
        total *= 2
    ends.append(spp)
    return list(zip([0] + ends[:-1], ends))


def rounds(scene, film, noise: float | None, min_spp: int, max_spp: int | None, done: int = 0, last=None):
    """(number, plan, what it renders) of each round of a progressive render (`noise`
    None) or of a noise target; `film` is the rounds' film, which a noise target's plans read.
    `done` rounds already in `film`, the last of plan `last` (a frame picked up): the rest."""
    from farm.client import adaptive

    width, height, spp = scene.film.width, scene.film.height, scene.film.spp
    if noise is None:
        planned = progressive_rounds(spp)
        for number, (first, end) in enumerate(planned, 1):
            if number > done:
                yield f"{number}/{len(planned)}", Plan.uniform(width, height, first, end), \
                    f"samples {first} to {end} of {spp}"
        return
    max_spp = adaptive.max_spp_for(noise, min_spp, max_spp)
    for number, plan in enumerate(adaptive.plans(width, height, noise, min_spp, max_spp, film, last), done + 1):
        busy = plan.ranges[..., 1] > plan.ranges[..., 0]
        taken = plan.ranges[..., 1][busy]
        yield str(number), plan, (f"{int(busy.sum())} of {busy.size} cells to {int(taken.min())}-{int(taken.max())} "
                                  f"samples per pixel (target {noise:g}, at most {max_spp})")


def unmet_target(film, plan, options, say) -> None:
    """After the last round of a noise target (of `plan`) where the rounds ended by
    themselves: one line through `say` naming the cells the samples cap stopped above the
    target, if any."""
    from farm.client import adaptive

    if options.noise is None or plan is None:
        return
    above, cells = adaptive.unmet(plan, film.sums, film.counts, options.noise)
    if above:
        given = "--max-spp" if options.max_spp else "the default --max-spp for this target"
        say(f"noise target {options.noise:g} not reached in {above} of {cells} cells ({above / cells:.1%}): they "
            f"stopped at {adaptive.max_spp_for(options.noise, options.min_spp, options.max_spp)} samples per pixel "
            f"({given}); a higher --max-spp gives them more")


def split_tail(redis, scene, bucket_size: int) -> tuple[int, int, int]:
    """--split-tail's (tail buckets, parts, spare parts) on the live workers: its last
    buckets cut in parts from the start (farm.buckets.tail_split), no finer than pays where
    the workers' speeds tell a bucket's time; and each bucket's spare parts, for the workers
    idle beside a bucket still running at the end (one fewer than the workers)."""
    from farm.client.sizing import bucket_seconds

    workers = registry.healthy(redis)
    spp = scene.film.spp
    tail = tail_split(workers, count(scene.film.width, scene.film.height, bucket_size), spp, defaults.MAX_SPLIT,
                      bucket_seconds(redis, scene.digest, bucket_size, spp))
    spares = min(workers - 1, defaults.MAX_SPLIT, spp)
    return (*tail, spares if spares >= 2 else 0)
