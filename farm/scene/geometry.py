"""Triangles and spheres in the kernel's forms, and the wide BVH flattened into nodes and
leaf packs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farm.scene import bvh as bvh_builder
from farm.scene.layout import (
    NODE, PACK_WIDTH, SHADING_NORMALS, SPHERE, SURFACE_EXTRAS, TRIANGLE, TRIANGLE_DATA, TRIANGLE_PACK,
)
from farm.scene.model import Sphere


def sphere_entry(shape: Sphere, m: np.ndarray, mid: int) -> np.void:
    center = m[:3, :3] @ np.array(shape.center) + m[:3, 3]
    scale = float(np.linalg.norm(m[:3, 0]))
    rotation = m[:3, :3] / scale  # object-to-world rotation; its transpose maps back
    entry = np.zeros((), SPHERE)
    entry["center_radius"] = (*center, shape.radius * scale)
    for row in range(3):
        entry[f"row{row}"][:3] = rotation.T[row]
    entry["info"] = (mid, -1, 0, 0)
    return entry


def vertex_tangents(mesh) -> np.ndarray | None:
    """Per-vertex tangents (xyz, and w: the bitangent's sign) for a normal map: the file's,
    or made from how the uvs run over each triangle (dp/du, orthogonalised against the
    normal; w says whether dp/dv agrees with normal x tangent), summed over the triangles
    around each vertex. None without uvs."""
    if mesh.tangents is not None:
        return mesh.tangents
    if mesh.uvs is None:
        return None
    p, w = mesh.vertices[mesh.faces], mesh.uvs[mesh.faces]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = w[:, 1] - w[:, 0], w[:, 2] - w[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    inverse = np.divide(1.0, det, out=np.zeros_like(det), where=np.abs(det) > 1e-20)[:, None]
    along_u = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * inverse
    along_v = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * inverse
    count = len(mesh.vertices)
    tangent, bitangent, normal = np.zeros((count, 3)), np.zeros((count, 3)), np.zeros((count, 3))
    face_normal = np.cross(e1, e2)
    for corner in range(3):
        np.add.at(tangent, mesh.faces[:, corner], along_u)
        np.add.at(bitangent, mesh.faces[:, corner], along_v)
        np.add.at(normal, mesh.faces[:, corner], face_normal)
    if mesh.normals is not None:
        normal = mesh.normals
    normal = normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-30)
    tangent -= normal * (tangent * normal).sum(axis=1, keepdims=True)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-30)
    sign = np.where((np.cross(normal, tangent) * bitangent).sum(axis=1) < 0, -1.0, 1.0)
    return np.concatenate([tangent, sign[:, None]], axis=1)


@dataclass(frozen=True)
class Gathered:
    """Every mesh's triangles in world space, end to end, per triangle: corners, the
    cross product of its edges, corner uvs and vertex normals, whether it is smooth, its
    material, whether it has extras; and the extras of those that do."""

    corners: np.ndarray
    cross: np.ndarray
    uvs: np.ndarray
    vertex_normals: np.ndarray
    smooth: np.ndarray
    material: np.ndarray
    has_extras: np.ndarray
    extras: np.ndarray


def gather_triangles(meshes) -> Gathered:
    """The triangles of `meshes` in world space (what the BVH is built over; triangle_arrays
    makes the kernel's rows of them). Degenerate triangles are dropped: they can be neither
    hit nor sampled. `meshes` holds (mesh, object-to-world matrix, material index, face
    normals only, whether its material has a normal map).

    Each whole-scene array is made once at its size and every mesh's part written into its
    rows: joining a part per mesh copied each again (a million triangles' corners are 72 MB,
    their vertex normals as many), and a big scene's corners and cross products come from
    compiled passes, free of numpy's temporaries (farm.scene.geometry_loop)."""
    if not meshes:
        return Gathered(np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros((0, 3, 2)), np.zeros((0, 3, 3)),
                        np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, 5, 4)))
    placed = []  # per mesh: its faces (front faces in front) and its vertices in world space
    for mesh, m, *_ in meshes:
        linear = m[:3, :3]
        mirrored = np.linalg.det(linear) < 0  # a mirroring transform: keep front faces in front
        placed.append((mesh.faces[:, ::-1] if mirrored else mesh.faces, mesh.vertices @ linear.T + m[:3, 3]))
    total = sum(len(faces) for faces, _ in placed)
    big = total >= bvh_builder.COMPILED_MIN_PRIMITIVES  # numba is loaded for the tree anyway
    corners, cross = np.empty((total, 3, 3)), np.empty((total, 3))
    kept, start = [], 0  # each mesh's faces that are not degenerate
    for faces, world in placed:
        rows = slice(start, start + len(faces))
        if big:
            _compiled_loop("corner_values")(np.ascontiguousarray(world, np.float64),
                                            np.ascontiguousarray(faces, np.int64), corners[rows])
            degenerate = _compiled_loop("edge_cross")(corners[rows], cross[rows])
        else:
            np.take(world, faces, axis=0, out=corners[rows])
            cross[rows] = np.cross(corners[rows, 1] - corners[rows, 0], corners[rows, 2] - corners[rows, 0])
            degenerate = not (cross[rows] != 0.0).any(axis=1).all()
        kept.append(faces[(cross[rows] != 0.0).any(axis=1)] if degenerate else faces)
        start = rows.stop
    count = sum(len(faces) for faces in kept)
    if count < total:  # dropped before anything else is gathered for them
        keep = (cross != 0.0).any(axis=1)
        corners, cross = corners[keep], cross[keep]
    default_uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # Mitsuba's default: the barycentric coordinates
    any_uvs = any(mesh.uvs is not None for mesh, *_ in meshes)
    uvs = np.empty((count, 3, 2)) if any_uvs else np.broadcast_to(default_uvs, (count, 3, 2))
    vertex_normals = np.zeros((count, 3, 3))
    smooth_chunks, material_chunks, extra_chunks, has_extras_chunks = [], [], [], []
    start = 0
    for (mesh, m, mid, face_normals, normal_mapped), faces in zip(meshes, kept):
        rows = slice(start, start + len(faces))
        start = rows.stop
        if any_uvs:
            uvs[rows] = default_uvs if mesh.uvs is None else mesh.uvs[faces]
        linear = m[:3, :3]
        smooth = mesh.normals is not None and not face_normals
        if smooth:
            normal_matrix = np.linalg.inv(linear).T
            normals = mesh.normals @ normal_matrix.T
            length = np.linalg.norm(normals, axis=1, keepdims=True)
            normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
            if big:
                _compiled_loop("corner_values")(normals, np.ascontiguousarray(faces, np.int64), vertex_normals[rows])
            else:
                np.take(normals, faces, axis=0, out=vertex_normals[rows])
        smooth_chunks.append(np.full(len(faces), smooth))
        material_chunks.append(np.full(len(faces), mid))
        tangents = vertex_tangents(mesh) if normal_mapped else None
        has_extras_chunks.append(np.full(len(faces), tangents is not None or mesh.uvs1 is not None))
        if not has_extras_chunks[-1].any():
            continue
        extras = np.zeros((len(faces), 5, 4))
        if tangents is not None:
            world_tangents = tangents[:, :3] @ linear.T
            world_tangents /= np.maximum(np.linalg.norm(world_tangents, axis=1, keepdims=True), 1e-30)
            handedness = tangents[:, 3:4] * (-1.0 if np.linalg.det(linear) < 0 else 1.0)
            extras[:, :3] = np.concatenate([world_tangents, handedness], axis=1)[faces]
        second = mesh.uvs1 if mesh.uvs1 is not None else mesh.uvs
        if second is not None:
            corner_uvs = second[faces]
            extras[:, 3] = np.concatenate([corner_uvs[:, 0], corner_uvs[:, 1]], axis=1)
            extras[:, 4, :2] = corner_uvs[:, 2]
        extra_chunks.append(extras)
    return Gathered(corners, cross, uvs, vertex_normals, _joined(smooth_chunks), _joined(material_chunks),
                    _joined(has_extras_chunks), _joined(extra_chunks) if extra_chunks else np.zeros((0, 5, 4)))


def triangle_arrays(gathered: Gathered) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's arrays of gathered triangles: their Baldwin-Weber rows, their shading
    data, the vertex normals of the smooth ones, and the extras (tangents, second uvs) of
    those that need them."""
    if len(gathered.corners) >= bvh_builder.COMPILED_MIN_PRIMITIVES:  # numba is loaded for the tree anyway
        return _triangle_arrays_compiled(gathered)
    corners, cross, uvs, vertex_normals = gathered.corners, gathered.cross, gathered.uvs, gathered.vertex_normals
    smooth = gathered.smooth.copy()  # written to below
    tri_material, has_extras, extras = gathered.material, gathered.has_extras, gathered.extras
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    double_area = np.linalg.norm(cross, axis=1)
    # A smooth triangle with a zero vertex normal falls back to flat shading.
    smooth &= np.all((vertex_normals * vertex_normals).sum(axis=2) > 0, axis=1)  # norm > 0, without the sqrt
    triangles = np.zeros(len(corners), TRIANGLE)
    rows = intersection_rows(corners[:, 0], e1, e2, cross)
    triangles["b1"], triangles["b2"], triangles["plane"] = rows[:, 0], rows[:, 1], rows[:, 2]
    data = np.zeros(len(corners), TRIANGLE_DATA)
    data["n"][:, :3] = cross / double_area[:, None]
    data["n"][:, 3] = double_area * 0.5  # area, for light sampling
    data["uv01"] = np.concatenate([uvs[:, 0], uvs[:, 1]], axis=1)
    data["uv2"][:, :2] = uvs[:, 2]
    smooth_index = np.cumsum(smooth) - 1
    data["info"][:, 0] = tri_material
    data["info"][:, 1] = -1
    data["info"][:, 2] = np.where(smooth, smooth_index, -1)
    data["info"][:, 3] = np.where(has_extras, np.cumsum(has_extras) - 1, -1)
    normals = np.zeros(int(smooth.sum()), SHADING_NORMALS)
    for corner in range(3):
        normals[f"n{corner}"][:, :3] = vertex_normals[smooth, corner]
    return triangles, data, normals, _extra_array(extras)


def _extra_array(extras: np.ndarray) -> np.ndarray:
    """The extras' records: tangents per corner, then the second uv set."""
    extra_array = np.zeros(len(extras), SURFACE_EXTRAS)
    for row, name in enumerate(("t0", "t1", "t2", "uv1_01", "uv1_2")):
        extra_array[name] = extras[:, row]
    return extra_array


def _triangle_arrays_compiled(gathered: Gathered) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """triangle_arrays' result, bit for bit, from one compiled pass (farm.scene.geometry_loop)."""
    count = len(gathered.corners)

    def exact(array, dtype):  # the loop's one signature: C order, these types
        return np.ascontiguousarray(array, dtype)

    uvs = gathered.uvs
    if len(uvs) > 1 and uvs.strides[0] == 0:  # every triangle's the same row (the default uvs): that row
        uvs = uvs[:1]
    triangles, data = np.empty(count, TRIANGLE), np.empty(count, TRIANGLE_DATA)
    normals = np.empty(count, SHADING_NORMALS)  # cut to the smooth ones below
    smooth = _compiled_loop("triangle_rows")(
        exact(gathered.corners, np.float64), exact(gathered.cross, np.float64), exact(uvs, np.float64),
        exact(gathered.vertex_normals, np.float64), exact(gathered.smooth, np.uint8),
        exact(gathered.material, np.int64), exact(gathered.has_extras, np.uint8),
        triangles.view(np.float32).reshape(count, 12), data.view(np.float32).reshape(count, 16),
        data.view(np.int32).reshape(count, 16), normals.view(np.float32).reshape(count, 12))
    return triangles, data, normals[:smooth].copy(), _extra_array(gathered.extras)


def warm_up() -> None:
    """Load (or compile) the compiled passes, on one triangle: their types are every scene's."""
    corners = np.array([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    gathered = Gathered(corners, np.array([[0.0, 0, 1]]), np.zeros((1, 3, 2)), np.zeros((1, 3, 3)),
                        np.zeros(1, bool), np.zeros(1, np.int64), np.zeros(1, bool), np.zeros((0, 5, 4)))
    triangles = _triangle_arrays_compiled(gathered)[0]
    _compiled_loop("corner_values")(corners[0], np.array([[0, 1, 2]]), corners.copy())
    _compiled_loop("edge_cross")(corners, np.empty((1, 3)))
    tree = bvh_builder.build_compiled(np.zeros((1, 3)), np.ones((1, 3)))
    _flatten_compiled(bvh_builder.collapse(tree), tree.order, triangles)


def _compiled_loop(name: str):
    """A compiled pass of farm.scene.geometry_loop, loaded on first use."""
    from farm.scene import geometry_loop
    from farm.scene.compiled import compiled

    return compiled(getattr(geometry_loop, name))


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    """The chunks end to end; one chunk as it is (a million triangles' corners are 72 MB)."""
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def flatten_bvh(wide: bvh_builder.WideBvh, order: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The wide BVH in the kernel's layout: per node, each coordinate of its children's
    boxes as one row of WIDTH lanes (structure of arrays), then children and counts; and
    each leaf's primitives in packs of four, a leaf's `child` becoming its first pack and
    its `count` the number of packs. Lanes of spheres and empty lanes have a zero plane,
    which no ray meets; their primitive (a sphere's index past the triangles, or -1) says
    what they are."""
    if len(order) >= bvh_builder.COMPILED_MIN_PRIMITIVES:  # numba is loaded for the tree anyway
        return _flatten_compiled(wide, order, triangles)
    nodes = np.zeros(len(wide.child), NODE)
    # Written through plain views of the records (every field is eight or four 32-bit lanes),
    # one strided pass per block instead of one per field.
    node_words = nodes.view(np.float32).reshape(len(nodes), 8, 8)  # lower xyz, upper xyz, child, count
    node_words[:, 0:3] = wide.lower.transpose(0, 2, 1)
    node_words[:, 3:6] = wide.upper.transpose(0, 2, 1)
    leaf = wide.count > 0
    first, size = wide.child[leaf], wide.count[leaf]
    pack_count = -(-size // PACK_WIDTH)
    pack_start = np.cumsum(pack_count) - pack_count
    child, count = wide.child.copy(), wide.count.copy()
    child[leaf], count[leaf] = pack_start, pack_count
    node_ints = nodes.view(np.int32).reshape(len(nodes), 8, 8)
    node_ints[:, 6], node_ints[:, 7] = child, count
    packs = np.zeros(max(int(pack_count.sum()), 1), TRIANGLE_PACK)
    pack_words = packs.view(np.float32).reshape(len(packs), 13, PACK_WIDTH)  # 12 rows (b1, b2, plane; xyzw), prim
    lane_prims = packs.view(np.int32).reshape(len(packs), 13, PACK_WIDTH)[:, 12]
    lane_prims[:] = -1
    # Slot k of a leaf goes to lane k % 4 of the leaf's pack k // 4.
    rank = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
    slot = np.repeat(first, size) + rank
    pack, lane = np.repeat(pack_start, size) + rank // PACK_WIDTH, rank % PACK_WIDTH
    prim = order[slot]
    lane_prims[pack, lane] = prim
    is_triangle = prim < len(triangles)
    rows = triangles.view(np.float32).reshape(len(triangles), 12)  # b1, b2, plane; xyzw
    pack_words[pack[is_triangle], :12, lane[is_triangle]] = rows[prim[is_triangle]]
    return nodes, packs


def _flatten_compiled(wide: bvh_builder.WideBvh, order: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """flatten_bvh's records, bit for bit, from one compiled pass (farm.scene.geometry_loop)."""
    leaf_sizes = wide.count[wide.count > 0]
    nodes = np.empty(len(wide.child), NODE)
    packs = np.zeros(max(int((-(-leaf_sizes // PACK_WIDTH)).sum()), 1), TRIANGLE_PACK)
    _compiled_loop("flatten_nodes")(
        np.ascontiguousarray(wide.lower, np.float32), np.ascontiguousarray(wide.upper, np.float32),
        np.ascontiguousarray(wide.child, np.int64), np.ascontiguousarray(wide.count, np.int64),
        np.ascontiguousarray(order, np.int64), triangles.view(np.float32).reshape(len(triangles), 12),
        nodes.view(np.float32).reshape(len(nodes), 8, 8), nodes.view(np.int32).reshape(len(nodes), 8, 8),
        packs.view(np.float32).reshape(len(packs), 13, PACK_WIDTH), packs.view(np.int32).reshape(len(packs), 13, PACK_WIDTH))
    return nodes, packs


def intersection_rows(v0: np.ndarray, e1: np.ndarray, e2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Baldwin and Weber (2016): for each triangle, rows r0, r1, r2 with b1 = r0 . (p, 1),
    b2 = r1 . (p, 1) for a point p in its plane, and r2 . (p, 1) = 0 on the plane, scaled
    by the normal's largest component (the axis the triangle is projected along). All
    triangles at once, each with its own axes gathered (no pass per axis)."""
    count = len(v0)
    rows = np.zeros((count, 3, 4))
    axis = np.argmax(np.abs(n), axis=1)[:, None]
    a1, a2 = (axis + 1) % 3, (axis + 2) % 3

    def at(values, which):
        return np.take_along_axis(values, which, axis=1)[:, 0]

    nd = at(n, axis)
    f1, f2, g1, g2, p1, p2 = at(e1, a1), at(e1, a2), at(e2, a1), at(e2, a2), at(v0, a1), at(v0, a2)
    index, a1, a2, axis = np.arange(count), a1[:, 0], a2[:, 0], axis[:, 0]
    rows[index, 0, a1], rows[index, 0, a2] = g2 / nd, -g1 / nd
    rows[index, 0, 3] = (g1 * p2 - g2 * p1) / nd
    rows[index, 1, a1], rows[index, 1, a2] = -f2 / nd, f1 / nd
    rows[index, 1, 3] = -(f1 * p2 - f2 * p1) / nd
    rows[index, 2, axis] = 1.0
    rows[index, 2, a1], rows[index, 2, a2] = at(n, a1[:, None]) / nd, at(n, a2[:, None]) / nd
    rows[:, 2, 3] = -(n * v0).sum(axis=1) / nd
    return rows


def primitive_bounds(corners: np.ndarray, spheres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of triangles then spheres: primitive i < len(triangles) is a triangle."""
    tri_lower = np.minimum(np.minimum(corners[:, 0], corners[:, 1]), corners[:, 2])
    tri_upper = np.maximum(np.maximum(corners[:, 0], corners[:, 1]), corners[:, 2])
    center = spheres["center_radius"][:, :3].astype(np.float64)
    radius = spheres["center_radius"][:, 3:4].astype(np.float64)
    return np.concatenate([tri_lower, center - radius]), np.concatenate([tri_upper, center + radius])
