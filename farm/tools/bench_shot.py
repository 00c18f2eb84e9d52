"""`farm bench --shot FRAMES`: a shot on local workers against its frames rendered one by
one in this process, alternating (all frames direct, then the shot, repeated), so a noisy
machine slows both alike.

Efficiency is the direct renders' seconds (each frame's kernel time alone, the scene at
its moment packed and uploaded before the clock starts) over the shot's wall time: what the
farm loses to splitting, queueing, moving tiles, preparing each frame's scene on the
workers and writing the images. The direct time with each frame's preparation is printed
beside it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

ANIMATED_SCENE = "animated-cornell-box.json"


def run(args) -> int:
    from farm.app import app
    from farm.client.local import LocalFarm
    from farm.client.render import RenderOptions
    from farm import defaults
    from farm.client.shot import ShotFrame, ShotRender, shot_bucket_size
    from farm.protocol.assets import FolderAssets
    from farm.protocol.broker import connect
    from farm.scene import parse_scene
    from farm.scene.pack import pack
    from farm.tools.bench_scenes import load_scaled
    from farm.worker.device import current
    from farm.worker.render import Renderer

    scene, document = load_scaled(args)
    assets = FolderAssets(Path(args.scene).parent, scene.assets)
    moments = [number / args.fps for number in range(args.shot)]
    scenes = [parse_scene(document, args.scene, moment) if scene.animation else scene for moment in moments]
    device = current()
    print(f"device: {device}")
    print(f"scene: {args.scene} {scene.film.width}x{scene.film.height}, {scene.film.spp} spp, {args.shot} frames "
          f"at {args.fps:g} fps{' (animated)' if scene.animation else ' (a still scene)'}")

    def direct() -> tuple[float, float]:
        """(kernel seconds, with preparation) of every frame rendered alone, one after another."""
        kernel = prepared = 0.0
        for frame_scene in scenes:
            began = time.perf_counter()
            renderer = Renderer(device, pack(frame_scene, assets))
            ready = time.perf_counter()
            renderer.render_frame()
            kernel += time.perf_counter() - ready
            prepared += time.perf_counter() - began
        return kernel, prepared

    direct()  # warm up: the kernel built, the caches filled
    workers = args.workers or 2
    rounds: list[tuple[float, float, float]] = []
    with LocalFarm(workers, name="shot") as local, tempfile.TemporaryDirectory() as folder:
        app.conf.broker_url = local.broker_url
        local.wait_ready(app)
        redis_client = connect(local.broker_url)

        def frames_of(tag: str) -> list:
            return [ShotFrame(number, frame_scene, Path(folder) / f"{tag}.{number:04d}.exr")
                    for number, frame_scene in enumerate(scenes)]

        # as submit chooses it: a frame a bucket for many small frames, unless --bucket-size says
        args.bucket_size = args.bucket_size or shot_bucket_size(redis_client, frames_of(""), defaults.BUCKET_SIZE,
                                                                workers)
        options = RenderOptions(bucket_size=args.bucket_size)

        def shot(tag: str) -> float:
            frames = frames_of(tag)
            began = time.perf_counter()
            ShotRender(redis_client, app, document, frames, assets, options, check_alive=local.check_alive).render()
            return time.perf_counter() - began

        shot("warm")  # the workers' kernels built, each frame's scene packed once on this machine
        for index in range(args.repeat):
            kernel, prepared = direct()
            rounds.append((kernel, prepared, shot(f"round{index}")))
    kernel = statistics.median(r[0] for r in rounds)
    prepared = statistics.median(r[1] for r in rounds)
    wall = statistics.median(r[2] for r in rounds)
    efficiency = statistics.median(r[0] / r[2] for r in rounds)
    print(f"direct: {kernel:.3f}s of kernel for {args.shot} frames ({kernel / args.shot * 1e3:.1f} ms a frame), "
          f"{prepared:.3f}s with each frame's scene packed and uploaded (medians of {args.repeat})")
    print(f"shot: {workers} worker(s), {args.bucket_size}px buckets: {wall:.3f}s wall "
          f"({wall / args.shot * 1e3:.1f} ms a frame), median of {args.repeat}")
    print(f"shot efficiency: {efficiency * 100:.1f}% (direct kernel / shot wall per round, median of "
          f"{args.repeat} rounds, alternating; {prepared / wall * 100:.1f}% against direct with preparation)")
    return 0
