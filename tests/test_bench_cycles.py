"""Cycles beside the farm in `farm bench --quality --cycles`: the export both renderers read the
same, and Cycles' render of it where a Python with bpy is named (FARM_CYCLES_PYTHON)."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from farm.scene.load import load_scene
from farm.tools import bench_cycles
from farm.tools.bench_scenes import default_scene
from tests import commands


def small_cornell(width=32):
    from farm.scene import parse_scene

    _, document = load_scene(default_scene())
    document["film"].update(width=width, height=width)
    return parse_scene(document, source=default_scene())


def test_the_export_is_the_scene_s_world_space_triangles_materials_and_camera(tmp_path):
    scene = small_cornell()
    bench_cycles.export(scene, Path(default_scene()).parent, tmp_path / "scene")
    arrays = np.load(tmp_path / "scene.npz")
    meta = json.loads((tmp_path / "scene.json").read_text())
    # five walls and the light (2 triangles each), two boxes (12 each)
    assert arrays["faces"].shape == (36, 3) and arrays["material"].shape == (36,)
    assert np.abs(arrays["vertices"]).max() <= 1.0 + 1e-9  # the room is [-1, 1]^3
    light = [m["name"] for m in meta["materials"]].index("light")
    lit = arrays["vertices"][arrays["faces"][arrays["material"] == light]]
    assert np.allclose(lit[..., 1], 0.998) and np.allclose(np.abs(lit[..., [0, 2]]).max(), 0.25)
    assert meta["materials"][light]["emission"] == [17.0, 12.0, 4.0]
    assert meta["camera"]["fov"] == 39.3 and (meta["width"], meta["max_depth"]) == (32, 8)


def test_what_the_export_cannot_give_cycles_is_one_line(monkeypatch):
    showcase, _ = load_scene(Path(default_scene()).parent / "showcase.json")
    assert bench_cycles.untranslatable(showcase) is not None
    monkeypatch.delenv("FARM_CYCLES_PYTHON", raising=False)
    assert bench_cycles.render(small_cornell(), Path(default_scene()).parent, [(4, 0.0)]) == (
        [], "set FARM_CYCLES_PYTHON to a Python with Blender's bpy (pip install bpy, Python 3.13)")


@pytest.mark.skipif(not os.environ.get("FARM_CYCLES_PYTHON"), reason="no Python with Blender's bpy named in "
                    "FARM_CYCLES_PYTHON (pip install bpy for Python 3.13)")
def test_cycles_renders_the_same_cornell_box(tmp_path):
    """Cycles' (denoised) image of the export agrees with the farm's on the mean (within 1%)
    and pixel by pixel within 5% in the median; the bench prints its rows."""
    from farm.protocol.assets import FolderAssets
    from farm.protocol.plans import Plan
    from farm.protocol.tiles import mean_of
    from farm.scene.pack import pack
    from farm.worker.device import current
    from farm.worker.render import Renderer

    scene = small_cornell()
    results, why = bench_cycles.render(scene, Path(default_scene()).parent, [(256, 0.0)])
    assert why is None
    (samples, threshold, seconds, image), = results
    renderer = Renderer(current(), pack(scene, FolderAssets(Path(default_scene()).parent, scene.assets)))
    farm = mean_of(renderer.render(0, 0, 32, 32, plan=Plan.uniform(32, 32, 0, 4096)), 4096)[..., :3]
    assert image.shape == farm.shape and seconds > 0
    assert abs(image.mean() / farm.mean() - 1) < 0.01
    assert np.median(np.abs(image - farm)) < 0.05 * farm.mean()
    result = commands.run("bench", "--quality", "--cycles", "--width", "24", "--reference-spp", "64", "--uniform", "4",
                          "--noise-targets", "0.3", "--max-spp", "16", "--cycles-thresholds", "0.1", timeout=600,
                          env={**os.environ, "FARM_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^cycles uniform \+ OIDN +4 spp", out, re.M), out
    assert re.search(r"^cycles adaptive \+ OIDN +threshold 0\.1, 4096 spp at most +[\d.]+ +- +[\d.]+$", out, re.M), out
