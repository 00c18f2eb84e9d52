"""Big OBJ files through a compiled loop (farm.scene.obj_loop): the arrays trimesh's reader
makes of a plain file (load_obj with maintain_order, one geometry), about ten times sooner.
A million-triangle file is 75 MB of text: trimesh splits it into Python strings (2.7 s on
the development machines), the loop reads the bytes in place (0.2 s). Files the loop does
not take (quads, negative indices, materials, exotic numbers) go to trimesh as before."""

from __future__ import annotations

import numpy as np

# From this size on the compiled loop pays for numba's start (a process that builds a big
# tree imports numba anyway; see farm.scene.bvh.COMPILED_MIN_PRIMITIVES).
COMPILED_MIN_BYTES = 8 << 20
# Numbers beyond the loop's fast path (over 15 significant digits, powers of ten past 22)
# it leaves to Python's float(); a file with more goes to trimesh.
HARD_NUMBERS = 1 << 16

def compiled_loops() -> tuple:
    """obj_loop's count_lines, read_plain and median_refs compiled by numba (their code
    comes built, as the BVH's loop's does: farm.scene.compiled)."""
    from farm.scene import obj_loop
    from farm.scene.compiled import compiled

    return tuple(compiled(loop) for loop in (obj_loop.count_lines, obj_loop.read_plain, obj_loop.median_refs))


def warm_up() -> None:
    """Load (or, the first time on a machine, compile) the loops, on a file that uses all
    three with the argument types of every read."""
    read(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\nvt 0 0\nf 1/1/1 2/1/1 3/1/1\n")


def read(data: bytes) -> tuple | None:
    """(vertices, faces, normals or None, uvs or None) of a plain OBJ file, as trimesh reads
    it; None for a file that is not plain, which trimesh reads instead."""
    from farm.scene.obj_loop import EXACT_POWERS, PLAIN

    if data.count(b"\r") != data.count(b"\r\n") or b"\\\n" in data or b"\\\r\n" in data or b"usemtl" in data \
            or not data.isascii():
        # trimesh's business: a lone carriage return; a backslash joining lines (trimesh
        # joins them before anything else, comments included); usemtl, which splits the
        # faces wherever it stands, even in a comment; other encodings
        return None
    count_lines, read_plain, median_refs = compiled_loops()
    text = np.frombuffer(data, np.uint8)
    nv, nvn, nvt, nf, form = count_lines(text)
    if not nv or not nf:
        return None
    v, vn, vt = np.empty((nv, 3)), np.empty((nvn, 3)), np.empty((nvt, 2))
    faces = np.empty((nf, 3), np.int64)
    faces_tex = np.empty((nf if form in (2, 4) else 0, 3), np.int64)
    faces_norm = np.empty((nf if form in (3, 4) else 0, 3), np.int64)
    hard = np.empty((HARD_NUMBERS, 5), np.int64)
    status, hard_count, _ = read_plain(text, v, vn, vt, faces, faces_tex, faces_norm, hard, EXACT_POWERS)
    if status != PLAIN or faces.max() >= nv:  # trimesh says which index is out of range
        return None
    for which, row, column, first, end in hard[:hard_count]:
        target = (v, vn, vt)[which]
        if column < target.shape[1]:
            target[row, column] = float(data[first:end])  # correctly rounded, as strtod
    return _as_trimesh(v, vn if nvn else None, vt if nvt else None, faces, faces_tex if len(faces_tex) else None,
                       faces_norm if len(faces_norm) else None, median_refs)


def _as_trimesh(v, vn, vt, faces, faces_tex, faces_norm, median_refs) -> tuple:
    """What trimesh.exchange.obj.load_obj(maintain_order=True) keeps of one geometry: with
    per-corner texture or normal indices, the vertices up to the highest one referenced and,
    for each, the median of its corners' indices (trimesh.visual.texture.unmerge_faces);
    a vertex without one, or an index past the end, drops that attribute."""
    uv = mask_vn = None
    if faces_tex is not None or (vn is not None and faces_norm is not None):
        vertices = v[: faces.max() + 1]
        if faces_norm is not None:
            mask_vn, complete = median_refs(faces, faces_norm, len(vertices))
            mask_vn = mask_vn if complete else None
        if faces_tex is not None:
            mask_vt, complete = median_refs(faces, faces_tex, len(vertices))
            uv = vt[mask_vt] if complete and vt is not None and mask_vt.max() < len(vt) else None
    else:
        vertices = v
    normals = None
    if mask_vn is not None and vn is not None and mask_vn.max() < len(vn):
        normals = vn[mask_vn]
    return vertices, faces, normals, uv
