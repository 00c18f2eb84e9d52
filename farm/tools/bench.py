"""`farm bench`: the kernel's samples per second, and the farm's efficiency.

Efficiency is the time of one direct in-process render of a frame over the wall time of
the same frame through the farm (embedded Redis, real workers, buckets and all), both
measured in this run, so a noisy machine affects both alike. For the same reason the
kernel and Mitsuba render in alternation, and every figure is a median.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from farm import defaults
from farm.tools import timed
from farm.tools.bench_scenes import default_scene, load_scaled, mesh_document, resolve_scene, write_bumpy_sphere


HELP = "measure the kernel and the farm's efficiency"  # its line in `farm --help`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scene", default=default_scene(),
                        help="scene file (default: the bundled Cornell box), or mesh:N: a generated mesh of N "
                             "triangles in the Cornell box (an OBJ, written once under FARM_CACHE_DIR)")
    parser.add_argument("--spp", type=int, default=64, help="samples per pixel (default 64)")
    parser.add_argument("--width", type=int, help="override the film width (height keeps the aspect)")
    parser.add_argument("--bucket-size", type=int,
                        help=f"bucket side in pixels (default: the farm's own, sized by the workers' speeds, measured "
                             f"beside {defaults.BUCKET_SIZE} px; 8 with --overhead)")
    parser.add_argument("--workers", type=int,
                        help="local workers for the farm run (default 1: the same device as the direct run; "
                             "64 with --overhead)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each kind; the median is reported")
    parser.add_argument("--skip-farm", action="store_true", help="measure the kernel only")
    parser.add_argument("--mitsuba", action="store_true",
                        help="also render the scene with Mitsuba 3 (scalar_rgb, llvm_ad_rgb where it runs, and "
                             "cuda_ad_rgb where the kernel runs on a GPU), "
                             "alternating with the kernel, and report the ratios")
    parser.add_argument("--avx2", action="store_true",
                        help="build the kernel's code (and with --mitsuba, Mitsuba's LLVM variant's) for AVX2, "
                             "8 lanes, on a processor with AVX-512: an AVX2 machine's figures, estimated")
    parser.add_argument("--cycles", action="store_true",
                        help="with --quality: also Blender's Cycles on the scene (diffuse and emissive triangles) "
                             "at the --uniform counts and the --cycles-thresholds, denoised by its OIDN, in a "
                             "process of FARM_CYCLES_PYTHON (a Python 3.13 with bpy)")
    parser.add_argument("--cycles-thresholds", type=_numbers(float), default=[0.05, 0.02, 0.01], metavar="LIST",
                        help="with --cycles: Cycles' adaptive sampling thresholds to try (default 0.05,0.02,0.01; "
                             "Blender's own default is 0.01)")
    parser.add_argument("--cycles-max-spp", type=int, default=4096,
                        help="with --cycles: the most samples adaptive sampling takes (default 4096, Blender's)")
    parser.add_argument("--samplers", action="store_true",
                        help="instead: error (RMSE against a 16x-sample reference) of the Sobol and the "
                             "independent sampler at --spp")
    parser.add_argument("--stragglers", type=float, metavar="SLOWDOWN",
                        help="instead: render on --workers workers (at least 3), one of them this many times "
                             "slower, without and with copies of straggling buckets and with the tail splitting "
                             "itself, against a farm of none slow")
    parser.add_argument("--assets", type=int, metavar="MIB",
                        help="instead: time moving a file of this many MiB through Redis: upload in chunks, a "
                             "worker's first fetch (verified, into its cache), and a second job's cache hit")
    parser.add_argument("--overhead", action="store_true",
                        help="instead: the farm's own cost per bucket (client, Redis and Celery), on --workers "
                             "workers whose render is free (a null renderer used only here), at --width "
                             "(default 1024) in --bucket-size buckets: buckets/s sent, tiles/s collected, "
                             "CPU per bucket of each process, latency from send to tile")
    parser.add_argument("--simulate", action="store_true", help="instead: the scale model (farm/tools/simulate.py), "
                        "fed with this machine's measured costs, checked against real farms of 1 and 2 workers: "
                        "a 3840x2160 frame at 1024 spp on 2-1024 workers of this CPU and of GPUs")
    parser.add_argument("--gpu-rates", type=_numbers(_positive), default=[0.5e9, 1e9], metavar="LIST",
                        help="with --simulate: GPU samples/s to model (default 0.5e9,1e9)")
    parser.add_argument("--bucket-seconds", type=_positive, default=1.0, help="with --simulate: a self-sized "
                        "bucket's seconds on the median worker (default 1)")
    parser.add_argument("--plot", metavar="PNG", help="with --simulate: also draw the efficiencies into this PNG")
    parser.add_argument("--null-seconds", type=float, default=0.0,
                        help="with --overhead: seconds each null bucket pretends to render (default 0)")
    parser.add_argument("--mesh", type=int, metavar="TRIANGLES",
                        help="instead: time loading, BVH building, uploading and rendering a generated mesh "
                             "of about this many triangles")
    parser.add_argument("--shot", type=int, metavar="FRAMES",
                        help="instead: a shot of this many frames (of --scene, default the animated Cornell box, "
                             "at --fps) on --workers (default 2) local workers against its frames rendered one by "
                             "one in this process: the shot's efficiency")
    parser.add_argument("--instances", action="store_true",
                        help="instead: instancing's figures: preparing a later frame of a shot of a static --mesh "
                             "(default 1,000,000 triangles) and a moving sphere against its first, the two-level "
                             "walk's speed, and the memory of the mesh placed 10,000 times against the mesh alone")
    parser.add_argument("--fps", type=float, default=24.0, help="with --shot: frames per second (default 24)")
    parser.add_argument("--quality", action="store_true",
                        help="instead: the time to an image of a given error, at uniform spp, under noise targets, "
                             "and under noise targets with denoising (and Mitsuba's LLVM variant at uniform spp "
                             "with --mitsuba), against a converged reference rendered once and cached")
    parser.add_argument("--target", type=float, default=0.0021, help="with --quality: the RMSE to reach (default 0.0021)")
    parser.add_argument("--reference-spp", type=int, default=8192,
                        help="with --quality: samples per pixel of the reference (default 8192)")
    parser.add_argument("--uniform", type=_numbers(int), default=[64, 128, 256, 512, 1024], metavar="LIST",
                        help="with --quality: uniform samples per pixel to try (default 64,128,256,512,1024)")
    parser.add_argument("--noise-targets", type=_numbers(float), default=[0.05, 0.03, 0.02], metavar="LIST",
                        help="with --quality: noise targets to try (default 0.05,0.03,0.02)")
    parser.add_argument("--min-spp", type=int, default=defaults.NOISE_MIN_SPP,
                        help=f"with --quality: a noise target's first samples (default {defaults.NOISE_MIN_SPP})")
    parser.add_argument("--max-spp", type=int, default=8192,
                        help="with --quality: a noise target's most samples per pixel (default 8192)")
    parser.add_argument("--on-farm", action="store_true",
                        help="with --mesh: submit it as a .glb (else --scene, e.g. a USD stage) to --workers "
                             "(default 2) warm local workers: the client's time and peak memory, the workers' time "
                             "to the first tile and the render processes' peak memory, per round (--repeat)")


def _numbers(kind):
    def parse(text: str):
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:  # argparse's own ArgumentTypeError (a number out of range) goes on as it is
            raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    return parse


def _positive(text: str) -> float:
    """A number above 0 (a rate, a time), or argparse's one line naming the argument."""
    if not 0 < (value := float(text)) < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def run(args) -> int:
    from farm.protocol.assets import FolderAssets
    from farm.scene.pack import pack
    from farm.worker.device import current, describe
    from farm.worker.render import Renderer

    args.scene = resolve_scene(args.scene)
    if args.avx2:
        from farm.worker import pocl

        if not args.skip_farm:  # the farm's workers would build the processor's own code
            raise SystemExit("farm bench: --avx2 builds this process's kernel only: add --skip-farm")
        pocl.without_avx512()
    if args.overhead:
        from farm.tools import bench_overhead

        args.width = args.width or 1024
        return bench_overhead.run(args, *load_scaled(args))
    if args.simulate:
        from farm.tools import bench_simulate

        return bench_simulate.run(args, *load_scaled(args))
    if args.shot:
        from farm.tools import bench_shot

        if args.scene == default_scene():
            args.scene = str(Path(args.scene).with_name(bench_shot.ANIMATED_SCENE))
        return bench_shot.run(args)
    if args.instances:
        from farm.tools import bench_instances

        return bench_instances.run(args)
    if args.quality:
        from farm.tools import bench_quality

        return bench_quality.run(args, load_scaled(args)[0])
    if args.on_farm:
        from farm.tools import bench_startup

        return bench_startup.run(args)
    args.workers = args.workers or 1
    if args.mesh:
        return _bench_mesh(args)
    if args.assets:
        return _bench_assets(args)
    if args.stragglers:
        return _bench_stragglers(args)
    if args.samplers:
        return _bench_samplers(args)
    scene, document = load_scaled(args)
    pixels = scene.film.width * scene.film.height
    samples = pixels * scene.film.spp
    device = current()
    assets = FolderAssets(Path(args.scene).parent, scene.assets)
    renderer = Renderer(device, pack(scene, assets))
    renderer.render(0, 0, min(8, scene.film.width), min(8, scene.film.height))  # warm up
    print(f"device: {describe(device)}")
    print(f"scene: {args.scene} {scene.film.width}x{scene.film.height}, {scene.film.spp} spp, max depth {scene.max_depth}")
    frames = {"kernel": (_nothing, renderer.render_frame)}
    cannot_run = {}
    if args.mitsuba:
        from farm.tools.bench_mitsuba import how_to_get, mitsuba_frames

        variant_frames, cannot_run = mitsuba_frames(args, scene, gpu=device.kind == "GPU")
        frames.update(variant_frames)
    seconds = {name: statistics.median(times) for name, times in _rounds(frames, args.repeat).items()}
    direct = seconds.pop("kernel")
    print(f"kernel: {direct:.3f}s per frame, {samples / direct / 1e6:.3f} M samples/s "
          f"({pixels * 1.0 / direct / 1e3:.1f} k pixels/s), median of {args.repeat} runs")
    for variant, frame in seconds.items():
        print(f"mitsuba {variant}: {frame:.3f}s per frame, {samples / frame / 1e6:.3f} M samples/s; "
              f"farm kernel / mitsuba = {frame / direct:.2f} (medians of {args.repeat} runs each, alternating)")
    for variant, why in cannot_run.items():
        print(f"mitsuba {variant}: cannot run here: {why}\n  {how_to_get(variant)}")
    if args.skip_farm:
        return 0
    from farm.tools import bench_farm

    bench_farm.run(args, scene, document, assets, renderer)
    return 0



def _nothing() -> None:
    pass


def _rounds(frames: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per frame of each renderer, timed in rounds of one frame each (kernel,
    Mitsuba, kernel, Mitsuba, ...) so that a noisy machine slows them alike. `frames` maps
    a name to (select, render); select runs untimed first (Mitsuba's set_variant)."""
    seconds: dict[str, list[float]] = {name: [] for name in frames}
    for _ in range(rounds):
        for name, (select, render) in frames.items():
            select()
            seconds[name].append(timed(render))
    return seconds


def _bench_mesh(args) -> int:
    """A generated mesh (a bumpy sphere, smooth normals) under the Cornell box's light:
    seconds to write, load, build the BVH, upload, and render one frame."""
    import json
    import tempfile

    from farm.protocol.assets import FolderAssets
    from farm.scene.load import load_scene
    from farm.scene.pack import pack
    from farm.worker.device import current
    from farm.worker.render import Renderer

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        triangles = write_bumpy_sphere(Path(folder) / "mesh.obj", args.mesh)
        written = time.perf_counter() - started
        document = mesh_document("mesh.obj")
        document["film"] = {"width": args.width or 256, "height": args.width or 256, "spp": args.spp}
        (Path(folder) / "scene.json").write_text(json.dumps(document))
        started = time.perf_counter()
        scene, _ = load_scene(Path(folder) / "scene.json")
        loaded = time.perf_counter() - started
        packed = pack(scene, FolderAssets(folder, scene.assets))
        device = current()
        started = time.perf_counter()
        renderer = Renderer(device, packed)
        renderer.render(0, 0, 8, 8)
        uploaded = time.perf_counter() - started
        frame = statistics.median(timed(renderer.render_frame) for _ in range(args.repeat))
    samples = scene.film.width * scene.film.height * scene.film.spp
    timings = packed.timings
    print(f"device: {device}")
    print(f"mesh: {triangles:,} triangles ({len(packed.triangles):,} in the scene), {len(packed.nodes):,} BVH nodes")
    print(f"write OBJ {written:.2f}s | load_scene {loaded:.2f}s | load mesh {timings['load']:.2f}s | "
          f"build BVH {timings['bvh']:.2f}s | pack total {timings['pack']:.2f}s | upload {uploaded:.2f}s | "
          f"render {scene.film.width}x{scene.film.height} at {scene.film.spp} spp {frame:.2f}s "
          f"({samples / frame / 1e6:.3f} M samples/s)")
    return 0


def _bench_samplers(args) -> int:
    """Noise at equal samples per pixel: each sampler's RMSE against one reference made with
    16x the samples (by the independent sampler and another seed, so it favours neither)."""
    import numpy as np

    from farm.protocol.assets import FolderAssets
    from farm.scene import parse_scene
    from farm.scene.pack import pack
    from farm.worker.device import current
    from farm.worker.render import Renderer

    scene, document = load_scaled(args)
    assets = FolderAssets(Path(args.scene).parent, scene.assets)
    device = current()

    def render(**changes):
        return Renderer(device, pack(parse_scene(dict(document, **changes)), assets)).render_frame().astype(np.float64)

    film = dict(document["film"])
    reference = render(sampler="independent", seed=12345, film=dict(film, spp=film["spp"] * 16))
    errors = {}
    for sampler in ("independent", "sobol"):
        errors[sampler] = float(np.sqrt(((render(sampler=sampler) - reference) ** 2).mean()))
        print(f"{sampler}: RMSE {errors[sampler]:.5f} at {film['spp']} spp")
    print(f"sobol / independent RMSE: {errors['sobol'] / errors['independent']:.3f} "
          f"(the independent sampler would need {(errors['independent'] / errors['sobol']) ** 2:.2f}x the samples)")
    return 0


def _bench_stragglers(args) -> int:
    """Wall time of one frame on a farm with one slow worker: without copies of straggling
    buckets, with them (FARM_SPECULATE), and with the tail splitting itself (a running
    bucket's spare parts for the idle workers, JobMeta.spares; copies beside it), in rounds
    of one frame each, alternating; against the same frame on as many workers none of them
    slow (undisturbed: `farm bench --workers N` in a process of its own, run first, since
    a Celery app in one process serves one broker)."""
    import statistics

    from farm.app import app
    from farm.client.local import LocalFarm
    from farm.client.start import start_job
    from farm.protocol.assets import FolderAssets
    from farm.protocol.broker import connect
    from farm.tools.bench_simulate import farm_seconds

    args.bucket_size = args.bucket_size or defaults.BUCKET_SIZE
    scene, document = load_scaled(args)
    assets = FolderAssets(Path(args.scene).parent, scene.assets)
    workers = max(3, args.workers)
    undisturbed = farm_seconds(args, scene, workers, args.bucket_size)
    speculate = defaults.SPECULATE or 1.5
    spares = min(workers - 1, defaults.MAX_SPLIT, scene.film.spp)
    modes = {"without copies": (0.0, 0), "with copies": (speculate, 0), "split": (speculate, spares)}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    said: dict[str, list[int]] = {"with copies": [], "split": []}
    slow_env = {"FARM_FAULTS": f"slow={args.stragglers:g}"}
    with LocalFarm(workers, worker_envs=[slow_env], name="bench") as local:
        app.conf.broker_url = local.broker_url
        local.wait_ready(app)
        redis_client = connect(local.broker_url)
        for _ in range(args.repeat):
            for mode, (factor, parts) in modes.items():
                run = start_job(redis_client, app, scene, document, args.bucket_size, "spiral", assets,
                                split=(0, 0, parts))
                run.speculate = factor
                run.collect()
                times[mode].append(run.wall_seconds)
                if mode in said:
                    said[mode].append(len(run.copies) + len(run.splits))
    print(f"scene: {args.scene} {scene.film.width}x{scene.film.height}, {scene.film.spp} spp, "
          f"{args.bucket_size}px buckets, {workers} workers, bench1 {args.stragglers:g}x slower")
    print(f"undisturbed (no worker slow): median {undisturbed:.2f}s")
    for mode, values in times.items():
        print(f"{mode}: median {statistics.median(values):.2f}s of {', '.join(f'{v:.2f}' for v in values)} "
              f"({statistics.median(values) / undisturbed:.2f}x undisturbed)")
    print(f"copies of slow buckets per frame: {', '.join(map(str, said['with copies']))} "
          f"(FARM_SPECULATE={speculate:g}); buckets split or copied per frame: {', '.join(map(str, said['split']))} "
          f"({spares} parts each)")
    return 0


def _bench_assets(args) -> int:
    """A random file through a private Redis: upload, first fetch into an empty cache,
    then the fetch of a second job, which the cache answers."""
    import os
    import shutil
    import tempfile

    import redis as redis_py

    from farm.client.local import RedisServer
    from farm.protocol.assets import FolderAssets, RedisAssets, digest_of
    from farm.worker.cache import AssetCache

    folder = Path(tempfile.mkdtemp(prefix="farm-bench-assets-"))
    try:
        data = os.urandom(args.assets << 20)
        (folder / "scene").mkdir()
        (folder / "scene" / "big.bin").write_bytes(data)
        digests = {"big.bin": digest_of(data)}
        server = RedisServer(folder).start()
        try:
            client = redis_py.Redis.from_url(server.url)
            source = FolderAssets(folder / "scene", digests)
            upload = timed(lambda: RedisAssets.upload(client, digests, source, ttl=600))
            again = timed(lambda: RedisAssets.upload(client, digests, source, ttl=600))
            cache = AssetCache(folder / "cache")
            first = timed(lambda: RedisAssets(client, digests, cache).read("big.bin"))
            second = timed(lambda: RedisAssets(client, digests, cache).read("big.bin"))
            direct = timed(lambda: RedisAssets(client, digests).read("big.bin"))
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    size = args.assets
    print(f"file: {size} MiB in {-(-len(data) // defaults.ASSET_CHUNK)} chunks of {defaults.ASSET_CHUNK >> 10} KiB")
    print(f"upload: {upload:.3f}s ({size / upload:.0f} MiB/s); again (already in Redis): {again * 1e3:.1f} ms")
    print(f"worker, first job: {first:.3f}s ({size / first:.0f} MiB/s: fetch, verify, cache)")
    print(f"worker, without a cache: {direct:.3f}s ({size / direct:.0f} MiB/s: fetch, verify)")
    print(f"worker, second job: {second:.3f}s from its cache ({first / second:.1f}x faster), nothing fetched")
    return 0
