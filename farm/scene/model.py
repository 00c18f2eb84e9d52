"""The scene as frozen dataclasses: what a valid scene file means, in scene units.

Conventions (docs/scenes.md spells them out for users): right-handed world, y up by default;
radiance in W m^-2 sr^-1 per linear sRGB channel; angles in degrees; colours in linear
sRGB (image textures used as colours are decoded from sRGB first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Vec2 = tuple[float, float]
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
    """A perspective camera. `fov` is the full angle in degrees across `fov_axis` ("x" or "y").

    A thin lens of `aperture_radius` (scene units, 0 = pinhole) focuses at `focus_distance`
    along the viewing direction (None: the distance to `look_at`). `clip`: the near and far
    clipping planes' distances along the viewing direction (0: no plane), where camera rays
    start and end."""

    position: Vec3
    look_at: Vec3
    up: Vec3
    fov: float
    fov_axis: str = "y"
    aperture_radius: float = 0.0
    focus_distance: float | None = None
    clip: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Film:
    """The frame: pixel size and samples per pixel."""

    width: int
    height: int
    spp: int


@dataclass(frozen=True)
class TextureRef:
    """A material parameter read from the named texture, times `factor`, plus `bias` (per
    channel; a scalar parameter uses the first); `channel` picks the channel a scalar
    parameter (roughness) takes from a colour texture."""

    name: str
    channel: int = 0
    factor: Vec3 = (1.0, 1.0, 1.0)
    bias: Vec3 = (0.0, 0.0, 0.0)


# A material parameter: a number (scalar parameters), an RGB triple, or a texture.
Param = float | Vec3 | TextureRef


@dataclass(frozen=True)
class ImageTexture:
    """A PNG, JPEG, EXR or Radiance .hdr image, looked up at R(rotation) ((u, v) * scale) +
    offset (rotation in degrees, counter-clockwise), (u, v) from the mesh's `uv_set` 0 or 1.

    `colorspace` "auto" decodes 8-bit images from sRGB where they give a colour and keeps
    them linear where they give data (roughness); float images are always linear."""

    name: str
    file: str
    wrap: str = "repeat"  # repeat, mirror or clamp
    filter: str = "bilinear"  # bilinear or nearest
    scale: Vec2 = (1.0, 1.0)
    offset: Vec2 = (0.0, 0.0)
    colorspace: str = "auto"  # auto, srgb or linear
    rotation: float = 0.0
    uv_set: int = 0
    range: tuple[int, int] | None = None  # (offset, length) of a PNG or JPEG inside `file` (a glTF buffer)
    base64: tuple[int, int] | None = None  # (offset, length) of one as base64 text in `file` (a glTF data: URI)


@dataclass(frozen=True)
class Checkerboard:
    """`color0` and `color1` alternating in squares of 1/scale uv units; (0, 0) is color0.
    Placed as an image texture is (scale, rotation, offset, uv_set)."""

    name: str
    color0: Vec3 = (0.4, 0.4, 0.4)
    color1: Vec3 = (0.2, 0.2, 0.2)
    scale: Vec2 = (8.0, 8.0)
    offset: Vec2 = (0.0, 0.0)
    rotation: float = 0.0
    uv_set: int = 0


Texture = ImageTexture | Checkerboard

MATERIAL_TYPES = ("diffuse", "conductor", "dielectric", "plastic", "principled")


@dataclass(frozen=True)
class Material:
    """One BSDF plus optional emission from the front side.

    diffuse:    Lambertian `reflectance`, two-sided.
    conductor:  GGX microfacet metal with complex index `eta` + i `k` (per RGB channel),
                `roughness` (GGX alpha = roughness^2; 0 is a mirror), tinted by `specular`.
    dielectric: glass with index `ior` inside and `exterior_ior` outside; smooth when
                `roughness` is 0, else GGX; `specular` tints reflection, `transmittance`
                refraction.
    plastic:    a diffuse `reflectance` base under a dielectric coating of index `ior` and
                `roughness`, tinted by `specular`.
    principled: glTF's metallic-roughness model as Mitsuba 3's `principled` BSDF evaluates
                it (its other parameters at their defaults): base colour `reflectance`,
                `metallic` blending a metal (Schlick Fresnel from the base colour) with a
                dielectric (index 1.5, over a Burley diffuse base), GGX of `roughness`.
    Opaque materials are two-sided; glass uses the side to tell inside from outside.

    Any material may bend its shading normal by a tangent-space `normal_map` (a texture
    reference; its factor scales the map's x and y, as glTF's normalTexture.scale), and be
    cut out where `alpha` (a number or a texture channel) is below `alpha_cutoff` (0: never),
    for camera and shadow rays alike.
    """

    name: str
    kind: str = "diffuse"
    reflectance: Param = (0.5, 0.5, 0.5)
    roughness: Param = 0.0
    ior: float = 1.5
    exterior_ior: float = 1.0
    eta: Vec3 = (0.0, 0.0, 0.0)
    k: Vec3 = (1.0, 1.0, 1.0)
    specular: Param = (1.0, 1.0, 1.0)
    transmittance: Param = (1.0, 1.0, 1.0)
    emission: Param = (0.0, 0.0, 0.0)
    metallic: Param = 0.0
    normal_map: TextureRef | None = None
    alpha: Param = 1.0
    alpha_cutoff: float = 0.0

    @property
    def emissive(self) -> bool:
        return isinstance(self.emission, TextureRef) or any(c > 0.0 for c in self.emission)


@dataclass(frozen=True)
class Shape:
    """Base of every shape: a material name and an object-to-world transform."""

    material: str
    transform: Matrix = IDENTITY


@dataclass(frozen=True)
class Sphere(Shape):
    """A sphere of `radius` around `center`, both in object space.
    uv: u = longitude / 360 degrees (from +x towards +y), v = polar angle / 180 (from +z)."""

    center: Vec3 = (0.0, 0.0, 0.0)
    radius: float = 1.0


@dataclass(frozen=True)
class Rectangle(Shape):
    """The square [-1, 1]^2 in the z = 0 plane of object space, front side facing +z;
    uv (0, 0) at (-1, -1) and (1, 1) at (1, 1)."""


@dataclass(frozen=True)
class Box(Shape):
    """The cube [-1, 1]^3 in object space, faces pointing outwards."""


@dataclass(frozen=True)
class Mesh(Shape):
    """Triangles, inline, from an OBJ `file` (relative to the scene file), or from a binary
    `file` (a glTF buffer) laid out as `binary` says: (part, offset, count, format, stride)
    for the positions and, optionally, normals, uvs and indices (farm.scene.gltf); with
    `base64`, the binary file is the base64 text at that place in `file` (a data: URI).

    Inline: vertex positions, counter-clockwise (front-facing) index triples and, optionally,
    per-vertex normals and uvs. Vertex normals give smooth shading unless `face_normals`."""

    file: str | None = None
    vertices: tuple[Vec3, ...] = field(default=())
    triangles: tuple[tuple[int, int, int], ...] = field(default=())
    normals: tuple[Vec3, ...] = field(default=())
    uvs: tuple[Vec2, ...] = field(default=())
    face_normals: bool = False
    binary: tuple[tuple[str, int, int, str, int], ...] = ()  # parts: positions, normals, uvs, uvs1, tangents, indices
    base64: tuple[int, int] | None = None  # (offset, length) of base64 text in `file` that stands for the binary file
    # A skinned mesh's joint matrices at the frame's moment, row-major (farm.scene.skin)
    skin: tuple = ()
    # Morph targets: (each target's binary layout of offsets, ...) and their weights at the frame's moment
    morph: tuple = ()

    def layout(self) -> dict[str, dict]:
        """The binary layout as farm.scene.mesh.load_binary takes it."""
        return {part: {"offset": o, "count": c, "format": f, "stride": s} for part, o, c, f, s in self.binary}


@dataclass(frozen=True)
class PointLight:
    """Light from a point: `intensity` in W sr^-1 per channel."""

    position: Vec3
    intensity: Vec3


@dataclass(frozen=True)
class SpotLight:
    """A point light shining along `direction` within `cutoff_angle` degrees of it, full
    strength inside `beam_width` and falling off smoothly between the two (as Mitsuba's)."""

    position: Vec3
    direction: Vec3
    intensity: Vec3
    cutoff_angle: float = 20.0
    beam_width: float = 15.0


@dataclass(frozen=True)
class SunLight:
    """Parallel light travelling along `direction`, of `irradiance` (W m^-2) on a surface
    facing it."""

    direction: Vec3
    irradiance: Vec3


@dataclass(frozen=True)
class EnvironmentLight:
    """Light from infinitely far away: a constant `radiance`, or an equirectangular `file`
    (EXR or .hdr) times `scale`. The image's centre column looks along -z, its top row
    along +y, after `transform` (a rotation) is applied."""

    radiance: Vec3 = (1.0, 1.0, 1.0)
    file: str | None = None
    scale: float = 1.0
    transform: Matrix = IDENTITY
    sampling: str = "importance"  # or "uniform" over the sphere


Light = PointLight | SpotLight | SunLight | EnvironmentLight

SAMPLERS = ("independent", "sobol")
# How direct light is found: both strategies combined by MIS (the default), or one alone
# (for checking that each converges to the same image).
STRATEGIES = ("mis", "light", "bsdf")


@dataclass(frozen=True)
class Scene:
    """A whole scene, validated. `digest` identifies its exact content, files included
    (through `assets`: file name -> SHA-256 of its bytes, filled in by `load_scene`)."""

    camera: Camera
    film: Film
    materials: dict[str, Material]
    shapes: tuple[Shape, ...]
    max_depth: int
    seed: int
    digest: str
    textures: dict[str, Texture] = field(default_factory=dict)
    lights: tuple[Light, ...] = ()
    rr_depth: int = 5
    sampler: str = "sobol"
    strategy: str = "mis"
    assets: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # what the client changed or could not convert (maps turned off, ...)
    # The first and last keyframe's time in seconds (farm.scene.animation); None: a still scene.
    animation: tuple[float, float] | None = None
    time: float = 0.0  # the moment of the animation this scene is, in seconds
    # Indices in `shapes` of those that move or deform over the animation: placed as
    # instances of their own bottom level, so a later frame rebuilds the top level only
    moving: tuple[int, ...] = ()
    # Seconds around `time` that the shutter is open (`submit --shutter`): (0, 0) for none
    shutter: tuple[float, float] = (0.0, 0.0)
    # The places in the document's shapes of `shapes` (those not hidden at `time`); () for all
    shown: tuple[int, ...] = ()

    @property
    def environment(self) -> EnvironmentLight | None:
        return next((light for light in self.lights if isinstance(light, EnvironmentLight)), None)

    def files(self) -> list[str]:
        """Every file the scene names, in order of first mention."""
        names = [s.file for s in self.shapes if isinstance(s, Mesh) and s.file]
        names += [t.file for t in self.textures.values() if isinstance(t, ImageTexture)]
        names += [light.file for light in self.lights if isinstance(light, EnvironmentLight) and light.file]
        return list(dict.fromkeys(names))
