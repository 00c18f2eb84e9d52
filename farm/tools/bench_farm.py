"""`farm bench`'s farm efficiency: the frame through an embedded farm (real Redis, real
workers) against one direct render of it in this process, in rounds of one each (direct,
farm, direct, farm, ...), so a noisy machine slows both alike.

Without --bucket-size the farm's own choice is measured beside today's fixed 64 px in the
same rounds: buckets sized by the workers' speeds (farm.client.sizing, the speeds they
measured on the warm-up frame) with the still's tail split, as `submit` does."""

from __future__ import annotations

import statistics
import time

from farm import defaults
from farm.buckets import count
from farm.tools import timed

SPEED_WAIT = 5.0  # seconds the bench waits for the warm-up frame's speeds


def run(args, scene, document, assets, renderer) -> None:
    from farm.app import app
    from farm.client.local import LocalFarm
    from farm.client.rounds import split_tail
    from farm.client.sizing import self_sized
    from farm.client.start import start_job
    from farm.protocol.broker import connect

    with LocalFarm(args.workers) as local:
        app.conf.broker_url = local.broker_url
        local.wait_ready(app)
        redis_client = connect(local.broker_url)
        # one job first: builds nothing new, but uploads the scene like any first job would,
        # and the workers measure their speed on it
        start_job(redis_client, app, scene, document, args.bucket_size or defaults.BUCKET_SIZE, "spiral",
                  assets).collect()
        kinds = {"fixed": (args.bucket_size or defaults.BUCKET_SIZE, (0, 0, 0))}
        if args.bucket_size is None:
            # a worker notes its speed in its tile's round trip, after the tile: the client can
            # see the tile a moment before the speed (a pipeline, not a transaction)
            deadline = time.monotonic() + SPEED_WAIT
            while (found := self_sized(redis_client, scene.digest, scene.film.width, scene.film.height,
                                       scene.film.spp, True, split=True)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if found is None:
                raise SystemExit("farm bench: no worker noted its speed on the warm-up frame")
            side, what = found
            print(f"self-sized: {what}")
            kinds["self-sized"] = (side, split_tail(redis_client, scene, side))
        runs: dict[str, list] = {kind: [] for kind in kinds}
        directs = []
        for _ in range(args.repeat):
            directs.append(timed(renderer.render_frame))  # the farm's workers are idle meanwhile
            for kind, (side, split) in kinds.items():
                job = start_job(redis_client, app, scene, document, side, "spiral", assets, split=split)
                job.collect(check_alive=local.check_alive)
                runs[kind].append(job)
    direct = statistics.median(directs)
    for kind, (side, split) in kinds.items():
        done = runs[kind]
        wall = statistics.median(r.wall_seconds for r in done)
        efficiency = statistics.median(d / r.wall_seconds for d, r in zip(directs, done))
        kernel_seconds = statistics.median(sum(record.seconds for record in r.records.values()) for r in done)
        buckets = count(scene.film.width, scene.film.height, side)
        parts = f" ({split[0]} of them split in {split[1]} parts)" if split[0] else ""
        label = "" if len(kinds) == 1 else f" [{kind}]"
        print(f"farm: {args.workers} worker(s), {buckets} buckets of {side}px{parts}: "
              f"{wall:.3f}s wall (median of {args.repeat} runs), kernel time {kernel_seconds:.3f}s{label}")
        print(f"farm efficiency{label}: {efficiency * 100:.1f}% (direct / farm wall per round, median of "
              f"{args.repeat} rounds, alternating; medians: direct {direct:.3f}s, farm {wall:.3f}s)")
        print(f"per-bucket overhead{label}: {(wall - direct) / buckets * 1e3:.2f} ms ((farm - direct) / buckets)")
