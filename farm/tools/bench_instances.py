"""`farm bench --instances`: what instancing buys a shot and a scene that repeats a mesh.

1. Preparing a shot's frames on a worker: the Cornell box with a static generated mesh of
   --mesh triangles (default 1,000,000) and one sphere that moves. Each frame is prepared
   as a render process prepares it (the scene at its moment parsed, packed with the
   process's library of bottom levels, uploaded), the first frame against the later ones;
   and, for the figure before instancing, every frame packed afresh (no library).
2. Its render speed: a frame through the two-level walk against its still document (the
   moving sphere baked into the world), alternating, in samples/s.
3. Memory: the mesh alone against the mesh placed 10,000 times, each in a process of its
   own (parse, pack, upload, render a small frame): the processes' peak resident memory,
   and the scene's device buffers.
"""

from __future__ import annotations

import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTANCES = 10_000


def shot_document(mesh_file: str) -> dict:
    from farm.tools.bench_scenes import default_scene

    document = json.loads(Path(default_scene()).read_text())
    document["shapes"] = document["shapes"][:6] + [
        {"type": "mesh", "file": mesh_file, "material": "white", "transform": {"scale": 0.45, "translate": [0.2, -0.5, 0]}},
        {"type": "sphere", "material": "white", "radius": 0.15,
         "keyframes": [{"time": 0, "translate": [-0.6, -0.8, 0.4]}, {"time": 2, "translate": [0.6, -0.8, 0.4]}]},
    ]
    return document


def run(args) -> int:
    from farm.scene import parse_scene
    from farm.scene.animation import at_time
    from farm.scene.library import Library
    from farm.scene.load import load_scene
    from farm.scene.pack import pack
    from farm.protocol.assets import FolderAssets
    from farm.tools.bench_scenes import write_bumpy_sphere
    from farm.worker.device import current
    from farm.worker.render import Renderer

    triangles = args.mesh or 1_000_000
    frames = max(args.repeat, 3) + 1
    device = current()
    print(f"device: {device}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        made = write_bumpy_sphere(root / "mesh.obj", triangles)
        document = shot_document("mesh.obj")
        document["film"] = {"width": args.width or 128, "height": args.width or 128, "spp": args.spp}
        (root / "shot.json").write_text(json.dumps(document))
        scene, document = load_scene(root / "shot.json")
        assets = FolderAssets(root, scene.assets)
        moments = [number / 24 for number in range(frames)]

        def prepare(moment: float, library) -> tuple[float, object]:
            """Seconds to the frame's renderer, as a render process gets there."""
            started = time.perf_counter()
            frame_scene = parse_scene(copy.deepcopy(document), "shot", moment)
            renderer = Renderer(device, pack(frame_scene, assets, library))
            renderer.render(0, 0, 1, 1)  # the buffers really on the device
            return time.perf_counter() - started, renderer

        from farm.scene.bvh import build_compiled
        import numpy as np

        build_compiled(np.zeros((4, 3)), np.ones((4, 3)))  # numba's compile (cached on disk) out of the way
        prepare(moments[0], None)  # and the kernel's build, and the files read once into the OS's cache
        library = Library(keep=2)
        kept = [prepare(moment, library)[0] for moment in moments]
        afresh = [prepare(moment, None)[0] for moment in moments]
        later, before = statistics.median(kept[1:]), statistics.median(afresh[1:])
        print(f"shot of a {made:,}-triangle static mesh and a moving sphere, {frames} frames prepared as a worker does:")
        print(f"  first frame {kept[0]:.2f}s; a later frame {later:.3f}s (median of {frames - 1}) = "
              f"{later / kept[0] * 100:.1f}% of the first (target <= 5%)")
        print(f"  before (every frame packed afresh): a later frame {before:.2f}s = {before / afresh[0] * 100:.0f}% "
              f"of the first; with the library {before / later:.0f}x faster")

        moving = Renderer(device, pack(parse_scene(copy.deepcopy(document), "shot", 1.0), assets))
        still = Renderer(device, pack(parse_scene(at_time(copy.deepcopy(document), 1.0)), assets))
        samples = scene.film.width * scene.film.height * scene.film.spp
        times: dict[str, list[float]] = {"two-level": [], "one level": []}
        for _ in range(max(args.repeat, 3)):
            for name, renderer in (("two-level", moving), ("one level", still)):
                started = time.perf_counter()
                renderer.render_frame()
                times[name].append(time.perf_counter() - started)
        rates = {name: samples / statistics.median(seconds) / 1e6 for name, seconds in times.items()}
        print(f"  render {scene.film.width}x{scene.film.height} at {scene.film.spp} spp: two-level walk "
              f"{rates['two-level']:.3f} M samples/s, its still document in one level {rates['one level']:.3f} "
              f"({rates['two-level'] / rates['one level']:.2f}x)")

        alone, many = (memory(root, count) for count in (1, INSTANCES))
        print(f"memory, one {made:,}-triangle mesh alone against it placed {INSTANCES:,} times (a process each):")
        print(f"  peak resident {alone['rss'] / 2**20:.0f} MiB against {many['rss'] / 2**20:.0f} MiB = "
              f"{many['rss'] / alone['rss']:.3f}x (target <= 1.2x)")
        print(f"  scene buffers {alone['buffers'] / 2**20:.1f} MiB against {many['buffers'] / 2**20:.1f} MiB = "
              f"{many['buffers'] / alone['buffers']:.3f}x; {many['instances']:,} instances")
    return 0


def memory(folder: Path, count: int) -> dict:
    """Peak memory of a process that renders the mesh placed `count` times."""
    result = subprocess.run([sys.executable, "-m", "farm.tools.bench_instances", str(folder), str(count)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"farm bench: the memory run failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _memory_child(folder: Path, count: int) -> None:
    from farm.protocol.assets import FolderAssets
    from farm.scene.load import load_scene
    from farm.scene.pack import pack
    from farm.worker.device import current
    from farm.worker.render import Renderer

    document = shot_document("mesh.obj")
    side = int(count ** 0.5 + 0.999)
    mesh = document["shapes"][6]
    document["shapes"] = document["shapes"][:6] + [
        {**mesh, "transform": {"scale": 1.6 / side, "translate": [-0.8 + 1.6 * (k % side + 0.5) / side, -0.6,
                                                                    -0.8 + 1.6 * (k // side + 0.5) / side]}}
        for k in range(count)]
    document["film"] = {"width": 64, "height": 64, "spp": 1}
    path = folder / f"memory-{count}.json"
    path.write_text(json.dumps(document))
    scene, _ = load_scene(path)
    packed = pack(scene, FolderAssets(folder, scene.assets))
    Renderer(current(), packed).render_frame()
    print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "buffers": sum(a.nbytes for a in packed.buffers().values()),
                      "instances": len(packed.instances)}))


if __name__ == "__main__":
    _memory_child(Path(sys.argv[1]), int(sys.argv[2]))
