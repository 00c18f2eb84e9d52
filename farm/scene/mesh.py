"""Triangle meshes: OBJ files (big plain ones through farm.scene.obj_reader, the rest through
trimesh's parser), and the built-in shapes' triangles."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np

from farm import defaults
from farm.exceptions import SceneError
from farm.scene import obj_reader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriangleMesh:
    """Indexed triangles in object space. `normals` (per vertex, for smooth shading), `uvs`
    and `uvs1` (per vertex, two sets; v = 0 at the bottom of an image) and `tangents` (per
    vertex: xyz and the bitangent's sign, for normal maps) may be None."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64, counter-clockwise seen from the front
    normals: np.ndarray | None = None
    uvs: np.ndarray | None = None
    uvs1: np.ndarray | None = None
    tangents: np.ndarray | None = None
    joints: np.ndarray | None = None  # (V, 4) int: a skinned mesh's joints per vertex
    weights: np.ndarray | None = None  # (V, 4) float64: their weights


def load_obj(name: str, data: bytes) -> TriangleMesh:
    """Every object and group of an OBJ file as one mesh (its .mtl materials are ignored:
    the scene file names the material). Polygons come triangulated by trimesh; a big plain
    file is read by farm.scene.obj_reader, to the same arrays."""
    # Before parsing: every face line makes at least one triangle.
    faces = data.count(b"\nf ") + data.startswith(b"f ")
    if faces > defaults.MAX_TRIANGLES:
        raise SceneError(f"{name}: {faces} faces, over the limit of {defaults.MAX_TRIANGLES} triangles "
                         f"(FARM_MAX_TRIANGLES)")
    parts = None
    if len(data) >= obj_reader.COMPILED_MIN_BYTES:
        plain = obj_reader.read(data)
        parts = None if plain is None else [plain]
    if parts is None:
        parts = _trimesh_parts(name, data)
    if not parts:
        raise SceneError(f"{name}: the OBJ file has no triangles")
    vertices, faces, normals, uvs = [], [], [], []
    all_normals = all(p[2] is not None for p in parts)
    all_uvs = all(p[3] is not None for p in parts)
    offset = 0
    for v, f, part_normals, part_uvs in parts:
        v = np.asarray(v, np.float64).reshape(-1, 3)
        f = np.asarray(f, np.int64).reshape(-1, 3)
        if f.min() < 0 or f.max() >= len(v):
            raise SceneError(f"{name}: a face refers to a vertex that does not exist")
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
        if all_normals:
            normals.append(np.asarray(part_normals, np.float64).reshape(-1, 3))
        if all_uvs:
            uvs.append(np.asarray(part_uvs, np.float64).reshape(-1, 2))
    mesh = TriangleMesh(
        np.concatenate(vertices),
        np.concatenate(faces),
        np.concatenate(normals) if all_normals else None,
        np.concatenate(uvs) if all_uvs else None,
    )
    if not np.isfinite(mesh.vertices).all():
        raise SceneError(f"{name}: vertex positions must be finite")
    return mesh


def obj_as_binary(name: str, data: bytes) -> tuple[bytes, dict]:
    """An OBJ file's triangles as a binary file and its layout (load_binary's), holding
    exactly the arrays load_obj makes of it (positions, normals and uvs as float64, indices
    as uint32): the client reads a big OBJ once, and what travels to every worker is that,
    a third of the text's size, read without parsing."""
    mesh = load_obj(name, data)
    parts, layout, size = [], {}, 0
    for key, values, fmt in (("positions", mesh.vertices, "f64x3"), ("normals", mesh.normals, "f64x3"),
                             ("uvs", mesh.uvs, "f64x2"), ("indices", mesh.faces.ravel(), "u32")):
        if values is None:
            continue
        array = np.ascontiguousarray(values, BINARY_FORMATS[fmt][0])
        layout[key] = {"offset": size, "count": len(array), "format": fmt}
        parts.append(array.tobytes())
        size += array.nbytes
    return b"".join(parts), layout


def _trimesh_parts(name: str, data: bytes) -> list[tuple]:
    """(vertices, faces, normals or None, uvs or None) of each geometry trimesh reads."""
    from trimesh.exchange.obj import load_obj as trimesh_load_obj

    try:
        loaded = trimesh_load_obj(io.BytesIO(data), maintain_order=True, skip_materials=True)
    except ModuleNotFoundError as exc:  # a file that is not UTF-8: trimesh guesses its encoding with an optional package
        raise SceneError(f"{name}: cannot read OBJ: it is not UTF-8 text, and {exc.name} (which would guess its "
                         f"encoding) is not installed") from None
    except Exception as exc:  # trimesh raises many types for malformed files
        raise SceneError(f"{name}: cannot read OBJ: {exc}") from None
    parts = list(loaded.get("geometry", {}).values()) if "geometry" in loaded else [loaded]
    return [(p["vertices"], p["faces"], p.get("vertex_normals"), getattr(p.get("visual"), "uv", None))
            for p in parts if len(p.get("faces", ())) and len(p.get("vertices", ()))]


def rectangle() -> TriangleMesh:
    """[-1, 1]^2 at z = 0 facing +z; uv (0, 0) at (-1, -1)."""
    vertices = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float64)
    return TriangleMesh(vertices, np.array([[0, 1, 2], [0, 2, 3]]), None, (vertices[:, :2] + 1.0) / 2.0)


def cube() -> TriangleMesh:
    """[-1, 1]^3, 12 triangles wound counter-clockwise seen from outside; each face has
    its own corners so that its uvs span [0, 1]^2."""
    vertices, faces, uvs = [], [], []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3
        for sign in (1.0, -1.0):
            corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
            if sign < 0:
                corners.reverse()
            base = len(vertices)
            for cu, cv in corners:
                p = [0.0, 0.0, 0.0]
                p[axis], p[u], p[v] = sign, cu, cv
                vertices.append(p)
                uvs.append(((cu + 1) / 2.0, (cv + 1) / 2.0))
            faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return TriangleMesh(np.array(vertices, np.float64), np.array(faces), None, np.array(uvs, np.float64))


# Binary layouts (glTF accessors; see farm.scene.gltf): format -> (dtype, components, scale).
# The float64 ones are the farm's own (a big OBJ's arrays, obj_as_binary): uvs as they are,
# v up, where glTF's run down.
BINARY_FORMATS = {
    "f64x3": ("<f8", 3, None), "f64x2": ("<f8", 2, None),
    "f32x4": ("<f4", 4, None), "f32x3": ("<f4", 3, None), "f32x2": ("<f4", 2, None), "u8x2n": ("u1", 2, 255.0), "u16x2n": ("<u2", 2, 65535.0),
    "u8": ("u1", 1, None), "u16": ("<u2", 1, None), "u32": ("<u4", 1, None),
    # a skin's joints and weights (glTF's JOINTS_0, WEIGHTS_0)
    "u8x4": ("u1", 4, None), "u16x4": ("<u2", 4, None), "u8x4n": ("u1", 4, 255.0), "u16x4n": ("<u2", 4, 65535.0),
}


def load_binary(name: str, data: bytes, layout: dict) -> TriangleMesh:
    """A mesh from accessors into a binary file: `layout` maps positions, and optionally
    normals, uvs and uvs1 (stored as glTF's, v running down; returned as the farm's, v up),
    tangents and indices, to {offset, count, format, stride}. Every range and index is
    checked against the bytes, which come from outside."""
    positions = _accessor(name, data, "positions", layout["positions"])
    vertex_count = len(positions)
    if "indices" in layout:
        count = layout["indices"]["count"]
        if count % 3 or count // 3 > defaults.MAX_TRIANGLES:
            raise SceneError(f"{name}: {count} indices do not make at most {defaults.MAX_TRIANGLES} triangles")
        faces = _accessor(name, data, "indices", layout["indices"]).astype(np.int64).reshape(-1, 3)
        if len(faces) and faces.max() >= vertex_count:
            raise SceneError(f"{name}: an index refers to vertex {faces.max()} of {vertex_count}")
    else:
        if vertex_count % 3 or vertex_count // 3 > defaults.MAX_TRIANGLES:
            raise SceneError(f"{name}: {vertex_count} vertices do not make at most {defaults.MAX_TRIANGLES} triangles")
        faces = np.arange(vertex_count, dtype=np.int64).reshape(-1, 3)
    extra = {}
    for key in ("normals", "uvs", "uvs1", "tangents"):
        if key in layout:
            extra[key] = _accessor(name, data, key, layout[key])
            if len(extra[key]) != vertex_count:
                raise SceneError(f"{name}: {len(extra[key])} {key} for {vertex_count} vertices")
    for key in ("uvs", "uvs1"):
        if key in extra and not layout[key]["format"].startswith("f64"):
            extra[key][:, 1] = 1.0 - extra[key][:, 1]
    skin = {key: _accessor(name, data, key, layout[key]) for key in ("joints", "weights") if key in layout}
    mesh = TriangleMesh(positions, faces, extra.get("normals"), extra.get("uvs"), extra.get("uvs1"), extra.get("tangents"),
                        skin.get("joints"), skin.get("weights"))
    for values in (mesh.vertices, mesh.normals, mesh.uvs, mesh.uvs1, mesh.tangents):
        if values is not None and not np.isfinite(values).all():
            raise SceneError(f"{name}: vertex data must be finite")
    return mesh


def check_binary(name: str, data: bytes, layout: dict) -> int:
    """What load_binary checks (every range inside the file, every index a vertex, finite
    positions), read in place without decoding the mesh: the client's check of a big glTF
    before it is sent. Returns the triangle count."""
    positions = _accessor(name, data, "positions", layout["positions"], view=True)
    if not np.isfinite(positions).all():
        raise SceneError(f"{name}: vertex data must be finite")
    if "indices" not in layout:
        if len(positions) % 3 or len(positions) // 3 > defaults.MAX_TRIANGLES:
            raise SceneError(f"{name}: {len(positions)} vertices do not make at most {defaults.MAX_TRIANGLES} triangles")
        return len(positions) // 3
    count = layout["indices"]["count"]
    if count % 3 or count // 3 > defaults.MAX_TRIANGLES:
        raise SceneError(f"{name}: {count} indices do not make at most {defaults.MAX_TRIANGLES} triangles")
    indices = _accessor(name, data, "indices", layout["indices"], view=True)
    if len(indices) and int(indices.max()) >= len(positions):
        raise SceneError(f"{name}: an index refers to vertex {int(indices.max())} of {len(positions)}")
    for key in ("normals", "uvs", "uvs1", "tangents"):
        if key in layout and len(_accessor(name, data, key, layout[key], view=True)) != len(positions):
            raise SceneError(f"{name}: {layout[key]['count']} {key} for {len(positions)} vertices")
    return count // 3


def _accessor(name: str, data: bytes, key: str, entry: dict, view: bool = False) -> np.ndarray:
    """The values of one accessor, checked to lie in the file: as float64 (or integers),
    or with `view` as they lie in the bytes, unconverted and uncopied."""
    dtype, components, scale = BINARY_FORMATS[entry["format"]]
    element = np.dtype(dtype).itemsize * components
    offset, count, stride = entry["offset"], entry["count"], entry.get("stride", element)
    if count == 0:
        return np.zeros((0, components) if components > 1 else 0)
    if stride < element or offset < 0 or offset + stride * (count - 1) + element > len(data):
        raise SceneError(f"{name}: {key} ({count} x {stride} bytes at {offset}) lie outside the file's {len(data)} bytes")
    shape, strides = ((count, components), (stride, np.dtype(dtype).itemsize)) if components > 1 else ((count,), (stride,))
    values = np.ndarray(shape, dtype, buffer=data, offset=offset, strides=strides)
    if view:
        return values
    if scale is not None:
        return values.astype(np.float64) / scale
    return values.astype(np.float64) if dtype == "<f4" else values.copy()
