"""The light table and its sampling weights, and the environment map's distribution."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from farm.scene.layout import (
    LIGHT, LIGHT_ENVIRONMENT, LIGHT_POINT, LIGHT_SPHERE, LIGHT_SPOT, LIGHT_SUN, LIGHT_TRIANGLE, LUMINANCE,
)
from farm.scene.model import PointLight, SpotLight, SunLight
from farm.scene.textures import TextureTable


def environment_distribution(pixels: np.ndarray):
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


def environment_guides(marginal: np.ndarray, conditional: np.ndarray, height: int, width: int) -> np.ndarray:
    """Guide tables for the kernel's searches of the environment's CDFs (kernels/light.h
    env_sample; Chen and Asau's cutpoint method, 1974): for a CDF over n bins and G (a power
    of two) equal steps of u, entry g is the bin a search for u = g / G finds (the last bin
    whose CDF is at most u, in float32 as the kernel compares), so the bin of any u in
    [g / G, (g + 1) / G) lies between entries g and g + 1 and the kernel searches only there:
    the same bin, in a step or two instead of one a halving. Laid out as: G for the rows, G
    for the columns, the rows' G + 1 entries, then each row's G + 1 for its columns."""
    rows, columns = _power_of_two(height), _power_of_two(width)

    def guide(cdf: np.ndarray, bins: int, steps: int) -> np.ndarray:
        at = np.arange(steps + 1, dtype=np.float32) / np.float32(steps)
        return np.clip(np.searchsorted(cdf[:bins], at, side="right") - 1, 0, bins - 1)

    table = [np.array([rows, columns]), guide(marginal, height, rows)]
    table += [guide(conditional[r * (width + 1):(r + 1) * (width + 1)], width, columns) for r in range(height)]
    return np.concatenate(table).astype(np.int32)


def _power_of_two(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def emission_mean(material_entry, textures: TextureTable) -> np.ndarray:
    param = material_entry["emission"]
    index = int(param["texture"][0])
    value = np.array(param["value"][:3], np.float64)
    return textures.means[index] * value if index >= 0 else value


@dataclass(frozen=True)
class TriangleLights:
    """The emissive triangles of every instance, in light order: their triangle (in the
    kernel's numbering) and instance, world corners (k, 3, 3), unit front normal (float32,
    as the kernel reads it), world area and material."""

    prim: np.ndarray
    instance: np.ndarray
    corners: np.ndarray
    normal: np.ndarray
    area: np.ndarray
    material: np.ndarray


def light_table(scene, emitted: np.ndarray, triangles: TriangleLights, spheres, scene_radius, env_mean,
                materials: np.ndarray) -> np.ndarray:
    """Every light with its probability of being chosen, in proportion to its power
    (`emitted`: each material's mean emitted luminance): the emissive triangles first, then
    spheres (in the world, in no instance; their info.y set to their light's index), then
    the scene's lights. A triangle whose material's emission has no texture carries it
    (intensity, info.w 1), so that the kernel's lanes sample it without reading its
    triangle's and material's records (kernels/light_lanes.h)."""
    entries = []  # (entry, power)
    light = np.zeros(len(triangles.prim), LIGHT)
    light["info"][:, 0] = LIGHT_TRIANGLE
    light["info"][:, 1] = triangles.prim
    light["info"][:, 2] = triangles.instance
    light["pick"][:, 2] = triangles.area
    lit = triangles.corners
    light["corner"][:, :3] = lit[:, 0]
    light["edge1"][:, :3] = lit[:, 1] - lit[:, 0]
    light["edge2"][:, :3] = lit[:, 2] - lit[:, 0]
    light["direction"][:, :3] = triangles.normal
    emission = materials["emission"][triangles.material]
    plain = emission["texture"][:, 0] < 0
    light["info"][:, 3] = plain
    light["intensity"][plain, :3] = emission["value"][plain, :3]
    tri_power = math.pi * emitted[triangles.material] * triangles.area
    blocks, powers = [light], [tri_power]
    for i, sphere in enumerate(spheres):
        radiance = emitted[sphere["info"][0]]
        if radiance > 0:
            area = 4.0 * math.pi * float(sphere["center_radius"][3]) ** 2
            entry = np.zeros(1, LIGHT)
            entry["info"][0, :3] = (LIGHT_SPHERE, i, -1)
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
    # Lights of no power are left out, but never a triangle's or a sphere's: their indices
    # are written into the scene's primitives.
    kind = lights["info"][:, 0]
    positive = (power > 0) | (kind == LIGHT_TRIANGLE) | (kind == LIGHT_SPHERE)
    lights, power = lights[positive], power[positive]
    if len(lights):
        pmf = power / power.sum()
        cdf = np.cumsum(pmf)
        cdf[-1] = 1.0
        lights["pick"][:, 0] = pmf
        lights["pick"][:, 1] = cdf
        for j in np.flatnonzero(lights["info"][:, 0] == LIGHT_SPHERE):
            spheres["info"][lights["info"][j, 1], 1] = j
    return lights
