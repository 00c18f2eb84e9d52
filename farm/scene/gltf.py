"""glTF 2.0 (.gltf with its buffers and images, or .glb) turned into the farm's scene format.

The client converts; workers never parse glTF. Materials, textures, cameras and lights
become ordinary scene-document entries; geometry stays in the glTF's binary buffer, each
primitive a mesh shape whose `binary` layout says where its accessors lie in that file
(`farm.scene.mesh.load_binary` reads it), and images stored in the buffer become image
textures with a byte `range`. So the document stays small, the .glb or .bin travels once
through Redis by content hash, and a worker reads it with the same checks as any file.

What is converted: the default scene's node tree (matrices or TRS), triangle primitives
(positions, normals, TEXCOORD_0, indices), metallic-roughness materials with their
textures and factors as the `principled` material (metal and dielectric blended per texel,
as glTF's BRDF), KHR_materials_transmission as glass and KHR_materials_ior, emission
(KHR_materials_emissive_strength), perspective cameras, KHR_lights_punctual lights, and
buffers and images embedded as data: URIs (workers decode them from the file itself).
What is not is named in a warning: normal maps, alpha, skins and morph targets (rest pose),
other primitive modes, orthographic cameras, texture transforms, uv sets other than the
first, every other extension; occlusion maps are ignored (a path tracer traces occlusion).
"""

from __future__ import annotations

import json
import math
import posixpath
import struct
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np

from farm import defaults
from farm.exceptions import SceneError

GLB_MAGIC = b"glTF"
CHUNK_JSON, CHUNK_BIN = 0x4E4F534A, 0x004E4942

# Photometric glTF lights to the farm's radiometric units: lumens per watt at 555 nm.
LUMENS_PER_WATT = 683.0

# accessor componentType -> (numpy dtype, size in bytes)
COMPONENTS = {5120: ("i1", 1), 5121: ("u1", 1), 5122: ("<i2", 2), 5123: ("<u2", 2), 5125: ("<u4", 4), 5126: ("<f4", 4)}
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
# The layouts `load_binary` reads: format name -> (accessor componentType, components, normalized)
FORMATS = {
    "f32x3": (5126, 3, False), "f32x2": (5126, 2, False), "u8x2n": (5121, 2, True), "u16x2n": (5123, 2, True),
    "u8": (5121, 1, False), "u16": (5123, 1, False), "u32": (5125, 1, False),
}
WRAPS = {10497: "repeat", 33648: "mirror", 33071: "clamp"}
NEAREST = (9728, 9984, 9986)
MAX_NODE_DEPTH = 256
# The extensions the conversion renders; any other a file uses is named in one warning.
RENDERED_EXTENSIONS = frozenset({
    "KHR_lights_punctual", "KHR_materials_emissive_strength", "KHR_materials_transmission", "KHR_materials_ior",
    "KHR_texture_transform",
})


@dataclass
class Converted:
    """Scene-document entries made from one glTF file."""

    materials: dict = field(default_factory=dict)
    textures: dict = field(default_factory=dict)
    shapes: list = field(default_factory=list)
    lights: list = field(default_factory=list)
    camera: dict | None = None
    aspect: float | None = None  # the camera's aspect ratio, if it gives one
    lower: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    upper: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))
    triangles: int = 0
    warnings: list[str] = field(default_factory=list)


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


def convert(name: str, data: bytes, file_size, transform: np.ndarray, prefix: str) -> Converted:
    """Convert the glTF file `name` (its bytes `data`, relative to the scene's folder).
    `file_size(name)` gives the size of another file of the scene (a buffer), checking that
    it exists; `transform` places the whole glTF; names get `prefix`."""
    try:
        return _Converter(name, data, file_size, prefix).run(transform)
    except SceneError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise SceneError(f"{name}: malformed glTF ({type(exc).__name__}: {exc})") from None


class _Converter:
    def __init__(self, name: str, data: bytes, file_size, prefix: str):
        self.name = name
        self.prefix = prefix
        self.file_size = file_size
        if name.lower().endswith(".glb"):
            self.gltf, self.bin_offset, self.bin_length = split_glb(name, data)
        else:
            self.gltf, self.bin_offset, self.bin_length = _json(name, data), 0, 0
        version = str(self.gltf.get("asset", {}).get("version", ""))
        if not version.startswith("2."):
            raise SceneError(f"{name}: glTF version {version or 'unknown'}; this farm reads glTF 2.0")
        required = set(self.gltf.get("extensionsRequired", [])) - RENDERED_EXTENSIONS
        if required:
            raise SceneError(f"{name}: needs unsupported glTF extensions: {', '.join(sorted(required))}")
        self.data = data
        self.out = Converted()
        self.material_names: dict[int, str] = {}
        self.texture_names: dict[tuple, str] = {}
        self.mesh_triangles: dict[int, int] = {}

    def run(self, transform: np.ndarray) -> Converted:
        scenes = self.gltf.get("scenes", [])
        nodes = self.gltf.get("nodes", [])
        if scenes:
            roots = scenes[int(self.gltf.get("scene", 0))].get("nodes", [])
        else:  # no scene: every node that is nobody's child
            children = {c for node in nodes for c in node.get("children", [])}
            roots = [i for i in range(len(nodes)) if i not in children]
        stack = [(int(i), transform, 0) for i in reversed(roots)]
        visited = set()
        while stack:
            index, parent, depth = stack.pop()
            if index in visited or depth > MAX_NODE_DEPTH:
                raise SceneError(f"{self.name}: node {index} is reached twice (the node tree has a cycle)")
            visited.add(index)
            node = nodes[index]
            world = parent @ _local_matrix(node)
            if not np.isfinite(world).all():
                raise SceneError(f"{self.name}: node {index} has a non-finite transform")
            if "mesh" in node:
                self._mesh(int(node["mesh"]), world, index)
            if "camera" in node and self.out.camera is None:
                self._camera(int(node["camera"]), world)
            light = node.get("extensions", {}).get("KHR_lights_punctual", {}).get("light")
            if light is not None:
                self._light(int(light), world)
            for skipped in ("skin", "weights"):
                if skipped in node:
                    self._warn(f"node {index}: skins and morph targets are not supported; shown in its rest pose")
            stack.extend((int(c), world, depth + 1) for c in reversed(node.get("children", [])))
        ignored = (set(self.gltf.get("extensionsUsed", [])) | _extensions_in(self.gltf)) - RENDERED_EXTENSIONS
        if ignored:
            self._warn(f"extensions not rendered (ignored): {', '.join(sorted(ignored))}")
        return self.out

    def _warn(self, message: str) -> None:
        text = f"{self.name}: {message}"
        if text not in self.out.warnings:
            self.out.warnings.append(text)

    # -- geometry ------------------------------------------------------------------------

    def _mesh(self, index: int, world: np.ndarray, node: int) -> None:
        mesh = self.gltf["meshes"][index]
        det = np.linalg.det(world[:3, :3])
        if abs(det) < 1e-12:
            self._warn(f"node {node}: a zero scale hides its mesh; skipped")
            return
        for number, primitive in enumerate(mesh["primitives"]):
            mode = primitive.get("mode", 4)
            if mode != 4:
                self._warn(f"mesh {index} primitive {number}: mode {mode} is not triangles; skipped")
                continue
            attributes = primitive["attributes"]
            if "POSITION" not in attributes:
                continue
            if primitive.get("targets"):
                self._warn(f"mesh {index}: morph targets are not supported; shown in its rest pose")
            layout, (file, encoded), count = self._layout(primitive)
            if count == 0:
                continue
            self.out.triangles += count
            if self.out.triangles > defaults.MAX_TRIANGLES:
                raise SceneError(f"{self.name}: more than {defaults.MAX_TRIANGLES} triangles after instancing "
                                 f"(FARM_MAX_TRIANGLES)")
            self._bounds(attributes["POSITION"], world)
            shape = {
                "type": "mesh", "material": self._material(primitive.get("material")), "file": file, "binary": layout,
                "transform": {"matrix": [[float(v) for v in row] for row in world]},
            }
            if encoded:
                shape["base64"] = list(encoded)
            self.out.shapes.append(shape)

    def _layout(self, primitive: dict) -> tuple[dict, str, int]:
        """Where the primitive's accessors lie: one file, and the triangle count."""
        attributes = primitive["attributes"]
        entries, files = {}, set()
        wanted = [("positions", attributes["POSITION"], ("f32x3",))]
        if "NORMAL" in attributes:
            wanted.append(("normals", attributes["NORMAL"], ("f32x3",)))
        for key, attribute in (("uvs", "TEXCOORD_0"), ("uvs1", "TEXCOORD_1")):
            if attribute in attributes:
                wanted.append((key, attributes[attribute], ("f32x2", "u8x2n", "u16x2n")))
        if "TANGENT" in attributes:
            wanted.append(("tangents", attributes["TANGENT"], ("f32x4",)))
        if "indices" in primitive:
            wanted.append(("indices", primitive["indices"], ("u8", "u16", "u32")))
        for key, accessor_index, formats in wanted:
            file, entry = self._accessor(int(accessor_index), formats)
            files.add(file)
            entries[key] = entry
        if len(files) > 1:
            raise SceneError(f"{self.name}: a primitive's accessors lie in several buffers")
        count = entries["indices"]["count"] if "indices" in entries else entries["positions"]["count"]
        return entries, files.pop(), count // 3

    def _accessor(self, index: int, formats: tuple[str, ...]) -> tuple[str, dict]:
        accessor = self.gltf["accessors"][index]
        if "sparse" in accessor:
            raise SceneError(f"{self.name}: accessor {index} is sparse; not supported")
        component, width = int(accessor["componentType"]), WIDTHS[accessor["type"]]
        normalized = bool(accessor.get("normalized", False))
        fmt = next((f for f in formats if FORMATS[f] == (component, width, normalized)), None)
        if fmt is None:
            raise SceneError(f"{self.name}: accessor {index} ({accessor['type']} of type {component}) is not one "
                             f"this farm reads here ({', '.join(formats)})")
        view = self.gltf["bufferViews"][int(accessor["bufferView"])]
        file, base, encoded = self._buffer(int(view["buffer"]))
        element = COMPONENTS[component][1] * width
        stride = int(view.get("byteStride", element))
        entry = {
            "offset": base + int(view.get("byteOffset", 0)) + int(accessor.get("byteOffset", 0)),
            "count": int(accessor["count"]), "format": fmt, "stride": stride,
        }
        return (file, encoded), entry

    def _buffer(self, index: int) -> tuple[str, int, tuple[int, int] | None]:
        """(file holding buffer `index`, its offset there, where its base64 text lies in the
        file if it is a data: URI), checking the buffer is all there."""
        buffer = self.gltf["buffers"][index]
        uri = buffer.get("uri")
        if uri is None:
            if not self.bin_length:
                raise SceneError(f"{self.name}: buffer {index} has no uri and the file no BIN chunk")
            if int(buffer["byteLength"]) > self.bin_length:
                raise SceneError(f"{self.name}: buffer {index} is longer than the BIN chunk")
            return self.name, self.bin_offset, None
        if uri.startswith("data:"):
            encoded = self._data_uri(uri, f"buffer {index}")
            if _decoded_length(uri) < int(buffer["byteLength"]):
                raise SceneError(f"{self.name}: the data: URI of buffer {index} is shorter than its "
                                 f"{buffer['byteLength']} bytes")
            return self.name, 0, encoded
        file = self.resolve(uri, f"buffer {index}")
        if self.file_size(file) < int(buffer["byteLength"]):
            raise SceneError(f"{file}: shorter than glTF buffer {index} ({buffer['byteLength']} bytes)")
        return file, 0, None

    def _data_uri(self, uri: str, what: str) -> tuple[int, int]:
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

    def _bounds(self, accessor_index, world: np.ndarray) -> None:
        accessor = self.gltf["accessors"][int(accessor_index)]
        if "min" not in accessor or "max" not in accessor:
            return
        low, high = np.array(accessor["min"][:3], float), np.array(accessor["max"][:3], float)
        corners = np.array([[(low, high)[(i >> k) & 1][k] for k in range(3)] for i in range(8)])
        placed = corners @ world[:3, :3].T + world[:3, 3]
        self.out.lower = np.minimum(self.out.lower, placed.min(axis=0))
        self.out.upper = np.maximum(self.out.upper, placed.max(axis=0))

    # -- materials -----------------------------------------------------------------------

    def _material(self, index) -> str:
        if index is None:
            name = f"{self.prefix}default"  # glTF's default material: white, metallic 1, roughness 1
            self.out.materials.setdefault(name, {"type": "principled", "base_color": 1.0, "metallic": 1.0,
                                                 "roughness": 1.0})
            return name
        index = int(index)
        if index in self.material_names:
            return self.material_names[index]
        material = self.gltf["materials"][index]
        name = f"{self.prefix}{material.get('name') or index}"
        if name in self.out.materials:
            name = f"{name}#{index}"
        self.material_names[index] = name
        pbr = material.get("pbrMetallicRoughness", {})
        extensions = material.get("extensions", {})
        base = self._param(pbr.get("baseColorTexture"), pbr.get("baseColorFactor", [1, 1, 1, 1])[:3], colour=True)
        roughness_factor = float(pbr.get("roughnessFactor", 1.0))
        roughness = self._param(pbr.get("metallicRoughnessTexture"), roughness_factor, colour=False, channel="g")
        metallic = self._param(pbr.get("metallicRoughnessTexture"), float(pbr.get("metallicFactor", 1.0)),
                               colour=False, channel="b")
        transmission = float(extensions.get("KHR_materials_transmission", {}).get("transmissionFactor", 0.0))
        # KHR_materials_ior allows 1 (no reflection, no bending) and, as a glTF default, 0 for 1.5
        ior = float(extensions.get("KHR_materials_ior", {}).get("ior", 1.5)) or 1.5
        if transmission >= 0.5:
            entry = {"type": "dielectric", "ior": ior, "roughness": roughness, "transmittance": base}
        else:  # glTF's own BRDF, metal and dielectric blended per texel
            entry = {"type": "principled", "base_color": base, "metallic": metallic, "roughness": roughness, "ior": ior}
        strength = float(extensions.get("KHR_materials_emissive_strength", {}).get("emissiveStrength", 1.0))
        emissive = [float(c) * strength for c in material.get("emissiveFactor", [0, 0, 0])]
        if any(c > 0 for c in emissive):
            entry["emission"] = self._param(material.get("emissiveTexture"), emissive, colour=True, high=None)
        if "occlusionTexture" in material:  # baked shadowing for rasterisers; the paths find it
            self._warn(f"material {name}: occlusionTexture ignored (a path tracer traces the occlusion it bakes)")
        if "normalTexture" in material:
            info = material["normalTexture"]
            entry["normal_map"] = self._param(info, float(info.get("scale", 1.0)), colour=False, high=None, linear=True)
        mode = material.get("alphaMode", "OPAQUE")
        if mode in ("MASK", "BLEND"):
            alpha = float(pbr.get("baseColorFactor", [1, 1, 1, 1])[3])
            entry["alpha"] = self._param(pbr.get("baseColorTexture"), alpha, colour=False, channel="a")
            entry["alpha_cutoff"] = float(material.get("alphaCutoff", 0.5)) if mode == "MASK" else 0.5
            if mode == "BLEND":
                self._warn(f"material {name}: alpha BLEND is rendered as a cut-out at alpha 0.5 (MASK)")
        self.out.materials[name] = entry
        return name

    def _param(self, info, factor, colour: bool, channel: str | None = None, high: float | None = 1.0,
               linear: bool = False):
        """A material parameter: the factor, or {"texture", "factor"} when a texture is given
        (`linear`: its values are data even where the parameter is a colour's)."""
        if colour:
            value = [min(float(c), high) if high else float(c) for c in factor]
        else:
            value = min(float(factor), high) if high else float(factor)
        if info is None:
            return value
        reference = {"texture": self._texture(int(info["index"]), info, linear), "factor": value}
        if channel:
            reference["channel"] = channel
        return reference

    def _texture(self, index: int, info: dict, linear: bool) -> str:
        """The farm texture for glTF texture `index` as `info` (a textureInfo) places it: its
        uv set, and KHR_texture_transform's offset, rotation and scale (which may name
        another uv set) made into the farm's placement."""
        uv_set = int(info.get("texCoord", 0))
        transform = info.get("extensions", {}).get("KHR_texture_transform")
        if transform is not None:
            uv_set = int(transform.get("texCoord", uv_set))
        if uv_set not in (0, 1):
            self._warn(f"texture {index}: uv set {uv_set} is not read; using the first")
            uv_set = 0
        placement = _placement(transform or {})
        key = (index, uv_set, placement, linear)
        if key in self.texture_names:
            return self.texture_names[key]
        texture = self.gltf["textures"][index]
        name = f"{self.prefix}texture{index}"
        if any(known[0] == index for known in self.texture_names):
            name += f"#{len(self.texture_names)}"
        image = self.gltf["images"][int(texture["source"])]
        entry: dict = {"type": "image"}
        if "uri" in image and image["uri"].startswith("data:"):
            entry["file"], entry["base64"] = self.name, list(self._data_uri(image["uri"], f"image {texture['source']}"))
        elif "uri" in image:
            entry["file"] = self.resolve(image["uri"], f"image {texture['source']}")
        else:
            view = self.gltf["bufferViews"][int(image["bufferView"])]
            file, base, encoded = self._buffer(int(view["buffer"]))
            entry["file"] = file
            if encoded:
                entry["base64"] = list(encoded)
            entry["range"] = [base + int(view.get("byteOffset", 0)), int(view["byteLength"])]
        if "sampler" in texture:
            sampler = self.gltf["samplers"][int(texture["sampler"])]
            entry["wrap"] = WRAPS.get(int(sampler.get("wrapS", 10497)), "repeat")
            if int(sampler.get("magFilter", 9729)) in NEAREST:
                entry["filter"] = "nearest"
        scale, rotation, offset = placement
        if scale != (1.0, 1.0) or rotation or offset != (0.0, 0.0):
            entry["scale"], entry["rotation"], entry["offset"] = list(scale), rotation, list(offset)
        if uv_set:
            entry["uv_set"] = uv_set
        if linear:
            entry["colorspace"] = "linear"
        self.out.textures[name] = entry
        self.texture_names[key] = name
        return name

    # -- camera and lights ---------------------------------------------------------------

    def _camera(self, index: int, world: np.ndarray) -> None:
        camera = self.gltf["cameras"][index]
        if camera.get("type") != "perspective":
            self._warn(f"camera {index}: only perspective cameras are supported; ignored")
            return
        perspective = camera["perspective"]
        position = world[:3, 3]
        forward = world[:3, :3] @ np.array([0.0, 0.0, -1.0])
        up = world[:3, :3] @ np.array([0.0, 1.0, 0.0])
        forward /= np.linalg.norm(forward)
        self.out.camera = {
            "position": position.tolist(), "look_at": (position + forward).tolist(), "up": up.tolist(),
            "fov": math.degrees(float(perspective["yfov"])), "fov_axis": "y",
        }
        if "aspectRatio" in perspective and float(perspective["aspectRatio"]) > 0:
            self.out.aspect = float(perspective["aspectRatio"])

    def _light(self, index: int, world: np.ndarray) -> None:
        light = self.gltf["extensions"]["KHR_lights_punctual"]["lights"][index]
        colour = np.array(light.get("color", [1.0, 1.0, 1.0]), float)
        power = (colour * float(light.get("intensity", 1.0)) / LUMENS_PER_WATT).tolist()
        position = world[:3, 3].tolist()
        direction = (world[:3, :3] @ np.array([0.0, 0.0, -1.0])).tolist()
        kind = light["type"]
        if kind == "point":
            self.out.lights.append({"type": "point", "position": position, "intensity": power})
        elif kind == "spot":
            spot = light.get("spot", {})
            outer = math.degrees(float(spot.get("outerConeAngle", math.pi / 4)))
            inner = min(math.degrees(float(spot.get("innerConeAngle", 0.0))), outer)
            self.out.lights.append({"type": "spot", "position": position, "direction": direction,
                                    "intensity": power, "cutoff_angle": outer, "beam_width": inner})
        elif kind == "directional":
            self.out.lights.append({"type": "sun", "direction": direction, "irradiance": power})
        else:
            self._warn(f"light {index}: unknown type {kind!r}; ignored")
        if "range" in light:
            self._warn(f"light {index}: range is ignored (light falls off physically)")


def _placement(transform: dict) -> tuple[tuple[float, float], float, tuple[float, float]]:
    """KHR_texture_transform as the farm's texture placement (scale, rotation in degrees
    counter-clockwise, offset). glTF transforms its own uvs (v running down): st_g = o +
    R S uv_g with R = [[cos, sin], [-sin, cos]], the matrix the implementations and the
    sample model agree on (KhronosGroup/glTF#1563: the extension's listing has it
    transposed). The farm's uvs are flipped, uv_g = F uv = (u, 1 - v), and so is its
    lookup, st = F st_g: st = F(o + R S F uv) = R' S uv + (ou + sin sv, 1 - ov - cos sv),
    R' the counter-clockwise rotation by the same angle."""
    su, sv = (float(v) for v in transform.get("scale", [1.0, 1.0]))
    ou, ov = (float(v) for v in transform.get("offset", [0.0, 0.0]))
    angle = float(transform.get("rotation", 0.0))
    offset = (ou + math.sin(angle) * sv, 1.0 - ov - math.cos(angle) * sv)
    return (su, sv), math.degrees(angle), (round(offset[0], 12), round(offset[1], 12))


def _extensions_in(value, depth: int = 0) -> set[str]:
    """The names of every extension object anywhere in a glTF document."""
    found: set[str] = set()
    if depth > MAX_NODE_DEPTH:
        return found
    if isinstance(value, dict) and isinstance(value.get("extensions"), dict):
        found.update(str(name) for name in value["extensions"])
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, (dict, list)):
            found |= _extensions_in(item, depth + 1)
    return found


def _decoded_length(uri: str) -> int:
    """How many bytes the base64 payload of a data: URI decodes to."""
    payload = uri.partition(",")[2].rstrip("=")
    return len(payload) * 3 // 4


def _local_matrix(node: dict) -> np.ndarray:
    """A node's local transform: its column-major matrix, or translation x rotation x scale."""
    if "matrix" in node:
        values = [float(v) for v in node["matrix"]]
        if len(values) != 16:
            raise SceneError("a node matrix needs 16 numbers")
        return np.array(values).reshape(4, 4).T
    x, y, z, w = (float(v) for v in node.get("rotation", [0, 0, 0, 1]))
    norm = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.array([float(s) for s in node.get("scale", [1, 1, 1])])[None, :]
    matrix[:3, 3] = [float(t) for t in node.get("translation", [0, 0, 0])]
    return matrix
