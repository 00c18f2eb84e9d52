"""4x4 matrices as tuples of rows, for scene transforms: small and exact enough that the
client and every worker compute the same numbers."""

from __future__ import annotations

import math

from farm.scene.model import Matrix


def sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def length(a) -> float:
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


def matmul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(4)) for j in range(4)) for i in range(4))


def det3(m: Matrix) -> float:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


def singular(m) -> bool:
    """Whether the 3x3 part of `m` (rows) takes an axis, or all, to nothing: relative to its
    largest axis, so that a tiny uniform scale (a millimetre stage's bolt) is not."""
    largest = max(math.sqrt(sum(m[row][column] ** 2 for row in range(3))) for column in range(3))
    return not abs(det3(m)) > 1e-12 * largest ** 3


def turn_of(m) -> Matrix:
    """The rotation of `m` (rows; no shear): its 3x3 columns made unit, no translation."""
    lengths = [math.sqrt(sum(m[row][column] ** 2 for row in range(3))) or 1.0 for column in range(3)]
    return tuple(tuple(m[row][column] / lengths[column] for column in range(3)) + (0.0,) for row in range(3)) + (
        (0.0, 0.0, 0.0, 1.0),)


def is_similarity(m: Matrix) -> bool:
    """True if the linear part is a rotation times a uniform scale (spheres stay spheres)."""
    columns = [(m[0][j], m[1][j], m[2][j]) for j in range(3)]
    lengths = [length(c) for c in columns]
    scale = lengths[0]
    if scale == 0.0 or any(abs(length - scale) > 1e-6 * scale for length in lengths):
        return False
    for i in range(3):
        for j in range(i + 1, 3):
            dot = sum(columns[i][k] * columns[j][k] for k in range(3))
            if abs(dot) > 1e-6 * scale * scale:
                return False
    return True


def is_rotation(m: Matrix) -> bool:
    return is_similarity(m) and abs(det3(m) - 1.0) < 1e-6 and all(m[i][3] == 0.0 for i in range(3))


def scaling(s) -> Matrix:
    return ((s[0], 0.0, 0.0, 0.0), (0.0, s[1], 0.0, 0.0), (0.0, 0.0, s[2], 0.0), (0.0, 0.0, 0.0, 1.0))


def translation(t) -> Matrix:
    return ((1.0, 0.0, 0.0, t[0]), (0.0, 1.0, 0.0, t[1]), (0.0, 0.0, 1.0, t[2]), (0.0, 0.0, 0.0, 1.0))


def rotation(axis, degrees: float) -> Matrix:
    """Right-handed rotation by `degrees` about `axis` (counter-clockwise looking down the axis)."""
    n = length(axis)
    x, y, z = (a / n for a in axis)
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    t = 1.0 - c
    return (
        (t * x * x + c, t * x * y - s * z, t * x * z + s * y, 0.0),
        (t * x * y + s * z, t * y * y + c, t * y * z - s * x, 0.0),
        (t * x * z - s * y, t * y * z + s * x, t * z * z + c, 0.0),
        (0.0, 0.0, 0.0, 1.0),
    )
