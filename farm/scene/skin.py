"""A glTF mesh deformed at a frame's moment: morph targets (glTF 2.0, 3.7.2.2: each
vertex moves by its targets' offsets times their weights) and then skeletal skinning
(3.7.3: every vertex moves by the blend of its (up to four) joints' matrices, each the
joint's world matrix at that moment times its inverse bind matrix; farm.scene.animation
computes the weights and matrices from the rig).

Done in plain elementwise arithmetic, in a fixed order, not by a matrix product that BLAS
may group differently on another CPU: every worker deforms a mesh to the same bits.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from farm.exceptions import SceneError
from farm.scene.mesh import TriangleMesh


def deform(name: str, mesh: TriangleMesh, joints: np.ndarray, weights: np.ndarray,
           matrices: tuple) -> TriangleMesh:
    """`mesh` with its vertices (and normals, tangents) moved by the joints' `matrices`
    (row-major 4x4, world space): the skinned mesh in world space."""
    count = len(mesh.vertices)
    if joints.shape != (count, 4) or weights.shape != (count, 4):
        raise SceneError(f"{name}: {len(joints)} joint and {len(weights)} weight sets for {count} vertices")
    table = np.array(matrices, np.float64).reshape(-1, 4, 4)
    if len(joints) and (joints.min() < 0 or joints.max() >= len(table)):
        raise SceneError(f"{name}: a vertex names joint {int(joints.max())} of {len(table)}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise SceneError(f"{name}: skin weights must be finite and not negative")
    blend = weights[:, 0, None, None] * table[joints[:, 0]]
    for k in (1, 2, 3):
        blend = blend + weights[:, k, None, None] * table[joints[:, k]]
    vertices = _apply(blend, mesh.vertices, 1.0)
    normals = _unit(_apply(blend, mesh.normals, 0.0)) if mesh.normals is not None else None
    tangents = None
    if mesh.tangents is not None:
        tangents = np.concatenate([_unit(_apply(blend, mesh.tangents[:, :3], 0.0)), mesh.tangents[:, 3:]], axis=1)
    return replace(mesh, vertices=vertices, normals=normals, tangents=tangents)


def morph(name: str, mesh: TriangleMesh, assets, shape) -> TriangleMesh:
    """`mesh` with its morph targets' offsets (positions, normals, tangents: glTF 2.0,
    3.7.2.2) added, each times its weight, in the targets' order (the same bits on every
    worker); the tangents keep their handedness (w)."""
    from farm.scene.mesh import _accessor

    data = assets.decoded(shape.file, shape.base64) if shape.base64 else assets.read(shape.file)
    layouts, weights = shape.morph
    moved = {"positions": mesh.vertices.copy(), "normals": None if mesh.normals is None else mesh.normals.copy(),
             "tangents": None if mesh.tangents is None else mesh.tangents[:, :3].copy()}
    for number, (parts, weight) in enumerate(zip(layouts, weights)):
        for part, offset, count, fmt, stride in parts:
            if count != len(mesh.vertices):
                raise SceneError(f"{name}: morph target {number} has {count} {part} for {len(mesh.vertices)} vertices")
            if weight == 0.0 or moved[part] is None:  # offsets of what the mesh lacks move nothing
                continue
            delta = _accessor(name, data, f"morph target {number} {part}",
                              {"offset": offset, "count": count, "format": fmt, "stride": stride})
            if not np.isfinite(delta).all():
                raise SceneError(f"{name}: morph target {number} holds a number that is not finite")
            moved[part] = moved[part] + weight * delta
    normals, tangents = moved["normals"], moved["tangents"]
    return replace(mesh, vertices=moved["positions"], normals=_unit(normals) if normals is not None else None,
                   tangents=None if tangents is None else np.concatenate([_unit(tangents), mesh.tangents[:, 3:]], axis=1))


def _apply(blend: np.ndarray, points: np.ndarray, w: float) -> np.ndarray:
    x, y, z = points[:, 0, None], points[:, 1, None], points[:, 2, None]
    moved = blend[:, :3, 0] * x + blend[:, :3, 1] * y + blend[:, :3, 2] * z
    return moved + blend[:, :3, 3] * w if w else moved


def _unit(vectors: np.ndarray) -> np.ndarray:
    length = np.sqrt(vectors[:, 0] ** 2 + vectors[:, 1] ** 2 + vectors[:, 2] ** 2)
    return vectors / np.where(length > 0, length, 1.0)[:, None]
