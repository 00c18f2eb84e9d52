"""USD's implicit surfaces that the kernel has no primitive for (UsdGeomCylinder, Cone,
Capsule, Plane) as triangles in the prim's own space, with the normals of the true surface
at each corner (flat caps, smooth sides), as Hydra tessellates them but finer: SLICES around
the axis, RINGS on each half of a capsule's sphere. Dimensions as UsdGeom defines them:
centred on the origin along `axis` (X, Y or Z); a cone's apex at +height/2; a capsule's
height between its hemispheres' centres; a plane across the axis, `width` along the first
other axis (Z, X, X for axis X, Y, Z) and `length` along the second (Y, Z, Y).
MeshFile: the one binary file a stage's meshes, these shapes among them, are written to.
"""

from __future__ import annotations

import numpy as np

from farm import defaults
from farm.exceptions import SceneError
from farm.protocol.assets import size_text

SLICES = 64
RINGS = 16

# Turn the profiles' z axis (and its x, y with it) onto USD's axis: rotations, no mirror
# (the surfaces of revolution are the same whichever way x and y go).
_AXIS = {"Z": np.eye(3), "X": np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float),
         "Y": np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], float)}


MESH_FILE = "<the stage's meshes>"  # the shapes' file until the file is written


class MeshFile:
    """The blocks of the stage's mesh file: per block, float32 positions, normals and uvs of
    each triangle's corners, in object space (the shape's transform places them)."""

    def __init__(self, name: str):
        self.name = name  # the stage's file name, for what is refused
        self.parts: list[bytes] = []
        self.size = 0
        self.layouts: dict = {}

    def block(self, key, arrays: dict[str, np.ndarray]) -> dict:
        """The layout of the block `key` (its prim path first), written from `arrays` the
        first time; SceneError where the file would pass FARM_MAX_ASSET_BYTES."""
        if key not in self.layouts:
            layout = {}
            for part, values in arrays.items():
                data = np.ascontiguousarray(values, "<f4")
                if self.size + data.nbytes > defaults.MAX_ASSET_BYTES:
                    raise SceneError(f"{self.name}: its meshes pass {size_text(defaults.MAX_ASSET_BYTES)} "
                                     f"(FARM_MAX_ASSET_BYTES) at {key[0]} (a deforming mesh keeps its corners "
                                     f"for every time code)")
                layout[part] = {"offset": self.size, "count": len(data), "format": f"f32x{data.shape[1]}",
                                "stride": data.itemsize * data.shape[1]}
                self.parts.append(data.tobytes())
                self.size += data.nbytes
            self.layouts[key] = layout
        return self.layouts[key]

    def data(self) -> bytes:
        return b"".join(self.parts)


def cylinder(radius: float, height: float, axis: str) -> tuple[np.ndarray, np.ndarray]:
    half = height / 2
    return _revolved([[(0, -half, 0, -1), (radius, -half, 0, -1)], [(radius, -half, 1, 0), (radius, half, 1, 0)],
                      [(radius, half, 0, 1), (0, half, 0, 1)]], axis)


def cone(radius: float, height: float, axis: str) -> tuple[np.ndarray, np.ndarray]:
    half = height / 2
    slope = np.hypot(height, radius)
    normal = (height / slope, radius / slope) if slope > 0 else (0.0, 1.0)
    return _revolved([[(0, -half, 0, -1), (radius, -half, 0, -1)], [(radius, -half, *normal), (0, half, *normal)]],
                     axis)


def capsule(radius: float, height: float, axis: str) -> tuple[np.ndarray, np.ndarray]:
    half = height / 2
    below = [(radius * np.cos(a), -half + radius * np.sin(a), np.cos(a), np.sin(a))
             for a in np.linspace(-np.pi / 2, 0, RINGS + 1)]
    above = [(radius * np.cos(a), half + radius * np.sin(a), np.cos(a), np.sin(a))
             for a in np.linspace(0, np.pi / 2, RINGS + 1)]
    return _revolved([below + above], axis)


def plane(width: float, length: float, axis: str) -> tuple[np.ndarray, np.ndarray]:
    normal_axis = "XYZ".index(axis)
    width_axis, length_axis = {0: (2, 1), 1: (0, 2), 2: (0, 1)}[normal_axis]
    square = np.zeros((4, 3))
    square[:, width_axis] = np.array([-1, 1, 1, -1]) * width / 2
    square[:, length_axis] = np.array([-1, -1, 1, 1]) * length / 2
    normal = np.eye(3)[normal_axis]
    corners = square[[[0, 1, 2], [0, 2, 3]]]
    if np.cross(corners[0, 1] - corners[0, 0], corners[0, 2] - corners[0, 0]) @ normal < 0:
        corners = corners[:, ::-1]
    return corners, np.broadcast_to(normal, corners.shape).copy()


def _revolved(profiles: list[list[tuple]], axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Triangles (n, 3, 3) and corner normals (n, 3, 3) of each profile (rings of (radius,
    z, normal's radial part, normal's z)) turned about z, consecutive rings joined, then put
    on `axis`. Each triangle faces the way its normals point; those of no area (at the axis)
    are kept, and the packer drops them."""
    theta = np.linspace(0.0, 2 * np.pi, SLICES + 1)
    cos, sin = np.cos(theta), np.sin(theta)
    cos[-1], sin[-1] = 1.0, 0.0  # the seam closes exactly
    corners, normals = [], []
    for profile in profiles:
        ring = np.array(profile, float)
        points = np.stack([ring[:, None, 0] * cos, ring[:, None, 0] * sin, np.repeat(ring[:, 1:2], SLICES + 1, 1)], -1)
        unit = np.stack([ring[:, None, 2] * cos, ring[:, None, 2] * sin, np.repeat(ring[:, 3:4], SLICES + 1, 1)], -1)
        a0, a1, b0, b1 = (slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None)), \
            (slice(1, None), slice(None, -1)), (slice(1, None), slice(1, None))
        for first, second, third in ((a0, a1, b1), (a0, b1, b0)):
            corners.append(np.stack([points[first], points[second], points[third]], -2).reshape(-1, 3, 3))
            normals.append(np.stack([unit[first], unit[second], unit[third]], -2).reshape(-1, 3, 3))
    corners, normals = np.concatenate(corners), np.concatenate(normals)
    facing = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    backwards = (facing * normals.sum(axis=1)).sum(axis=1) < 0
    corners[backwards], normals[backwards] = corners[backwards][:, ::-1], normals[backwards][:, ::-1]
    return corners @ _AXIS[axis].T, normals @ _AXIS[axis].T
