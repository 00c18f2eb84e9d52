"""Scenes: parse and validate the scene file, then pack it into flat arrays for the device.

`load.py` (reading a file, converting glTF) runs only on the client; a worker parses the
document it gets from Redis and packs it, so this package imports neither loader.
"""

from farm.scene.model import Box, Camera, Film, Material, Mesh, Rectangle, Scene, Shape, Sphere
from farm.scene.parse import parse_scene, scene_digest

__all__ = [
    "Box", "Camera", "Film", "Material", "Mesh", "Rectangle", "Scene", "Shape", "Sphere",
    "parse_scene", "scene_digest",
]
