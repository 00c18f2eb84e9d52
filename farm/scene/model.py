"""The scene as frozen dataclasses: what a valid scene file means, in scene units."""

from __future__ import annotations

from dataclasses import dataclass, field

Vec3 = tuple[float, float, float]
Matrix = tuple[tuple[float, float, float, float], ...]

IDENTITY: Matrix = (
    (1.0, 0.0, 0.0, 0.0),
    (0.0, 1.0, 0.0, 0.0),
    (0.0, 0.0, 1.0, 0.0),
    (0.0, 0.0, 0.0, 1.0),
)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. `fov` is the full angle in degrees across `fov_axis` ("x" or "y")."""

    position: Vec3
    look_at: Vec3
    up: Vec3
    fov: float
    fov_axis: str = "y"


@dataclass(frozen=True)
class Film:
    """The frame: pixel size and samples per pixel."""

    width: int
    height: int
    spp: int


@dataclass(frozen=True)
class Material:
    """Two-sided diffuse reflectance in [0, 1], plus radiance emitted from the front side."""

    name: str
    diffuse: Vec3
    emission: Vec3 = (0.0, 0.0, 0.0)

    @property
    def emissive(self) -> bool:
        return any(c > 0.0 for c in self.emission)


@dataclass(frozen=True)
class Shape:
    """Base of every shape: a material name and an object-to-world transform."""

    material: str
    transform: Matrix = IDENTITY


@dataclass(frozen=True)
class Sphere(Shape):
    """A sphere of `radius` around `center`, both in object space."""

    center: Vec3 = (0.0, 0.0, 0.0)
    radius: float = 1.0


@dataclass(frozen=True)
class Rectangle(Shape):
    """The square [-1, 1]^2 in the z = 0 plane of object space, front side facing +z."""


@dataclass(frozen=True)
class Box(Shape):
    """The cube [-1, 1]^3 in object space, faces pointing outwards."""


@dataclass(frozen=True)
class Mesh(Shape):
    """Inline triangles: vertex positions and counter-clockwise (front-facing) index triples."""

    vertices: tuple[Vec3, ...] = field(default=())
    triangles: tuple[tuple[int, int, int], ...] = field(default=())


@dataclass(frozen=True)
class Scene:
    """A whole scene, validated. `digest` identifies its exact content."""

    camera: Camera
    film: Film
    materials: dict[str, Material]
    shapes: tuple[Shape, ...]
    max_depth: int
    seed: int
    digest: str
