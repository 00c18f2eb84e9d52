"""Read a scene file (format version 1) into frozen dataclasses, strictly.

Unknown keys, wrong types and impossible values are errors naming their place in the
file (`shapes[2].material`), never silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from farm import defaults
from farm.exceptions import SceneError
from farm.scene.model import IDENTITY, Box, Camera, Film, Material, Matrix, Mesh, Rectangle, Scene, Sphere

FORMAT_VERSION = 1
SHAPE_TYPES = ("sphere", "rectangle", "box", "mesh")


def load_scene(path: str | Path, spp: int | None = None) -> tuple[Scene, dict]:
    """Read and validate a scene file; `spp` overrides the film's samples per pixel.

    Returns the scene and the (overridden) document, which is what travels to workers.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SceneError(f"{path}: no such scene file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SceneError(f"{path}: cannot read scene file: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if spp is not None and isinstance(document, dict) and isinstance(document.get("film"), dict):
        document["film"]["spp"] = spp
    return parse_scene(document, source=str(path)), document


def scene_digest(document: dict) -> str:
    """SHA-256 of the document's canonical JSON: equal scenes, equal digests."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_scene(document: Any, source: str = "scene") -> Scene:
    """Validate a decoded scene document and build the Scene it describes."""
    root = _Node(document, source)
    root.expect_keys(
        required=("version", "camera", "film", "materials", "shapes"),
        optional=("max_depth", "seed", "description"),
    )
    version = root.child("version").integer()
    if version != FORMAT_VERSION:
        root.child("version").fail(f"unsupported scene format version {version} (this farm reads {FORMAT_VERSION})")
    if "description" in root.value:
        root.child("description").string()

    camera = _camera(root.child("camera"))
    film = _film(root.child("film"))
    materials = _materials(root.child("materials"))
    shapes_node = root.child("shapes")
    shapes = tuple(_shape(node, materials) for node in shapes_node.items())
    if not shapes:
        shapes_node.fail("a scene needs at least one shape")
    max_depth = root.child("max_depth").integer(1, 1024) if "max_depth" in root.value else 8
    seed = root.child("seed").integer(0, 2**32 - 1) if "seed" in root.value else 0
    try:
        digest = scene_digest(document)
    except ValueError:
        root.fail("numbers must be finite")
    return Scene(camera, film, materials, shapes, max_depth, seed, digest)


def _camera(node: _Node) -> Camera:
    node.expect_keys(required=("position", "look_at", "fov"), optional=("up", "fov_axis"))
    position = node.child("position").vec3()
    look_at = node.child("look_at").vec3()
    up = node.child("up").vec3() if "up" in node.value else (0.0, 1.0, 0.0)
    fov = node.child("fov").number()
    if not 0.0 < fov < 180.0:
        node.child("fov").fail(f"field of view must be between 0 and 180 degrees, got {fov}")
    fov_axis = node.child("fov_axis").choice(("x", "y")) if "fov_axis" in node.value else "y"
    forward = _sub(look_at, position)
    if _length(forward) == 0.0:
        node.fail("position and look_at are the same point")
    if _length(_cross(forward, up)) <= 1e-9 * _length(forward) * max(_length(up), 1e-30):
        node.child("up").fail("up must not be zero or parallel to the viewing direction")
    return Camera(position, look_at, up, fov, fov_axis)


def _film(node: _Node) -> Film:
    node.expect_keys(required=("width", "height", "spp"))
    limit = defaults.MAX_RESOLUTION
    width = node.child("width").integer(1, limit, what="width (pixels)")
    height = node.child("height").integer(1, limit, what="height (pixels)")
    spp = node.child("spp").integer(1, defaults.MAX_SPP, what="samples per pixel")
    return Film(width, height, spp)


def _materials(node: _Node) -> dict[str, Material]:
    if not isinstance(node.value, dict):
        node.fail(f"expected an object of named materials, got {_kind(node.value)}")
    materials = {}
    for name in node.value:
        child = node.child(name)
        child.expect_keys(optional=("diffuse", "emission"))
        diffuse = child.child("diffuse").vec3(0.0, 1.0) if "diffuse" in child.value else (0.0, 0.0, 0.0)
        emission = child.child("emission").vec3(0.0) if "emission" in child.value else (0.0, 0.0, 0.0)
        materials[name] = Material(name, diffuse, emission)
    if not materials:
        node.fail("a scene needs at least one material")
    return materials


def _shape(node: _Node, materials: dict[str, Material]):
    if not isinstance(node.value, dict):
        node.fail(f"expected a shape object, got {_kind(node.value)}")
    kind = node.child("type").choice(SHAPE_TYPES)
    extra = {"sphere": ("center", "radius"), "mesh": ("vertices", "triangles")}.get(kind, ())
    required = ("type", "material") + (("vertices", "triangles") if kind == "mesh" else ())
    node.expect_keys(required=required, optional=extra + ("transform",))
    material = node.child("material").string()
    if material not in materials:
        known = ", ".join(sorted(materials))
        node.child("material").fail(f"unknown material {material!r} (defined: {known})")
    transform = _transform(node.child("transform")) if "transform" in node.value else IDENTITY
    if kind == "sphere":
        center = node.child("center").vec3() if "center" in node.value else (0.0, 0.0, 0.0)
        radius = node.child("radius").number() if "radius" in node.value else 1.0
        if radius <= 0.0:
            node.child("radius").fail(f"radius must be positive, got {radius}")
        if not _is_similarity(transform):
            node.child("transform").fail("a sphere's transform may only translate, rotate and scale uniformly")
        return Sphere(material, transform, center, radius)
    if kind == "rectangle":
        return Rectangle(material, transform)
    if kind == "box":
        return Box(material, transform)
    vertices = tuple(v.vec3() for v in node.child("vertices").items())
    triangles = tuple(_triangle(t, len(vertices)) for t in node.child("triangles").items())
    if not triangles:
        node.child("triangles").fail("a mesh needs at least one triangle")
    return Mesh(material, transform, vertices, triangles)


def _triangle(node: _Node, vertex_count: int) -> tuple[int, int, int]:
    indices = node.list_of(3)
    result = tuple(index.integer(0, vertex_count - 1, what="vertex index") for index in indices)
    return result  # type: ignore[return-value]


def _transform(node: _Node) -> Matrix:
    """Either {"matrix": 4x4 rows} or {"scale", "rotate", "translate"} applied in that order."""
    node.expect_keys(optional=("matrix", "translate", "rotate", "scale"))
    if "matrix" in node.value:
        if len(node.value) > 1:
            node.fail("give either matrix or scale/rotate/translate, not both")
        rows = node.child("matrix").list_of(4)
        matrix = tuple(tuple(row.list_of(4)[i].number() for i in range(4)) for row in rows)
        if matrix[3] != (0.0, 0.0, 0.0, 1.0):
            node.child("matrix").fail("the last row must be [0, 0, 0, 1] (no projective transforms)")
        if abs(_det3(matrix)) < 1e-12:
            node.child("matrix").fail("the matrix is singular")
        return matrix
    result = IDENTITY
    if "scale" in node.value:
        scale_node = node.child("scale")
        if isinstance(scale_node.value, list):
            scale = scale_node.vec3()
        else:
            s = scale_node.number()
            scale = (s, s, s)
        if any(s == 0.0 for s in scale):
            scale_node.fail("scale must not be zero")
        result = _matmul(_scaling(scale), result)
    if "rotate" in node.value:
        rotate_node = node.child("rotate")
        steps = rotate_node.items() if isinstance(rotate_node.value, list) else [rotate_node]
        for step in steps:
            step.expect_keys(required=("axis", "angle"))
            axis = step.child("axis").vec3()
            if _length(axis) == 0.0:
                step.child("axis").fail("rotation axis must not be zero")
            result = _matmul(_rotation(axis, step.child("angle").number()), result)
    if "translate" in node.value:
        result = _matmul(_translation(node.child("translate").vec3()), result)
    return result


class _Node:
    """A value in the document together with its path, for error messages."""

    def __init__(self, value: Any, path: str):
        self.value = value
        self.path = path

    def fail(self, message: str):
        raise SceneError(f"{self.path}: {message}")

    def child(self, key: str | int) -> _Node:
        if isinstance(key, int):
            return _Node(self.value[key], f"{self.path}[{key}]")
        if key not in self.value:
            self.fail(f"missing field {key!r}")
        return _Node(self.value[key], f"{self.path}.{key}")

    def expect_keys(self, required=(), optional=()):
        if not isinstance(self.value, dict):
            self.fail(f"expected an object, got {_kind(self.value)}")
        for key in required:
            if key not in self.value:
                self.fail(f"missing field {key!r}")
        allowed = set(required) | set(optional)
        for key in self.value:
            if key not in allowed:
                self.fail(f"unknown field {key!r} (allowed: {', '.join(sorted(allowed))})")

    def items(self) -> list[_Node]:
        if not isinstance(self.value, list):
            self.fail(f"expected a list, got {_kind(self.value)}")
        return [self.child(i) for i in range(len(self.value))]

    def list_of(self, count: int) -> list[_Node]:
        items = self.items()
        if len(items) != count:
            self.fail(f"expected a list of {count} values, got {len(items)}")
        return items

    def number(self, low: float | None = None, high: float | None = None) -> float:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"expected a number, got {_kind(value)}")
        value = float(value)
        if not math.isfinite(value):
            self.fail("expected a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{value} is out of range [{low}, {high if high is not None else 'inf'}]")
        return value

    def integer(self, low: int | None = None, high: int | None = None, what: str = "value") -> int:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected an integer, got {_kind(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{what} {value} is out of range [{low}, {high}]")
        return value

    def string(self) -> str:
        if not isinstance(self.value, str):
            self.fail(f"expected a string, got {_kind(self.value)}")
        return self.value

    def choice(self, options: tuple[str, ...]) -> str:
        value = self.string()
        if value not in options:
            self.fail(f"{value!r} is not one of {', '.join(options)}")
        return value

    def vec3(self, low: float | None = None, high: float | None = None):
        return tuple(item.number(low, high) for item in self.list_of(3))


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _length(a) -> float:
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


def _matmul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(4)) for j in range(4)) for i in range(4))


def _det3(m: Matrix) -> float:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


def _is_similarity(m: Matrix) -> bool:
    """True if the linear part is a rotation times a uniform scale (spheres stay spheres)."""
    columns = [(m[0][j], m[1][j], m[2][j]) for j in range(3)]
    lengths = [_length(c) for c in columns]
    scale = lengths[0]
    if scale == 0.0 or any(abs(length - scale) > 1e-6 * scale for length in lengths):
        return False
    for i in range(3):
        for j in range(i + 1, 3):
            dot = sum(columns[i][k] * columns[j][k] for k in range(3))
            if abs(dot) > 1e-6 * scale * scale:
                return False
    return True


def _scaling(s) -> Matrix:
    return ((s[0], 0.0, 0.0, 0.0), (0.0, s[1], 0.0, 0.0), (0.0, 0.0, s[2], 0.0), (0.0, 0.0, 0.0, 1.0))


def _translation(t) -> Matrix:
    return ((1.0, 0.0, 0.0, t[0]), (0.0, 1.0, 0.0, t[1]), (0.0, 0.0, 1.0, t[2]), (0.0, 0.0, 0.0, 1.0))


def _rotation(axis, degrees: float) -> Matrix:
    """Right-handed rotation by `degrees` about `axis` (counter-clockwise looking down the axis)."""
    n = _length(axis)
    x, y, z = (a / n for a in axis)
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    t = 1.0 - c
    return (
        (t * x * x + c, t * x * y - s * z, t * x * z + s * y, 0.0),
        (t * x * y + s * z, t * y * y + c, t * y * z - s * x, 0.0),
        (t * x * z - s * y, t * y * z + s * x, t * z * z + c, 0.0),
        (0.0, 0.0, 0.0, 1.0),
    )
