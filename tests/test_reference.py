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

from tests import frames
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
    ("reference/principled.json", 64, 32, 1024),
])
def test_converged_render_agrees_with_mitsuba(device, name, width, height, spp):
    path = ROOT / "scenes" / name
    _, document = load_scene(path, spp=spp)
    document["film"].update(width=width, height=height)
    scene = parse_scene(document, source=str(path))
    ours = frames.reference(device, scene, FolderAssets(path.parent, scene.assets))
    theirs = mitsuba_renderer.render(scene, path.parent)
    assert_agree(ours, theirs)



def _directions(rng, count: int) -> np.ndarray:
    """Unit directions of the upper hemisphere, grazing ones included."""
    z = rng.uniform(0.02, 1.0, count)
    phi = rng.uniform(0.0, 2.0 * np.pi, count)
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


BSDF_CASES = [
    ({"type": "principled", "base_color": [0.8, 0.3, 0.1], "metallic": 0.0, "roughness": 0.3},
     {"type": "principled", "base_color": {"type": "rgb", "value": [0.8, 0.3, 0.1]}, "metallic": 0.0, "roughness": 0.3}),
    ({"type": "principled", "base_color": [0.9, 0.7, 0.2], "metallic": 1.0, "roughness": 0.6},
     {"type": "principled", "base_color": {"type": "rgb", "value": [0.9, 0.7, 0.2]}, "metallic": 1.0, "roughness": 0.6}),
    ({"type": "principled", "base_color": [0.2, 0.5, 0.9], "metallic": 0.35, "roughness": 0.15},
     {"type": "principled", "base_color": {"type": "rgb", "value": [0.2, 0.5, 0.9]}, "metallic": 0.35, "roughness": 0.15}),
    ({"type": "conductor", "metal": "Au", "roughness": 0.5},
     {"type": "roughconductor", "material": "Au", "distribution": "ggx", "alpha": 0.25}),
    ({"type": "conductor", "metal": "Cr", "roughness": 0.3},
     {"type": "roughconductor", "material": "Cr", "distribution": "ggx", "alpha": 0.09}),
]


@pytest.mark.parametrize("ours,theirs", BSDF_CASES, ids=["principled dielectric", "principled metal",
                                                         "principled blend", "rough Au", "rough Cr"])
def test_bsdf_values_are_mitsubas_term_for_term(device, ours, theirs):
    """The kernel's f |cos wo| against Mitsuba's BSDF eval, direction pair by pair: the
    named metals' values, the principled model's every lobe and weight."""
    import mitsuba as mi

    mi.set_variant("scalar_rgb")
    document = {"version": 1, "camera": {"position": [0, 0, 1], "look_at": [0, 0, 0], "fov": 40},
                "film": {"width": 1, "height": 1, "spp": 1}, "materials": {"m": ours},
                "shapes": [{"type": "sphere", "material": "m"}]}
    renderer = frames.renderer(device, document)
    rng = np.random.default_rng(7)
    wi, wo = _directions(rng, 400).astype(np.float32), _directions(rng, 400).astype(np.float32)
    values, pdf = renderer.eval_bsdf(0, (0.5, 0.5), wi, wo)
    bsdf = mi.load_dict(theirs)
    expected = np.empty_like(values)
    for i in range(len(wi)):
        si = mi.SurfaceInteraction3f()
        si.sh_frame = mi.Frame3f(mi.Vector3f(0, 0, 1))
        si.wi = mi.Vector3f(*wi[i].tolist())
        expected[i] = np.array(bsdf.eval(mi.BSDFContext(), si, mi.Vector3f(*wo[i].tolist())))
    assert np.isfinite(values).all() and (pdf > 0).all()
    np.testing.assert_allclose(values, expected, rtol=2e-3, atol=1e-6)


def test_named_metals_are_mitsubas():
    import mitsuba as mi

    from farm.scene.materials import METALS

    mi.set_variant("scalar_rgb")
    for name, (eta, k) in METALS.items():
        parameters = mi.traverse(mi.load_dict({"type": "conductor", "material": name}))
        assert np.allclose(parameters["eta.value"], eta, atol=1e-5), name
        assert np.allclose(parameters["k.value"], k, atol=1e-5), name
