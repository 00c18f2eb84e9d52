"""Blender's Cycles in `farm bench --quality --cycles`: the same scene, rendered on this machine
in the same run, its errors against the same reference.

Cycles' Python module (`bpy`) installs for Python 3.13 only, so Cycles runs in a process of
that Python (FARM_CYCLES_PYTHON names it): this module exports the scene's world-space
triangles, spheres, materials, environment and camera to a folder, runs
farm/tools/cycles_render.py there, and reads back each render's image (denoised by Cycles'
OIDN) and its seconds. The export takes what both renderers mean the same by (Lambertian,
GGX conductor and GGX glass materials, checkerboard colours, front-side emission, triangles
and spheres, an equirectangular or constant environment, a pinhole camera) and one
approximation, said in cycles_render.py: plastic as Cycles' Principled BSDF. Any other
scene is one line saying what it has.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from farm import settings

SCRIPT = Path(__file__).with_name("cycles_render.py")
TIMEOUT = 3600  # seconds for all of Cycles' renders of one bench


def cycles_python() -> str | None:
    """The Python that has `bpy` (FARM_CYCLES_PYTHON), or None."""
    return settings.value("FARM_CYCLES_PYTHON") or None


def untranslatable(scene) -> str | None:
    """What of `scene` the export cannot give Cycles, or None."""
    from farm.scene.model import Checkerboard, EnvironmentLight, Sphere, TextureRef

    for name, material in scene.materials.items():
        textured = [field for field in ("roughness", "emission", "alpha", "specular", "transmittance", "metallic")
                    if isinstance(getattr(material, field), TextureRef)]
        if material.kind not in KINDS:
            return f"material {name!r} is {material.kind} (the Cycles export takes {', '.join(KINDS)})"
        if textured:
            return f"material {name!r} has a {textured[0]} texture (the Cycles export textures colours only)"
        if material.normal_map is not None or material.alpha != 1.0 or material.alpha_cutoff:
            return f"material {name!r} has a normal map or a cut-out"
        if material.exterior_ior != 1.0 or material.specular != (1.0, 1.0, 1.0) or (
                material.kind == "dielectric" and material.transmittance != (1.0, 1.0, 1.0)):
            return f"material {name!r} has an exterior index or a specular or transmittance tint"
        colour = material.reflectance
        if isinstance(colour, TextureRef) and (not isinstance(scene.textures.get(colour.name), Checkerboard)
                                               or scene.textures[colour.name].uv_set):
            return f"material {name!r} has an image texture or a second uv set (the export takes checkerboards)"
    for shape in scene.shapes:  # (a sphere's transform is a similarity: the parser refuses others)
        if isinstance(shape, Sphere):
            material = scene.materials[shape.material]
            if max(material.emission) > 0 or isinstance(material.reflectance, TextureRef):
                return "an emissive or textured sphere (the export gives spheres no uvs)"
    if any(not isinstance(light, EnvironmentLight) for light in scene.lights):
        return "lights besides emissive shapes and an environment"
    if scene.camera.aperture_radius:
        return "a thin-lens camera"
    return None


KINDS = ("diffuse", "conductor", "dielectric", "plastic")


def export(scene, folder: Path, base: Path) -> None:
    """base.npz: the world-space triangles the kernel renders (farm.scene.geometry's
    gather_triangles: mirrored meshes turned front side out, degenerate ones dropped), their
    uvs and each one's material; base.json: the materials, checkerboards, spheres, the
    environment, the camera, the film and the depth. ValueError for a mesh shaded by its
    vertex normals (the export shades facets flat)."""
    from farm.protocol.assets import FolderAssets
    from farm.scene.files import shape_meshes
    from farm.scene.geometry import gather_triangles
    from farm.scene.model import Sphere, TextureRef
    from farm.scene.textures import uv_transform

    names = list(scene.materials)
    meshes = shape_meshes(scene, FolderAssets(folder, scene.assets))
    gathered = gather_triangles([
        (mesh, np.array(shape.transform, np.float64), names.index(shape.material), getattr(shape, "face_normals", False),
         False) for shape, mesh in zip(scene.shapes, meshes) if mesh is not None])
    if gathered.smooth.any():
        raise ValueError("a mesh shaded by its vertex normals (the Cycles export shades facets flat)")
    triangles = len(gathered.corners)
    np.savez(base.with_suffix(".npz"), vertices=gathered.corners.reshape(-1, 3), uvs=gathered.uvs.reshape(-1, 2),
             faces=np.arange(3 * triangles).reshape(triangles, 3), material=gathered.material)
    spheres = []
    for shape in scene.shapes:
        if isinstance(shape, Sphere):
            m = np.array(shape.transform, np.float64)
            spheres.append({"center": (m[:3, :3] @ shape.center + m[:3, 3]).tolist(),
                            "radius": shape.radius * abs(np.linalg.det(m[:3, :3])) ** (1 / 3),
                            "material": names.index(shape.material)})

    def colour(value):
        if isinstance(value, TextureRef):
            texture = scene.textures[value.name]
            return {"color0": list(texture.color0), "color1": list(texture.color1), "factor": list(value.factor),
                    "transform": uv_transform(texture), "offset": list(texture.offset)}
        return list(value)

    materials = [{"name": name, "kind": m.kind, "reflectance": colour(m.reflectance), "emission": list(m.emission),
                  "roughness": m.roughness, "ior": m.ior, "eta": list(m.eta), "k": list(m.k)}
                 for name, m in ((name, scene.materials[name]) for name in names)]
    environment = None
    for light in scene.lights:  # untranslatable() lets environments through only
        rows = np.array(light.transform, np.float64)[:3, :3].T  # world -> map, as farm.scene.camera's
        environment = {"file": str((folder / light.file).resolve()) if light.file else None, "scale": light.scale,
                       "radiance": list(light.radiance), "rows": rows.tolist()}
    camera = scene.camera
    meta = {
        "materials": materials, "spheres": spheres, "environment": environment,
        "camera": {"position": list(camera.position), "look_at": list(camera.look_at), "up": list(camera.up),
                   "fov": camera.fov, "fov_axis": camera.fov_axis},
        "width": scene.film.width, "height": scene.film.height, "max_depth": scene.max_depth,
        "threads": os.cpu_count() or 1,  # every core, as PoCL takes
    }
    base.with_suffix(".json").write_text(json.dumps(meta))


def render(scene, folder: Path, runs: list[tuple[int, float]]) -> tuple[list[tuple], str | None]:
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
        arguments = [f"{samples}:{threshold:g}" for samples, threshold in runs]
        try:
            child = subprocess.run([python, str(SCRIPT), str(base), work, *arguments], capture_output=True, text=True,
                                   timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [], f"{python} did not run Cycles: {exc}"
        results = re.findall(r"^RESULT (\S+) ([\d.]+)$", child.stdout, re.M)
        if child.returncode != 0 or len(results) != len(runs):
            last = (child.stderr.strip().splitlines() or ["no output"])[-1]
            return [], f"{python} {SCRIPT.name} failed (exit {child.returncode}): {last}"
        return [(samples, threshold, float(seconds), _image(path))
                for (samples, threshold), (path, seconds) in zip(runs, results)], None


def _image(path: str) -> np.ndarray:
    """The RGB of an EXR Cycles wrote."""
    import OpenEXR

    with OpenEXR.File(path, separate_channels=True) as exr:  # the channels go with the file
        channels = exr.channels()
        return np.stack([channels[c].pixels for c in "RGB"], axis=-1).astype(np.float32)
