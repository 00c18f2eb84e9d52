"""The reference `farm bench --quality` measures its errors against, and the floor under them.

Mitsuba 3's render of the scene where Mitsuba runs here (through farm/scene/mitsuba.py): an
independent estimator, sampler and code, so a bias of the kernel shows as error. Only where
Mitsuba cannot run, the farm's own render, with seeds the measured renders do not use, and
labelled as such: its bias is invisible. Each is rendered once as two halves of independent
samples (two seeds) and cached: half the RMSE between the halves is the reference's own
noise, which no render can read under. Beside Mitsuba's reference the farm's own converged
render (also two seeds) gives the kernel's bias against it: what is left of the RMSE between
the two once both noises are taken out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farm import defaults

MITSUBA_VARIANTS = ("llvm_ad_rgb", "scalar_rgb")  # the first that runs here renders the reference
MITSUBA_PASS_SPP = 64  # samples per pixel of one Mitsuba render (its seed its own)


@dataclass(frozen=True)
class Reference:
    truth: np.ndarray  # (height, width, 3) linear RGB
    label: str  # what rendered it, how, and where it is cached
    noise: float  # RMSE of the reference's own noise
    bias: float | None  # the farm's converged RMSE against it with both noises taken out (Mitsuba's only)


def rmse(image: np.ndarray, truth: np.ndarray) -> float:
    """Root mean square error of values clamped to [0, 1], as a display shows them."""
    return float(np.sqrt(np.mean((np.clip(image, 0, 1) - np.clip(truth, 0, 1)) ** 2)))


def cache_path(scene, spp: int, source: str) -> Path:
    """Where `source`'s two halves of `scene` at `spp` in all are cached: beside the asset
    cache, named after what made them (the farm's: its kernel sources' digest; Mitsuba's:
    its variant and passes), so a changed kernel renders its reference anew."""
    from farm.protocol.identity import sources_digest

    made_by = f"farm-{sources_digest()[:8]}" if source == "farm" else f"{source}-p{MITSUBA_PASS_SPP}"
    name = f"{scene.digest[:16]}-{scene.film.width}x{scene.film.height}-{spp}-{made_by}.npz"
    return Path(defaults.CACHE_DIR).parent / "references" / name


def _halves(scene, spp: int, source: str, make_render) -> tuple[np.ndarray, np.ndarray]:
    """render(seed, spp) (of make_render()) twice with spp / 2 samples, seeds 1 and 2 after
    the scene's; cached."""
    path = cache_path(scene, spp, source)
    if path.exists():
        with np.load(path) as kept:
            return kept["first"], kept["second"]
    print(f"reference: rendering {source} at {spp} spp once (cached in {path})...", flush=True)
    render = make_render()
    first, second = (render(scene.seed + k, spp // 2) for k in (1, 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, first=first, second=second)
    partial.replace(path)  # a run cut off leaves no reference half written
    return first, second


def farm_render(scene, folder: Path):
    """render(seed, spp) by the kernel in this process: the scene with that seed, repacked."""
    from farm.protocol.assets import FolderAssets
    from farm.protocol.plans import Plan
    from farm.protocol.tiles import mean_of
    from farm.scene.pack import pack
    from farm.worker.device import current
    from farm.worker.render import Renderer

    def render(seed: int, spp: int) -> np.ndarray:
        seeded = dataclasses.replace(scene, seed=seed & 0xFFFFFFFF)
        renderer = Renderer(current(), pack(seeded, FolderAssets(folder, seeded.assets)))
        width, height = scene.film.width, scene.film.height
        return mean_of(renderer.render(0, 0, width, height, plan=Plan.uniform(width, height, 0, spp)), spp)[..., :3]
    return render


def mitsuba_render(scene, folder: Path):
    """(variant, render(seed, spp)) by Mitsuba 3 (its LLVM variant where it runs, else the
    scalar one), box-filtered like the farm's pixels; or (why not, None)."""
    try:
        import mitsuba as mi
    except ImportError:
        return "not installed (pip install mitsuba)", None
    from farm.tools.bench_mitsuba import _variant_failure, load_boxed

    variant = MITSUBA_VARIANTS[0] if _variant_failure(MITSUBA_VARIANTS[0]) is None else MITSUBA_VARIANTS[1]
    mi.set_variant(variant)
    try:
        loaded = load_boxed(mi, scene, folder)
    except Exception as exc:  # the exporter's ValueError, or Mitsuba's own on what it was given
        return f"cannot take this scene ({exc})".splitlines()[0], None

    def render(seed: int, spp: int) -> np.ndarray:
        # in passes: the JIT variants hold a pass's every sample at once (pixels x spp lanes)
        total, passes = np.zeros((scene.film.height, scene.film.width, 3)), -(-spp // MITSUBA_PASS_SPP)
        for number in range(passes):
            count = min(MITSUBA_PASS_SPP, spp - number * MITSUBA_PASS_SPP)
            # seed in the high bits, pass + 1 in the low: never 0 (the measured Mitsuba rows' seed) nor another's
            image = mi.render(loaded, spp=count, seed=((seed << 16) | (number + 1)) & 0xFFFFFFFF)
            total += np.array(image, np.float64)[..., :3] * count
        return (total / spp).astype(np.float32)
    return variant, render


def load(scene, folder: Path, spp: int) -> Reference:
    """The reference of `scene` at `spp` samples per pixel: Mitsuba's where it runs here,
    else the farm's own with other seeds; rendered once and cached."""
    farm = _halves(scene, spp, "farm", lambda: farm_render(scene, folder))
    farm_noise = rmse(*farm) / 2
    cached = [v for v in MITSUBA_VARIANTS if cache_path(scene, spp, f"mitsuba-{v}").exists()]
    variant, render = (cached[0], None) if cached else mitsuba_render(scene, folder)
    if not cached and render is None:
        truth = (farm[0] + farm[1]) / 2
        label = (f"the farm's own at {spp} spp (seeds {scene.seed + 1} and {scene.seed + 2}; the renders measured use "
                 f"{scene.seed}), NOT independent: the kernel's bias is invisible in it. Mitsuba: {variant}")
        return Reference(truth, label, farm_noise, None)
    first, second = _halves(scene, spp, f"mitsuba-{variant}", lambda: render)
    truth = (first + second) / 2
    noise = rmse(first, second) / 2
    between = rmse((farm[0] + farm[1]) / 2, truth)
    bias = float(np.sqrt(max(between ** 2 - noise ** 2 - farm_noise ** 2, 0.0)))
    label = f"Mitsuba 3 {variant} at {spp} spp (independent sampler, seeds {scene.seed + 1} and {scene.seed + 2}, box filter)"
    return Reference(truth, label, noise, bias)


def floor_lines(reference: Reference) -> list[str]:
    """What an error figure can mean against `reference`: its own noise, and the farm's bias."""
    lines = [f"floor: the reference's own noise is {reference.noise:.5f} RMSE; no render reads under it"]
    if reference.bias is not None:
        floor = np.hypot(reference.noise, reference.bias)
        lines.append(f"floor: the farm's converged bias against it is {reference.bias:.5f} RMSE (both noises taken "
                     f"out), so no farm render reads under {floor:.5f}")
    return lines
