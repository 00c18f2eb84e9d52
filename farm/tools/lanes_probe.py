"""How much SIMD across paths gains on this CPU: issue 30's route to speed, measured.

`python -m farm.tools.lanes_probe [--scene S] [--spp N] [--repeat N]` renders the scene's
packed geometry with one small path tracer written once over a lane type: as `float`, one
path per work item (the farm kernel's way), and as `float8`/`float16`, that many paths in
the lanes of one work item (Mitsuba's LLVM variant runs sixteen in AVX-512 lanes). Shading,
light sampling, the sampler and the path's bookkeeping run in the lanes; the BVH walk is the
farm's own (trace.h), lane by lane, or (8 and 16 "as a packet") the lanes' rays walked
together, a node visited if any lane's ray meets it, a leaf's triangles tested against
every lane at once (Wald's packets; Embree's hybrid switches between the two). It prints samples/s of each width, alternating, and of
the farm kernel on the same frame, so the ratio says what rewriting the kernel in lanes
would buy before anyone does it.

The tracer: diffuse surfaces (every material's reflectance, emission where it has some),
next-event estimation on the scene's triangle lights with multiple importance sampling
(power heuristic) against cosine-weighted BSDF samples, Russian roulette from the scene's
depth on; a hashed independent sampler (rng.h). It is not the farm kernel (no textures,
no other BSDFs, no spheres, instances or environments: a scene needing them is refused);
it is the same work for every width, which is what the probe compares.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from farm.tools.lanes_source import SOURCE


WIDTHS = (1, 4, 8, 16)
PACKETS = (8, 16)  # widths also built with the packet walk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m farm.tools.lanes_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", help="a scene of diffuse triangles and triangle lights (default the Cornell box), "
                                        "or mesh:N, farm bench's generated mesh of N triangles in the box")
    parser.add_argument("--spp", type=int, default=16, help="samples per pixel (default 16)")
    parser.add_argument("--width", type=int, default=256, help="frame width in pixels (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each width once a round (default 3)")
    parser.add_argument("--mitsuba", action="store_true",
                        help="time Mitsuba 3's llvm_ad_rgb on the same frame in each round too (farm bench --mitsuba's)")
    args = parser.parse_args(argv)
    import pyopencl as cl

    from farm.tools.bench_scenes import load_scaled
    from farm.worker.device import open_device
    from farm.worker.render import Renderer, build_options

    from farm.protocol.assets import FolderAssets
    from farm.scene.layout import LIGHT_TRIANGLE
    from farm.scene.pack import pack
    from farm.tools.bench_scenes import default_scene, resolve_scene

    path = resolve_scene(args.scene) if args.scene else default_scene()
    scene, _ = load_scaled(argparse.Namespace(scene=path, spp=args.spp, width=args.width))
    packed = pack(scene, FolderAssets(str(Path(path).parent)))
    if len(packed.spheres) or len(packed.instances) or int(packed.frame["options"].reshape(-1)[3]) \
            or (packed.lights["info"][:, 0] != LIGHT_TRIANGLE).any():
        print("lanes_probe: the probe renders triangles and triangle lights only (no spheres, instances or sky)",
              file=sys.stderr)
        return 2
    device = open_device("cpu")
    renderer = Renderer(device, packed)
    pixels = packed.width * packed.height
    programs = {}
    for width in WIDTHS:
        programs[width] = cl.Program(device.context, SOURCE).build(options=build_options(device) + [f"-DW={width}"])
    for width in PACKETS:
        programs[-width] = cl.Program(device.context, SOURCE).build(
            options=build_options(device) + [f"-DW={width}", "-DPACKET"])
    out = cl.Buffer(device.context, cl.mem_flags.WRITE_ONLY, pixels * 3 * 4)
    timings: dict[str, list[float]] = {}
    images = {}

    def lanes(width: int) -> float:  # a negative width: that many lanes walking as a packet
        kernel = cl.Kernel(programs[width], "probe")
        packet, width = width < 0, abs(width)
        kernel.set_args(*renderer.buffers.values(), np.int32(args.spp), out)
        items = -(-pixels // width)
        local = 16 if width == 1 else max(1, 16 // width)
        started = time.perf_counter()
        cl.enqueue_nd_range_kernel(device.queue, kernel, (-(-items // local) * local,), (local,))
        device.queue.finish()
        seconds = time.perf_counter() - started
        image = np.empty(pixels * 3, np.float32)
        cl.enqueue_copy(device.queue, image, out)
        images[-width if packet else width] = image
        return seconds

    def farm_kernel() -> float:
        started = time.perf_counter()
        renderer.render_frame()
        return time.perf_counter() - started

    mitsuba = None
    if args.mitsuba:
        from farm.tools.bench_mitsuba import mitsuba_frames

        frames, cannot_run = mitsuba_frames(argparse.Namespace(scene=path), scene)
        mitsuba = frames.get("llvm_ad_rgb")
        if mitsuba is None:
            print(f"mitsuba llvm_ad_rgb: {cannot_run.get('llvm_ad_rgb', 'not installed')}")
    for width in (*WIDTHS, *(-w for w in PACKETS)):  # warm: every program built and run once
        lanes(width)
    farm_kernel()
    for _ in range(args.repeat):
        if mitsuba is not None:
            mitsuba[0]()
            started = time.perf_counter()
            mitsuba[1]()
            timings.setdefault("mitsuba llvm_ad_rgb", []).append(time.perf_counter() - started)
        timings.setdefault("farm kernel", []).append(farm_kernel())
        for width in WIDTHS:
            timings.setdefault(f"probe, {width} lane{'s' * (width > 1)}", []).append(lanes(width))
        for width in PACKETS:
            timings.setdefault(f"probe, {width} as a packet", []).append(lanes(-width))
    samples = pixels * args.spp
    print(f"device: {device}")
    print(f"scene: {scene.film.width}x{scene.film.height}, {args.spp} spp, medians of {args.repeat}")
    base = statistics.median(timings["probe, 1 lane"])
    for name, seconds in timings.items():
        median = statistics.median(seconds)
        print(f"{name:22} {samples / median / 1e6:7.3f} M samples/s  {base / median:5.2f}x the probe's one lane")
    reference = images[1].reshape(-1, 3)
    farm_image = renderer.render_frame().reshape(-1, 3)
    print(f"mean pixel: probe {reference.mean(axis=0).tolist()}, farm kernel "
          f"{farm_image.mean(axis=0).tolist()} (other samplers, the same scene: equal within noise); "
          f"mean |difference| {float(np.abs(reference - farm_image).mean()):.3e}")
    others = [*WIDTHS[1:], *(-w for w in PACKETS)]
    differ = [width for width in others if not np.array_equal(images[width].view(np.uint32), images[1].view(np.uint32))]
    print(f"{', '.join(str(w) if w > 0 else f'{-w} as a packet' for w in others)} lanes against 1: "
          + (f"DIFFER at {', '.join(str(w) for w in differ)} lanes" if differ else "the same bits"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
