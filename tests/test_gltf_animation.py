"""glTF animations (issue 27): node translation, rotation and scale channels with STEP, LINEAR
and CUBICSPLINE samplers, through a parent, read on the client into the document's rig and
posed on the workers; the object lands where the animation says, computed here by hand and
found in the rendered frame by its silhouette."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from farm.exceptions import SceneError
from farm.scene import parse_scene
from farm.scene.load import load_scene
from tests import commands

# A unit square (two triangles) on node 1, under node 0; node 0 moves along x, node 1 turns
# about z and grows: keys at 0, 1 and 2 s.
SQUARE = np.array([[-0.25, -0.25, 0], [0.25, -0.25, 0], [0.25, 0.25, 0], [-0.25, 0.25, 0]], np.float32)
INDICES = np.array([0, 1, 2, 0, 2, 3], np.uint16)
TIMES = np.array([0.0, 1.0, 2.0], np.float32)
MOVES = np.array([[-1.0, 0, 0], [0.0, 0, 0], [1.0, 0.5, 0]], np.float32)
TURNS = np.array([[0, 0, 0, 1], [0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)], [0, 0, 1, 0]], np.float32)
# CUBICSPLINE: (in-tangent, value, out-tangent) per key
GROWS = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 0, 0], [2, 2, 2], [0, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 0]],
                 np.float32)


def write_gltf(path, interpolation: str = "LINEAR") -> None:
    blobs = [SQUARE.tobytes(), INDICES.tobytes() + b"\0\0", TIMES.tobytes(), MOVES.tobytes(), TURNS.tobytes(),
             GROWS.tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).tolist()
    data = b"".join(blobs)
    views = [{"buffer": 0, "byteOffset": offsets[i], "byteLength": len(blobs[i])} for i in range(len(blobs))]
    accessors = [
        {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3", "min": [-0.25, -0.25, 0],
         "max": [0.25, 0.25, 0]},
        {"bufferView": 1, "componentType": 5123, "count": 6, "type": "SCALAR"},
        {"bufferView": 2, "componentType": 5126, "count": 3, "type": "SCALAR", "min": [0], "max": [2]},
        {"bufferView": 3, "componentType": 5126, "count": 3, "type": "VEC3"},
        {"bufferView": 4, "componentType": 5126, "count": 3, "type": "VEC4"},
        {"bufferView": 5, "componentType": 5126, "count": 9, "type": "VEC3"},
    ]
    gltf = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0, 2]}],
        "nodes": [{"children": [1]}, {"mesh": 0}, {"camera": 0, "translation": [0, 0, 4]}],
        "cameras": [{"type": "perspective", "perspective": {"yfov": 0.8, "znear": 0.1, "aspectRatio": 1.0}}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(data),
                     "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()}],
        "bufferViews": views, "accessors": accessors,
        "animations": [{"name": "slide", "channels": [
            {"sampler": 0, "target": {"node": 0, "path": "translation"}},
            {"sampler": 1, "target": {"node": 1, "path": "rotation"}}],
            "samplers": [{"input": 2, "output": 3, "interpolation": interpolation},
                         {"input": 2, "output": 4, "interpolation": interpolation}]},
            {"name": "grow", "channels": [{"sampler": 0, "target": {"node": 1, "path": "scale"}}],
             "samplers": [{"input": 2, "output": 5, "interpolation": "CUBICSPLINE"}]}],
    }
    path.write_text(json.dumps(gltf))


def expected(seconds: float, interpolation: str) -> tuple[np.ndarray, float, float]:
    """(node 0's translation, node 1's angle about z in degrees, node 1's scale) at
    `seconds`, from the glTF spec's formulas written out for these keys."""
    if seconds >= 2.0:  # held at the last key
        return MOVES[2].astype(float), 180.0, float(GROWS[7, 0])
    k = min(int(seconds), 1)
    u = seconds - k
    if interpolation == "STEP":
        move, angle = MOVES[k].astype(float), 90.0 * k
    else:
        move, angle = MOVES[k] + (MOVES[k + 1] - MOVES[k]) * u, 90.0 * (k + u)
    p0, m0, p1, m1 = GROWS[3 * k + 1, 0], GROWS[3 * k + 2, 0], GROWS[3 * k + 4, 0], GROWS[3 * k + 3, 0]
    scale = (2 * u**3 - 3 * u**2 + 1) * p0 + (u**3 - 2 * u**2 + u) * m0 + (-2 * u**3 + 3 * u**2) * p1 + (u**3 - u**2) * m1
    return move, angle, scale


@pytest.mark.parametrize("interpolation", ["LINEAR", "STEP"])
@pytest.mark.parametrize("seconds", [0.0, 0.25, 0.5, 1.0, 1.75, 2.0, 3.0])
def test_the_pose_is_the_animation_at_that_moment(tmp_path, interpolation, seconds):
    write_gltf(tmp_path / "square.gltf", interpolation)
    scene, document = load_scene(tmp_path / "square.gltf")
    assert scene.animation == (0.0, 2.0)
    (shape,) = parse_scene(document, time=seconds).shapes
    matrix = np.array(shape.transform)
    move, angle, scale = expected(min(seconds, 2.0), interpolation)
    turn = np.radians(angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    assert np.allclose(matrix[:3, 3], move, atol=1e-6)
    assert np.allclose(matrix[:2, :2], rotation * scale, atol=1e-5), (matrix[:2, :2], angle, scale)


def test_one_animation_by_name_or_index(tmp_path):
    write_gltf(tmp_path / "square.gltf")
    _, slide = load_scene(tmp_path / "square.gltf", animation="slide")
    _, grow = load_scene(tmp_path / "square.gltf", animation="1")
    assert np.allclose(np.array(parse_scene(slide, time=1.0).shapes[0].transform)[:2, :2], [[0, -1], [1, 0]], atol=1e-6)
    assert np.allclose(np.array(parse_scene(grow, time=1.0).shapes[0].transform)[:3, :3], np.eye(3) * 2)
    with pytest.raises(SceneError, match="no animation 'walk' \\(it has: slide, grow\\)"):
        load_scene(tmp_path / "square.gltf", animation="walk")


def test_animation_pointers_to_nodes_play_as_their_channels(tmp_path):
    """KHR_animation_pointer's channels at /nodes/N/translation (and rotation, scale,
    weights) are those channels; a pointer at anything else is named in a warning."""
    write_gltf(tmp_path / "plain.gltf")
    gltf = json.loads((tmp_path / "plain.gltf").read_text())
    for channel in gltf["animations"][0]["channels"]:
        target = channel["target"]
        channel["target"] = {"path": "pointer", "extensions": {"KHR_animation_pointer": {
            "pointer": f"/nodes/{target['node']}/{target['path']}"}}}
    gltf["animations"][1]["channels"].append({"sampler": 0, "target": {"path": "pointer", "extensions": {
        "KHR_animation_pointer": {"pointer": "/materials/0/pbrMetallicRoughness/baseColorFactor"}}}})
    gltf["extensionsUsed"] = gltf["extensionsRequired"] = ["KHR_animation_pointer"]
    (tmp_path / "pointer.gltf").write_text(json.dumps(gltf))
    _, plain = load_scene(tmp_path / "plain.gltf")
    scene, pointed = load_scene(tmp_path / "pointer.gltf")
    for seconds in (0.5, 1.5):
        placed = [shape.transform for shape in parse_scene(pointed, time=seconds).shapes]
        assert placed == [shape.transform for shape in parse_scene(plain, time=seconds).shapes]
    assert any("/materials/0/pbrMetallicRoughness/baseColorFactor not animated" in w for w in scene.warnings)


def test_a_damaged_rig_is_one_line(tmp_path):
    write_gltf(tmp_path / "square.gltf")
    _, document = load_scene(tmp_path / "square.gltf")
    document["rig"]["nodes"][1]["parent"] = 5
    with pytest.raises(SceneError, match=r"scene.rig.nodes\[1\].parent"):
        parse_scene(document)
    _, document = load_scene(tmp_path / "square.gltf")
    document["rig"]["nodes"][1]["channels"]["translation"]["times"] = [0.0, 0.0, 1.0]
    with pytest.raises(SceneError, match="key times must increase"):
        parse_scene(document)


def silhouette_centre(image: np.ndarray) -> np.ndarray:
    """The centre of the pixels the square covers: under the white sky a model without
    lights gets, everything else is 1 exactly, and the square (a diffuse grey) is darker."""
    covered = image.mean(axis=2) < 0.95
    rows, columns = np.nonzero(covered)
    return np.array([columns.mean() + 0.5, rows.mean() + 0.5])


def test_a_shot_of_the_model_puts_the_square_where_the_animation_says(farm, tmp_path):
    """Rendered on the farm, frames 0, 12, 24 and 36 at 24 fps: the square's silhouette is
    centred where its node's translation projects through the glTF camera (a pinhole at
    z = 4 looking down -z, 0.8 rad of vertical field), within a pixel."""
    from farm.client.film import read_exr

    write_gltf(tmp_path / "square.gltf")
    size = 64
    result = commands.run("submit", tmp_path / "square.gltf", "--frames", "0-36x12", "--spp", 4, "--resolution",
                          f"{size}x{size}", "-o", tmp_path / "square.exr", "--broker", farm.broker_url,
                          "--animation", "slide")
    assert result.returncode == 0, result.stderr
    focal = size / 2 / math.tan(0.4)
    for number in (0, 12, 24, 36):
        move, _, _ = expected(number / 24, "LINEAR")
        image = read_exr(tmp_path / f"square.{number:04d}.exr")
        projected = np.array([size / 2 + focal * move[0] / 4, size / 2 - focal * move[1] / 4])
        assert np.allclose(silhouette_centre(image), projected, atol=1.0), (number, silhouette_centre(image), projected)


def write_skinned(path) -> None:
    """A strip along x (vertices at x = 0, 1, 2, y = +-0.1) skinned to two joints: joint 0
    at the origin, joint 1 its child at x = 1, which turns 90 degrees about z over one second.
    The vertices at x = 0 follow joint 0, those at 2 joint 1, those at 1 both equally."""
    xs = [0.0, 1.0, 2.0]
    positions = np.array([[x, y, 0] for x in xs for y in (-0.1, 0.1)], np.float32)
    indices = np.array([0, 2, 1, 1, 2, 3, 2, 4, 3, 3, 4, 5], np.uint16)
    joints = np.array([[0, 1, 0, 0]] * 6, np.uint8)
    weights = np.array([[1, 0, 0, 0]] * 2 + [[0.5, 0.5, 0, 0]] * 2 + [[0, 1, 0, 0]] * 2, np.float32)
    binds = np.array([np.eye(4), np.linalg.inv(np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))],
                     np.float32).transpose(0, 2, 1)  # column-major, as glTF stores them
    times = np.array([0.0, 1.0], np.float32)
    turns = np.array([[0, 0, 0, 1], [0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)]], np.float32)
    blobs = [positions.tobytes(), indices.tobytes(), joints.tobytes(), weights.tobytes(), binds.tobytes(),
             times.tobytes(), turns.tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).tolist()
    data = b"".join(blobs)
    kinds = [(5126, 6, "VEC3"), (5123, 12, "SCALAR"), (5121, 6, "VEC4"), (5126, 6, "VEC4"), (5126, 2, "MAT4"),
             (5126, 2, "SCALAR"), (5126, 2, "VEC4")]
    gltf = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0, 1]}],
        "nodes": [{"mesh": 0, "skin": 0}, {"children": [2]}, {"translation": [1, 0, 0]}],
        "skins": [{"joints": [1, 2], "inverseBindMatrices": 4}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "JOINTS_0": 2, "WEIGHTS_0": 3}, "indices": 1}]}],
        "buffers": [{"byteLength": len(data),
                     "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()}],
        "bufferViews": [{"buffer": 0, "byteOffset": offsets[i], "byteLength": len(b)} for i, b in enumerate(blobs)],
        "accessors": [{"bufferView": i, "componentType": c, "count": n, "type": t} for i, (c, n, t) in enumerate(kinds)],
        "animations": [{"channels": [{"sampler": 0, "target": {"node": 2, "path": "rotation"}}],
                        "samplers": [{"input": 5, "output": 6, "interpolation": "LINEAR"}]}],
    }
    gltf["accessors"][0].update(min=[0, -0.1, 0], max=[2, 0.1, 0])
    path.write_text(json.dumps(gltf))


@pytest.mark.parametrize("seconds, expected", [
    (0.0, [[0, -0.1], [0, 0.1], [1, -0.1], [1, 0.1], [2, -0.1], [2, 0.1]]),
    # joint 1 turned 90 degrees about (1, 0): a point (1 + dx, dy) goes to (1 - dy, dx); the
    # middle pair is the mean of both joints' places
    (1.0, [[0, -0.1], [0, 0.1], [1.05, -0.05], [0.95, 0.05], [1.1, 1.0], [0.9, 1.0]]),
])
def test_a_skinned_mesh_follows_its_joints(tmp_path, seconds, expected):
    from farm.protocol.assets import FolderAssets
    from farm.scene.files import ReadOnce, shape_meshes

    write_skinned(tmp_path / "strip.gltf")
    scene, document = load_scene(tmp_path / "strip.gltf")
    assert scene.animation == (0.0, 1.0) and not [w for w in scene.warnings if "not supported" in w]
    posed = parse_scene(document, time=seconds)
    (mesh,) = shape_meshes(posed, ReadOnce(FolderAssets(tmp_path, posed.assets)))
    assert np.allclose(mesh.vertices[:, :2], expected, atol=1e-6), mesh.vertices


def write_morphing(path, animated: bool = True, tangents: bool = False) -> None:
    """The square of write_gltf with one morph target that lifts its top edge by 1: weights
    0 at 0 s and 1 at 1 s where `animated`, else 0.25 from the mesh. With `tangents`, the
    square has normals (+z) and tangents (+x, handedness -1), and the target turns every
    tangent towards +y by an offset of (0, 1, 0)."""
    offsets = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 0]], np.float32)
    times, keys = np.array([0.0, 1.0], np.float32), np.array([0.0, 1.0], np.float32)
    blobs = [SQUARE.tobytes(), INDICES.tobytes() + b"\0\0", offsets.tobytes(), times.tobytes(), keys.tobytes()]
    kinds = [(5126, 4, "VEC3"), (5123, 6, "SCALAR"), (5126, 4, "VEC3"), (5126, 2, "SCALAR"), (5126, 2, "SCALAR")]
    if tangents:
        blobs += [np.tile(np.float32([0, 0, 1]), (4, 1)).tobytes(), np.tile(np.float32([1, 0, 0, -1]), (4, 1)).tobytes(),
                  np.tile(np.float32([0, 1, 0]), (4, 1)).tobytes()]
        kinds += [(5126, 4, "VEC3"), (5126, 4, "VEC4"), (5126, 4, "VEC3")]
    starts = np.cumsum([0] + [len(b) for b in blobs]).tolist()
    data = b"".join(blobs)
    gltf = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "targets": [{"POSITION": 2}]}],
                    "weights": [0.25]}],
        "buffers": [{"byteLength": len(data),
                     "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()}],
        "bufferViews": [{"buffer": 0, "byteOffset": starts[i], "byteLength": len(b)} for i, b in enumerate(blobs)],
        "accessors": [{"bufferView": i, "componentType": c, "count": n, "type": t} for i, (c, n, t) in enumerate(kinds)],
    }
    gltf["accessors"][0].update(min=[-0.25, -0.25, 0], max=[0.25, 0.25, 0])
    if tangents:
        primitive = gltf["meshes"][0]["primitives"][0]
        primitive["attributes"].update(NORMAL=5, TANGENT=6)
        primitive["targets"][0]["TANGENT"] = 7
    if animated:
        gltf["animations"] = [{"channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}],
                               "samplers": [{"input": 3, "output": 4, "interpolation": "LINEAR"}]}]
    path.write_text(json.dumps(gltf))


@pytest.mark.parametrize("animated, seconds, lift", [(True, 0.0, 0.0), (True, 0.5, 0.5), (True, 2.0, 1.0),
                                                     (False, 0.0, 0.25)])
def test_morph_targets_move_by_their_weights(tmp_path, animated, seconds, lift):
    from farm.protocol.assets import FolderAssets
    from farm.scene.files import ReadOnce, shape_meshes

    write_morphing(tmp_path / "morph.gltf", animated)
    scene, document = load_scene(tmp_path / "morph.gltf")
    assert scene.animation == ((0.0, 1.0) if animated else None)
    posed = parse_scene(document, time=seconds)
    (mesh,) = shape_meshes(posed, ReadOnce(FolderAssets(tmp_path, posed.assets)))
    expected = SQUARE.astype(float) + np.array([[0, 0, 0], [0, 0, 0], [0, lift, 0], [0, lift, 0]])
    assert np.allclose(mesh.vertices, expected, atol=1e-6), mesh.vertices


@pytest.mark.parametrize("seconds, turn", [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)])
def test_morph_targets_turn_the_tangents_too(tmp_path, seconds, turn):
    """A target's TANGENT offsets (glTF 2.0, 3.7.2.2) move the tangents a normal map reads,
    their handedness kept."""
    from farm.protocol.assets import FolderAssets
    from farm.scene.files import ReadOnce, shape_meshes

    write_morphing(tmp_path / "morph.gltf", animated=True, tangents=True)
    scene, document = load_scene(tmp_path / "morph.gltf")
    posed = parse_scene(document, time=seconds)
    (mesh,) = shape_meshes(posed, ReadOnce(FolderAssets(tmp_path, posed.assets)))
    direction = np.array([1.0, turn, 0.0]) / np.hypot(1.0, turn)
    assert np.allclose(mesh.tangents, np.tile([*direction, -1.0], (4, 1)), atol=1e-6), mesh.tangents


def test_a_light_on_a_moving_node_follows_it(tmp_path):
    """A point light on node 0 of the square's file (which slides along x): at each moment it
    is where the node is."""
    write_gltf(tmp_path / "square.gltf")
    gltf = json.loads((tmp_path / "square.gltf").read_text())
    gltf["extensionsUsed"] = ["KHR_lights_punctual"]
    gltf["extensions"] = {"KHR_lights_punctual": {"lights": [{"type": "point", "intensity": 10.0}]}}
    gltf["nodes"][0]["extensions"] = {"KHR_lights_punctual": {"light": 0}}
    (tmp_path / "square.gltf").write_text(json.dumps(gltf))
    _, document = load_scene(tmp_path / "square.gltf")
    for seconds in (0.0, 0.5, 2.0):
        (light,) = parse_scene(document, time=seconds).lights
        assert np.allclose(light.position, expected(seconds, "LINEAR")[0], atol=1e-6), (seconds, light.position)
