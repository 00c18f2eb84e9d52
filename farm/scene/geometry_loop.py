"""A big scene's triangles in compiled passes (numba; the code comes built,
farm.scene.compiled): a big mesh's corners and edge cross products (what
farm.scene.geometry.gather_triangles computes with numpy), and the kernel's rows of the
triangles (what farm.scene.geometry.triangle_arrays computes), the same operations in the
same order, so the same bits. numpy's way makes a dozen whole-scene temporaries (the
Baldwin-Weber rows alone are 96 MB in float64 for a million triangles, np.cross five of
24 MB); here each triangle's numbers live in registers.

triangle_rows' inputs are C-contiguous float64 (corners (n, 3, 3), cross (n, 3), uvs
(n, 3, 2), or (1, 3, 2) for one row that every triangle has, vertex normals (n, 3, 3)),
int64 materials and uint8 flags, so that one compiled signature serves every scene. Its
outputs are the records' words: triangles (n, 12) float32, the data's floats (n, 16)
float32 and its ints (n, 16) int32 (the same memory), the smooth triangles' vertex normals
(smooth, 12) float32.
"""

from __future__ import annotations

import numpy as np


def corner_values(values, faces, out):  # pragma: no cover - compiled
    """out[t, c] = values[faces[t, c]]: numpy's values[faces] (float64 (v, 3), int64 (n, 3)),
    without its temporaries."""
    for t in range(faces.shape[0]):
        for c in range(3):
            v = faces[t, c]
            out[t, c, 0], out[t, c, 1], out[t, c, 2] = values[v, 0], values[v, 1], values[v, 2]


def edge_cross(corners, out):  # pragma: no cover - compiled
    """out[t] = cross(corner 1 - corner 0, corner 2 - corner 0), as numpy's np.cross
    computes it (each product, then the difference); returns how many are zero (degenerate
    triangles)."""
    zero = 0
    for t in range(corners.shape[0]):
        p0, p1, p2 = corners[t, 0, 0], corners[t, 0, 1], corners[t, 0, 2]
        a0, a1, a2 = corners[t, 1, 0] - p0, corners[t, 1, 1] - p1, corners[t, 1, 2] - p2
        b0, b1, b2 = corners[t, 2, 0] - p0, corners[t, 2, 1] - p1, corners[t, 2, 2] - p2
        x, y, z = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0
        out[t, 0], out[t, 1], out[t, 2] = x, y, z
        if x == 0.0 and y == 0.0 and z == 0.0:
            zero += 1
    return zero


def triangle_rows(corners, cross, uvs, vertex_normals, smooth_in, material, has_extras,
                  tri_out, data_out, info_out, normals_out):  # pragma: no cover - compiled
    """Fill the outputs; returns the number of smooth triangles (rows of normals_out)."""
    n = corners.shape[0]
    smooth_count = 0
    extras_count = 0
    for t in range(n):
        v0x, v0y, v0z = corners[t, 0, 0], corners[t, 0, 1], corners[t, 0, 2]
        e1 = (corners[t, 1, 0] - v0x, corners[t, 1, 1] - v0y, corners[t, 1, 2] - v0z)
        e2 = (corners[t, 2, 0] - v0x, corners[t, 2, 1] - v0y, corners[t, 2, 2] - v0z)
        nx, ny, nz = cross[t, 0], cross[t, 1], cross[t, 2]
        double_area = np.sqrt(nx * nx + ny * ny + nz * nz)
        # intersection_rows: the dominant axis (the first of equals, as argmax) and the other two
        ax, ay, az = abs(nx), abs(ny), abs(nz)
        axis = 0
        if ay > ax:
            axis = 1
        if az > max(ax, ay):
            axis = 2
        a1, a2 = (axis + 1) % 3, (axis + 2) % 3
        nvec = (nx, ny, nz)
        v0 = (v0x, v0y, v0z)
        nd = nvec[axis]
        f1, f2, g1, g2, p1, p2 = e1[a1], e1[a2], e2[a1], e2[a2], v0[a1], v0[a2]
        for k in range(12):
            tri_out[t, k] = 0.0
        tri_out[t, a1] = g2 / nd
        tri_out[t, a2] = -g1 / nd
        tri_out[t, 3] = (g1 * p2 - g2 * p1) / nd
        tri_out[t, 4 + a1] = -f2 / nd
        tri_out[t, 4 + a2] = f1 / nd
        tri_out[t, 7] = -(f1 * p2 - f2 * p1) / nd
        tri_out[t, 8 + axis] = 1.0
        tri_out[t, 8 + a1] = nvec[a1] / nd
        tri_out[t, 8 + a2] = nvec[a2] / nd
        # numpy's sum starts from +0.0 (so -0.0 terms give +0.0): here too
        tri_out[t, 11] = -(((0.0 + nx * v0x) + ny * v0y) + nz * v0z) / nd
        # the shading data: unit normal and area, corner uvs, material, light, normals, extras
        data_out[t, 0] = nx / double_area
        data_out[t, 1] = ny / double_area
        data_out[t, 2] = nz / double_area
        data_out[t, 3] = double_area * 0.5
        u = t if uvs.shape[0] > 1 else 0  # one row: every triangle's (the default uvs)
        data_out[t, 4], data_out[t, 5] = uvs[u, 0, 0], uvs[u, 0, 1]
        data_out[t, 6], data_out[t, 7] = uvs[u, 1, 0], uvs[u, 1, 1]
        data_out[t, 8], data_out[t, 9] = uvs[u, 2, 0], uvs[u, 2, 1]
        data_out[t, 10], data_out[t, 11] = 0.0, 0.0
        smooth = smooth_in[t] != 0
        for c in range(3):  # a zero vertex normal falls back to flat shading
            x, y, z = vertex_normals[t, c, 0], vertex_normals[t, c, 1], vertex_normals[t, c, 2]
            if not x * x + y * y + z * z > 0:
                smooth = False
        info_out[t, 12] = material[t]
        info_out[t, 13] = -1
        info_out[t, 14] = -1
        info_out[t, 15] = -1
        if smooth:
            info_out[t, 14] = smooth_count
            for c in range(3):
                for k in range(3):
                    normals_out[smooth_count, 4 * c + k] = vertex_normals[t, c, k]
                normals_out[smooth_count, 4 * c + 3] = 0.0
            smooth_count += 1
        if has_extras[t] != 0:
            info_out[t, 15] = extras_count
            extras_count += 1
    return smooth_count


def flatten_nodes(lower, upper, child, count, order, rows, node_words, node_ints, pack_words, pack_ints):  # pragma: no cover - compiled
    """farm.scene.geometry.flatten_bvh's records in one pass: each wide node's boxes as rows
    of lanes, its children and counts, a leaf lane's child and count becoming its first pack
    and number of packs (packs numbered in the order of the leaf lanes, node by node), and
    each pack's four lanes of triangle rows and primitives (-1 for none; a sphere's lane
    keeps zero rows). Inputs: lower, upper (nodes, width, 3) float32; child, count (nodes,
    width) int64; order int64; rows (triangles, 12) float32. The packs' words must be zero."""
    triangles = rows.shape[0]
    for p in range(pack_ints.shape[0]):
        for lane in range(pack_ints.shape[2]):
            pack_ints[p, 12, lane] = -1
    width = pack_ints.shape[2]
    next_pack = 0
    for node in range(lower.shape[0]):
        for lane in range(lower.shape[1]):
            for k in range(3):
                node_words[node, k, lane] = lower[node, lane, k]
                node_words[node, 3 + k, lane] = upper[node, lane, k]
            size = count[node, lane]
            if size <= 0:
                node_ints[node, 6, lane] = child[node, lane]
                node_ints[node, 7, lane] = size
                continue
            packs = (size + width - 1) // width
            node_ints[node, 6, lane] = next_pack
            node_ints[node, 7, lane] = packs
            for rank in range(size):
                pack, slot = next_pack + rank // width, rank % width
                prim = order[child[node, lane] + rank]
                pack_ints[pack, 12, slot] = prim
                if prim < triangles:
                    for word in range(12):
                        pack_words[pack, word, slot] = rows[prim, word]
            next_pack += packs
