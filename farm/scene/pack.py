"""Pack a Scene into flat numpy arrays whose layouts mirror the structs in kernels/types.h.

Every field is a float4 or an int4 (or a struct of them), so host and device agree on
the layout without padding rules; `render.py` checks the sizes against the compiled
kernel once per process. Files (meshes, images) are read through an asset source, so the
same code packs on the client (from the scene's folder) and on a worker (from Redis).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from farm import defaults
from farm.exceptions import SceneError
from farm.scene import bvh as bvh_builder
from farm.scene import images
from farm.scene.mesh import TriangleMesh, cube, load_binary, load_obj, rectangle
from farm.scene.model import (
    Box, Checkerboard, ImageTexture, Material, Mesh, PointLight, Rectangle, Scene,
    Sphere, SpotLight, SunLight, TextureRef,
)

log = logging.getLogger(__name__)

F4, I4 = ("<f4", 4), ("<i4", 4)
# A wide BVH node: its children's boxes as eight lanes per coordinate, tested at once.
F8, I8 = ("<f4", 8), ("<i4", 8)
NODE = np.dtype(
    [("lower_x", *F8), ("lower_y", *F8), ("lower_z", *F8), ("upper_x", *F8), ("upper_y", *F8), ("upper_z", *F8),
     ("child", *I8), ("count", *I8)]
)
# Baldwin and Weber's form: rows mapping a world point to (b1, b2) and to the plane's
# signed distance (in units of its dominant normal component); three dot products a test.
TRIANGLE = np.dtype([("b1", *F4), ("b2", *F4), ("plane", *F4)])
# Up to four primitives of a leaf, each row of a triangle's Baldwin-Weber form as one lane
# per coordinate, so one ray meets four triangles in a few vector instructions.
TRIANGLE_PACK = np.dtype(
    [(f"{row}_{axis}", *F4) for row in ("b1", "b2", "plane") for axis in "xyzw"] + [("prim", *I4)]
)
PACK_WIDTH = 4
TRIANGLE_DATA = np.dtype([("n", *F4), ("uv01", *F4), ("uv2", *F4), ("info", *I4)])
SHADING_NORMALS = np.dtype([("n0", *F4), ("n1", *F4), ("n2", *F4)])
SPHERE = np.dtype([("center_radius", *F4), ("row0", *F4), ("row1", *F4), ("row2", *F4), ("info", *I4)])
PARAM = np.dtype([("value", *F4), ("texture", *I4)])
MATERIAL = np.dtype(
    [
        ("kind", *I4),
        ("reflectance", PARAM),
        ("roughness", PARAM),
        ("specular", PARAM),
        ("transmittance", PARAM),
        ("emission", PARAM),
        ("eta", *F4),
        ("k", *F4),
        ("ior", *F4),
    ]
)
TEXTURE = np.dtype([("info", *I4), ("mode", *I4), ("transform", *F4), ("color0", *F4), ("color1", *F4)])
LIGHT = np.dtype(
    [
        ("info", *I4), ("pick", *F4), ("position", *F4), ("direction", *F4), ("intensity", *F4), ("spot", *F4),
        ("corner", *F4), ("edge1", *F4), ("edge2", *F4),
    ]
)
FRAME = np.dtype(
    [
        ("origin", *F4),
        ("forward", *F4),
        ("right", *F4),
        ("up", *F4),
        ("lens_u", *F4),
        ("lens_v", *F4),
        ("env_radiance", *F4),
        ("env_row0", *F4),
        ("env_row1", *F4),
        ("env_row2", *F4),
        ("size", *I4),
        ("counts", *I4),
        ("options", *I4),
        ("env", *I4),
    ]
)

# Enumerations shared with kernels/types.h.
MATERIAL_KINDS = {"diffuse": 0, "conductor": 1, "dielectric": 2, "plastic": 3}
TEXTURE_IMAGE, TEXTURE_CHECKERBOARD = 0, 1
WRAP_MODES = {"repeat": 0, "mirror": 1, "clamp": 2}
LIGHT_TRIANGLE, LIGHT_SPHERE, LIGHT_POINT, LIGHT_SPOT, LIGHT_SUN, LIGHT_ENVIRONMENT = range(6)
SAMPLER_KINDS = {"independent": 0, "sobol": 1}
STRATEGY_KINDS = {"mis": 0, "light": 1, "bsdf": 2}
LUMINANCE = np.array([0.2126, 0.7152, 0.0722])
STACK_SIZE = 128  # entries of the kernel's traversal stack: STACK_SIZE in kernels/trace.h


class _Textures:
    """The texture table and its texels; one entry per (texture, decoded as sRGB or not)."""

    def __init__(self, scene: Scene, assets):
        self.scene = scene
        self.assets = assets
        self.entries: list[np.void] = []
        self.chunks: list[np.ndarray] = []
        self.texel_count = 0
        self.index: dict[tuple[str, bool], int] = {}
        self.means: dict[int, np.ndarray] = {}  # mean colour of each entry, for light power
        self.decoded: dict[str, tuple[np.ndarray, bool]] = {}

    def image(self, name: str, byte_range: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
        key = f"{name}@{byte_range}" if byte_range else name
        if key not in self.decoded:
            self.decoded[key] = read_image(self.assets, name, byte_range)
        return self.decoded[key]

    def add(self, texture, colour: bool) -> int:
        srgb = colour if not isinstance(texture, ImageTexture) or texture.colorspace == "auto" else texture.colorspace == "srgb"
        key = (texture.name, srgb)
        if key in self.index:
            return self.index[key]
        entry = np.zeros((), TEXTURE)
        entry["transform"] = (*texture.scale, *texture.offset)
        if isinstance(texture, Checkerboard):
            entry["info"] = (TEXTURE_CHECKERBOARD, 0, 0, 0)
            entry["color0"][:3] = texture.color0
            entry["color1"][:3] = texture.color1
            mean = (np.array(texture.color0) + np.array(texture.color1)) / 2.0
        else:
            pixels, display = self.image(texture.file, texture.range)
            if display and srgb:
                pixels = images.srgb_to_linear(pixels)
            height, width, channels = pixels.shape
            entry["info"] = (TEXTURE_IMAGE, self.texel_count, width, height)
            entry["mode"] = (channels, WRAP_MODES[texture.wrap], texture.filter == "nearest", 0)
            self.chunks.append(np.ascontiguousarray(pixels, np.float32).ravel())
            self.texel_count += pixels.size
            mean = pixels.reshape(-1, channels).mean(axis=0)
            mean = np.resize(mean[:3], 3) if channels >= 3 else np.full(3, mean[0])
        self.index[key] = len(self.entries)
        self.means[len(self.entries)] = mean
        self.entries.append(entry)
        return self.index[key]

    def add_table(self, values: np.ndarray) -> int:
        """Append a lookup table to the texel buffer; returns its first index."""
        offset = self.texel_count
        self.chunks.append(np.ascontiguousarray(values, np.float32))
        self.texel_count += len(values)
        return offset

    def param(self, value, colour: bool) -> np.ndarray:
        packed = np.zeros((), PARAM)
        if isinstance(value, TextureRef):
            packed["texture"] = (self.add(self.scene.textures[value.name], colour), value.channel, 0, 0)
            packed["value"][:3] = value.factor if colour else (value.factor[0],) * 3
        else:
            packed["texture"] = (-1, 0, 0, 0)
            packed["value"][:3] = value if colour else (value, value, value)
        return packed

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        table = np.array(self.entries, TEXTURE) if self.entries else np.zeros(0, TEXTURE)
        texels = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        return table, texels


@dataclass(frozen=True)
class PackedScene:
    """Flat arrays ready for device buffers, plus the numbers the host needs."""

    frame: np.ndarray
    corners: np.ndarray  # (triangles, 3, 3) world-space corners; host side only
    nodes: np.ndarray
    packs: np.ndarray  # the leaves' primitives, four to a TRIANGLE_PACK
    triangles: np.ndarray  # host side only: the packs' source, one row a triangle
    triangle_data: np.ndarray
    normals: np.ndarray
    spheres: np.ndarray
    materials: np.ndarray
    textures: np.ndarray
    texels: np.ndarray
    lights: np.ndarray
    env_marginal: np.ndarray
    env_conditional: np.ndarray
    env_pdf: np.ndarray
    width: int
    height: int
    digest: str
    timings: dict = field(default_factory=dict, compare=False)

    # The kernel's buffer arguments, in its parameter order.
    BUFFERS = (
        "frame", "nodes", "packs", "triangle_data", "normals", "spheres", "materials", "textures",
        "texels", "lights", "env_marginal", "env_conditional", "env_pdf",
    )

    @property
    def spp(self) -> int:
        return int(self.frame["size"][0][2])

    def buffers(self) -> dict[str, np.ndarray]:
        """The kernel's buffer arguments by name, in its parameter order."""
        return {name: getattr(self, name) for name in self.BUFFERS}


class NoAssets:
    """For scenes that name no files."""

    def read(self, name: str) -> bytes:
        raise SceneError(f"{name}: no asset source to read it from")


class _ReadOnce:
    """An asset source read (fetched, verified) once per file while one scene is packed:
    a glTF's buffer serves every primitive and image in it."""

    def __init__(self, assets):
        self.assets = assets
        self.files: dict[str, bytes] = {}

    def read(self, name: str) -> bytes:
        if name not in self.files:
            self.files[name] = self.assets.read(name)
        return self.files[name]


def read_image(assets, name: str, byte_range: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """An image file, or an image stored at `byte_range` (offset, length) inside one."""
    data = assets.read(name)
    if byte_range is None:
        return images.decode(name, data)
    offset, length = byte_range
    if offset + length > len(data):
        raise SceneError(f"{name}: image bytes {offset}..{offset + length} lie outside the file's {len(data)}")
    return images.decode(f"{name}[{offset}:{offset + length}]", data[offset:offset + length], sniff=True)


def read_mesh(assets, shape: Mesh) -> TriangleMesh:
    """The triangles of a mesh shape that names a file: OBJ, or binary (glTF) accessors."""
    data = assets.read(shape.file)
    if shape.binary:
        return load_binary(shape.file, data, shape.layout())
    return load_obj(shape.file, data)


def shape_meshes(scene: Scene, assets, timings: dict | None = None) -> list[TriangleMesh | None]:
    """Every shape's triangles in object space (None for a sphere), in the scene's order.
    A file's mesh is decoded once however many shapes use it (glTF instances); more than
    MAX_TRIANGLES in all is refused. `timings["load"]` gets the seconds spent on files."""
    meshes: list[TriangleMesh | None] = []
    loaded: dict[tuple, TriangleMesh] = {}
    triangle_count = 0
    for shape in scene.shapes:
        if isinstance(shape, Sphere):
            meshes.append(None)
            continue
        if isinstance(shape, Rectangle):
            mesh = rectangle()
        elif isinstance(shape, Box):
            mesh = cube()
        elif isinstance(shape, Mesh) and shape.file:
            t = time.perf_counter()
            key = (shape.file, shape.binary)
            if key not in loaded:
                loaded[key] = read_mesh(assets, shape)
            mesh = loaded[key]
            if timings is not None:
                timings["load"] = timings.get("load", 0.0) + time.perf_counter() - t
        elif isinstance(shape, Mesh):
            mesh = TriangleMesh(
                np.array(shape.vertices, np.float64),
                np.array(shape.triangles, np.int64),
                np.array(shape.normals, np.float64) if shape.normals else None,
                np.array(shape.uvs, np.float64) if shape.uvs else None,
            )
        else:  # pragma: no cover - the parser only makes the shapes above
            raise TypeError(f"cannot pack {type(shape).__name__}")
        triangle_count += len(mesh.faces)
        if triangle_count > defaults.MAX_TRIANGLES:
            raise SceneError(f"the scene has more than {defaults.MAX_TRIANGLES} triangles (FARM_MAX_TRIANGLES)")
        meshes.append(mesh)
    return meshes


def check_files(scene: Scene, assets) -> None:
    """Read every mesh and image the scene names, as packing would, so that a broken file
    (or a scene over the triangle limit) is reported by the client before any worker is
    asked to render with it."""
    assets = _ReadOnce(assets)
    shape_meshes(scene, assets)
    for texture in scene.textures.values():
        if isinstance(texture, ImageTexture):
            read_image(assets, texture.file, texture.range)
    environment = scene.environment
    if environment is not None and environment.file:
        read_image(assets, environment.file)


def pack(scene: Scene, assets=None) -> PackedScene:
    """Turn every shape into world-space triangles or spheres, build the BVH over them,
    and index materials, textures and lights."""
    assets = _ReadOnce(assets or NoAssets())
    timings: dict[str, float] = {}
    started = time.perf_counter()
    textures = _Textures(scene, assets)
    names = list(scene.materials)
    material_index = {name: i for i, name in enumerate(names)}
    materials = np.zeros(len(names), MATERIAL)
    for i, name in enumerate(names):
        materials[i] = _material(scene.materials[name], textures)

    meshes, spheres = [], []
    for shape, mesh in zip(scene.shapes, shape_meshes(scene, assets, timings)):
        m = np.array(shape.transform, dtype=np.float64)
        mid = material_index[shape.material]
        if isinstance(shape, Sphere):
            spheres.append(_sphere(shape, m, mid))
            continue
        face_normals = isinstance(shape, Mesh) and shape.face_normals
        meshes.append((mesh, m, mid, face_normals))

    triangles, triangle_data, normals, corners = _triangles(meshes)
    sphere_array = np.array(spheres, SPHERE) if spheres else np.zeros(0, SPHERE)

    t = time.perf_counter()
    lower, upper = _primitive_bounds(corners, sphere_array)
    tree = bvh_builder.build(lower, upper)
    wide = bvh_builder.collapse(tree)
    timings["bvh"] = time.perf_counter() - t
    if wide.stack > STACK_SIZE:
        raise SceneError(
            f"the scene's BVH needs a traversal stack of {wide.stack} entries; the kernel has {STACK_SIZE}"
        )
    nodes, packs = _flatten(wide, tree.order, triangles)
    scene_lower, scene_upper = (tree.lower[0], tree.upper[0]) if len(lower) else (np.zeros(3), np.zeros(3))
    scene_radius = max(float(np.linalg.norm(scene_upper - scene_lower)) / 2.0, 1e-3)

    environment = scene.environment
    env_texture = -1
    env_marginal = env_conditional = env_pdf = np.zeros(0, np.float32)
    env_size = (0, 0)
    env_mean = np.array(environment.radiance) * environment.scale if environment else np.zeros(3)
    if environment is not None and environment.file:
        env_texture = textures.add(ImageTexture("environment", environment.file, "repeat", "bilinear"), colour=False)
        pixels, _ = textures.image(environment.file)
        env_marginal, env_conditional, env_pdf, env_mean = _environment_distribution(pixels)
        env_mean = env_mean * environment.scale
        env_size = (pixels.shape[1], pixels.shape[0])

    lights = _lights(scene, materials, textures, triangle_data, corners, sphere_array, scene_radius, env_mean)
    texture_table, texels = textures.arrays()
    frame = _frame(scene, len(triangles), lights, env_texture, env_size)
    timings["pack"] = time.perf_counter() - started
    return PackedScene(
        frame, corners.astype(np.float32), nodes, packs, triangles, triangle_data, normals, sphere_array, materials, texture_table, texels,
        lights, env_marginal, env_conditional, env_pdf, scene.film.width, scene.film.height, scene.digest, timings,
    )


def _material(material: Material, textures: _Textures) -> np.ndarray:
    packed = np.zeros((), MATERIAL)
    packed["kind"] = (MATERIAL_KINDS[material.kind], 0, 0, 0)
    packed["reflectance"] = textures.param(material.reflectance, colour=True)
    packed["roughness"] = textures.param(material.roughness, colour=False)
    packed["specular"] = textures.param(material.specular, colour=True)
    packed["transmittance"] = textures.param(material.transmittance, colour=True)
    packed["emission"] = textures.param(material.emission, colour=True)
    packed["eta"][:3] = material.eta
    packed["k"][:3] = material.k
    eta = material.ior / material.exterior_ior
    internal = diffuse_fresnel_reflectance(1.0 / eta)
    packed["kind"][1] = -1
    if material.kind == "plastic" and isinstance(material.roughness, float) and material.roughness > 0:
        # A rough coating lets through what its microfacets do not reflect: tabulated once
        # per material, as Mitsuba's roughplastic does. (A textured roughness falls back to
        # the smooth coating's Fresnel transmittance.)
        alpha = max(material.roughness**2, 1e-3)
        mu = np.linspace(0.0, 1.0, TRANSMITTANCE_TABLE_SIZE)
        packed["kind"][1] = textures.add_table(rough_interface(mu, alpha, eta)[1])
        packed["kind"][2] = TRANSMITTANCE_TABLE_SIZE
        inner_mu = (np.arange(256) + 0.5) / 256  # diffuse light inside, reflected back in
        internal = float((2.0 * inner_mu * rough_interface(inner_mu, alpha, 1.0 / eta)[0]).mean())
    packed["ior"] = (eta, internal, 0.0, 0.0)
    return packed


TRANSMITTANCE_TABLE_SIZE = 64  # cosines 0, 1/63, ..., 1


def rough_interface(mu: np.ndarray, alpha: float, eta: float, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The fractions of light arriving at cosines `mu` from the side of index 1 that a GGX
    dielectric interface (other side of relative index eta) reflects and transmits: its
    BRDF and BTDF integrated over each hemisphere, as Mitsuba's roughplastic tabulates them.
    What masking loses is neither.

    Over microfacet normals h visible from wi, each reflects F and passes (1 - F) of what
    it receives, and the outgoing ray escapes masking with G1; h is drawn from GGX's inverse CDF on an
    n x n midpoint grid (D(h) cos(h) dh is then uniform), accurate for any roughness."""
    u = (np.arange(n) + 0.5) / n
    cos2_h = (1.0 - u) / (1.0 + (alpha * alpha - 1.0) * u)
    cos_h = np.sqrt(cos2_h)[:, None]
    sin_h = np.sqrt(1.0 - cos2_h)[:, None]
    phi = (2.0 * np.pi * u)[None, :]
    h = np.stack(np.broadcast_arrays(sin_h * np.cos(phi), sin_h * np.sin(phi), cos_h), axis=-1)

    def g1(v_z, v_dot_h):
        tan2 = np.maximum(1.0 - v_z**2, 0.0) / np.maximum(v_z**2, 1e-12)
        return np.where(v_dot_h * v_z > 0, 2.0 / (1.0 + np.sqrt(1.0 + alpha * alpha * tan2)), 0.0)

    reflected, transmitted = np.empty(len(mu)), np.empty(len(mu))
    for i, m in enumerate(np.maximum(mu, 1e-4)):
        wi = np.array([np.sqrt(1.0 - m * m), 0.0, m])
        wi_h = np.maximum(h @ wi, 0.0)
        visible = np.where(wi_h > 0, g1(m, wi_h) * wi_h / (m * h[..., 2]), 0.0)  # D_wi(h) / (D(h) cos(h))
        fresnel = fresnel_dielectric(np.clip(wi_h, 1e-12, 1.0), eta)
        reflected_z = 2.0 * wi_h * h[..., 2] - wi[2]
        reflected[i] = (visible * fresnel * g1(reflected_z, wi_h)).mean()
        sin_t2 = (1.0 - wi_h**2) / eta**2
        cos_t = np.sqrt(np.maximum(1.0 - sin_t2, 0.0))
        refracted_z = -wi[2] / eta + (wi_h / eta - cos_t) * h[..., 2]
        passed = np.where(sin_t2 < 1.0, (1.0 - fresnel) * g1(refracted_z, -cos_t), 0.0)
        transmitted[i] = (visible * passed).mean()
    return np.clip(reflected, 0.0, 1.0), np.clip(transmitted, 0.0, 1.0)


def fresnel_dielectric(cos_i: np.ndarray, eta: float) -> np.ndarray:
    """Unpolarised Fresnel reflectance for light arriving at cos_i > 0 on the side of index 1,
    the other side being of relative index eta."""
    sin_t2 = (1.0 - cos_i**2) / eta**2
    cos_t = np.sqrt(np.maximum(1.0 - sin_t2, 0.0))
    rs = (cos_i - eta * cos_t) / (cos_i + eta * cos_t)
    rp = (eta * cos_i - cos_t) / (eta * cos_i + cos_t)
    return np.where(sin_t2 >= 1.0, 1.0, 0.5 * (rs**2 + rp**2))


def diffuse_fresnel_reflectance(eta: float) -> float:
    """The cosine-weighted hemispherical average of the Fresnel reflectance (Fdr): how much
    of diffuse light inside a coating of relative index 1/eta is reflected back in.
    Integrated numerically (midpoint rule on cos^2, error below 1e-6)."""
    n = 20000
    cos2 = (np.arange(n) + 0.5) / n  # Fdr = integral of F(cos) d(cos^2) over [0, 1]
    return float(fresnel_dielectric(np.sqrt(cos2), eta).mean())


def _sphere(shape: Sphere, m: np.ndarray, mid: int) -> np.void:
    center = m[:3, :3] @ np.array(shape.center) + m[:3, 3]
    scale = float(np.linalg.norm(m[:3, 0]))
    rotation = m[:3, :3] / scale  # object-to-world rotation; its transpose maps back
    entry = np.zeros((), SPHERE)
    entry["center_radius"] = (*center, shape.radius * scale)
    for row in range(3):
        entry[f"row{row}"][:3] = rotation.T[row]
    entry["info"] = (mid, -1, 0, 0)
    return entry


def _triangles(meshes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World-space triangles of every mesh, their shading data, and vertex normals of the
    smooth ones. Degenerate triangles are dropped: they can be neither hit nor sampled."""
    corner_chunks, uv_chunks, normal_chunks, smooth_chunks, material_chunks = [], [], [], [], []
    for mesh, m, mid, face_normals in meshes:
        faces = mesh.faces
        linear = m[:3, :3]
        if np.linalg.det(linear) < 0:  # a mirroring transform: keep front faces in front
            faces = faces[:, ::-1]
        world = mesh.vertices @ linear.T + m[:3, 3]
        corner_chunks.append(world[faces])
        if mesh.uvs is not None:
            uv_chunks.append(mesh.uvs[faces])
        else:  # Mitsuba's default: the barycentric coordinates
            uv_chunks.append(np.broadcast_to(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), (len(faces), 3, 2)))
        smooth = mesh.normals is not None and not face_normals
        if smooth:
            normal_matrix = np.linalg.inv(linear).T
            vertex_normals = mesh.normals @ normal_matrix.T
            length = np.linalg.norm(vertex_normals, axis=1, keepdims=True)
            vertex_normals = np.divide(vertex_normals, length, out=np.zeros_like(vertex_normals), where=length > 0)
            normal_chunks.append(vertex_normals[faces])
        else:
            normal_chunks.append(np.zeros((len(faces), 3, 3)))
        smooth_chunks.append(np.full(len(faces), smooth))
        material_chunks.append(np.full(len(faces), mid))
    if not corner_chunks:
        return np.zeros(0, TRIANGLE), np.zeros(0, TRIANGLE_DATA), np.zeros(0, SHADING_NORMALS), np.zeros((0, 3, 3))
    corners = np.concatenate(corner_chunks)
    uvs = np.concatenate(uv_chunks)
    vertex_normals = np.concatenate(normal_chunks)
    smooth = np.concatenate(smooth_chunks)
    tri_material = np.concatenate(material_chunks)
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    cross = np.cross(e1, e2)
    double_area = np.linalg.norm(cross, axis=1)
    keep = double_area > 0.0
    # A smooth triangle with a zero vertex normal falls back to flat shading.
    smooth &= np.all(np.linalg.norm(vertex_normals, axis=2) > 0, axis=1)
    corners, e1, e2, cross, double_area, uvs, vertex_normals, smooth, tri_material = (
        a[keep] for a in (corners, e1, e2, cross, double_area, uvs, vertex_normals, smooth, tri_material)
    )
    triangles = np.zeros(len(corners), TRIANGLE)
    rows = _intersection_rows(corners[:, 0], e1, e2, cross)
    triangles["b1"], triangles["b2"], triangles["plane"] = rows[:, 0], rows[:, 1], rows[:, 2]
    data = np.zeros(len(corners), TRIANGLE_DATA)
    data["n"][:, :3] = cross / double_area[:, None]
    data["n"][:, 3] = double_area * 0.5  # area, for light sampling
    data["uv01"] = np.concatenate([uvs[:, 0], uvs[:, 1]], axis=1)
    data["uv2"][:, :2] = uvs[:, 2]
    smooth_index = np.cumsum(smooth) - 1
    data["info"][:, 0] = tri_material
    data["info"][:, 1] = -1
    data["info"][:, 2] = np.where(smooth, smooth_index, -1)
    normals = np.zeros(int(smooth.sum()), SHADING_NORMALS)
    for corner in range(3):
        normals[f"n{corner}"][:, :3] = vertex_normals[smooth, corner]
    return triangles, data, normals, corners


def _flatten(wide: bvh_builder.WideBvh, order: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The wide BVH in the kernel's layout: per node, each coordinate of its children's
    boxes as one row of WIDTH lanes (structure of arrays), then children and counts; and
    each leaf's primitives in packs of four, a leaf's `child` becoming its first pack and
    its `count` the number of packs. Lanes of spheres and empty lanes have a zero plane,
    which no ray meets; their primitive (a sphere's index past the triangles, or -1) says
    what they are."""
    nodes = np.zeros(len(wide.child), NODE)
    for axis, name in enumerate("xyz"):
        nodes[f"lower_{name}"] = wide.lower[:, :, axis]
        nodes[f"upper_{name}"] = wide.upper[:, :, axis]
    leaf = wide.count > 0
    first, size = wide.child[leaf], wide.count[leaf]
    pack_count = -(-size // PACK_WIDTH)
    pack_start = np.cumsum(pack_count) - pack_count
    nodes["child"], nodes["count"] = wide.child, wide.count
    nodes["child"][leaf], nodes["count"][leaf] = pack_start, pack_count
    packs = np.zeros(max(int(pack_count.sum()), 1), TRIANGLE_PACK)
    packs["prim"] = -1
    # Slot k of a leaf goes to lane k % 4 of the leaf's pack k // 4.
    rank = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
    slot = np.repeat(first, size) + rank
    pack, lane = np.repeat(pack_start, size) + rank // PACK_WIDTH, rank % PACK_WIDTH
    prim = order[slot]
    packs["prim"][pack, lane] = prim
    is_triangle = prim < len(triangles)
    for row in ("b1", "b2", "plane"):
        for axis, name in enumerate("xyzw"):
            packs[f"{row}_{name}"][pack[is_triangle], lane[is_triangle]] = triangles[row][prim[is_triangle], axis]
    return nodes, packs


def _intersection_rows(v0: np.ndarray, e1: np.ndarray, e2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Baldwin and Weber (2016): for each triangle, rows r0, r1, r2 with b1 = r0 . (p, 1),
    b2 = r1 . (p, 1) for a point p in its plane, and r2 . (p, 1) = 0 on the plane, scaled
    by the normal's largest component (the axis the triangle is projected along)."""
    rows = np.zeros((len(v0), 3, 4))
    dominant = np.argmax(np.abs(n), axis=1)
    for axis in range(3):
        a1, a2 = (axis + 1) % 3, (axis + 2) % 3
        pick = dominant == axis
        nd = n[pick, axis]
        p, f, g = v0[pick], e1[pick], e2[pick]
        r = np.zeros((int(pick.sum()), 3, 4))
        r[:, 0, a1], r[:, 0, a2] = g[:, a2] / nd, -g[:, a1] / nd
        r[:, 0, 3] = (g[:, a1] * p[:, a2] - g[:, a2] * p[:, a1]) / nd
        r[:, 1, a1], r[:, 1, a2] = -f[:, a2] / nd, f[:, a1] / nd
        r[:, 1, 3] = -(f[:, a1] * p[:, a2] - f[:, a2] * p[:, a1]) / nd
        r[:, 2, axis] = 1.0
        r[:, 2, a1], r[:, 2, a2] = n[pick, a1] / nd, n[pick, a2] / nd
        r[:, 2, 3] = -(n[pick] * p).sum(axis=1) / nd
        rows[pick] = r
    return rows


def _primitive_bounds(corners: np.ndarray, spheres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of triangles then spheres: primitive i < len(triangles) is a triangle."""
    tri_lower = corners.min(axis=1)
    tri_upper = corners.max(axis=1)
    center = spheres["center_radius"][:, :3].astype(np.float64)
    radius = spheres["center_radius"][:, 3:4].astype(np.float64)
    return np.concatenate([tri_lower, center - radius]), np.concatenate([tri_upper, center + radius])


def _environment_distribution(pixels: np.ndarray):
    """Piecewise-constant importance for an equirectangular map: luminance times the sine of
    each row's polar angle (rows near the poles cover less solid angle).

    Returns the marginal CDF over rows (H + 1), the conditional CDFs over columns per row
    (H x (W + 1)), the density per texel relative to uniform in (u, v) (H x W), and the
    map's mean radiance over the sphere (for the light's power)."""
    height, width = pixels.shape[:2]
    rgb = pixels[:, :, :3] if pixels.shape[2] >= 3 else np.repeat(pixels[:, :, :1], 3, axis=2)
    sin_theta = np.sin(np.pi * (np.arange(height) + 0.5) / height)
    texel_luminance = np.maximum(rgb.astype(np.float64) @ LUMINANCE, 0.0)
    # Cell (i, j) of the distribution spans v in [i, i+1] / height and u in [j, j+1] / width;
    # the lookup (kernels/light.h) puts row r at v = r / (height - 1) and column c at
    # u = (c + 0.5) / width, so a cell sees rows floor(i (h-1)/h) .. ceil((i+1) (h-1)/h) and
    # columns j - 1 .. j + 1. Taking their maximum keeps bright texels from being undersampled.
    first = np.floor(np.arange(height) * (height - 1) / height).astype(int)
    last = np.ceil((np.arange(height) + 1) * (height - 1) / height).astype(int)
    rows = texel_luminance[first]
    for step in (1, 2):  # a cell spans less than one row: at most three rows touch it
        touched = np.minimum(first + step, height - 1)
        rows = np.where((first + step <= last)[:, None], np.maximum(rows, texel_luminance[touched]), rows)
    luminance = np.maximum(np.maximum(rows, np.roll(rows, 1, axis=1)), np.roll(rows, -1, axis=1))
    # A small floor keeps every direction reachable, so light sampling alone is unbiased.
    weight = (luminance + 1e-3 * max(luminance.mean(), 1e-12)) * sin_theta[:, None]
    row_sums = weight.sum(axis=1)
    conditional = np.zeros((height, width + 1))
    conditional[:, 1:] = np.cumsum(weight, axis=1) / row_sums[:, None]
    conditional[:, -1] = 1.0
    marginal = np.zeros(height + 1)
    marginal[1:] = np.cumsum(row_sums) / row_sums.sum()
    marginal[-1] = 1.0
    density = weight / weight.mean()
    mean = (rgb.astype(np.float64) * sin_theta[:, None, None]).sum(axis=(0, 1)) / (sin_theta.sum() * width)
    return (
        marginal.astype(np.float32),
        conditional.astype(np.float32).ravel(),
        density.astype(np.float32).ravel(),
        mean,
    )


def _emission_mean(material_entry, textures: _Textures) -> np.ndarray:
    param = material_entry["emission"]
    index = int(param["texture"][0])
    value = np.array(param["value"][:3], np.float64)
    return textures.means[index] * value if index >= 0 else value


def _lights(scene, materials, textures, triangle_data, corners, spheres, scene_radius, env_mean) -> np.ndarray:
    """Every light with its probability of being chosen, in proportion to its power."""
    emitted = np.array([_emission_mean(m, textures) @ LUMINANCE for m in materials])
    entries = []  # (entry, power)
    tri_material = triangle_data["info"][:, 0]
    tri_area = triangle_data["n"][:, 3].astype(np.float64)
    emissive_tris = np.flatnonzero(emitted[tri_material] > 0) if len(corners) else np.zeros(0, int)
    light = np.zeros(len(emissive_tris), LIGHT)
    light["info"][:, 0] = LIGHT_TRIANGLE
    light["info"][:, 1] = emissive_tris
    light["pick"][:, 2] = tri_area[emissive_tris]
    lit = corners[emissive_tris]
    light["corner"][:, :3] = lit[:, 0]
    light["edge1"][:, :3] = lit[:, 1] - lit[:, 0]
    light["edge2"][:, :3] = lit[:, 2] - lit[:, 0]
    tri_power = math.pi * emitted[tri_material[emissive_tris]] * tri_area[emissive_tris]
    blocks, powers = [light], [tri_power]
    for i, sphere in enumerate(spheres):
        radiance = emitted[sphere["info"][0]]
        if radiance > 0:
            area = 4.0 * math.pi * float(sphere["center_radius"][3]) ** 2
            entry = np.zeros(1, LIGHT)
            entry["info"][0, :2] = (LIGHT_SPHERE, i)
            entry["pick"][0, 2] = area
            entries.append((entry, math.pi * radiance * area))
    for source in scene.lights:
        entry = np.zeros(1, LIGHT)
        if isinstance(source, PointLight):
            entry["info"][0, 0] = LIGHT_POINT
            entry["position"][0, :3] = source.position
            entry["intensity"][0, :3] = source.intensity
            power = 4.0 * math.pi * (np.array(source.intensity) @ LUMINANCE)
        elif isinstance(source, SpotLight):
            direction = np.array(source.direction, np.float64)
            cutoff, beam = math.radians(source.cutoff_angle), math.radians(source.beam_width)
            entry["info"][0, 0] = LIGHT_SPOT
            entry["position"][0, :3] = source.position
            entry["direction"][0, :3] = direction / np.linalg.norm(direction)
            entry["intensity"][0, :3] = source.intensity
            transition = 1.0 / (cutoff - beam) if cutoff > beam else 0.0
            entry["spot"][0] = (math.cos(cutoff), math.cos(beam), cutoff, transition)
            power = 2.0 * math.pi * (1.0 - math.cos((cutoff + beam) / 2.0)) * (np.array(source.intensity) @ LUMINANCE)
        elif isinstance(source, SunLight):
            direction = np.array(source.direction, np.float64)
            entry["info"][0, 0] = LIGHT_SUN
            entry["direction"][0, :3] = direction / np.linalg.norm(direction)
            entry["intensity"][0, :3] = source.irradiance
            power = math.pi * scene_radius**2 * (np.array(source.irradiance) @ LUMINANCE)
        else:
            entry["info"][0, 0] = LIGHT_ENVIRONMENT  # its radiance is the frame's (env_radiance)
            power = math.pi**2 * scene_radius**2 * float(env_mean @ LUMINANCE)
        entries.append((entry, power))
    blocks += [e for e, _ in entries]
    powers += [np.array([p for _, p in entries], np.float64)]
    lights = np.concatenate(blocks)
    power = np.concatenate(powers)
    positive = power > 0
    lights, power = lights[positive], power[positive]
    if len(lights):
        pmf = power / power.sum()
        cdf = np.cumsum(pmf)
        cdf[-1] = 1.0
        lights["pick"][:, 0] = pmf
        lights["pick"][:, 1] = cdf
        for j in np.flatnonzero(lights["info"][:, 0] == LIGHT_TRIANGLE):
            triangle_data["info"][lights["info"][j, 1], 1] = j
        for j in np.flatnonzero(lights["info"][:, 0] == LIGHT_SPHERE):
            spheres["info"][lights["info"][j, 1], 1] = j
    return lights


def _frame(scene: Scene, n_triangles: int, lights: np.ndarray, env_texture: int, env_size: tuple[int, int]) -> np.ndarray:
    """Camera basis scaled so that forward + sx*right + sy*up spans the image for sx, sy in
    [-1, 1], plus the lens, the environment and the counts the kernel needs."""
    camera, film = scene.camera, scene.film
    position = np.array(camera.position, dtype=np.float64)
    forward = np.array(camera.look_at, dtype=np.float64) - position
    focus = camera.focus_distance if camera.focus_distance is not None else float(np.linalg.norm(forward))
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
    frame["lens_u"][0] = (*(right * camera.aperture_radius), focus)
    frame["lens_v"][0, :3] = up * camera.aperture_radius
    environment = scene.environment
    env_light = -1
    if environment is not None:
        # the constant radiance, or the scale the image's texels are multiplied by
        frame["env_radiance"][0, :3] = environment.scale * (1.0 if environment.file else np.array(environment.radiance))
        rotation = np.array(environment.transform, np.float64)[:3, :3]
        for row in range(3):  # world -> environment: the transpose of the rotation
            frame[f"env_row{row}"][0, :3] = rotation.T[row]
        matches = np.flatnonzero(lights["info"][:, 0] == LIGHT_ENVIRONMENT)
        env_light = int(matches[0]) if len(matches) else -1
    seed = np.array([scene.seed], dtype=np.uint32).view(np.int32)[0]
    frame["size"][0] = (film.width, film.height, film.spp, scene.max_depth)
    frame["counts"][0] = (n_triangles, len(lights), seed, scene.rr_depth)
    has_env = 1 if environment is not None else 0
    frame["options"][0] = (SAMPLER_KINDS[scene.sampler], env_texture, env_light, has_env)
    uniform = environment is not None and environment.sampling == "uniform"
    frame["env"][0] = (env_size[0], env_size[1], STRATEGY_KINDS[scene.strategy], uniform)
    return frame
