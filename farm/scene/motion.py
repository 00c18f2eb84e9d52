"""Motion blur: a frame's shutter, and the placements of what moves while it is open.

`submit --shutter OPEN,CLOSE` (in frames around each frame's moment) opens the shutter: each
sample gets a time in it from the sampler (a dimension of its own, so a sample is still a
pure function of seed, pixel and index), the camera between its place at the open and at the
close, and a moving shape placed by its instance at that time: its transform at the open and
the close decomposed as pbrt-v4's AnimatedTransform does (translation, rotation, the rest of
the linear part: M = T R K, R by polar decomposition), translation and K lerped, R slerped.
Deforming meshes (skins, morph targets), lights and emitting shapes render at the frame's
moment. A closed shutter (the default) renders the same bits as before.

Everything here is Python floats, + - * / and sqrt, in a fixed order: every worker places
an instance to the same bits (numpy's LAPACK would not promise that across CPUs).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from farm.scene.layout import MOTION

Matrix3 = list[list[float]]


def _inverse3(m: Matrix3) -> Matrix3:
    a, b, c = m[0]
    d, e, f = m[1]
    g, h, i = m[2]
    co = [[e * i - f * h, c * h - b * i, b * f - c * e],
          [f * g - d * i, a * i - c * g, c * d - a * f],
          [d * h - e * g, b * g - a * h, a * e - b * d]]
    det = a * co[0][0] + b * co[1][0] + c * co[2][0]
    return [[v / det for v in row] for row in co]


def polar(linear: Matrix3) -> tuple[Matrix3, Matrix3]:
    """(R, K) with linear = R K, R a rotation (or a rotation and a mirror where linear mirrors)
    and K symmetric: Higham's iteration R <- (R + R^-T) / 2, as pbrt-v4's decomposition."""
    r = [row[:] for row in linear]
    for _ in range(100):
        inverse = _inverse3(r)
        following = [[(r[i][j] + inverse[j][i]) * 0.5 for j in range(3)] for i in range(3)]
        change = max(abs(following[i][j] - r[i][j]) for i in range(3) for j in range(3))
        r = following
        if change < 1e-12:
            break
    rt = [[r[j][i] for j in range(3)] for i in range(3)]
    k = [[sum(rt[i][n] * linear[n][j] for n in range(3)) for j in range(3)] for i in range(3)]
    return r, k


def quaternion(r: Matrix3) -> tuple[float, float, float, float]:
    """The unit quaternion (x, y, z, w) of rotation matrix `r` (Shepperd's method)."""
    trace = r[0][0] + r[1][1] + r[2][2]
    if trace > 0.0:
        s = math.sqrt(trace + 1.0) * 2.0
        q = ((r[2][1] - r[1][2]) / s, (r[0][2] - r[2][0]) / s, (r[1][0] - r[0][1]) / s, 0.25 * s)
    elif r[0][0] > r[1][1] and r[0][0] > r[2][2]:
        s = math.sqrt(1.0 + r[0][0] - r[1][1] - r[2][2]) * 2.0
        q = (0.25 * s, (r[0][1] + r[1][0]) / s, (r[0][2] + r[2][0]) / s, (r[2][1] - r[1][2]) / s)
    elif r[1][1] > r[2][2]:
        s = math.sqrt(1.0 + r[1][1] - r[0][0] - r[2][2]) * 2.0
        q = ((r[0][1] + r[1][0]) / s, 0.25 * s, (r[1][2] + r[2][1]) / s, (r[0][2] - r[2][0]) / s)
    else:
        s = math.sqrt(1.0 + r[2][2] - r[0][0] - r[1][1]) * 2.0
        q = ((r[0][2] + r[2][0]) / s, (r[1][2] + r[2][1]) / s, 0.25 * s, (r[1][0] - r[0][1]) / s)
    norm = math.sqrt(sum(c * c for c in q))
    return tuple(c / norm for c in q)


def decompose(transform) -> tuple[list[float], tuple[float, ...], Matrix3]:
    """(translation, rotation quaternion, stretch K) of a 4x4 transform. A mirroring
    transform keeps its mirror in K, so that R stays a rotation."""
    m = [[float(v) for v in row] for row in transform]
    linear = [row[:3] for row in m[:3]]
    det = _det3(linear)
    flip = -1.0 if det < 0 else 1.0
    r, k = polar([[v * flip for v in row] for row in linear])
    k = [[v * flip for v in row] for row in k]
    return [m[0][3], m[1][3], m[2][3]], quaternion(r), k


def _det3(m: Matrix3) -> float:
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def motion_entry(open_transform, close_transform) -> np.void:
    """The MOTION record of a placement moving from `open_transform` to `close_transform`;
    the quaternions on the same hemisphere, so the slerp takes the shorter arc."""
    entry = np.zeros((), MOTION)
    t0, q0, k0 = decompose(open_transform)
    t1, q1, k1 = decompose(close_transform)
    if sum(a * b for a, b in zip(q0, q1)) < 0.0:
        q1 = tuple(-c for c in q1)
    for suffix, (t, q, k) in (("0", (t0, q0, k0)), ("1", (t1, q1, k1))):
        entry[f"t{suffix}"][:3] = t
        entry[f"q{suffix}"] = q
        for row in range(3):
            entry[f"k{suffix}_{row}"][:3] = k[row]
    return entry


def placement_at(entry, time: float) -> np.ndarray:
    """The 4x4 object-to-world transform of a MOTION record at `time` in [0, 1], as the
    kernel computes it (here in float64: for boxes, not for bits)."""
    f = lambda name: np.asarray(entry[name], np.float64)  # noqa: E731
    t = f("t0")[:3] + (f("t1")[:3] - f("t0")[:3]) * time
    q = slerp(f("q0"), f("q1"), time)
    k = np.stack([f(f"k0_{r}")[:3] + (f(f"k1_{r}")[:3] - f(f"k0_{r}")[:3]) * time for r in range(3)])
    out = np.eye(4)
    out[:3, :3] = rotation(q) @ k
    out[:3, 3] = t
    return out


def slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    cos = float(np.clip(np.dot(q0, q1), -1.0, 1.0))
    if cos > 0.9995:
        q = q0 + (q1 - q0) * u
    else:
        angle = math.acos(cos)
        q = (math.sin((1 - u) * angle) * q0 + math.sin(u * angle) * q1) / math.sin(angle)
    return q / np.linalg.norm(q)


def rotation(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


SWEEP_STEPS = 32  # times at which a moving instance's box is taken, the union padded for the arcs between


def swept_box(lower: np.ndarray, upper: np.ndarray, entry) -> tuple[np.ndarray, np.ndarray]:
    """A box holding the level's box (`lower`, `upper`) wherever the motion puts it in the
    shutter: the union at SWEEP_STEPS + 1 times, widened by how far a corner's arc can stray
    from the chords between them (r (1 - cos(a / 2)) for a step turning by a)."""
    corners = np.stack(np.meshgrid(*zip(lower, upper), indexing="ij"), axis=-1).reshape(8, 3)
    boxes = []
    for step in range(SWEEP_STEPS + 1):
        m = placement_at(entry, step / SWEEP_STEPS)
        world = corners @ m[:3, :3].T + m[:3, 3]
        boxes.append((world.min(axis=0), world.max(axis=0)))
    low = np.min([b[0] for b in boxes], axis=0)
    high = np.max([b[1] for b in boxes], axis=0)
    q0, q1 = np.asarray(entry["q0"], np.float64), np.asarray(entry["q1"], np.float64)
    turn = 2.0 * math.acos(min(1.0, abs(float(np.dot(q0, q1)))))  # the rotation's whole angle
    linears = [placement_at(entry, u / 4)[:3, :3] for u in range(5)]
    reach = max(np.linalg.norm(linear @ c) for linear in linears for c in corners)
    pad = reach * (1.0 - math.cos(turn / SWEEP_STEPS / 2.0)) + 1e-6 * (1.0 + float(np.abs(high - low).max()))
    return low - pad, high + pad


def frame_scenes(document, seconds: float, shutter: tuple[float, float], source: str = "scene"):
    """(the scene at `seconds`, and (at the shutter's open, at its close) or None where the
    shutter is closed or nothing moves): what a frame with motion blur is packed from."""
    from farm.scene import parse_scene

    scene = parse_scene(document, source, seconds)
    if shutter == (0.0, 0.0) or scene.animation is None:
        return scene, None
    scene = replace(scene, shutter=shutter)
    ends = tuple(_aligned(parse_scene(document, source, seconds + offset), scene) for offset in shutter)
    return scene, ends


def _aligned(end, scene):
    """`end` (the scene at the shutter's open or close) with `scene`'s shapes place by place:
    one hidden at that end (scaled to nothing, invisible) stays where the frame's moment puts
    it, unblurred."""
    if end.shown == scene.shown:
        return end
    at = dict(zip(end.shown, end.shapes))
    return replace(end, shapes=tuple(at.get(index, shape) for index, shape in zip(scene.shown, scene.shapes)),
                   shown=scene.shown, moving=scene.moving)
