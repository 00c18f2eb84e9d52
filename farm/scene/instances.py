"""Bottom levels and their instances: the two-level BVH of scenes that reuse a mesh or move.

A scene's shapes fall into bottom levels (`Geometry`: primitives in their own space, with
their own wide BVH): one for everything static and used once, baked into world space as a
still scene always was (`world`), and one per mesh used by several shapes (glTF nodes that
share a mesh; a JSON mesh given again with another transform) or per shape that moves or
deforms in a shot. Each use is an instance: a bottom level under a transform. The kernel
(FARM_INSTANCES, kernels/trace.h) walks a top-level BVH over the instances' boxes and, in
each instance it enters, the bottom level with the ray taken into its space: as pbrt-v4's
TransformedPrimitive and Embree's two-level scenes do. A scene with no instance but its
world keeps the one-level kernel and its bits.

So a mesh used 10,000 times is stored once, and a later frame of a shot whose shapes move
rigidly rebuilds only the top level: its bottom levels come from a `Library` that a worker
keeps between frames, and their device buffers stay uploaded (farm.worker.render).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from farm.exceptions import SceneError
from farm.scene import bvh as bvh_builder
from farm.scene.files import shape_meshes
from farm.scene.geometry import flatten_bvh, gather_triangles, primitive_bounds, sphere_entry, triangle_arrays
from farm.scene.layout import (
    INSTANCE, INSTANCE_IDENTITY, INSTANCE_MIRRORED, INSTANCE_MOVING, MOTION, NODE_INSTANCE, NODE_TOP, SPHERE,
    STACK_SIZE, TRIANGLE,
)
from farm.scene.model import IDENTITY, Box, Mesh, Rectangle, Scene, Sphere

# The two-level walk costs render speed: 0.85-0.88x the one-level walk on the animated
# Cornell box (one node more a ray, and the walk split in two loops), 0.96x with a
# 1M-triangle world (`farm bench --instances`). So a scene is instanced only where that buys
# more than it costs (Embree and Cycles likewise copy small instances):
# - a static mesh used by several shapes, where its copies would hold this many triangles
#   in all (memory and BVH building; a mesh of fewer than INSTANCE_MIN_TRIANGLES never);
INSTANCED_COPIES_MIN = 100_000
INSTANCE_MIN_TRIANGLES = 256
# - a shot's moving and deforming shapes, where the static world holds this many triangles:
#   rebuilding a smaller world every frame costs less than the slower walk (about 1 s a
#   worker and frame at 200,000 triangles, 6 s at 1,000,000).
MOVING_WORLD_MIN = 200_000
IDENTITY_MATRIX = np.eye(4)


@dataclass(frozen=True)
class Geometry:
    """One bottom level: triangles and spheres in its own space and their wide BVH (its own
    numbering: root node 0, pack 0, triangle 0, sphere 0). A triangle's info.y is its rank
    among the level's emissive triangles (-1 for none): its light index, less its
    instance's first."""

    nodes: np.ndarray
    packs: np.ndarray
    triangles: np.ndarray  # the packs' source rows (host side)
    triangle_data: np.ndarray
    normals: np.ndarray
    extras: np.ndarray
    spheres: np.ndarray
    corners: np.ndarray  # (triangles, 3, 3) float64
    lower: np.ndarray  # the root's box
    upper: np.ndarray
    stack: int  # traversal stack entries its tree can need


@dataclass(frozen=True)
class Layout:
    """How a scene's shapes fall into bottom levels: `groups[g]` the shapes of level g
    (level 0 the world, where `world`), `placements` each instance as (level, shape whose
    transform places it, or None for the world's identity: the first, where there is one)."""

    groups: list[list[int]]
    placements: list[tuple[int, int | None]]

    @property
    def instanced(self) -> bool:
        return any(shape is not None for _, shape in self.placements)

    @property
    def world(self) -> bool:
        return bool(self.placements) and self.placements[0][1] is None


def layout(scene: Scene, assets=None, blurred: bool = False) -> Layout:
    """Which shapes are instanced (see INSTANCED_COPIES_MIN and MOVING_WORLD_MIN): static
    meshes used by several shapes whose copies are large, and the shapes that move when the
    static world is large. A sphere that emits stays in the world (light sampling reads it
    there); so does a shape whose transform cannot be inverted. `assets` (a ReadOnce) lets
    an OBJ's triangles be counted. `blurred` (an open shutter): every moving shape is an
    instance, which the kernel places at each sample's time."""
    emissive = {name for name, material in scene.materials.items() if material.emissive}
    moving = set(scene.moving)
    counts = [_triangles(shape, assets, scene.assets.get(getattr(shape, "file", None) or "")) for shape in scene.shapes]
    keys = [_placeless(shape) for shape in scene.shapes]  # equal for every use of one mesh
    still_meshes = {i for i, shape in enumerate(scene.shapes) if isinstance(shape, Mesh) and i not in moving}
    uses = Counter(keys[i] for i in still_meshes)
    copies = Counter()
    for index in sorted(still_meshes):
        if uses[keys[index]] > 1:
            copies[keys[index]] += counts[index]
    repeated = [index in still_meshes and uses[keys[index]] > 1 and counts[index] >= INSTANCE_MIN_TRIANGLES
                and copies[keys[index]] >= INSTANCED_COPIES_MIN for index in range(len(scene.shapes))]
    static = sum(counts[i] for i in range(len(scene.shapes)) if i not in moving and not repeated[i])
    groups: list[list[int]] = [[]]
    placements: list[tuple[int, int | None]] = []
    level_of: dict = {}
    for index, shape in enumerate(scene.shapes):
        key = keys[index]
        instanced = repeated[index] or (index in moving and (blurred or static >= MOVING_WORLD_MIN))
        if not instanced or (isinstance(shape, Sphere) and shape.material in emissive) or not _invertible(shape):
            groups[0].append(index)
            continue
        if key not in level_of or deforms(shape):
            level_of[key] = len(groups)
            groups.append([index])
        placements.append((level_of[key], index))
    if groups[0]:
        placements.insert(0, (0, None))
    else:  # every shape instanced: no world level
        groups.pop(0)
        placements = [(level - 1, shape) for level, shape in placements]
    return Layout(groups, placements)


def deforms(shape) -> bool:
    """Whether the shape's own vertices move (a skin, morph weights): a level of its own."""
    return isinstance(shape, Mesh) and (bool(shape.skin) or (bool(shape.morph) and any(shape.morph[1])))


def _placeless(shape):
    """The shape with its placement taken away: equal for every use of one mesh."""
    return replace(shape, transform=IDENTITY)


_faces_of: OrderedDict[str, int] = OrderedDict()  # an OBJ's face lines by its digest: read once a process


def _triangles(shape, assets=None, digest: str | None = None) -> int:
    """About how many triangles a shape makes: a mesh's, where its description says (inline,
    a binary layout's indices or positions) or its OBJ's face lines (read through `assets`,
    which keeps them for loading; a polygon counts one); a box 12, a rectangle 2."""
    if isinstance(shape, Box):
        return 12
    if isinstance(shape, Rectangle):
        return 2
    if not isinstance(shape, Mesh):
        return 1
    if shape.file is None:
        return len(shape.triangles)
    layout_of = shape.layout()
    part = layout_of.get("indices") or layout_of.get("positions")
    if part:
        return part["count"] // 3
    if digest in _faces_of:
        return _faces_of[digest]
    if assets is None:
        return INSTANCE_MIN_TRIANGLES
    data = assets.read(shape.file)
    faces = data.count(b"\nf ") + data.startswith(b"f ")
    if digest is not None:
        _faces_of[digest] = faces
        while len(_faces_of) > 64:
            _faces_of.popitem(last=False)
    return faces


def _invertible(shape) -> bool:
    m = np.array(shape.transform, np.float64)
    return abs(float(np.linalg.det(m[:3, :3]))) > 1e-300 and np.isfinite(np.linalg.inv(m[:3, :3])).all()


def build_geometry(scene: Scene, indices: list[int], material_index: dict[str, int], emitted: np.ndarray,
                   assets, timings: dict, placed: bool) -> Geometry:
    """The bottom level of shapes `indices`: in world space (`placed`, the world level) or in
    the space of the first shape (its transform left to the instances)."""
    shapes = [scene.shapes[i] for i in indices]
    meshes, spheres = [], []
    for shape, mesh in zip(shapes, shape_meshes(scene, assets, timings, shapes)):
        m = np.array(shape.transform, np.float64) if placed else IDENTITY_MATRIX
        mid = material_index[shape.material]
        if isinstance(shape, Sphere):
            spheres.append(sphere_entry(shape, m, mid))
            continue
        face_normals = isinstance(shape, Mesh) and shape.face_normals
        meshes.append((mesh, m, mid, face_normals, scene.materials[shape.material].normal_map is not None))
    gathered = gather_triangles(meshes)
    corners = gathered.corners
    sphere_array = np.array(spheres, SPHERE) if spheres else np.zeros(0, SPHERE)
    lower, upper = primitive_bounds(corners, sphere_array)

    def tree_of_boxes():
        started = time.perf_counter()
        tree = bvh_builder.build(lower, upper)
        wide = bvh_builder.collapse(tree)
        timings["bvh"] = timings.get("bvh", 0.0) + time.perf_counter() - started
        return tree, wide

    if len(lower) < bvh_builder.COMPILED_MIN_PRIMITIVES:
        tree, wide = tree_of_boxes()
        triangles, triangle_data, normals, extras = triangle_arrays(gathered)
    else:  # a big tree builds on a thread of its own beside the triangles' rows (the compiled loop lets go of the GIL)
        with ThreadPoolExecutor(1, thread_name_prefix="bvh") as pool:
            building = pool.submit(tree_of_boxes)
            triangles, triangle_data, normals, extras = triangle_arrays(gathered)
            tree, wide = building.result()
    if wide.stack > STACK_SIZE:
        raise SceneError(f"the scene's BVH needs a traversal stack of {wide.stack} entries; the kernel has {STACK_SIZE}")
    nodes, packs = flatten_bvh(wide, tree.order, triangles)
    if len(triangle_data):  # emissive triangles get their rank: their light, counted from the level's first
        glowing = (emitted[triangle_data["info"][:, 0]] > 0) & (triangle_data["n"][:, 3] > 0)
        triangle_data["info"][:, 1] = np.where(glowing, np.cumsum(glowing) - 1, -1)
    box = (tree.lower[0], tree.upper[0]) if len(lower) else (np.zeros(3), np.zeros(3))
    return Geometry(nodes, packs, triangles, triangle_data, normals, extras, sphere_array, corners, *box, wide.stack)


@dataclass(frozen=True)
class Combined:
    """Bottom levels laid end to end in the kernel's buffers: `roots[g]` the first node of
    level g, indices into packs, triangles, normals, extras and spheres moved along."""

    nodes: np.ndarray
    packs: np.ndarray
    triangles: np.ndarray
    triangle_data: np.ndarray
    normals: np.ndarray
    extras: np.ndarray
    spheres: np.ndarray
    corners: np.ndarray
    roots: np.ndarray
    first_triangle: np.ndarray


def combine(levels: list[Geometry]) -> Combined:
    def starts(sizes):
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    node_at = starts([len(g.nodes) for g in levels])
    pack_at = starts([len(g.packs) for g in levels])
    tri_at = starts([len(g.triangle_data) for g in levels])
    sphere_at = starts([len(g.spheres) for g in levels])
    normal_at = starts([len(g.normals) for g in levels])
    extra_at = starts([len(g.extras) for g in levels])
    total_triangles = sum(len(g.triangle_data) for g in levels)
    nodes, packs, data = [], [], []
    for g, level in enumerate(levels):
        n = level.nodes.copy()
        n["child"] = np.where(n["count"] == -1, n["child"] + node_at[g], np.where(n["count"] > 0, n["child"] + pack_at[g],
                                                                                   n["child"]))
        nodes.append(n)
        p = level.packs.copy()
        local = len(level.triangle_data)
        p["prim"] = np.where(p["prim"] < 0, -1, np.where(p["prim"] < local, p["prim"] + tri_at[g],
                                                         p["prim"] - local + total_triangles + sphere_at[g]))
        packs.append(p)
        d = level.triangle_data.copy()
        d["info"][:, 2] = np.where(d["info"][:, 2] >= 0, d["info"][:, 2] + normal_at[g], -1)
        d["info"][:, 3] = np.where(d["info"][:, 3] >= 0, d["info"][:, 3] + extra_at[g], -1)
        data.append(d)
    return Combined(
        np.concatenate(nodes), np.concatenate(packs), np.concatenate([g.triangles for g in levels]),
        np.concatenate(data), np.concatenate([g.normals for g in levels]), np.concatenate([g.extras for g in levels]),
        np.concatenate([g.spheres for g in levels]), np.concatenate([g.corners for g in levels]), node_at, tri_at,
    )


def instance_table(scene: Scene, plan: Layout, levels: list[Geometry], combined: Combined, light_bases: list[int],
                   motion: tuple[Scene, Scene] | None = None):
    """The instances (INSTANCE), their motions (MOTION, where `motion` gives the scene at the
    shutter's open and close: a moving shape's instance placed at each sample's time; an
    emitting or deforming one stays at the frame's moment), and their world boxes (a moving
    one's over the whole shutter)."""
    from farm.scene.motion import motion_entry, swept_box

    instances = np.zeros(len(plan.placements), INSTANCE)
    motions = np.zeros(len(plan.placements) if motion else 0, MOTION)
    lower, upper = np.zeros((len(instances), 3)), np.zeros((len(instances), 3))
    for k, (g, shape) in enumerate(plan.placements):
        m = placement(scene, shape)
        inverse = np.linalg.inv(m)
        for row in range(3):
            instances[f"to_object{row}"][k] = inverse[row]
            instances[f"to_world{row}"][k] = m[row]
        flags = (INSTANCE_IDENTITY if np.array_equal(m, IDENTITY_MATRIX) else 0) | (
            INSTANCE_MIRRORED if np.linalg.det(m[:3, :3]) < 0 else 0)
        box = np.stack(np.meshgrid(*zip(levels[g].lower, levels[g].upper), indexing="ij"), axis=-1).reshape(8, 3)
        world = box @ m[:3, :3].T + m[:3, 3]
        lower[k], upper[k] = world.min(axis=0), world.max(axis=0)
        if motion and shape is not None and _blurs(scene, shape):
            ends = [end.shapes[shape].transform for end in motion]
            if ends[0] != ends[1]:
                motions[k] = motion_entry(*ends)
                flags = (flags & ~INSTANCE_IDENTITY) | INSTANCE_MOVING
                lower[k], upper[k] = swept_box(levels[g].lower, levels[g].upper, motions[k])
        instances["info"][k] = (combined.roots[g], light_bases[k], flags, g)
    return instances, motions, lower, upper


def _blurs(scene: Scene, index: int) -> bool:
    """Whether a moving shape is placed at each sample's time: not one that emits (its
    lights are sampled where the frame's moment puts them) nor one that deforms."""
    shape = scene.shapes[index]
    return index in scene.moving and not scene.materials[shape.material].emissive and not deforms(shape)


def instance_lights(scene: Scene, plan: Layout, levels: list[Geometry], first_triangle: np.ndarray):
    """The emissive triangles of every placement in world space (TriangleLights), and each
    placement's first light index; `first_triangle[g]`: level g's first triangle in the
    kernel's numbering. A placement as it is (the world) gives its level's own normals and
    areas, so a world level lights as it does in a still scene; the world's lights are in no
    instance (-1)."""
    from farm.scene.lights import TriangleLights

    parts, bases, count = [], [], 0
    for g, shape in plan.placements:
        level = levels[g]
        glow = np.flatnonzero(level.triangle_data["info"][:, 1] >= 0)
        bases.append(count)
        count += len(glow)
        data = level.triangle_data[glow]
        m = placement(scene, shape)
        corners, normal, area = level.corners[glow], data["n"][:, :3], data["n"][:, 3].astype(np.float64)
        if not np.array_equal(m, IDENTITY_MATRIX):
            corners = corners @ m[:3, :3].T + m[:3, 3]
            cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            area = 0.5 * np.linalg.norm(cross, axis=1)
            turned = normal.astype(np.float64) @ np.linalg.inv(m[:3, :3])  # n' = M^-T n, as rows
            normal = (turned / np.maximum(np.linalg.norm(turned, axis=1, keepdims=True), 1e-300)).astype(np.float32)
        k = len(parts) if shape is not None else -1  # the world's lights are in no instance
        parts.append((first_triangle[g] + glow, np.full(len(glow), k), corners, normal, area,
                      data["info"][:, 0]))
    columns = [np.concatenate([part[c] for part in parts]) for c in range(6)] if parts else [np.zeros(0)] * 6
    return TriangleLights(*columns), bases


def placement(scene: Scene, shape: int | None) -> np.ndarray:
    return IDENTITY_MATRIX if shape is None else np.array(scene.shapes[shape].transform, np.float64)


def top_level(lower: np.ndarray, upper: np.ndarray, below: int, world: int | None, world_root: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The wide BVH over the instances' boxes (its nodes' lanes of count NODE_TOP), a leaf
    lane per instance (count NODE_INSTANCE, child its index), and its box. The world's
    instance (`world`, placed as it is) is a lane pointing at its level's root in `nodes`
    (count -1, child `world_root`): walked with no transform. `below`: the deepest stack
    a bottom level needs."""
    tree = bvh_builder.build(lower, upper, max_leaf=1)
    wide = bvh_builder.collapse(tree)
    if wide.stack + 1 + below > STACK_SIZE:
        raise SceneError(f"the scene's two-level BVH needs a traversal stack of {wide.stack + 1 + below} entries; "
                         f"the kernel has {STACK_SIZE}")
    nodes, _ = flatten_bvh(wide, tree.order, np.zeros(0, TRIANGLE))
    leaf = wide.count > 0
    placed = tree.order[wide.child[leaf]]
    nodes["count"][wide.count == -1] = NODE_TOP
    nodes["child"][leaf] = np.where(placed == world, world_root, placed)
    nodes["count"][leaf] = np.where(placed == world, -1, NODE_INSTANCE)
    return nodes, tree.lower[0], tree.upper[0]


def level_key(scene: Scene, indices: list[int], material_index: dict[str, int], emitted: np.ndarray, placed: bool):
    """What a bottom level is made of, or None where a file's digest is unknown (nothing
    to key it by: packed afresh)."""
    parts = []
    for index in indices:
        shape = scene.shapes[index]
        digest = None
        if isinstance(shape, Mesh) and shape.file:
            digest = scene.assets.get(shape.file)
            if digest is None:
                return None
        mid = material_index[shape.material]
        material = scene.materials[shape.material]
        parts.append((shape if placed else _placeless(shape), mid, material.normal_map is not None,
                      bool(emitted[mid] > 0), digest))
    return (placed, tuple(parts))
