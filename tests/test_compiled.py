"""The compiled loops (farm.scene.compiled): their code comes built, and each gives the bits
of the numpy code it stands in for on big scenes."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numba
import numpy as np
import pytest

from farm.scene import bvh, compiled, geometry
from farm.scene.geometry import Gathered


SHIPPED = """
import json, sys
from farm.scene import bvh, compiled, geometry, obj_reader
bvh.warm_up()
geometry.warm_up()
obj_reader.warm_up()
loops = compiled.loaded().values()
print(json.dumps({"compiled": [loop.py_func.__name__ for loop in loops if loop.stats.cache_misses],
                  "loaded": sorted(loop.py_func.__name__ for loop in loops if loop.stats.cache_hits)}))
"""


def test_the_compiled_loops_come_built_so_a_new_machine_compiles_nothing(tmp_path):
    """A process on a machine that never ran farm (an empty FARM_CACHE_DIR) loads every
    compiled loop from farm/scene/prebuilt/ instead of compiling it (1-4 s a loop). Fails when a loop's source changed since they were built: rebuild them with
    `python -m farm.tools.prebuild`."""
    tag = f".py{sys.version_info.major}{sys.version_info.minor}."
    if not any(tag in path.name for path in compiled.PREBUILT.iterdir()):
        pytest.skip(f"no loops built for Python {sys.version_info.major}.{sys.version_info.minor} are shipped")
    assert (compiled.PREBUILT / "options").read_text().strip() == compiled.TAG, \
        "compiled.OPTIONS changed since the loops were built: run `python -m farm.tools.prebuild`"
    with open(next(compiled.PREBUILT.glob("*.nbi")), "rb") as index:
        built_with = pickle.load(index)
    if built_with != numba.__version__:
        pytest.skip(f"the shipped loops are numba {built_with}'s; this is numba {numba.__version__}")
    env = {name: value for name, value in os.environ.items() if not name.startswith("NUMBA_")}
    env["FARM_CACHE_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", SHIPPED], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["compiled"] == [], f"{report['compiled']} compiled: run `python -m farm.tools.prebuild`"
    assert report["loaded"] == ["build_loop", "collapse_slots", "corner_values", "count_lines", "edge_cross",
                                "flatten_nodes", "median_refs", "read_plain", "triangle_rows"]



def _gathered(rng, count: int, uvs: bool) -> Gathered:
    """Random triangles with the cases the rows treat apart: ties between the normal's
    largest components, axis-aligned ones, integer corners (signed zeros in the plane's
    offset), zero vertex normals, triangles with extras."""
    corners = rng.normal(size=(count, 3, 3))
    corners[:100, :, 2] = 1.0
    corners[100:200, :, 0] = corners[100:200, :, 1]
    corners[200:300] = np.round(corners[200:300])
    corners[300] = [[0, 0, 0], [1e-160, 0, 0], [0, 1e-160, 0]]  # kept (its cross is not zero), its area underflows
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    keep = (cross != 0).any(axis=1)
    corners, cross = corners[keep], cross[keep]
    count = len(corners)
    normals = rng.normal(size=(count, 3, 3))
    normals[::7, 1] = 0.0
    extras = rng.random(count) < 0.1
    uv = rng.random((count, 3, 2)) if uvs else np.broadcast_to(np.array([[0.0, 0], [1, 0], [0, 1]]), (count, 3, 2))
    return Gathered(corners, cross, uv, normals, rng.random(count) < 0.7, rng.integers(0, 5, count), extras,
                    rng.normal(size=(int(extras.sum()), 5, 4)))


@pytest.mark.parametrize("uvs", [True, False])
def test_the_compiled_triangle_rows_are_numpys_bit_for_bit(uvs):
    gathered = _gathered(np.random.default_rng(5), 20_000, uvs)
    with np.errstate(divide="ignore", invalid="ignore"):  # the underflowing triangle: inf and nan, as compiled
        numpy_made = geometry.triangle_arrays(gathered)
    compiled_made = geometry._triangle_arrays_compiled(gathered)
    for a, b in zip(numpy_made, compiled_made):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("uvs", [False, True])
def test_a_big_scenes_compiled_gather_is_numpys_bit_for_bit(uvs, monkeypatch):
    """Corners, edge cross products, uvs and vertex normals of a scene's meshes gathered by
    the compiled passes (big scenes) and by numpy: the same bits, degenerate triangles
    dropped alike (a mirrored mesh, a flat-shaded one, one with uvs or none)."""
    from farm.scene.mesh import TriangleMesh

    rng = np.random.default_rng(11)
    vertices = rng.normal(size=(3000, 3)) * 100.0
    faces = rng.integers(0, 3000, size=(20_000, 3))
    faces[:50, 1] = faces[:50, 0]  # degenerate: two corners the same
    normals = rng.normal(size=(3000, 3))
    normals[::13] = 0.0  # zero vertex normals
    mirror = np.diag([1.0, -2.0, 0.5, 1.0])
    mirror[:3, 3] = (1.0, 2.0, 3.0)
    smooth = TriangleMesh(vertices, faces, normals=normals, uvs=rng.random((3000, 2)) if uvs else None)
    flat = TriangleMesh(vertices[:100] + 5.0, faces[:400] % 100, normals=normals[:100])
    meshes = [(smooth, mirror, 0, False, False), (flat, np.eye(4), 1, True, False), (smooth, np.eye(4), 2, False, False)]
    made = {}
    for big in (False, True):
        monkeypatch.setattr(bvh, "COMPILED_MIN_PRIMITIVES", 0 if big else 10**9)
        made[big] = geometry.gather_triangles(meshes)
    def kept(f):  # triangles with three distinct corners
        return np.count_nonzero((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]))

    assert len(made[True].corners) == 2 * kept(faces) + kept(flat.faces)
    for name in ("corners", "cross", "uvs", "vertex_normals", "smooth", "material"):
        a, b = np.ascontiguousarray(getattr(made[False], name)), np.ascontiguousarray(getattr(made[True], name))
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name


@pytest.mark.parametrize("count", [1, 2, 17, 5000, 60_000])
def test_the_compiled_collapse_is_numpys(count, monkeypatch):
    rng = np.random.default_rng(count)
    lower = rng.random((count, 3))
    upper = lower if count == 17 else lower + rng.random((count, 3)) * 0.01  # 17: boxes of no area
    tree = bvh.build_compiled(lower, upper)
    monkeypatch.setattr(bvh, "COMPILED_MIN_PRIMITIVES", 10**9)
    vectorised = bvh.collapse(tree)
    monkeypatch.setattr(bvh, "COMPILED_MIN_PRIMITIVES", 0)
    made = bvh.collapse(tree)
    for name in ("lower", "upper", "child", "count"):
        a, b = getattr(vectorised, name), getattr(made, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert made.stack == vectorised.stack


@pytest.mark.parametrize("spheres", [0, 3])
def test_the_compiled_flatten_is_numpys_bit_for_bit(spheres):
    """The kernel's nodes and packs of a tree over triangles (and spheres: primitives past
    the triangles, whose lanes keep zero rows)."""
    gathered = _gathered(np.random.default_rng(7), 30_000, True)
    with np.errstate(divide="ignore", invalid="ignore"):
        triangles = geometry.triangle_arrays(gathered)[0]
    lower = np.minimum(np.minimum(gathered.corners[:, 0], gathered.corners[:, 1]), gathered.corners[:, 2])
    upper = np.maximum(np.maximum(gathered.corners[:, 0], gathered.corners[:, 1]), gathered.corners[:, 2])
    lower, upper = np.concatenate([lower, np.zeros((spheres, 3))]), np.concatenate([upper, np.ones((spheres, 3))])
    tree = bvh.build_compiled(lower, upper)
    wide = bvh.collapse(tree)
    for a, b in zip(geometry.flatten_bvh(wide, tree.order, triangles),
                    geometry._flatten_compiled(wide, tree.order, triangles)):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
