"""The frame a farm must match: a scene rendered in this process, the whole frame in one
call of the kernel the workers run. A farm's frame of the same scene, in any buckets on
any workers, equals it bit for bit."""

from __future__ import annotations

import copy

import numpy as np


def renderer(device, scene, assets=None, aovs: bool = False, time: float | None = None):
    """A Renderer of `scene` on `device`. `scene`: a scene document (a dict; an animated one
    at `time` seconds, as a frame of its shot rendered alone), a parsed Scene or a
    PackedScene; `assets` reads the files a Scene names (a FolderAssets)."""
    from farm.scene import parse_scene
    from farm.scene.model import Scene
    from farm.scene.pack import pack
    from farm.worker.render import Renderer

    if isinstance(scene, dict):
        scene = parse_scene(copy.deepcopy(scene), time=time)
    if isinstance(scene, Scene):
        scene = pack(scene, assets)
    return Renderer(device, scene, aovs=aovs)


def reference(device, scene, assets=None, aovs: bool = False, spp: int | None = None,
              time: float | None = None) -> np.ndarray:
    """The whole frame of `scene` (as `renderer` takes it), rendered in this process: the
    colour, and with `aovs` every AOV channel after it. `spp` replaces a document's samples
    per pixel (the frame of a progressive round's samples so far)."""
    if spp is not None:
        scene = {**scene, "film": {**scene["film"], "spp": spp}}
    return renderer(device, scene, assets, aovs, time).render_frame()
