"""The scenes the benchmarks render: the bundled Cornell box, a scene file at a chosen
width, and a generated mesh (a bumpy sphere) of any size, as OBJ here and as a .glb in
farm.tools.bench_startup."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

DEFAULT_SCENE = "cornell-box.json"
MESH_PREFIX = "mesh:"  # `farm bench --scene mesh:N`: the generated mesh of N triangles in the Cornell box


def default_scene() -> str:
    """The Cornell box: package data (`farm.scenes`) when installed, else `scenes/` beside
    the `farm/` being imported (a source checkout on sys.path)."""
    try:
        return str(importlib.resources.files("farm.scenes") / DEFAULT_SCENE)
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[2] / "scenes" / DEFAULT_SCENE)


def load_scaled(args):
    """The scene of `args.scene` at `args.spp`, `args.width` wide (the height keeps the aspect);
    a big OBJ stays an OBJ file, which Mitsuba's and Cycles' exports read."""
    from farm.scene.load import load_scene

    scene, document = load_scene(args.scene, spp=args.spp, obj_arrays=False)
    if args.width:
        film = document["film"]
        film["height"] = max(1, round(film["height"] * args.width / film["width"]))
        film["width"] = args.width
        from farm.scene import parse_scene

        scene = parse_scene(document, source=args.scene)
    return scene, document


def bumpy_sphere(triangles: int):
    """A UV sphere of about `triangles` triangles with a bumpy radius: points, normals
    (close enough for shading) and 0-based faces."""
    import numpy as np

    rings = max(4, int(round(np.sqrt(triangles / 4))))
    segments = 2 * rings
    theta = np.linspace(0, np.pi, rings + 1)[:, None]
    phi = np.linspace(0, 2 * np.pi, segments + 1)[None, :]
    radius = 1 + 0.06 * np.sin(8 * phi) * np.sin(6 * theta) ** 2
    points = np.stack([radius * np.sin(theta) * np.cos(phi), radius * np.cos(theta) + 0 * phi,
                       radius * np.sin(theta) * np.sin(phi)], axis=-1).reshape(-1, 3)
    normals = points / np.linalg.norm(points, axis=1, keepdims=True)
    index = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, 1:].ravel(), index[1:, :-1].ravel()
    return points, normals, np.concatenate([np.stack([a, c, b], 1), np.stack([a, d, c], 1)])


def write_bumpy_sphere(path: Path, triangles: int) -> int:
    """bumpy_sphere written as OBJ; returns its triangle count."""
    import numpy as np

    points, normals, faces = bumpy_sphere(triangles)
    faces = faces + 1  # OBJ counts from 1
    with open(path, "w") as out:
        np.savetxt(out, points, fmt="v %.6f %.6f %.6f")
        np.savetxt(out, normals, fmt="vn %.5f %.5f %.5f")
        np.savetxt(out, np.stack([faces] * 2, axis=2).reshape(len(faces), 6), fmt="f %d//%d %d//%d %d//%d")
    return len(faces)


def mesh_scene(folder: Path, triangles: int) -> Path:
    """The Cornell box's room and light around bumpy_sphere of about `triangles` triangles
    (an OBJ), as a scene file in `folder`, written there once."""
    import json

    path = folder / f"mesh-{triangles}.json"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    write_bumpy_sphere(folder / f"mesh-{triangles}.obj", triangles)
    document = mesh_document(f"mesh-{triangles}.obj")
    document["description"] = f"The Cornell box's room and light around a bumpy sphere of {triangles:,} triangles."
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document))
    partial.replace(path)
    return path


def mesh_document(obj_name: str) -> dict:
    """The Cornell box's document with its room and light only, around the OBJ `obj_name`
    (a bumpy_sphere) set on the floor."""
    import json

    document = json.loads(Path(default_scene()).read_text())
    document["shapes"] = document["shapes"][:6] + [
        {"type": "mesh", "file": obj_name, "material": "white", "transform": {"scale": 0.55, "translate": [0, -0.4, 0]}}
    ]
    return document


def resolve_scene(scene: str) -> str:
    """A scene file as `farm bench --scene` names it: a path, or mesh:N (mesh_scene, kept
    under FARM_CACHE_DIR's bench folder)."""
    if not scene.startswith(MESH_PREFIX):
        return scene
    from farm import defaults

    try:
        triangles = int(scene[len(MESH_PREFIX):].replace(",", "").replace("_", ""))
    except ValueError:
        raise SystemExit(f"farm bench: --scene {scene}: expected mesh:N, N a number of triangles") from None
    return str(mesh_scene(Path(defaults.CACHE_DIR) / "bench", triangles))
