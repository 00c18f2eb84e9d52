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

from farm.scene.camera import frame_entry
from farm.scene.files import NoAssets, ReadOnce
from farm.scene.instances import (
    build_geometry, instance_lights, instance_table, layout, level_key, top_level,
)
from farm.scene.layout import ALPHA_MIN, INSTANCE, LUMINANCE, MATERIAL, MATERIAL_KINDS, MOTION, NODE
from farm.scene.library import Library
from farm.scene.lights import emission_mean, environment_distribution, environment_guides, light_table
from farm.scene.model import ImageTexture, Material, Scene
from farm.scene.tables import TRANSMITTANCE_TABLE_SIZE, diffuse_fresnel_reflectance, rough_interface
from farm.scene.textures import TextureTable


@dataclass(frozen=True)
class PackedScene:
    """Flat arrays ready for device buffers, plus the numbers the host needs."""

    frame: np.ndarray
    corners: np.ndarray  # (triangles, 3, 3) corners (world space; a level's own if instanced); host side only
    top: np.ndarray  # the instances' top level (NODE), empty for a scene without instances
    instances: np.ndarray  # INSTANCE
    motions: np.ndarray  # MOTION, one per instance where the shutter is open
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
    env_guide: np.ndarray  # int32: where the searches of env_marginal and env_conditional start (environment_guides)
    width: int
    height: int
    digest: str
    timings: dict = field(default_factory=dict, compare=False)
    # Buffers whose arrays a library keeps for later scenes (farm.scene.instances): a
    # renderer keeps their device copies too
    shared: frozenset = field(default=frozenset(), compare=False)

    # The kernel's buffer arguments, in its parameter order.
    BUFFERS = (
        "frame", "top", "instances", "motions", "nodes", "packs", "triangle_data", "normals", "extras", "spheres", "materials", "textures",
        "texels", "lights", "env_marginal", "env_conditional", "env_pdf", "env_guide",
    )

    @property
    def spp(self) -> int:
        return int(self.frame["size"][0][2])

    def buffers(self) -> dict[str, np.ndarray]:
        """The kernel's buffer arguments by name, in its parameter order."""
        return {name: getattr(self, name) for name in self.BUFFERS}


def pack(scene: Scene, assets=None, library: Library | None = None,
         motion: tuple[Scene, Scene] | None = None) -> PackedScene:
    """Turn every shape into triangles or spheres in bottom levels (farm.scene.instances:
    one world level for a still scene, baked into world space), build their BVHs and the
    instances' top level, and index materials, textures and lights. With `library`, bottom
    levels built for an earlier scene (an earlier frame of a shot) are taken from it. With
    `motion` (the scene at the shutter's open and close, farm.scene.motion.frame_scenes),
    the moving shapes and the camera move within the shutter."""
    assets = ReadOnce(assets or NoAssets())
    library = library or Library(keep=0)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    textures = TextureTable(scene, assets)
    names = list(scene.materials)
    material_index = {name: i for i, name in enumerate(names)}
    materials = np.zeros(len(names), MATERIAL)
    for i, name in enumerate(names):
        materials[i] = material_entry(scene.materials[name], textures)
    emitted = np.array([emission_mean(m, textures) @ LUMINANCE for m in materials])

    plan = layout(scene, assets, blurred=motion is not None)
    keys, levels = [], []
    for g, indices in enumerate(plan.groups):
        placed = g == 0 and plan.world  # the world's level is in world space; the others in their own
        key = level_key(scene, indices, material_index, emitted, placed)
        keys.append(key)
        levels.append(library.level(key, lambda: build_geometry(scene, indices, material_index, emitted, assets,
                                                               timings, placed)))
    if plan.instanced:
        t = time.perf_counter()
        combined_key = tuple(keys)
        combined = library.combine(combined_key, levels)
        triangle_lights, bases = instance_lights(scene, plan, levels, combined.first_triangle)
        instances, motions, lower, upper = instance_table(scene, plan, levels, combined, bases, motion)
        world = 0 if plan.world else None  # the world, where it has shapes, is the first placement
        top, scene_lower, scene_upper = top_level(lower, upper, max(level.stack for level in levels), world,
                                                  int(combined.roots[0]))
        timings["top"] = time.perf_counter() - t
        geometry = combined
        kept = None not in combined_key
    else:
        geometry = levels[0]
        triangle_lights, _ = instance_lights(scene, plan, levels, np.zeros(1, np.int64))  # the world alone
        top, instances, motions = np.zeros(0, NODE), np.zeros(0, INSTANCE), np.zeros(0, MOTION)
        scene_lower, scene_upper = geometry.lower, geometry.upper
        kept, combined_key = keys[0] is not None, None
    library.used(keys, combined_key)
    scene_radius = max(float(np.linalg.norm(scene_upper - scene_lower)) / 2.0, 1e-3)
    spheres = geometry.spheres.copy()  # their light indices are this scene's

    environment = scene.environment
    env_texture = -1
    env_marginal = env_conditional = env_pdf = np.zeros(0, np.float32)
    env_guide = np.zeros(0, np.int32)
    env_size = (0, 0)
    env_mean = np.array(environment.radiance) * environment.scale if environment else np.zeros(3)
    if environment is not None and environment.file:
        env_texture = textures.add(ImageTexture("environment", environment.file, "repeat", "bilinear"), colour=False)
        pixels, _ = textures.image(environment.file)
        env_marginal, env_conditional, env_pdf, env_mean = environment_distribution(pixels)
        env_mean = env_mean * environment.scale
        env_size = (pixels.shape[1], pixels.shape[0])
        env_guide = environment_guides(env_marginal, env_conditional, pixels.shape[0], pixels.shape[1])

    lights = light_table(scene, emitted, triangle_lights, spheres, scene_radius, env_mean, materials)
    texture_table, texels = textures.arrays()
    frame = frame_entry(scene, len(geometry.triangle_data), lights, env_texture, env_size)
    if motion is not None:  # the camera at the shutter's open (the frame's own fields) and close (its *1)
        for end, suffix in zip(motion, ("", "1")):
            camera = frame_entry(end, 0, lights, env_texture, env_size)
            for name in ("origin", "forward", "right", "up"):
                frame[name + suffix] = camera[name]
        frame["origin1"][0, 3] = 1.0  # the shutter is open: each sample gets a time
    timings["pack"] = time.perf_counter() - started
    return PackedScene(
        frame, geometry.corners.astype(np.float32), top, instances, motions, geometry.nodes, geometry.packs, geometry.triangles,
        geometry.triangle_data, geometry.normals, geometry.extras, spheres, materials, texture_table, texels,
        lights, env_marginal, env_conditional, env_pdf, env_guide, scene.film.width, scene.film.height, scene.digest, timings,
        frozenset(("nodes", "packs", "triangle_data", "normals", "extras")) if kept and library.keep else frozenset(),
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
