"""Triangles and spheres in the kernel's forms, and the wide BVH flattened into nodes and
leaf packs."""

from __future__ import annotations

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


def triangle_arrays(meshes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World-space triangles of every mesh, their shading data, vertex normals of the
    smooth ones, and the extras (tangents, second uvs) of the meshes that need them; then
    the corners. Degenerate triangles are dropped: they can be neither hit nor sampled.
    `meshes` holds (mesh, object-to-world matrix, material index, face normals only,
    whether its material has a normal map)."""
    corner_chunks, cross_chunks, uv_chunks, normal_chunks, smooth_chunks, material_chunks = [], [], [], [], [], []
    extra_chunks, has_extras_chunks = [], []
    for mesh, m, mid, face_normals, normal_mapped in meshes:
        faces = mesh.faces
        linear = m[:3, :3]
        if np.linalg.det(linear) < 0:  # a mirroring transform: keep front faces in front
            faces = faces[:, ::-1]
        world = mesh.vertices @ linear.T + m[:3, 3]
        corners = world[faces]
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        keep = (cross != 0.0).any(axis=1)
        if not keep.all():  # dropped before anything else is gathered for them
            faces, corners, cross = faces[keep], corners[keep], cross[keep]
        corner_chunks.append(corners)
        cross_chunks.append(cross)
        if mesh.uvs is not None:
            uv_chunks.append(mesh.uvs[faces])
        else:  # Mitsuba's default: the barycentric coordinates
            uv_chunks.append(np.broadcast_to(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), (len(faces), 3, 2)))
        smooth = mesh.normals is not None and not face_normals
        if smooth:
            normal_matrix = np.linalg.inv(linear).T
            vertex_normals = mesh.normals @ normal_matrix.T
            length = np.linalg.norm(vertex_normals, axis=1, keepdims=True)
            vertex_normals = np.divide(vertex_normals, length, out=np.zeros_like(vertex_normals), where=length > 0)
            normal_chunks.append(vertex_normals[faces])
        else:
            normal_chunks.append(np.zeros((len(faces), 3, 3)))
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
    if not corner_chunks:
        return (np.zeros(0, TRIANGLE), np.zeros(0, TRIANGLE_DATA), np.zeros(0, SHADING_NORMALS),
                np.zeros(0, SURFACE_EXTRAS), np.zeros((0, 3, 3)))
    corners = np.concatenate(corner_chunks)
    uvs = np.concatenate(uv_chunks)
    vertex_normals = np.concatenate(normal_chunks)
    smooth = np.concatenate(smooth_chunks)
    tri_material = np.concatenate(material_chunks)
    has_extras = np.concatenate(has_extras_chunks)
    extras = np.concatenate(extra_chunks) if extra_chunks else np.zeros((0, 5, 4))
    cross = np.concatenate(cross_chunks)
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    double_area = np.linalg.norm(cross, axis=1)
    # A smooth triangle with a zero vertex normal falls back to flat shading.
    smooth &= np.all(np.linalg.norm(vertex_normals, axis=2) > 0, axis=1)
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
    extra_array = np.zeros(len(extras), SURFACE_EXTRAS)
    for row, name in enumerate(("t0", "t1", "t2", "uv1_01", "uv1_2")):
        extra_array[name] = extras[:, row]
    return triangles, data, normals, extra_array, corners


def flatten_bvh(wide: bvh_builder.WideBvh, order: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The wide BVH in the kernel's layout: per node, each coordinate of its children's
    boxes as one row of WIDTH lanes (structure of arrays), then children and counts; and
    each leaf's primitives in packs of four, a leaf's `child` becoming its first pack and
    its `count` the number of packs. Lanes of spheres and empty lanes have a zero plane,
    which no ray meets; their primitive (a sphere's index past the triangles, or -1) says
    what they are."""
    nodes = np.zeros(len(wide.child), NODE)
    for axis, name in enumerate("xyz"):
        nodes[f"lower_{name}"] = wide.lower[:, :, axis]
        nodes[f"upper_{name}"] = wide.upper[:, :, axis]
    leaf = wide.count > 0
    first, size = wide.child[leaf], wide.count[leaf]
    pack_count = -(-size // PACK_WIDTH)
    pack_start = np.cumsum(pack_count) - pack_count
    nodes["child"], nodes["count"] = wide.child, wide.count
    nodes["child"][leaf], nodes["count"][leaf] = pack_start, pack_count
    packs = np.zeros(max(int(pack_count.sum()), 1), TRIANGLE_PACK)
    packs["prim"] = -1
    # Slot k of a leaf goes to lane k % 4 of the leaf's pack k // 4.
    rank = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
    slot = np.repeat(first, size) + rank
    pack, lane = np.repeat(pack_start, size) + rank // PACK_WIDTH, rank % PACK_WIDTH
    prim = order[slot]
    packs["prim"][pack, lane] = prim
    is_triangle = prim < len(triangles)
    for row in ("b1", "b2", "plane"):
        for axis, name in enumerate("xyzw"):
            packs[f"{row}_{name}"][pack[is_triangle], lane[is_triangle]] = triangles[row][prim[is_triangle], axis]
    return nodes, packs


def intersection_rows(v0: np.ndarray, e1: np.ndarray, e2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Baldwin and Weber (2016): for each triangle, rows r0, r1, r2 with b1 = r0 . (p, 1),
    b2 = r1 . (p, 1) for a point p in its plane, and r2 . (p, 1) = 0 on the plane, scaled
    by the normal's largest component (the axis the triangle is projected along)."""
    rows = np.zeros((len(v0), 3, 4))
    dominant = np.argmax(np.abs(n), axis=1)
    for axis in range(3):
        a1, a2 = (axis + 1) % 3, (axis + 2) % 3
        pick = dominant == axis
        nd = n[pick, axis]
        p, f, g = v0[pick], e1[pick], e2[pick]
        r = np.zeros((int(pick.sum()), 3, 4))
        r[:, 0, a1], r[:, 0, a2] = g[:, a2] / nd, -g[:, a1] / nd
        r[:, 0, 3] = (g[:, a1] * p[:, a2] - g[:, a2] * p[:, a1]) / nd
        r[:, 1, a1], r[:, 1, a2] = -f[:, a2] / nd, f[:, a1] / nd
        r[:, 1, 3] = -(f[:, a1] * p[:, a2] - f[:, a2] * p[:, a1]) / nd
        r[:, 2, axis] = 1.0
        r[:, 2, a1], r[:, 2, a2] = n[pick, a1] / nd, n[pick, a2] / nd
        r[:, 2, 3] = -(n[pick] * p).sum(axis=1) / nd
        rows[pick] = r
    return rows


def primitive_bounds(corners: np.ndarray, spheres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of triangles then spheres: primitive i < len(triangles) is a triangle."""
    tri_lower = corners.min(axis=1)
    tri_upper = corners.max(axis=1)
    center = spheres["center_radius"][:, :3].astype(np.float64)
    radius = spheres["center_radius"][:, 3:4].astype(np.float64)
    return np.concatenate([tri_lower, center - radius]), np.concatenate([tri_upper, center + radius])
