"""A glTF file as the conversion reads it: its JSON, and where its bytes lie.

A .glb is split into its JSON and BIN chunks; a .gltf is JSON throughout. Nothing is
decoded here: a buffer is a file (the .glb itself, a .bin beside it, or the glTF holding
it as a base64 data: URI) and an offset in it, and an accessor a layout that
`farm.scene.mesh.load_binary` reads there on a worker.
"""

from __future__ import annotations

import json
import posixpath
import struct
from urllib.parse import unquote

from farm.exceptions import SceneError

GLB_MAGIC = b"glTF"
CHUNK_JSON, CHUNK_BIN = 0x4E4F534A, 0x004E4942

# accessor componentType -> (numpy dtype, size in bytes)
COMPONENTS = {5120: ("i1", 1), 5121: ("u1", 1), 5122: ("<i2", 2), 5123: ("<u2", 2), 5125: ("<u4", 4), 5126: ("<f4", 4)}
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
# The layouts `load_binary` reads: format name -> (accessor componentType, components, normalized)
FORMATS = {
    "f32x3": (5126, 3, False), "f32x2": (5126, 2, False), "u8x2n": (5121, 2, True), "u16x2n": (5123, 2, True),
    "u8": (5121, 1, False), "u16": (5123, 1, False), "u32": (5125, 1, False),
    "f32x4": (5126, 4, False), "u8x4": (5121, 4, False), "u16x4": (5123, 4, False), "u8x4n": (5121, 4, True),
    "u16x4n": (5123, 4, True),
}


def split_glb(name: str, data: bytes) -> tuple[dict, int, int]:
    """The JSON of a .glb and where its BIN chunk lies in the file (offset, length)."""
    if len(data) < 20:
        raise SceneError(f"{name}: too short for a .glb file")
    magic, version, length = struct.unpack_from("<4sII", data)
    if magic != GLB_MAGIC:
        raise SceneError(f"{name}: not a .glb file (no glTF magic)")
    if version != 2:
        raise SceneError(f"{name}: glTF version {version}; this farm reads glTF 2.0")
    if length > len(data):
        raise SceneError(f"{name}: truncated ({len(data)} of {length} bytes)")
    position, document, bin_chunk = 12, None, (0, 0)
    while position + 8 <= length:
        chunk_length, chunk_type = struct.unpack_from("<II", data, position)
        start = position + 8
        if start + chunk_length > length:
            raise SceneError(f"{name}: a chunk runs past the end of the file")
        if chunk_type == CHUNK_JSON and document is None:
            document = _json(name, data[start:start + chunk_length])
        elif chunk_type == CHUNK_BIN and bin_chunk == (0, 0):
            bin_chunk = (start, chunk_length)
        position = start + ((chunk_length + 3) & ~3)
    if document is None:
        raise SceneError(f"{name}: no JSON chunk")
    return document, *bin_chunk


def _json(name: str, text: bytes) -> dict:
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneError(f"{name}: invalid glTF JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SceneError(f"{name}: the glTF JSON is not an object")
    return document


class GltfFile:
    """The glTF file `name` (its bytes `data`, relative to the scene's folder): its JSON as
    `document`, and where its buffers, accessors and data: URIs lie. `file_size(name)`
    gives the size of another file of the scene (a buffer), checking that it exists."""

    def __init__(self, name: str, data: bytes, file_size):
        self.name = name
        self.data = data
        self.file_size = file_size
        if name.lower().endswith(".glb"):
            self.document, self.bin_offset, self.bin_length = split_glb(name, data)
        else:
            self.document, self.bin_offset, self.bin_length = _json(name, data), 0, 0

    def accessor(self, index: int, formats: tuple[str, ...]) -> tuple[tuple, dict]:
        """((file, where its base64 text lies or None), the `binary` entry of `load_binary`)
        for accessor `index`, which must be in one of `formats`."""
        accessor = self.document["accessors"][index]
        if "sparse" in accessor:
            raise SceneError(f"{self.name}: accessor {index} is sparse; not supported")
        component, width = int(accessor["componentType"]), WIDTHS[accessor["type"]]
        normalized = bool(accessor.get("normalized", False))
        fmt = next((f for f in formats if FORMATS[f] == (component, width, normalized)), None)
        if fmt is None:
            raise SceneError(f"{self.name}: accessor {index} ({accessor['type']} of type {component}) is not one "
                             f"this farm reads here ({', '.join(formats)})")
        view = self.document["bufferViews"][int(accessor["bufferView"])]
        file, base, encoded = self.buffer(int(view["buffer"]))
        element = COMPONENTS[component][1] * width
        stride = int(view.get("byteStride", element))
        entry = {
            "offset": base + int(view.get("byteOffset", 0)) + int(accessor.get("byteOffset", 0)),
            "count": int(accessor["count"]), "format": fmt, "stride": stride,
        }
        return (file, encoded), entry

    def buffer(self, index: int) -> tuple[str, int, tuple[int, int] | None]:
        """(file holding buffer `index`, its offset there, where its base64 text lies in the
        file if it is a data: URI), checking the buffer is all there."""
        buffer = self.document["buffers"][index]
        uri = buffer.get("uri")
        if uri is None:
            if not self.bin_length:
                raise SceneError(f"{self.name}: buffer {index} has no uri and the file no BIN chunk")
            if int(buffer["byteLength"]) > self.bin_length:
                raise SceneError(f"{self.name}: buffer {index} is longer than the BIN chunk")
            return self.name, self.bin_offset, None
        if uri.startswith("data:"):
            encoded = self.data_uri(uri, f"buffer {index}")
            if _decoded_length(uri) < int(buffer["byteLength"]):
                raise SceneError(f"{self.name}: the data: URI of buffer {index} is shorter than its "
                                 f"{buffer['byteLength']} bytes")
            return self.name, 0, encoded
        file = self.resolve(uri, f"buffer {index}")
        if self.file_size(file) < int(buffer["byteLength"]):
            raise SceneError(f"{file}: shorter than glTF buffer {index} ({buffer['byteLength']} bytes)")
        return file, 0, None

    def data_uri(self, uri: str, what: str) -> tuple[int, int]:
        """Where the base64 text of an embedded (data:) URI lies in the glTF file. Workers
        decode it from there, so the file travels once and nothing is written beside it."""
        header, _, payload = uri.partition(",")
        if not header.endswith(";base64"):
            raise SceneError(f"{self.name}: {what} is a data: URI that is not base64 ({header[:40]}...)")
        start = self.data.find(f'"{header},{payload}"'.encode("ascii", "replace"))
        if start < 0:  # written with JSON escapes (\/): read as text only, not found as bytes
            raise SceneError(f"{self.name}: {what}: its data: URI is written with JSON escapes; "
                             f"re-export the file or save it as .glb")
        return start + len(header) + 2, len(payload)

    def resolve(self, uri: str, what: str) -> str:
        """A URI of the glTF as a file name relative to the scene's folder."""
        path = unquote(uri)
        if "://" in path or path.startswith(("/", "\\")):
            raise SceneError(f"{self.name}: {what} {uri!r}: only relative file names are allowed")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(self.name), path))
        if joined.startswith("../") or joined == "..":
            raise SceneError(f"{self.name}: {what} {uri!r} leads outside the scene's folder")
        return joined


def _decoded_length(uri: str) -> int:
    """How many bytes the base64 payload of a data: URI decodes to."""
    payload = uri.partition(",")[2].rstrip("=")
    return len(payload) * 3 // 4
