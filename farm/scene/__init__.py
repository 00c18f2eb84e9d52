"""Scenes: parse and validate the scene file, then pack it into flat arrays for the device."""

from farm.scene.model import Box, Camera, Film, Material, Mesh, Rectangle, Scene, Shape, Sphere
from farm.scene.load import load_scene
from farm.scene.parse import parse_scene, scene_digest

__all__ = [
    "Box", "Camera", "Film", "Material", "Mesh", "Rectangle", "Scene", "Shape", "Sphere",
    "load_scene", "parse_scene", "scene_digest",
]
