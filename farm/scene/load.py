"""Read a scene file on the client: a JSON scene or a glTF file, into the document that
travels to the workers.

On the way every file name is made relative to the scene's folder (absolute names inside
it are accepted; outside it, `..` escaping it, or a symlink leading out of it are refused),
glTF files are converted (a JSON scene may `include` them), missing files are refused by
name or, when allowed, their maps turned off with a warning, and each file's SHA-256 is
recorded, so the scene's digest covers the files' content too.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from farm import defaults
from farm.exceptions import SceneError
from farm.protocol.assets import FolderAssets, check_size, size_text, write_generated
from farm.scene import gltf, obj_reader, usd
from farm.scene.mesh import obj_as_binary
from farm.scene.usd import USD_SUFFIXES
from farm.scene.model import Scene
from farm.scene.parse import parse_scene, parse_transform, scene_digest

GLTF_SUFFIXES = (".gltf", ".glb")
SCENE_SUFFIXES = (".json", *GLTF_SUFFIXES, *USD_SUFFIXES)

# From this size an OBJ file travels as the arrays it parses to (_binary_meshes): each
# worker reads them without parsing the text, a third of its size (a 1M-triangle OBJ: 75 MB
# of text, parsed in 0.44 s on every worker).
OBJ_BINARY_MIN = obj_reader.COMPILED_MIN_BYTES
# A glTF file names no film: this wide, its camera's aspect (else 16:9), and enough
# samples for a clean preview. A JSON scene including the glTF can say otherwise.
GLTF_WIDTH = 960
GLTF_ASPECT = 16 / 9
GLTF_SPP = 64
# Without a camera in the file: look at the whole model along -z with this vertical field
# of view, filling the frame but for this fraction of it on each side.
FRAMING_FOV = 40.0
FRAMING_MARGIN = 0.05


def load_scene(
    path: str | Path, spp: int | None = None, *, allow_missing: bool = False,
    resolution: tuple[int, int] | None = None, animation: str | None = None, camera: str | None = None,
    obj_arrays: bool = True,
) -> tuple[Scene, dict]:
    """Read and validate a scene file (.json, .gltf, .glb or a USD stage); `spp` and
    `resolution` override its film; `camera` picks a glTF or USD camera by name (a USD
    stage's: by prim path). Returns the scene and the document that travels to workers.

    Missing files are a SceneError naming each; with `allow_missing`, missing textures and
    environment maps are turned off instead and the scene's `warnings` say which. A big
    OBJ file travels as its arrays (_binary_meshes) unless `obj_arrays` is False (for the
    exports to other renderers, which read the OBJ itself: farm.scene.mitsuba, Cycles')."""
    path = Path(path)
    folder = FolderAssets(path.parent)
    base = Path(os.path.abspath(path.parent))
    suffix = path.suffix.lower()
    if suffix not in SCENE_SUFFIXES:  # an OBJ is a mesh a JSON scene names, not a scene
        raise SceneError(f"{path}: not a scene file; submit reads {', '.join(SCENE_SUFFIXES)} "
                         f"(a JSON scene names meshes and images as files)")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SceneError(f"{path}: no such scene file") from None
    except OSError as exc:
        raise SceneError(f"{path}: cannot read scene file: {exc.strerror}") from None
    check_size(str(path), size)
    if suffix in GLTF_SUFFIXES + USD_SUFFIXES:
        document = {"version": 1, "include": [{"file": path.name}]}
    else:
        document = _read_json(path, size)
    if not isinstance(document, dict):
        return parse_scene(document, source=str(path)), document  # raises, naming what it got
    for key in ("assets", "warnings"):  # recorded below, from the files themselves
        document.pop(key, None)
    warnings: list[str] = []
    _relative_names(document, base, folder.folder)
    if "include" in document:
        _expand(document, folder, warnings, str(path), resolution, animation, camera)
    elif camera is not None:
        raise SceneError(f"{path}: --camera picks a camera of a glTF file or USD stage; this scene includes none")
    if isinstance(document.get("film"), dict):
        if spp is not None:
            document["film"]["spp"] = spp
        if resolution is not None:
            document["film"]["width"], document["film"]["height"] = resolution
    scene = parse_scene(document, source=str(path))
    missing = [name for name in scene.files() if not folder.path(name).is_file()]
    if missing and not allow_missing:
        raise SceneError(f"{path}: missing file{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                         f"(--allow-missing renders without missing maps)")
    if missing:  # the materials and lights change: parsed again, only on this degraded path
        _turn_off(document, missing, warnings)
        scene = parse_scene(document, source=str(path))
    if obj_arrays and _binary_meshes(document, folder):
        scene = parse_scene(document, source=str(path))
    if warnings:
        document["warnings"] = warnings
    files = scene.files()  # _turn_off dropped exactly the missing ones
    if files:
        document["assets"] = {name: folder.digest(name) for name in files}
    if files or warnings:  # what parsing the document again would give, without parsing it again
        scene = replace(scene, assets=dict(document.get("assets", {})), warnings=tuple(warnings),
                        digest=scene_digest(document))
    return scene, document


def _binary_meshes(document: dict, folder: FolderAssets) -> bool:
    """Give each mesh shape of a big OBJ file (OBJ_BINARY_MIN) the file's arrays instead, as
    a generated binary file (farm.scene.mesh.obj_as_binary), read once here however many
    shapes use it; whether any shape changed."""
    shapes = document.get("shapes")
    converted: dict[str, tuple | None] = {}
    for shape in shapes if isinstance(shapes, list) else []:
        if not (isinstance(shape, dict) and shape.get("type") == "mesh" and isinstance(shape.get("file"), str)
                and shape["file"].lower().endswith(".obj") and "binary" not in shape and "base64" not in shape):
            continue
        name = shape["file"]
        if name not in converted:
            converted[name] = None
            if folder.size(name) >= OBJ_BINARY_MIN:
                data, layout = obj_as_binary(name, folder.read(name))
                converted[name] = (write_generated(data, ".bin"), layout)
        if converted[name] is not None:
            shape["file"], shape["binary"] = converted[name]
    return any(value is not None for value in converted.values())


def _read_json(path: Path, size: int):
    """The scene file's JSON, read only if its size (from stat) is within the document's
    limit: the document workers parse is this JSON (compact), so a larger file is refused
    before a byte of it is read (a 2 GiB file took 6 GB to be told it was too large)."""
    if size > defaults.MAX_SCENE_BYTES:
        raise SceneError(f"{path}: {size_text(size)} is over the limit of {size_text(defaults.MAX_SCENE_BYTES)} "
                         f"for a scene document (FARM_MAX_SCENE_BYTES); put meshes in files")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SceneError(f"{path}: cannot read scene file: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise SceneError(f"{path}: JSON nested too deeply") from None


def relative_name(name: str, base: Path, resolved_base: Path) -> str:
    """`name` as a file name relative to the scene's folder, or a SceneError saying why not."""
    path = Path(name.replace("\\", "/"))
    lexical = Path(os.path.normpath(path if path.is_absolute() else base / path))
    inside = next((root for root in (base, resolved_base) if lexical.is_relative_to(root)), None)
    if inside is None or lexical == inside:
        raise SceneError(f"{name!r}: outside the scene's folder {base}")
    if not lexical.resolve().is_relative_to(resolved_base):
        raise SceneError(f"{name!r}: leads through a symlink out of the scene's folder {base}")
    return lexical.relative_to(inside).as_posix()


def _relative_names(document: dict, base: Path, resolved_base: Path) -> None:
    """Rewrite every file name in the document relative to the scene's folder. Values of
    the wrong type are left for the parser to report with their place in the file."""
    holders = []
    if isinstance(document.get("textures"), dict):
        holders += document["textures"].values()
    for key in ("shapes", "lights", "include"):
        if isinstance(document.get(key), list):
            holders += document[key]
    for holder in holders:
        if isinstance(holder, dict) and isinstance(holder.get("file"), str) and holder["file"]:
            holder["file"] = relative_name(holder["file"], base, resolved_base)


def _expand(document: dict, folder: FolderAssets, warnings: list[str], source: str,
            resolution: tuple[int, int] | None, animation: str | None = None, camera: str | None = None) -> None:
    """Replace the document's `include` list by what its glTF files and USD stages hold (a
    camera-less model is framed for `resolution` when one is given; `animation` picks one of
    each file's animations, else all play; `camera` the camera of that name, which wins over
    the document's own)."""
    includes = document.pop("include")
    if not isinstance(includes, list):
        raise SceneError(f"{source}.include: expected a list of {{\"file\": ..., \"transform\": ...}} objects")
    for key, empty in (("materials", {}), ("textures", {}), ("shapes", []), ("lights", [])):
        if not isinstance(document.setdefault(key, empty), type(empty)):
            raise SceneError(f"{source}.{key}: expected {'an object' if empty == {} else 'a list'}")
    lower, upper, aspect = np.full(3, np.inf), np.full(3, -np.inf), None
    cameras: list[str] = []  # every included file's, for the line that says --camera named none of them
    found = False  # a camera taken from an included file
    # The scene file's own emitters light it; a glTF's emissive maps (screens, glow) do not
    # stand in for the sky.
    own_emitters = any(isinstance(m, dict) and "emission" in m for m in document["materials"].values())
    for number, include in enumerate(includes):
        where = f"{source}.include[{number}]"
        if not isinstance(include, dict) or not isinstance(include.get("file"), str) or set(include) - {"file", "transform"}:
            raise SceneError(f"{where}: expected {{\"file\": name.gltf, .glb or .usd*, \"transform\": optional}}")
        name = include["file"]
        if not name.lower().endswith(GLTF_SUFFIXES + USD_SUFFIXES):
            raise SceneError(f"{where}.file: {name!r} is not a .gltf, .glb, .usd, .usda, .usdc or .usdz file")
        matrix = np.array(parse_transform(include.get("transform", {}), f"{where}.transform"))
        if name.lower().endswith(USD_SUFFIXES):  # usd-core composes it on this client (farm.scene.usd)
            folder.size(name)  # there, and within the limits
            converted = usd.convert(folder.path(name), folder.folder, matrix, prefix=f"{name}:", camera=camera)
        else:
            converted = gltf.convert(name, folder.read(name), folder.size, matrix, prefix=f"{name}:",
                                     read=folder.read, animation=animation, camera=camera)
        cameras += converted.cameras
        for key in ("materials", "textures"):
            document[key].update(getattr(converted, key))
        if converted.rig:  # one rig for every file: this file's nodes after those before
            rig = document.setdefault("rig", {"nodes": []})["nodes"]
            offset = len(rig)
            rig += [{**node, "parent": node["parent"] + offset if node["parent"] >= 0 else -1} for node in converted.rig]
            for holder in converted.shapes + ([converted.camera] if converted.camera else []):
                if "rig" in holder:
                    holder["rig"] += offset
        document["shapes"] += converted.shapes
        document["lights"] += converted.lights
        own_emitters = own_emitters or converted.emitters > 0
        if converted.camera is not None and not found and (camera is not None or "camera" not in document):
            document["camera"], aspect, found = converted.camera, converted.aspect, True
        lower, upper = np.minimum(lower, converted.lower), np.maximum(upper, converted.upper)
        warnings += converted.warnings
    if camera is not None and not found:
        raise SceneError(f"{source}: no camera {camera!r}; its cameras: {', '.join(cameras) or 'none'}")
    if "film" not in document:
        width = GLTF_WIDTH
        document["film"] = {"width": width, "height": max(1, round(width / (aspect or GLTF_ASPECT))), "spp": GLTF_SPP}
    if "camera" not in document and np.isfinite(lower).all():
        aspect = resolution[0] / resolution[1] if resolution and min(resolution) > 0 else _aspect(document["film"])
        document["camera"] = frame_box(lower, upper, aspect)
        warnings.append(f"{source}: no camera in the scene; framing the whole model from +z")
    if not document["lights"] and not own_emitters:
        document["lights"].append({"type": "environment", "radiance": [1.0, 1.0, 1.0]})
        glow = any(isinstance(m, dict) and "emission" in m for m in document["materials"].values())
        warnings.append(f"{source}: no lights in the scene{' (emissive materials add to it)' * glow}; "
                        f"lit by a uniform white sky")


def frame_box(lower: np.ndarray, upper: np.ndarray, aspect: float) -> dict:
    """A camera looking along -z at the box [lower, upper], as close as it can be with every
    corner inside the frame (a margin of FRAMING_MARGIN each side)."""
    centre = (lower + upper) / 2
    tan_y = math.tan(math.radians(FRAMING_FOV / 2)) / (1 + 2 * FRAMING_MARGIN)
    tan_x = tan_y * aspect
    corners = np.array([[(lower, upper)[(i >> k) & 1][k] for k in range(3)] for i in range(8)]) - centre
    # a corner at depth z in front of the camera at distance d stays inside when
    # |x| <= (d - z) tan_x and |y| <= (d - z) tan_y
    distance = float(np.max(corners[:, 2] + np.maximum(np.abs(corners[:, 0]) / tan_x, np.abs(corners[:, 1]) / tan_y)))
    distance = max(distance, float(np.max(corners[:, 2])) + 1e-3 * max(float(np.linalg.norm(upper - lower)), 1e-3))
    return {"position": (centre + [0, 0, distance]).tolist(), "look_at": centre.tolist(), "fov": FRAMING_FOV,
            "fov_axis": "y"}


def _aspect(film) -> float:
    try:
        return float(film["width"]) / float(film["height"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return GLTF_ASPECT


def _turn_off(document: dict, missing: list[str], warnings: list[str]) -> None:
    """Render without the missing files: textures off (each parameter using one falls back
    to its factor, or the material's default), environment maps become a uniform sky.
    A missing mesh cannot be left out: the frame would not be the scene."""
    gone = set(missing)
    meshes = [s["file"] for s in document.get("shapes", []) if isinstance(s, dict) and s.get("file") in gone]
    if meshes:
        raise SceneError(f"missing mesh file{'s' if len(meshes) > 1 else ''}: {', '.join(dict.fromkeys(meshes))} "
                         f"(only maps can be left out)")
    materials = document.get("materials", {})
    for texture_name, texture in list(document.get("textures", {}).items()):
        if texture.get("type") != "image" or texture.get("file") not in gone:
            continue
        del document["textures"][texture_name]
        users = []
        for material_name, material in materials.items():
            for key, value in list(material.items()):
                if isinstance(value, dict) and value.get("texture") == texture_name:
                    if "factor" in value:
                        material[key] = value["factor"]
                    else:
                        del material[key]
                    users.append(f"{material_name}.{key}")
        uses = f"{', '.join(users)} rendered without it" if users else "unused"
        warnings.append(f"MISSING FILE {texture['file']}: texture {texture_name} turned off ({uses})")
    for light in document.get("lights", []):
        if isinstance(light, dict) and light.get("type") == "environment" and light.get("file") in gone:
            file = light.pop("file")
            light["radiance"] = [1.0, 1.0, 1.0]
            warnings.append(f"MISSING FILE {file}: environment map turned off; a uniform sky of radiance "
                            f"{light.get('scale', 1.0)} lights the scene instead")
