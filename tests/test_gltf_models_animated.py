"""Khronos sample models with animations (tests/models: InterpolationTest, BoxAnimated,
AnimatedTriangle, AnimatedMorphCube, RiggedSimple; each folder says where it came from and
its licence): every mesh is placed, morphed and skinned at a moment where the glTF 2.0
specification says, worked out here by code of the test's own (the file's JSON and buffer
read with struct and numpy, the samplers evaluated with the spec's formulas), not by farm's
reader or evaluator."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from farm.scene import parse_scene
from farm.scene.load import load_scene

MODELS = Path(__file__).parent / "models"
FILES = {"InterpolationTest": "InterpolationTest.glb", "BoxAnimated": "BoxAnimated.gltf",
         "AnimatedTriangle": "AnimatedTriangle.gltf"}


def read_gltf(path: Path) -> tuple[dict, list[bytes]]:
    data = path.read_bytes()
    if path.suffix == ".glb":
        length = struct.unpack_from("<I", data, 12)[0]
        gltf = json.loads(data[20:20 + length])
        binary = data[20 + length + 8:]
        buffers = [binary if "uri" not in b else None for b in gltf["buffers"]]
    else:
        gltf = json.loads(data)
        buffers = [base64.b64decode(b["uri"].partition(",")[2]) for b in gltf["buffers"]]
    return gltf, buffers


def values(gltf: dict, buffers: list[bytes], index: int) -> np.ndarray:
    accessor = gltf["accessors"][index]
    view = gltf["bufferViews"][accessor["bufferView"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[accessor["type"]]
    code, size = {5126: ("f", 4), 5123: ("H", 2), 5121: ("B", 1)}[accessor["componentType"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    stride = view.get("byteStride", size * width)
    raw = buffers[view["buffer"]]
    return np.array([struct.unpack_from(f"<{width}{code}", raw, start + i * stride) for i in range(accessor["count"])],
                    float)


def sample(times: np.ndarray, output: np.ndarray, how: str, t: float, rotation: bool) -> np.ndarray:
    cubic = how == "CUBICSPLINE"
    keys = output.reshape(len(times), 3, -1)[:, 1] if cubic else output
    if t <= times[0]:
        return keys[0]
    if t >= times[-1]:
        return keys[-1]
    k = int(np.searchsorted(times, t, side="right")) - 1
    dt, u = times[k + 1] - times[k], (t - times[k]) / (times[k + 1] - times[k])
    if how == "STEP":
        return keys[k]
    if cubic:
        triples = output.reshape(len(times), 3, -1)
        v = ((2 * u**3 - 3 * u**2 + 1) * triples[k, 1] + (u**3 - 2 * u**2 + u) * dt * triples[k, 2]
             + (-2 * u**3 + 3 * u**2) * triples[k + 1, 1] + (u**3 - u**2) * dt * triples[k + 1, 0])
    elif rotation:
        a, b = keys[k], keys[k + 1]
        if a @ b < 0:
            b = -b
        theta = np.arccos(min(1.0, a @ b))
        v = a + (b - a) * u if theta < 1e-3 else (np.sin((1 - u) * theta) * a + np.sin(u * theta) * b) / np.sin(theta)
    else:
        v = keys[k] + (keys[k + 1] - keys[k]) * u
    return v / np.linalg.norm(v) if rotation else v


def local(node: dict, overrides: dict) -> np.ndarray:
    if "matrix" in node and not overrides:
        return np.array(node["matrix"], float).reshape(4, 4).T
    t = overrides.get("translation", np.array(node.get("translation", [0, 0, 0]), float))
    x, y, z, w = overrides.get("rotation", np.array(node.get("rotation", [0, 0, 0, 1]), float))
    s = overrides.get("scale", np.array(node.get("scale", [1, 1, 1]), float))
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r * s, t
    return m


def node_worlds(gltf: dict, buffers: list[bytes], t: float) -> dict[int, np.ndarray]:
    """The world matrix of every node of the scene at `t`, all animations playing."""
    overrides = channel_values(gltf, buffers, t)
    worlds, stack = {}, [(n, np.eye(4)) for n in gltf["scenes"][gltf.get("scene", 0)]["nodes"]]
    while stack:
        index, parent = stack.pop()
        worlds[index] = parent @ local(gltf["nodes"][index], overrides.get(index, {}))
        stack += [(c, worlds[index]) for c in gltf["nodes"][index].get("children", [])]
    return worlds


def channel_values(gltf: dict, buffers: list[bytes], t: float) -> dict[int, dict]:
    overrides: dict[int, dict] = {}
    for animation in gltf.get("animations", []):
        for channel in animation["channels"]:
            sampler = animation["samplers"][channel["sampler"]]
            path = channel["target"]["path"]
            times, output = values(gltf, buffers, sampler["input"])[:, 0], values(gltf, buffers, sampler["output"])
            if path == "weights":
                output = output.reshape(len(times) * (3 if sampler.get("interpolation") == "CUBICSPLINE" else 1), -1)
            overrides.setdefault(channel["target"]["node"], {})[path] = sample(
                times, output, sampler.get("interpolation", "LINEAR"), t, path == "rotation")
    return overrides


def mesh_worlds(gltf: dict, buffers: list[bytes], t: float) -> list[np.ndarray]:
    """The world matrix of every triangle primitive's node at `t`, all animations playing."""
    overrides: dict[int, dict] = {}
    overrides.update(channel_values(gltf, buffers, t))
    worlds, stack = [], [(n, np.eye(4)) for n in gltf["scenes"][gltf.get("scene", 0)]["nodes"]]
    while stack:
        index, parent = stack.pop()
        node = gltf["nodes"][index]
        world = parent @ local(node, overrides.get(index, {}))
        if "mesh" in node:
            worlds += [world] * sum(p.get("mode", 4) == 4 for p in gltf["meshes"][node["mesh"]]["primitives"])
        stack += [(c, world) for c in node.get("children", [])]
    return worlds


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_mesh_of_a_khronos_model_is_where_its_animation_puts_it(name):
    path = MODELS / name / FILES[name]
    gltf, buffers = read_gltf(path)
    scene, document = load_scene(path)
    first, last = scene.animation
    assert last > first
    middle = (first + last) / 2
    still = [np.allclose(a, b) for a, b in zip(mesh_worlds(gltf, buffers, first), mesh_worlds(gltf, buffers, middle))]
    assert not all(still), "nothing moves: the test would prove nothing"
    for t in np.linspace(first - 0.1, last + 0.1, 9):
        farm = [np.array(shape.transform) for shape in parse_scene(document, time=float(t)).shapes]
        expected = mesh_worlds(gltf, buffers, float(t))
        assert len(farm) == len(expected), (name, t)
        for world in expected:  # each expected placement is one of farm's shapes
            match = next((i for i, m in enumerate(farm) if np.allclose(m, world, atol=1e-5)), None)
            assert match is not None, (name, t, world.round(4), [m.round(4) for m in farm])
            farm.pop(match)


def farm_vertices(path: Path, t: float) -> np.ndarray:
    """The mesh of a one-mesh model as farm's worker would pack it at `t` (object space for a
    morphed mesh, world space for a skinned one)."""
    from farm.protocol.assets import FolderAssets
    from farm.scene.files import ReadOnce, shape_meshes

    _, document = load_scene(path)
    posed = parse_scene(document, time=t)
    (mesh,) = shape_meshes(posed, ReadOnce(FolderAssets(path.parent, posed.assets)))
    return mesh.vertices


@pytest.mark.parametrize("t", [0.0, 0.8, 2.4, 3.1, 4.2])
def test_animated_morph_cube_moves_by_its_weights(t):
    """AnimatedMorphCube: two targets ("thin", "angle") whose weights one LINEAR channel
    animates; each vertex is its rest position plus each target's offset times its weight."""
    path = MODELS / "AnimatedMorphCube" / "AnimatedMorphCube.glb"
    gltf, buffers = read_gltf(path)
    primitive = gltf["meshes"][0]["primitives"][0]
    weights = channel_values(gltf, buffers, t)[0]["weights"]
    expected = values(gltf, buffers, primitive["attributes"]["POSITION"])
    for weight, target in zip(weights, primitive["targets"]):
        expected = expected + weight * values(gltf, buffers, target["POSITION"])
    assert np.allclose(farm_vertices(path, t), expected, atol=1e-6)
    if 0.5 < t < 4.0:
        assert np.abs(expected - values(gltf, buffers, primitive["attributes"]["POSITION"])).max() > 1e-3


@pytest.mark.parametrize("t", [0.0, 0.5, 1.0417, 2.0])
def test_rigged_simple_bends_with_its_bones(t):
    """RiggedSimple: a cylinder skinned to two bones, the second turning; each vertex is the
    blend of its joints' world matrices times their inverse bind matrices (glTF 3.7.3)."""
    path = MODELS / "RiggedSimple" / "RiggedSimple.glb"
    gltf, buffers = read_gltf(path)
    skin = gltf["skins"][0]
    primitive = gltf["meshes"][0]["primitives"][0]
    worlds = node_worlds(gltf, buffers, t)
    binds = values(gltf, buffers, skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
    joint_matrices = [worlds[joint] @ bind for joint, bind in zip(skin["joints"], binds)]
    positions = values(gltf, buffers, primitive["attributes"]["POSITION"])
    joints = values(gltf, buffers, primitive["attributes"]["JOINTS_0"]).astype(int)
    weights = values(gltf, buffers, primitive["attributes"]["WEIGHTS_0"])
    expected = np.array([sum(w * (joint_matrices[j] @ np.append(p, 1.0))[:3] for j, w in zip(js, ws))
                         for p, js, ws in zip(positions, joints, weights)])
    assert np.allclose(farm_vertices(path, t), expected, atol=1e-5)
    if t == 1.0417:  # the second bone near its widest turn: the cylinder is bent, not at rest
        assert np.abs(expected - farm_vertices(path, 0.0)).max() > 0.05
