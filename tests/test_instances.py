"""Instancing and the two-level BVH (farm.scene.instances, FARM_INSTANCES in kernels/trace.h):
a mesh used by several shapes is stored once and placed by instances; rays find what a
brute-force test of every placed triangle finds; the image is the image of the copies;
a later frame of a shot rebuilds only its top level."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from farm.scene import instances, parse_scene
from farm.scene.library import Library
from farm.scene.pack import pack
from tests import frames, rays


def ball(rings: int = 14, segments: int = 20, radius: float = 0.3) -> dict:
    """A UV sphere as an inline mesh with vertex normals and uvs (2 x rings x segments triangles)."""
    theta = np.linspace(0, np.pi, rings + 1)
    phi = np.linspace(0, 2 * np.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    normals = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], axis=-1).reshape(-1, 3)
    uvs = np.stack([p / (2 * np.pi), t / np.pi], axis=-1).reshape(-1, 2)
    index = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    a, b, c, d = index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]
    triangles = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return {"vertices": (normals * radius).round(6).tolist(), "normals": normals.round(6).tolist(),
            "uvs": uvs.round(6).tolist(), "triangles": triangles.tolist()}


def placed(mesh: dict, material: str, **transform) -> dict:
    return {"type": "mesh", "material": material, **mesh, "transform": transform}


def scene_of_copies(width: int = 48, spp: int = 16) -> dict:
    """Three uses of one ball (moved; turned and stretched; mirrored), two of a glowing one
    (the only lights: area lights placed by instances), a floor."""
    grey, glow = ball(), ball(8, 16, 0.15)
    return {
        "version": 1,
        "camera": {"position": [0, 0.6, 3.2], "look_at": [0, 0.1, 0], "fov": 45},
        "film": {"width": width, "height": width, "spp": spp},
        "materials": {"grey": {"reflectance": [0.7, 0.6, 0.5]}, "floor": {"reflectance": 0.5},
                      "lamp": {"reflectance": 0.0, "emission": [6.0, 6.0, 5.0]}},
        "shapes": [
            {"type": "rectangle", "material": "floor",
             "transform": {"rotate": {"axis": [1, 0, 0], "angle": -90}, "scale": 3, "translate": [0, -0.35, 0]}},
            placed(grey, "grey", translate=[-0.8, 0, 0]),
            placed(grey, "grey", scale=[1.4, 0.8, 1.0], rotate={"axis": [0, 0, 1], "angle": 30}, translate=[0, 0.05, 0]),
            placed(grey, "grey", scale=[-1.0, 1.0, 1.0], translate=[0.8, 0, 0.1]),
            placed(glow, "lamp", translate=[-0.5, 1.1, 0.6]),
            placed(glow, "lamp", scale=0.7, translate=[0.6, 1.0, 0.4]),
        ],
    }


def world_corners(packed) -> np.ndarray:
    """Every placed triangle in world space, from the levels' corners and the instances'
    matrices: what the kernel's walk must find, computed without it."""
    if len(packed.instances) == 0:
        return packed.corners.astype(np.float64)
    out = []
    starts = _level_triangle_ranges(packed)
    for instance in packed.instances:
        first, end = starts[int(instance["info"][3])]
        m = np.stack([instance[f"to_world{row}"] for row in range(3)]).astype(np.float64)
        corners = packed.corners[first:end].astype(np.float64)
        out.append(corners @ m[:, :3].T + m[:, 3])
    return np.concatenate(out)


def _level_triangle_ranges(packed) -> dict[int, tuple[int, int]]:
    """Each level's triangles [first, end): the triangles its packs name."""
    ranges = {}
    for instance in packed.instances:
        level = int(instance["info"][3])
        if level in ranges:
            continue
        prims = _prims_under(packed, int(instance["info"][0]))
        prims = prims[prims < len(packed.triangle_data)]
        ranges[level] = (int(prims.min()), int(prims.max()) + 1) if len(prims) else (0, 0)
    return ranges


def _prims_under(packed, root: int) -> np.ndarray:
    stack, found = [root], []
    while stack:
        node = packed.nodes[stack.pop()]
        for child, count in zip(node["child"], node["count"]):
            if count == -1:
                stack.append(int(child))
            elif count > 0:
                found.append(packed.packs["prim"][child:child + count].ravel())
    prims = np.concatenate(found) if found else np.zeros(0, np.int64)
    return prims[prims >= 0]


@pytest.fixture
def instancing(monkeypatch):
    """Instance every repeated mesh and every moving shape, however small the scene: the
    mechanism, not the policy that keeps small scenes in one level."""
    monkeypatch.setattr(instances, "INSTANCED_COPIES_MIN", 0)
    monkeypatch.setattr(instances, "MOVING_WORLD_MIN", 0)


def flattened(monkeypatch):
    """Pack with no instancing at all: every use a copy in world space, as before instances."""
    monkeypatch.setattr(instances, "INSTANCE_MIN_TRIANGLES", 10**9)
    monkeypatch.setattr(instances, "MOVING_WORLD_MIN", 10**9)


def triangles_of(shape: dict) -> int:
    """Triangles a mesh packs to alone (a ball's degenerate pole triangles are dropped)."""
    document = scene_of_copies()
    document["shapes"] = [shape]
    return len(pack(parse_scene(document)).triangle_data)


def test_a_mesh_used_by_several_shapes_is_stored_once(instancing):
    document = scene_of_copies()
    packed = pack(parse_scene(document))
    ball_triangles, glow_triangles = triangles_of(document["shapes"][1]), triangles_of(document["shapes"][4])
    assert len(packed.instances) == 6  # the world (the floor) and five placements
    assert len(packed.triangle_data) == 2 + ball_triangles + glow_triangles  # each mesh once
    mirrored = packed.instances["info"][:, 2] & 2
    assert list(mirrored) == [0, 0, 0, 2, 0, 0]
    assert len(packed.lights) == 2 * glow_triangles  # every placed glowing triangle is a light
    assert np.isclose(packed.lights["pick"][:, 0].sum(), 1.0)


def test_rays_find_what_brute_force_finds_in_every_instance(instancing, device):
    packed = pack(parse_scene(scene_of_copies()))
    rng = np.random.default_rng(7)
    origins = rng.uniform(-1.5, 1.5, (3000, 3))
    directions = rng.normal(size=(3000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    t, _ = frames.renderer(device, packed).trace(origins, directions)
    expected = rays.nearest_hits(world_corners(packed), origins, directions)
    hit = np.isfinite(expected)
    assert hit.sum() > 500 and (~hit).sum() > 300
    assert np.array_equal(np.isfinite(t), hit)
    assert np.allclose(t[hit], expected[hit], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bumpy", [False, True])
def test_instances_render_the_image_of_their_copies(instancing, device, monkeypatch, bumpy):
    """Normals turned by each instance (a mirror among them), tangents of a normal map too,
    lights placed by instances: the image of the copies baked into world space, up to float
    rounding's noise."""
    document = scene_of_copies(spp=32)
    if bumpy:
        document["textures"] = {"bumps": {"type": "checkerboard", "color0": [0.8, 0.5, 1.0],
                                          "color1": [0.2, 0.5, 1.0], "scale": [6, 6]}}
        document["materials"]["grey"]["normal_map"] = {"texture": "bumps"}
    instanced = frames.reference(device, document)
    flattened(monkeypatch)
    assert len(pack(parse_scene(copy.deepcopy(document))).instances) == 0
    copies = frames.reference(device, document)
    assert instanced.mean() > 0.05
    assert abs(instanced.mean() - copies.mean()) < 0.002 * copies.mean()
    blocks = lambda image: image.reshape(6, 8, 6, 8, 3).mean(axis=(1, 3))  # noqa: E731
    assert np.abs(blocks(instanced) - blocks(copies)).max() < 0.03 * copies.mean()


def write_obj(path, mesh: dict) -> None:
    lines = [f"v {x} {y} {z}" for x, y, z in mesh["vertices"]]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh["triangles"]]
    path.write_text("\n".join(lines) + "\n")


def test_ten_thousand_instances_cost_little_more_than_the_mesh(device, tmp_path):
    """One mesh (an OBJ file, as a 10,000-instance scene names its mesh) placed 10,000 times:
    its triangles once, 10,000 small placements and a top level over them."""
    write_obj(tmp_path / "ball.obj", ball(40, 60))
    one = scene_of_copies(width=32, spp=1)
    one["shapes"] = [{"type": "mesh", "file": "ball.obj", "material": "grey"}]  # the mesh alone
    one["lights"] = [{"type": "sun", "direction": [0, -0.3, -1], "irradiance": [3, 3, 3]}]
    many = copy.deepcopy(one)
    grid = np.stack(np.meshgrid(np.arange(100), np.arange(100), indexing="ij"), -1).reshape(-1, 2)
    many["shapes"] = [{"type": "mesh", "file": "ball.obj", "material": "grey",
                       "transform": {"scale": 0.05, "translate": [x * 0.02 - 1, y * 0.02 - 1, 0]}} for x, y in grid]
    packed_one, packed_many = (packed_file(tmp_path, document) for document in (one, many))
    assert len(packed_many.instances) == 10_000
    assert len(packed_many.triangle_data) == len(packed_one.triangle_data) > 4_000
    size = lambda p: sum(a.nbytes for a in p.buffers().values())  # noqa: E731
    # a placement (112 bytes) and its share of the top level (about 120): 2.3 MB in all
    assert size(packed_many) - size(packed_one) < 10_000 * 250
    image = frames.renderer(device, packed_many).render_frame()
    assert (image.sum(axis=2) > 0).mean() > 0.3  # the grid of balls fills the frame


def packed_file(folder, document: dict):
    import json

    from farm.protocol.assets import FolderAssets
    from farm.scene.load import load_scene

    (folder / "scene.json").write_text(json.dumps(document))
    scene, _ = load_scene(folder / "scene.json")
    return pack(scene, FolderAssets(folder, scene.assets))


def test_small_scenes_stay_in_one_level(tmp_path):
    """The policy: copies of a few hundred triangles, or a shot whose static world is small,
    render faster in one level; a world of MOVING_WORLD_MIN triangles makes its movers instances."""
    from farm.protocol.assets import FolderAssets
    from farm.scene.files import ReadOnce
    from farm.scene.instances import layout

    assert not layout(parse_scene(scene_of_copies())).instanced
    assert not layout(parse_scene(animated_document(), time=0.5)).instanced
    faces = "\n".join(["v 0 0 0", "v 1 0 0", "v 0 1 0"] + ["f 1 2 3"] * instances.MOVING_WORLD_MIN) + "\n"
    (tmp_path / "big.obj").write_text(faces)
    document = animated_document()
    document["shapes"].append({"type": "mesh", "file": "big.obj", "material": "floor"})
    scene = parse_scene(document, time=0.5)
    plan = layout(scene, ReadOnce(FolderAssets(tmp_path)))
    assert plan.instanced and [shape for _, shape in plan.placements] == [None, 2]  # the world, the moving ball


def animated_document() -> dict:
    """A static ball used once (the world) and one that moves: a shot's later frame keeps
    every bottom level and rebuilds the top."""
    document = scene_of_copies(width=24, spp=2)
    document["shapes"] = document["shapes"][:2] + [{
        "type": "mesh", "material": "grey", **ball(),
        "keyframes": [{"time": 0, "translate": [0, 0, 0]}, {"time": 2, "translate": [0.5, 0.2, 0]}],
    }] + document["shapes"][4:]
    return document


def test_a_later_frame_of_a_shot_rebuilds_only_its_top_level(instancing, device):
    document = animated_document()
    library = Library(keep=2)
    first = pack(parse_scene(copy.deepcopy(document), time=0.0), library=library)
    built = library.built
    later = pack(parse_scene(copy.deepcopy(document), time=1.0), library=library)
    assert built == 3 and library.built == built, "the world, the moving ball and the lamp: built once"
    assert later.nodes is first.nodes and later.packs is first.packs and later.triangle_data is first.triangle_data
    assert "nodes" in later.shared
    assert not np.array_equal(first.instances, later.instances), "the ball moved"
    # Packed afresh, the later frame is the same scene: a worker that joins mid-shot renders the same bits.
    alone = pack(parse_scene(copy.deepcopy(document), time=1.0))
    for name, array in later.buffers().items():
        assert np.array_equal(array, alone.buffers()[name]), name
    assert np.array_equal(frames.renderer(device, later).render_frame(), frames.renderer(device, alone).render_frame())


@pytest.mark.parametrize("moment", [0.5, 1.5])
def test_a_moving_shape_renders_where_its_still_copy_does(instancing, device, moment):
    """The moving ball through its instance against the frame's still document (the ball
    baked into the world), within rounding's noise."""
    from farm.scene.animation import at_time

    document = animated_document()
    document["film"] = {"width": 48, "height": 48, "spp": 16}
    moving = frames.reference(device, document, time=moment)
    still = frames.reference(device, at_time(copy.deepcopy(document), moment))
    assert abs(moving.mean() - still.mean()) < 0.002 * still.mean()
    assert np.abs(moving - still).mean() < 0.01 * still.mean()
