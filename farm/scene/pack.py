"""Pack a Scene into flat numpy arrays whose layouts (layout.py) mirror the structs in
kernels/types.h: materials here; textures, geometry and the BVH, lights, and the frame
record each in a module of its own.

Files (meshes, images) are read through an asset source (files.py), so the same code
packs on the client (from the scene's folder) and on a worker (from Redis).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from farm.exceptions import SceneError
from farm.scene import bvh as bvh_builder
from farm.scene.camera import frame_entry
from farm.scene.files import NoAssets, ReadOnce, shape_meshes
from farm.scene.geometry import flatten_bvh, primitive_bounds, sphere_entry, triangle_arrays
from farm.scene.layout import ALPHA_MIN, MATERIAL, MATERIAL_KINDS, SPHERE, STACK_SIZE
from farm.scene.lights import environment_distribution, light_table
from farm.scene.model import ImageTexture, Material, Mesh, Scene, Sphere
from farm.scene.tables import TRANSMITTANCE_TABLE_SIZE, diffuse_fresnel_reflectance, rough_interface
from farm.scene.textures import TextureTable


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
    extras: np.ndarray
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
        "frame", "nodes", "packs", "triangle_data", "normals", "extras", "spheres", "materials", "textures",
        "texels", "lights", "env_marginal", "env_conditional", "env_pdf",
    )

    @property
    def spp(self) -> int:
        return int(self.frame["size"][0][2])

    def buffers(self) -> dict[str, np.ndarray]:
        """The kernel's buffer arguments by name, in its parameter order."""
        return {name: getattr(self, name) for name in self.BUFFERS}


def pack(scene: Scene, assets=None) -> PackedScene:
    """Turn every shape into world-space triangles or spheres, build the BVH over them,
    and index materials, textures and lights."""
    assets = ReadOnce(assets or NoAssets())
    timings: dict[str, float] = {}
    started = time.perf_counter()
    textures = TextureTable(scene, assets)
    names = list(scene.materials)
    material_index = {name: i for i, name in enumerate(names)}
    materials = np.zeros(len(names), MATERIAL)
    for i, name in enumerate(names):
        materials[i] = material_entry(scene.materials[name], textures)

    meshes, spheres = [], []
    for shape, mesh in zip(scene.shapes, shape_meshes(scene, assets, timings)):
        m = np.array(shape.transform, dtype=np.float64)
        mid = material_index[shape.material]
        if isinstance(shape, Sphere):
            spheres.append(sphere_entry(shape, m, mid))
            continue
        face_normals = isinstance(shape, Mesh) and shape.face_normals
        meshes.append((mesh, m, mid, face_normals, scene.materials[shape.material].normal_map is not None))

    triangles, triangle_data, normals, extras, corners = triangle_arrays(meshes)
    sphere_array = np.array(spheres, SPHERE) if spheres else np.zeros(0, SPHERE)

    t = time.perf_counter()
    lower, upper = primitive_bounds(corners, sphere_array)
    tree = bvh_builder.build(lower, upper)
    wide = bvh_builder.collapse(tree)
    timings["bvh"] = time.perf_counter() - t
    if wide.stack > STACK_SIZE:
        raise SceneError(
            f"the scene's BVH needs a traversal stack of {wide.stack} entries; the kernel has {STACK_SIZE}"
        )
    nodes, packs = flatten_bvh(wide, tree.order, triangles)
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
        env_marginal, env_conditional, env_pdf, env_mean = environment_distribution(pixels)
        env_mean = env_mean * environment.scale
        env_size = (pixels.shape[1], pixels.shape[0])

    lights = light_table(scene, materials, textures, triangle_data, corners, sphere_array, scene_radius, env_mean)
    texture_table, texels = textures.arrays()
    frame = frame_entry(scene, len(triangles), lights, env_texture, env_size)
    timings["pack"] = time.perf_counter() - started
    return PackedScene(
        frame, corners.astype(np.float32), nodes, packs, triangles, triangle_data, normals, extras, sphere_array, materials,
        texture_table, texels,
        lights, env_marginal, env_conditional, env_pdf, scene.film.width, scene.film.height, scene.digest, timings,
    )


def material_entry(material: Material, textures: TextureTable) -> np.ndarray:
    packed = np.zeros((), MATERIAL)
    packed["kind"] = (MATERIAL_KINDS[material.kind], 0, 0, 0)
    packed["reflectance"] = textures.param(material.reflectance, colour=True)
    eta = material.ior / material.exterior_ior
    # Between equal indices an interface bends no light, rough or not: only its tints act.
    smooth = material.kind == "dielectric" and eta == 1.0
    packed["roughness"] = textures.param(0.0 if smooth else material.roughness, colour=False)
    packed["specular"] = textures.param(material.specular, colour=True)
    packed["transmittance"] = textures.param(material.transmittance, colour=True)
    packed["emission"] = textures.param(material.emission, colour=True)
    packed["metallic"] = textures.param(material.metallic, colour=False)
    packed["normal_map"] = textures.param(material.normal_map or 0.0, colour=False)
    packed["alpha"] = textures.param(material.alpha, colour=False)
    packed["eta"][:3] = material.eta
    packed["k"][:3] = material.k
    internal = diffuse_fresnel_reflectance(1.0 / eta)
    packed["kind"][1] = -1
    if material.kind == "plastic" and isinstance(material.roughness, float) and material.roughness > 0:
        # A rough coating lets through what its microfacets do not reflect: tabulated once
        # per material, as Mitsuba's roughplastic does. (A textured roughness falls back to
        # the smooth coating's Fresnel transmittance.)
        alpha = max(material.roughness**2, ALPHA_MIN)
        mu = np.linspace(0.0, 1.0, TRANSMITTANCE_TABLE_SIZE)
        packed["kind"][1] = textures.add_table(rough_interface(mu, alpha, eta)[1])
        packed["kind"][2] = TRANSMITTANCE_TABLE_SIZE
        inner_mu = (np.arange(256) + 0.5) / 256  # diffuse light inside, reflected back in
        internal = float((2.0 * inner_mu * rough_interface(inner_mu, alpha, 1.0 / eta)[0]).mean())
    packed["ior"] = (eta, internal, material.alpha_cutoff, 0.0)
    return packed
