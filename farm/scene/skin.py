"""Skeletal skinning of a glTF mesh at a frame's moment (glTF 2.0, 3.7.3): every vertex
moves by the blend of its (up to four) joints' matrices, each the joint's world matrix at
that moment times its inverse bind matrix (farm.scene.animation computes them from the rig).

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


def _apply(blend: np.ndarray, points: np.ndarray, w: float) -> np.ndarray:
    x, y, z = points[:, 0, None], points[:, 1, None], points[:, 2, None]
    moved = blend[:, :3, 0] * x + blend[:, :3, 1] * y + blend[:, :3, 2] * z
    return moved + blend[:, :3, 3] * w if w else moved


def _unit(vectors: np.ndarray) -> np.ndarray:
    length = np.sqrt(vectors[:, 0] ** 2 + vectors[:, 1] ** 2 + vectors[:, 2] ** 2)
    return vectors / np.where(length > 0, length, 1.0)[:, None]
