"""Files the tests use: where the repository's scenes are, and small glTF files built for a
test (a textured quad floor, a metal tetrahedron)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CORNELL = ROOT / "scenes" / "cornell-box.json"

# A unit quad in the xz plane (2 triangles, indexed) and a tetrahedron (not indexed).
QUAD_POSITIONS = np.array([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]], np.float32)
QUAD_UVS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
QUAD_NORMALS = np.array([[0, 1, 0]] * 4, np.float32)
QUAD_INDICES = np.array([0, 2, 1, 0, 3, 2], np.uint16)
TETRA = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0], [0, 0.5, 0], [0, 0, 0.5],
                  [0, 0, 0], [0, 0, 0.5], [0.5, 0, 0], [0.5, 0, 0], [0, 0, 0.5], [0, 0.5, 0]], np.float32)


def png_bytes() -> bytes:
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:2, :, 0] = 200  # top half red, bottom half green (tells a flipped v apart)
    pixels[2:, :, 1] = 200
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def build_gltf(embed_image: bool = True) -> tuple[dict, bytes]:
    """A small glTF document and its binary buffer: a textured quad floor, a metal
    tetrahedron instanced twice under a rotated, scaled parent, a camera and lights."""
    chunks, views, accessors = [], [], []

    def add(array: np.ndarray, kind: str, component: int, target=None, bounds=False):
        offset = sum(len(c) for c in chunks)
        data = array.tobytes()
        chunks.append(data + b"\0" * (-len(data) % 4))
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data)})
        accessor = {"bufferView": len(views) - 1, "componentType": component, "count": len(array), "type": kind}
        if bounds:
            accessor["min"], accessor["max"] = array.min(axis=0).tolist(), array.max(axis=0).tolist()
        accessors.append(accessor)
        return len(accessors) - 1

    quad = {"POSITION": add(QUAD_POSITIONS, "VEC3", 5126, bounds=True), "NORMAL": add(QUAD_NORMALS, "VEC3", 5126),
            "TEXCOORD_0": add(QUAD_UVS, "VEC2", 5126)}
    indices = add(QUAD_INDICES, "SCALAR", 5123)
    tetra = {"POSITION": add(TETRA, "VEC3", 5126, bounds=True)}
    images = [{"uri": "checker.png"}]
    if embed_image:
        image = png_bytes()
        offset = sum(len(c) for c in chunks)
        chunks.append(image + b"\0" * (-len(image) % 4))
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(image)})
        images = [{"bufferView": len(views) - 1, "mimeType": "image/png"}]
    binary = b"".join(chunks)
    document = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1, 3, 4, 5]}],
        "nodes": [
            {"mesh": 0, "name": "floor"},
            {"translation": [0, 0.5, 0], "rotation": [0, 0.3826834, 0, 0.9238795], "scale": [2, 2, 2], "children": [2, 6]},
            {"mesh": 1, "translation": [0.3, 0, 0]},
            {"camera": 0, "translation": [0, 2, 6], "rotation": [-0.0998, 0, 0, 0.995]},
            {"extensions": {"KHR_lights_punctual": {"light": 0}}, "translation": [0, 3, 0]},
            {"extensions": {"KHR_lights_punctual": {"light": 1}}, "rotation": [-0.3826834, 0, 0, 0.9238795]},
            {"mesh": 1, "matrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, -0.6, 0, 0, 1]},
        ],
        "meshes": [
            {"primitives": [{"attributes": quad, "indices": indices, "material": 0}]},
            {"primitives": [{"attributes": tetra, "material": 1}]},
        ],
        "materials": [
            {"name": "floor", "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "baseColorFactor": [0.5, 0.8, 1, 1],
                                                       "metallicFactor": 0.0, "roughnessFactor": 0.6}},
            {"name": "gold", "pbrMetallicRoughness": {"baseColorFactor": [1.0, 0.8, 0.3, 1], "metallicFactor": 1.0,
                                                      "roughnessFactor": 0.3},
             "emissiveFactor": [0.1, 0.1, 0.1], "extensions": {"KHR_materials_emissive_strength": {"emissiveStrength": 2}}},
        ],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9728, "wrapS": 33071}],
        "images": images,
        "cameras": [{"type": "perspective", "perspective": {"yfov": 0.7, "aspectRatio": 2.0, "znear": 0.1}}],
        "extensions": {"KHR_lights_punctual": {"lights": [
            {"type": "point", "color": [1, 0.9, 0.8], "intensity": 683 * 20},
            {"type": "directional", "intensity": 683 * 2},
        ]}},
        "extensionsUsed": ["KHR_lights_punctual", "KHR_materials_emissive_strength"],
        "buffers": [{"byteLength": len(binary)}],
        "accessors": accessors,
        "bufferViews": views,
    }
    return document, binary


def write_glb(path, document: dict, binary: bytes) -> None:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)
