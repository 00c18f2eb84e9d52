"""Rays against triangles by brute force, in float64: what a BVH walk must find, computed
without one (Moeller and Trumbore's test of every triangle)."""

from __future__ import annotations

import numpy as np


def nearest_hits(corners: np.ndarray, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The nearest positive distance along each ray (origins `o`, directions `d`) to any of
    the triangles `corners` (t, 3, 3); inf where none is hit."""
    best = np.full(len(o), np.inf)
    v0, e1, e2 = corners[:, 0], corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    with np.errstate(all="ignore"):
        for i in range(len(v0)):
            p = np.cross(d, e2[i])
            inv = 1.0 / (p @ e1[i])
            s = o - v0[i]
            u = (s * p).sum(axis=1) * inv
            q = np.cross(s, e1[i])
            v = (d * q).sum(axis=1) * inv
            t = (q @ e2[i]) * inv
            best = np.where((u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (t < best), t, best)
    return best
