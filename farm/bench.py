"""`farm bench`: the kernel's samples per second, and the farm's efficiency.

Efficiency is the time of one direct in-process render of a frame over the wall time of
the same frame through the farm (embedded Redis, real workers, buckets and all), both
measured in this run, so a noisy machine affects both alike.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from farm import defaults


def default_scene() -> str:
    """The bundled Cornell box of a source checkout (scenes/ is not part of the wheel)."""
    return str(Path(__file__).resolve().parent.parent / "scenes" / "cornell-box.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scene", default=default_scene(), help="scene file (default: the bundled Cornell box)")
    parser.add_argument("--spp", type=int, default=64, help="samples per pixel (default 64)")
    parser.add_argument("--width", type=int, help="override the film width (height keeps the aspect)")
    parser.add_argument("--bucket-size", type=int, default=defaults.BUCKET_SIZE, help="bucket side in pixels")
    parser.add_argument("--workers", type=int, default=1,
                        help="local workers for the farm run (default 1: the same device as the direct run)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each kind; the best is kept")
    parser.add_argument("--skip-farm", action="store_true", help="measure the kernel only")


def run(args) -> int:
    from farm.assets import FolderAssets
    from farm.device import current
    from farm.render import Renderer
    from farm.scene import load_scene
    from farm.scene.pack import pack

    scene, document = _load(args, load_scene)
    pixels = scene.film.width * scene.film.height
    samples = pixels * scene.film.spp
    device = current()
    assets = FolderAssets(Path(args.scene).parent, scene.assets)
    renderer = Renderer(device, pack(scene, assets))
    renderer.render(0, 0, min(8, scene.film.width), min(8, scene.film.height))  # warm up
    direct = min(_timed(renderer.render_frame) for _ in range(args.repeat))
    print(f"device: {device}")
    print(f"scene: {args.scene} {scene.film.width}x{scene.film.height}, {scene.film.spp} spp, max depth {scene.max_depth}")
    print(f"kernel: {direct:.3f}s per frame, {samples / direct / 1e6:.3f} M samples/s "
          f"({pixels * 1.0 / direct / 1e3:.1f} k pixels/s)")
    if args.skip_farm:
        return 0
    del renderer
    _bench_farm(args, scene, document, assets, direct)
    return 0


def _load(args, load_scene):
    scene, document = load_scene(args.scene, spp=args.spp)
    if args.width:
        film = document["film"]
        film["height"] = max(1, round(film["height"] * args.width / film["width"]))
        film["width"] = args.width
        from farm.scene import parse_scene

        scene = parse_scene(document, source=args.scene)
    return scene, document


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _bench_farm(args, scene, document, assets, direct: float) -> None:
    from farm.app import app
    from farm.cli import connect
    from farm.job import start_job
    from farm.local import LocalFarm
    from farm.tasks import render_bucket

    with LocalFarm(args.workers) as local:
        app.conf.broker_url = local.broker_url
        local.wait_ready(app)
        redis_client = connect(local.broker_url)
        # one job first: builds nothing new, but uploads the scene like any first job would
        start_job(redis_client, render_bucket, scene, document, args.bucket_size, "spiral", assets).collect()
        runs = []
        for _ in range(args.repeat):
            run = start_job(redis_client, render_bucket, scene, document, args.bucket_size, "spiral", assets)
            run.collect(check_alive=local.check_alive)
            runs.append(run)
    best = min(runs, key=lambda r: r.wall_seconds)
    wall, buckets = best.wall_seconds, best.total
    kernel_seconds = sum(r.seconds for r in best.records.values())
    print(f"farm: {args.workers} worker(s), {buckets} buckets of {args.bucket_size}px: "
          f"{wall:.3f}s wall (best of {args.repeat}), kernel time {kernel_seconds:.3f}s")
    print(f"farm efficiency: {direct / wall * 100:.1f}% (direct {direct:.3f}s / farm {wall:.3f}s)")
    print(f"per-bucket overhead: {(wall - direct) / buckets * 1e3:.2f} ms "
          f"((farm - direct) / buckets; target < 3 ms)")
