"""Pack a Scene into flat numpy arrays whose layouts mirror the structs in kernels/types.h.

Every field is a float4 or an int4, so host and device agree on the layout without
padding rules; `render.py` checks the sizes against the compiled kernel once per process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from farm.scene.model import Box, Camera, Film, Mesh, Rectangle, Scene, Sphere

TRIANGLE = np.dtype([("v0", "<f4", 4), ("e1", "<f4", 4), ("e2", "<f4", 4), ("n", "<f4", 4), ("info", "<i4", 4)])
SPHERE = np.dtype([("center_radius", "<f4", 4), ("info", "<i4", 4)])
MATERIAL = np.dtype([("diffuse", "<f4", 4), ("emission", "<f4", 4)])
LIGHT = np.dtype([("info", "<i4", 4), ("data", "<f4", 4)])
FRAME = np.dtype(
    [
        ("origin", "<f4", 4),
        ("forward", "<f4", 4),
        ("right", "<f4", 4),
        ("up", "<f4", 4),
        ("size", "<i4", 4),
        ("counts", "<i4", 4),
    ]
)

LIGHT_TRIANGLE, LIGHT_SPHERE = 0, 1

_RECTANGLE = (
    np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=np.float64),
    np.array([[0, 1, 2], [0, 2, 3]]),
)


def _cube() -> tuple[np.ndarray, np.ndarray]:
    """The cube [-1, 1]^3 as 12 triangles wound counter-clockwise seen from outside."""
    vertices, triangles = [], []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3
        for sign in (1.0, -1.0):
            corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
            if sign < 0:
                corners.reverse()
            base = len(vertices)
            for cu, cv in corners:
                p = [0.0, 0.0, 0.0]
                p[axis], p[u], p[v] = sign, cu, cv
                vertices.append(p)
            triangles += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return np.array(vertices, dtype=np.float64), np.array(triangles)


_BOX = _cube()


@dataclass(frozen=True)
class PackedScene:
    """Flat arrays ready for device buffers, plus the numbers the host needs."""

    frame: np.ndarray
    triangles: np.ndarray
    spheres: np.ndarray
    materials: np.ndarray
    lights: np.ndarray
    width: int
    height: int
    digest: str


def pack(scene: Scene) -> PackedScene:
    """Turn every shape into triangles or spheres in world space and index the lights."""
    names = list(scene.materials)
    material_index = {name: i for i, name in enumerate(names)}
    materials = np.zeros(len(names), MATERIAL)
    for i, name in enumerate(names):
        materials[i]["diffuse"][:3] = scene.materials[name].diffuse
        materials[i]["emission"][:3] = scene.materials[name].emission

    triangle_chunks, triangle_materials, spheres = [], [], []
    for shape in scene.shapes:
        m = np.array(shape.transform, dtype=np.float64)
        mid = material_index[shape.material]
        if isinstance(shape, Sphere):
            center = m[:3, :3] @ np.array(shape.center) + m[:3, 3]
            radius = shape.radius * float(np.linalg.norm(m[:3, 0]))
            spheres.append((center, radius, mid))
            continue
        if isinstance(shape, Rectangle):
            vertices, indices = _RECTANGLE
        elif isinstance(shape, Box):
            vertices, indices = _BOX
        elif isinstance(shape, Mesh):
            vertices, indices = np.array(shape.vertices, dtype=np.float64), np.array(shape.triangles)
        else:  # pragma: no cover - the parser only makes the shapes above
            raise TypeError(f"cannot pack {type(shape).__name__}")
        world = vertices @ m[:3, :3].T + m[:3, 3]
        if np.linalg.det(m[:3, :3]) < 0:  # a mirroring transform: keep front faces in front
            indices = indices[:, ::-1]
        triangle_chunks.append(world[indices])
        triangle_materials.append(np.full(len(indices), mid))

    corners = np.concatenate(triangle_chunks) if triangle_chunks else np.zeros((0, 3, 3))
    tri_material = np.concatenate(triangle_materials) if triangle_materials else np.zeros(0, int)
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    cross = np.cross(e1, e2)
    double_area = np.linalg.norm(cross, axis=1)
    keep = double_area > 0.0  # degenerate triangles can be neither hit nor sampled
    corners, e1, e2, cross, double_area, tri_material = (
        a[keep] for a in (corners, e1, e2, cross, double_area, tri_material)
    )

    triangles = np.zeros(len(corners), TRIANGLE)
    triangles["v0"][:, :3] = corners[:, 0]
    triangles["e1"][:, :3] = e1
    triangles["e2"][:, :3] = e2
    triangles["n"][:, :3] = cross / double_area[:, None]
    triangles["info"][:, 0] = tri_material
    triangles["info"][:, 1] = -1

    sphere_array = np.zeros(len(spheres), SPHERE)
    for i, (center, radius, mid) in enumerate(spheres):
        sphere_array[i]["center_radius"] = (*center, radius)
        sphere_array[i]["info"] = (mid, -1, 0, 0)

    lights = _lights(scene, names, triangles, double_area * 0.5, sphere_array)
    frame = _frame(scene.camera, scene.film, scene, len(triangles), len(sphere_array), len(lights))
    return PackedScene(frame, triangles, sphere_array, materials, lights, scene.film.width, scene.film.height, scene.digest)


def _lights(scene: Scene, names: list[str], triangles, triangle_areas, spheres) -> np.ndarray:
    """Emissive triangles and spheres, chosen in proportion to their emitted power."""
    emission = np.array([scene.materials[n].emission for n in names], dtype=np.float64).reshape(-1, 3)
    luminance = emission @ np.array([0.2126, 0.7152, 0.0722])
    entries = []  # (kind, primitive index, area, power)
    for i, mid in enumerate(triangles["info"][:, 0]):
        if luminance[mid] > 0:
            entries.append((LIGHT_TRIANGLE, i, float(triangle_areas[i]), luminance[mid] * triangle_areas[i]))
    for i, sphere in enumerate(spheres):
        mid = sphere["info"][0]
        if luminance[mid] > 0:
            area = 4.0 * math.pi * float(sphere["center_radius"][3]) ** 2
            entries.append((LIGHT_SPHERE, i, area, luminance[mid] * area))
    lights = np.zeros(len(entries), LIGHT)
    if not entries:
        return lights
    power = np.array([e[3] for e in entries])
    pmf = power / power.sum()
    cdf = np.cumsum(pmf)
    cdf[-1] = 1.0
    for j, (kind, index, area, _) in enumerate(entries):
        lights[j]["info"] = (kind, index, 0, 0)
        lights[j]["data"] = (area, pmf[j], cdf[j], 0.0)
        target = triangles if kind == LIGHT_TRIANGLE else spheres
        target[index]["info"][1] = j
    return lights


def _frame(camera: Camera, film: Film, scene: Scene, n_triangles: int, n_spheres: int, n_lights: int) -> np.ndarray:
    """Camera basis scaled so that forward + sx*right + sy*up spans the image for sx, sy in [-1, 1]."""
    position = np.array(camera.position, dtype=np.float64)
    forward = np.array(camera.look_at, dtype=np.float64) - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array(camera.up, dtype=np.float64))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    half = math.tan(math.radians(camera.fov) / 2.0)
    aspect = film.width / film.height
    tan_x, tan_y = (half, half / aspect) if camera.fov_axis == "x" else (half * aspect, half)
    frame = np.zeros(1, FRAME)
    frame["origin"][0, :3] = position
    frame["forward"][0, :3] = forward
    frame["right"][0, :3] = right * tan_x
    frame["up"][0, :3] = up * tan_y
    frame["size"][0] = (film.width, film.height, film.spp, scene.max_depth)
    seed = np.array([scene.seed], dtype=np.uint32).view(np.int32)[0]
    frame["counts"][0] = (n_triangles, n_spheres, n_lights, seed)
    return frame
