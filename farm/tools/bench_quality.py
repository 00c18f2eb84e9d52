"""`farm bench --quality`: the time to a clean image, not to a number of samples.

Renders the scene in this process, on this machine's device, at uniform samples per pixel,
under noise targets (`submit --noise`), and under noise targets with the frame denoised
(`--denoise`, and `--denoise-prefilter`: the guides denoised first), and measures each
image's error (RMSE of values clamped to 1, as a display shows them) against a reference
rendered once and cached: Mitsuba 3's where it runs, else the farm's own with other seeds,
labelled (farm.tools.bench_reference), with the floor under the errors. With --mitsuba,
Mitsuba's LLVM variant renders the same scene at the same uniform counts in the same run,
alternating with the kernel, so a noisy machine slows both alike. The table says for each
method the time and samples it spent and the error it reached; the summary, the first of
each method to reach `--target` and the fastest to Mitsuba's error at its highest count.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from farm import defaults
from farm.tools import bench_reference
from farm.tools.bench_reference import rmse


def run(args, scene) -> int:
    from farm.buckets import Bucket
    from farm.client import adaptive
    from farm.client.film import Film
    from farm.exceptions import DenoiserUnavailable
    from farm.protocol.assets import FolderAssets
    from farm.protocol.plans import Plan
    from farm.protocol.tiles import mean_of
    from farm.scene.pack import pack
    from farm.worker.device import current
    from farm.worker.render import Renderer

    device = current()
    folder = Path(args.scene).parent
    renderer = Renderer(device, pack(scene, FolderAssets(folder, scene.assets)), aovs=True)
    width, height = scene.film.width, scene.film.height
    pixels = width * height
    print(f"device: {device}")
    print(f"scene: {args.scene} {width}x{height}, max depth {scene.max_depth}; error: RMSE of values clamped to 1 "
          f"against the reference")
    chosen = bench_reference.load(scene, folder, args.reference_spp)
    truth = chosen.truth
    print(f"reference: {chosen.label}")
    for line in bench_reference.floor_lines(chosen):
        print(line)
    renderer.render(0, 0, min(8, width), min(8, height))  # warm up

    whole = Bucket(0, 0, 0, width, height)

    def uniform(spp: int):
        def render():
            film = Film(width, height, ("albedo", "normal"), spp)
            film.put(whole, mean_of(renderer.render(0, 0, width, height, plan=Plan.uniform(width, height, 0, spp)), spp))
            return film
        return render

    def denoised(film, method, setting, seconds, spp):
        for prefilter, name, flag in ((False, " + OIDN", " --denoise"),
                                      (True, " + OIDN prefiltered", " --denoise-prefilter")):
            try:
                image, extra = _timed(lambda: (film.denoise(prefilter=prefilter), film.pixels)[1])
            except DenoiserUnavailable as exc:
                print(f"denoising: {exc}")
                return
            rows.append((method + name, setting + flag, seconds + extra, spp, rmse(image, truth)))

    mitsuba = _mitsuba(args, scene) if args.mitsuba else None
    rows = []  # (method, setting, seconds, samples per pixel, error)
    for spp in args.uniform:
        film, seconds = _timed(uniform(spp))
        rows.append(("farm uniform", f"{spp} spp", seconds, spp, rmse(film.pixels, truth)))
        denoised(film, "farm uniform", f"{spp} spp", seconds, spp)
        if mitsuba is not None:
            image, seconds = _timed(lambda: mitsuba(spp))
            rows.append(("mitsuba llvm uniform", f"{spp} spp", seconds, spp, rmse(image, truth)))
    for noise in args.noise_targets:
        film = None

        def target():
            nonlocal film
            film, _ = adaptive.render_here(renderer, noise, args.min_spp, args.max_spp, defaults.BUCKET_SIZE,
                                           aovs=("albedo", "normal", "variance"))
            return film.pixels.copy()
        image, seconds = _timed(target)
        spent = float(np.mean(film.counts))
        rows.append(("farm noise target", f"--noise {noise:g}", seconds, spent, rmse(image, truth)))
        denoised(film, "farm noise target", f"--noise {noise:g}", seconds, spent)
    if args.cycles:
        rows += _cycles(args, scene, truth)
    print(f"{'method':38} {'setting':34} {'seconds':>8} {'spp (mean)':>11} {'RMSE':>8}")
    for method, setting, seconds, spp, error in rows:
        spent = f"{spp:11.1f}" if spp == spp else f"{'-':>11}"  # NaN: not known
        print(f"{method:38} {setting:34} {seconds:8.2f} {spent} {error:8.5f}")
    _summary(rows, args.target, pixels)
    return 0


def _summary(rows, target: float, pixels: int) -> None:
    """For each method, the quickest row at or under `target`; and the quickest of each
    method to the error of Mitsuba's highest count."""
    def quickest(method, bar):
        meeting = [row for row in rows if row[0] == method and row[4] <= bar]
        return min(meeting, key=lambda row: row[2]) if meeting else None

    methods = list(dict.fromkeys(row[0] for row in rows))
    bars = [("target", target)]
    mitsuba = [row for row in rows if row[0].startswith("mitsuba")]
    if mitsuba:
        top = max(mitsuba, key=lambda row: row[3])
        bars.append((f"mitsuba's {top[1]} error", top[4]))
    for name, bar in bars:
        print(f"to RMSE {bar:.5f} ({name}):")
        for method in methods:
            row = quickest(method, bar)
            if row is None:
                print(f"  {method:38} not reached")
                continue
            if row[3] != row[3]:  # NaN: samples not known (Cycles' adaptive sampling)
                print(f"  {method:38} {row[2]:8.2f} s ({row[1]})")
                continue
            mean = "" if row[1].startswith(f"{row[3]:.0f} spp") else f", {row[3]:.0f} spp in the mean"
            print(f"  {method:38} {row[2]:8.2f} s ({row[1]}{mean}, {row[3] * pixels / row[2] / 1e6:.2f} M samples/s)")


def _cycles(args, scene, truth) -> list[tuple]:
    """Rows of Blender's Cycles on the same scene (farm.tools.bench_cycles): each uniform
    count and adaptive threshold, denoised by Cycles' OIDN; none where it cannot run (said
    why)."""
    from farm.tools import bench_cycles

    settings = [(spp, 0.0) for spp in args.uniform]
    settings += [(args.cycles_max_spp, threshold) for threshold in args.cycles_thresholds]
    results, why = bench_cycles.render(scene, Path(args.scene).parent, settings)
    if why:
        print(f"cycles: cannot run here: {why}")
        return []
    rows = []
    for samples, threshold, seconds, image in results:
        if threshold:
            setting, spp, method = f"threshold {threshold:g}, {samples} spp at most", float("nan"), "cycles adaptive"
        else:
            setting, spp, method = f"{samples} spp", float(samples), "cycles uniform"
        rows.append((method + " + OIDN", setting, seconds, spp, rmse(image, truth)))
    return rows


def _timed(render):
    started = time.perf_counter()
    result = render()
    return result, time.perf_counter() - started


def _mitsuba(args, scene):
    """Mitsuba 3's llvm_ad_rgb rendering the scene at a given spp (as an array), or None
    where it cannot run here (said why)."""
    try:
        import mitsuba as mi
    except ImportError:
        print("mitsuba: not installed (pip install mitsuba)")
        return None
    from farm.tools.bench_mitsuba import _variant_failure, how_to_get, load_boxed

    why = _variant_failure("llvm_ad_rgb")
    if why:
        print(f"mitsuba llvm_ad_rgb: cannot run here: {why}\n  {how_to_get()}")
        return None
    mi.set_variant("llvm_ad_rgb")
    loaded = load_boxed(mi, scene, Path(args.scene).parent)
    np.asarray(mi.render(loaded, spp=1))  # compile

    def render(spp: int) -> np.ndarray:
        return np.asarray(mi.render(loaded, spp=spp))[..., :3]
    return render
