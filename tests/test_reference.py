"""Agreement with an independent renderer: Mitsuba 3 (scalar_rgb) renders the same scene
files, converted by farm.scene.mitsuba, and the converged images must agree within noise.

Both renders are unbiased estimates of one image; per-pixel differences are independent,
so their mean over a region is zero within a few standard errors. A convention that
differs (fov axis, an environment map's orientation, a Fresnel term, a light's units)
shifts a region by far more than that."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.protocol.assets import FolderAssets
from farm.scene import parse_scene
from farm.scene.load import load_scene
from farm.scene.pack import pack
from farm.worker.render import Renderer

from tests.files import ROOT

mitsuba_renderer = pytest.importorskip("farm.scene.mitsuba")
pytest.importorskip("mitsuba")

SIGMAS = 5.0


def assert_agree(ours: np.ndarray, theirs: np.ndarray, blocks=(2, 4)):
    assert ours.shape == theirs.shape
    diff = (ours.astype(np.float64) - theirs).mean(axis=2)
    h, w = diff.shape
    regions = {"whole image": diff}
    for by in range(blocks[0]):
        for bx in range(blocks[1]):
            regions[f"block {by},{bx}"] = diff[by * h // blocks[0] : (by + 1) * h // blocks[0],
                                               bx * w // blocks[1] : (bx + 1) * w // blocks[1]]
    for name, region in regions.items():
        values = region.ravel()
        bound = SIGMAS * values.std(ddof=1) / math.sqrt(len(values)) + 1e-4
        assert abs(values.mean()) <= bound, f"{name}: ours - Mitsuba = {values.mean():+.5f}, bound {bound:.5f}"
    for channel in range(3):
        assert abs(ours[..., channel].mean() / theirs[..., channel].mean() - 1) < 0.01


@pytest.mark.parametrize("name,width,height,spp", [
    ("cornell-box.json", 48, 48, 512),
    ("reference/materials.json", 64, 32, 1024),
])
def test_converged_render_agrees_with_mitsuba(device, name, width, height, spp):
    path = ROOT / "scenes" / name
    _, document = load_scene(path, spp=spp)
    document["film"].update(width=width, height=height)
    scene = parse_scene(document, source=str(path))
    ours = Renderer(device, pack(scene, FolderAssets(path.parent, scene.assets))).render_frame()
    theirs = mitsuba_renderer.render(scene, path.parent)
    assert_agree(ours, theirs)

