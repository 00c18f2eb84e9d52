"""Blender's Cycles in `farm bench --quality --cycles`: the same scene, rendered on this machine
in the same run, its errors against the same reference.

Cycles' Python module (`bpy`) installs for Python 3.13 only, so Cycles runs in a process of
that Python (FARM_CYCLES_PYTHON names it): this module exports the scene's world-space
triangles, materials and camera to a folder, runs farm/tools/cycles_render.py there, and
reads back each render's image (denoised by Cycles' OIDN) and its seconds. The export takes what
both renderers mean the same by: Lambertian materials, front-side emission, triangle
shapes, a pinhole camera; any other scene is one line saying what it has.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).with_name("cycles_render.py")
TIMEOUT = 3600  # seconds for all of Cycles' renders of one bench


def cycles_python() -> str | None:
    """The Python that has `bpy` (FARM_CYCLES_PYTHON), or None."""
    return os.environ.get("FARM_CYCLES_PYTHON") or None


def untranslatable(scene) -> str | None:
    """What of `scene` the export cannot give Cycles, or None."""
    from farm.scene.model import Sphere, TextureRef

    for name, material in scene.materials.items():
        if material.kind != "diffuse" or any(isinstance(getattr(material, field), TextureRef)
                                             for field in ("reflectance", "emission", "alpha")):
            return f"material {name!r} is {material.kind} or textured (the Cycles export takes plain diffuse ones)"
        if material.normal_map is not None or material.alpha != 1.0 or material.alpha_cutoff:
            return f"material {name!r} has a normal map or a cut-out (the Cycles export takes plain diffuse ones)"
    if any(isinstance(shape, Sphere) for shape in scene.shapes):
        return "a sphere (the Cycles export takes triangle shapes)"
    if scene.lights:
        return "lights besides emissive shapes"
    if scene.camera.aperture_radius:
        return "a thin-lens camera"
    return None


def export(scene, folder: Path, base: Path) -> None:
    """base.npz: the world-space triangles the kernel renders (farm.scene.geometry's
    gather_triangles: mirrored meshes turned front side out, degenerate ones dropped) and
    each one's material; base.json: the materials, the camera, the film and the depth.
    ValueError for a mesh shaded by its vertex normals (the export shades facets flat)."""
    from farm.protocol.assets import FolderAssets
    from farm.scene.files import shape_meshes
    from farm.scene.geometry import gather_triangles

    names = list(scene.materials)
    gathered = gather_triangles([
        (mesh, np.array(shape.transform, np.float64), names.index(shape.material), getattr(shape, "face_normals", False),
         False) for shape, mesh in zip(scene.shapes, shape_meshes(scene, FolderAssets(folder, scene.assets)))])
    if gathered.smooth.any():
        raise ValueError("a mesh shaded by its vertex normals (the Cycles export shades facets flat)")
    triangles = len(gathered.corners)
    np.savez(base.with_suffix(".npz"), vertices=gathered.corners.reshape(-1, 3),
             faces=np.arange(3 * triangles).reshape(triangles, 3), material=gathered.material)
    camera = scene.camera
    meta = {
        "materials": [{"name": name, "reflectance": list(scene.materials[name].reflectance),
                       "emission": list(scene.materials[name].emission)} for name in names],
        "camera": {"position": list(camera.position), "look_at": list(camera.look_at), "up": list(camera.up),
                   "fov": camera.fov, "fov_axis": camera.fov_axis},
        "width": scene.film.width, "height": scene.film.height, "max_depth": scene.max_depth,
        "threads": os.cpu_count() or 1,  # every core, as PoCL takes
    }
    base.with_suffix(".json").write_text(json.dumps(meta))


def render(scene, folder: Path, settings: list[tuple[int, float]]) -> tuple[list[tuple], str | None]:
    """Cycles' renders of `scene` at each (samples, adaptive threshold; 0 uniform): a list of
    (samples, threshold, seconds, denoised image); or ([], why not)."""
    python = cycles_python()
    if python is None:
        return [], "set FARM_CYCLES_PYTHON to a Python with Blender's bpy (pip install bpy, Python 3.13)"
    why = untranslatable(scene)
    if why:
        return [], f"the scene has {why}"
    with tempfile.TemporaryDirectory(prefix="farm-cycles-") as work:
        base = Path(work) / "scene"
        try:
            export(scene, folder, base)
        except ValueError as exc:
            return [], f"the scene has {exc}"
        arguments = [f"{samples}:{threshold:g}" for samples, threshold in settings]
        try:
            child = subprocess.run([python, str(SCRIPT), str(base), work, *arguments], capture_output=True, text=True,
                                   timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [], f"{python} did not run Cycles: {exc}"
        results = re.findall(r"^RESULT (\S+) ([\d.]+)$", child.stdout, re.M)
        if child.returncode != 0 or len(results) != len(settings):
            last = (child.stderr.strip().splitlines() or ["no output"])[-1]
            return [], f"{python} {SCRIPT.name} failed (exit {child.returncode}): {last}"
        return [(samples, threshold, float(seconds), _image(path))
                for (samples, threshold), (path, seconds) in zip(settings, results)], None


def _image(path: str) -> np.ndarray:
    """The RGB of an EXR Cycles wrote."""
    import OpenEXR

    with OpenEXR.File(path, separate_channels=True) as exr:  # the channels go with the file
        channels = exr.channels()
        return np.stack([channels[c].pixels for c in "RGB"], axis=-1).astype(np.float32)
