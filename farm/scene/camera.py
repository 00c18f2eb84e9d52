"""The frame record: camera, film, environment and the scene's counts, as the kernel reads them."""

from __future__ import annotations

import math

import numpy as np

from farm.scene.layout import FRAME, LIGHT_ENVIRONMENT, SAMPLER_KINDS, STRATEGY_KINDS
from farm.scene.model import Scene


def frame_entry(scene: Scene, n_triangles: int, lights: np.ndarray, env_texture: int, env_size: tuple[int, int]) -> np.ndarray:
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
    frame["forward"][0] = (*forward, camera.clip[0])  # w: the near clipping plane (0: none)
    frame["right"][0] = (*(right * tan_x), camera.clip[1])  # w: the far one (0: none)
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
