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
(KHR_materials_emissive_strength), perspective cameras, KHR_lights_punctual lights,
buffers and images embedded as data: URIs (workers decode them from the file itself), and
node animations, skins and morph targets: the moving nodes and joints become the document's rig
(farm.scene.gltf_animation, farm.scene.rig), which each worker poses at a frame's moment
(farm.scene.skin deforms a skinned mesh there).
What is not is named in a warning: normal maps, alpha,
other primitive modes, orthographic cameras, texture transforms, uv sets other than the
first, every other extension; occlusion maps are ignored (a path tracer traces occlusion).

This module walks the node tree; farm.scene.gltf_file finds where the file's bytes lie,
farm.scene.gltf_materials converts its materials and textures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from farm import defaults
from farm.exceptions import SceneError
from farm.scene import rig
from farm.scene.gltf_file import GltfFile
from farm.scene.gltf_materials import GltfMaterials

# Photometric glTF lights to the farm's radiometric units: lumens per watt at 555 nm.
LUMENS_PER_WATT = 683.0

MAX_NODE_DEPTH = 256
# The extensions the conversion renders; any other a file uses is named in one warning.
RENDERED_EXTENSIONS = frozenset({
    "KHR_lights_punctual", "KHR_materials_emissive_strength", "KHR_materials_transmission", "KHR_materials_ior",
    "KHR_texture_transform", "KHR_animation_pointer",  # its node channels (farm.scene.gltf_animation)
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
    rig: list = field(default_factory=list)  # the animated nodes (farm.scene.rig), their shapes naming them
    lower: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    upper: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))
    triangles: int = 0
    warnings: list[str] = field(default_factory=list)
    emitters: int = 0  # lights it made shapes (a USD stage's area lights): they light the scene
    cameras: list = field(default_factory=list)  # the names of the cameras it has (--camera picks one)


def convert(name: str, data: bytes, file_size, transform: np.ndarray, prefix: str, read=None,
            animation: str | None = None, camera: str | None = None) -> Converted:
    """Convert the glTF file `name` (its bytes `data`, relative to the scene's folder).
    `file_size(name)` gives the size of another file of the scene (a buffer), checking that
    it exists, and `read(name)` its bytes (for animations' keys); `transform` places the
    whole glTF; names get `prefix`; `animation` picks one of its animations by name or index;
    `camera` its camera by the name of the camera or of its node (else the first)."""
    try:
        return _Converter(name, data, file_size, prefix).run(transform, read, animation, camera)
    except SceneError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise SceneError(f"{name}: malformed glTF ({type(exc).__name__}: {exc})") from None


class _Converter:
    def __init__(self, name: str, data: bytes, file_size, prefix: str):
        self.name = name
        self.file = GltfFile(name, data, file_size)
        self.gltf = self.file.document
        version = str(self.gltf.get("asset", {}).get("version", ""))
        if not version.startswith("2."):
            raise SceneError(f"{name}: glTF version {version or 'unknown'}; this farm reads glTF 2.0")
        required = set(self.gltf.get("extensionsRequired", [])) - RENDERED_EXTENSIONS
        if required:
            raise SceneError(f"{name}: needs unsupported glTF extensions: {', '.join(sorted(required))}")
        self.out = Converted()
        self.materials = GltfMaterials(self.file, prefix, self.out.materials, self.out.textures, self._warn)

    def run(self, transform: np.ndarray, read=None, animation: str | None = None,
            camera: str | None = None) -> Converted:
        from farm.scene.gltf_animation import GltfAnimation

        self.animation = GltfAnimation(self, read, animation)
        channels = self.animation.channels
        scenes = self.gltf.get("scenes", [])
        nodes = self.gltf.get("nodes", [])
        # the joints of every skin in use: in the rig, so that a skinned mesh follows them
        joints = {int(j) for node in nodes if "skin" in node for j in self.gltf["skins"][int(node["skin"])]["joints"]}
        self.rig_of: dict[int, int] = {}  # glTF node -> its index in the rig
        if scenes:
            roots = scenes[int(self.gltf.get("scene", 0))].get("nodes", [])
        else:  # no scene: every node that is nobody's child
            children = {c for node in nodes for c in node.get("children", [])}
            roots = [i for i in range(len(nodes)) if i not in children]
        stack = [(int(i), transform, 0, None) for i in reversed(roots)]
        visited = set()
        while stack:
            index, parent, depth, parent_rig = stack.pop()
            if index in visited or depth > MAX_NODE_DEPTH:
                raise SceneError(f"{self.name}: node {index} is reached twice (the node tree has a cycle)")
            visited.add(index)
            node = nodes[index]
            world = parent @ _local_matrix(node)
            if not np.isfinite(world).all():
                raise SceneError(f"{self.name}: node {index} has a non-finite transform")
            moving = None  # the node's index in the rig, where an animation moves it or a parent
            if index in channels or index in joints or parent_rig is not None:
                moving = self._rig_node(node, parent, parent_rig, channels.get(index, {}))
                self.rig_of[index] = moving
            if "mesh" in node:
                self._mesh(int(node["mesh"]), world, index, moving, node.get("skin"), node.get("weights"))
            names = [node.get("name"), self.gltf["cameras"][int(node["camera"])].get("name")] if "camera" in node else []
            if names:
                names.append(f"node {index}")  # an unnamed camera is listed, and picked, as its node
                self.out.cameras.append(str(next(n for n in names if n is not None)))
            if names and self.out.camera is None and (camera is None or camera in names):
                self._camera(int(node["camera"]), world)
                if moving is not None:
                    self.out.camera["rig"] = moving
            light = node.get("extensions", {}).get("KHR_lights_punctual", {}).get("light")
            if light is not None:
                before = len(self.out.lights)
                self._light(int(light), world)
                if moving is not None and len(self.out.lights) > before:  # it follows its node
                    self.out.lights[-1]["rig"] = moving
            stack.extend((int(c), world, depth + 1, moving) for c in reversed(node.get("children", [])))
        for shape in self.out.shapes:  # a skin's joints, by their place in the rig now that all are placed
            if "skin" in shape:
                missing = [j for j in shape["skin"]["joints"] if j not in self.rig_of]
                if missing:
                    raise SceneError(f"{self.name}: skin joint node {missing[0]} is not in the scene")
                shape["skin"]["joints"] = [self.rig_of[j] for j in shape["skin"]["joints"]]
        ignored = (set(self.gltf.get("extensionsUsed", [])) | _extensions_in(self.gltf)) - RENDERED_EXTENSIONS
        if ignored:
            self._warn(f"extensions not rendered (ignored): {', '.join(sorted(ignored))}")
        return self.out

    def _warn(self, message: str) -> None:
        text = f"{self.name}: {message}"
        if text not in self.out.warnings:
            self.out.warnings.append(text)

    # -- geometry ------------------------------------------------------------------------

    def _rig_node(self, node: dict, parent: np.ndarray, parent_rig: int | None, channels: dict) -> int:
        """The node's entry in the rig (after a still one for its parent's world matrix
        where no animated node is above it): its rest pose and its channels."""
        if parent_rig is None:
            self.out.rig.append({"parent": -1, "matrix": [[float(v) for v in row] for row in parent]})
            parent_rig = len(self.out.rig) - 1
        entry: dict = {"parent": parent_rig}
        if "matrix" in node and not channels:
            entry["matrix"] = [[float(v) for v in row] for row in _local_matrix(node)]
        else:
            for path in ("translation", "rotation", "scale"):
                if path in node:
                    entry[path] = [float(v) for v in node[path]]
            if channels:
                entry["channels"] = channels
        self.out.rig.append(entry)
        return len(self.out.rig) - 1

    def _morph(self, mesh: dict, primitive: dict, file: str, node_weights, moving: int | None) -> dict:
        """A primitive's morph targets as the document keeps them: where each target's
        position, normal and tangent offsets lie in `file`, the weights at rest (the node's, else the
        mesh's, else 0), and the rig node whose `weights` channel moves them, if one does."""
        targets = []
        for number, target in enumerate(primitive["targets"]):
            entry = {}
            for key, attribute in (("positions", "POSITION"), ("normals", "NORMAL"), ("tangents", "TANGENT")):
                if attribute in target:
                    where, entry[key] = self.file.accessor(int(target[attribute]), ("f32x3",))
                    if where[0] != file:
                        raise SceneError(f"{self.name}: morph target {number} lies in another buffer than its mesh")
            targets.append(entry)
        weights = node_weights if node_weights is not None else mesh.get("weights", [0.0] * len(targets))
        if len(weights) != len(targets):
            raise SceneError(f"{self.name}: {len(weights)} morph weights for {len(targets)} targets")
        morph = {"targets": targets, "weights": [float(w) for w in weights]}
        if moving is not None:
            morph["rig"] = moving
        return morph

    def _mesh(self, index: int, world: np.ndarray, node: int, moving: int | None = None, skin=None,
              node_weights=None) -> None:
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
            skinned = skin is not None and "JOINTS_0" in attributes and "WEIGHTS_0" in attributes
            layout, (file, encoded), count = self._layout(primitive, skinned)
            if count == 0:
                continue
            self.out.triangles += count
            if self.out.triangles > defaults.MAX_TRIANGLES:
                raise SceneError(f"{self.name}: more than {defaults.MAX_TRIANGLES} triangles after instancing "
                                 f"(FARM_MAX_TRIANGLES)")
            self._bounds(attributes["POSITION"], world)
            shape = {
                "type": "mesh", "material": self.materials.material(primitive.get("material")), "file": file,
                "binary": layout,
                "transform": {"matrix": [[float(v) for v in row] for row in world]},
            }
            if encoded:
                shape["base64"] = list(encoded)
            if primitive.get("targets"):
                shape["morph"] = self._morph(mesh, primitive, file, node_weights, moving)
            if skinned:  # placed by its joints at each frame's moment (farm.scene.skin), not by its node
                del shape["transform"]
                shape["skin"] = self._skin(int(skin))
            elif moving is not None:  # placed at each frame's moment from the rig's node
                shape["rig"] = moving
            self.out.shapes.append(shape)

    def _skin(self, index: int) -> dict:
        """A skin as the document keeps it: its joints (glTF nodes here, rig nodes once the
        walk has placed them) and their inverse bind matrices, row-major."""
        skin = self.gltf["skins"][index]
        joints = [int(j) for j in skin["joints"]]
        if "inverseBindMatrices" in skin:
            values = self.animation.floats(int(skin["inverseBindMatrices"]))
            binds = [[[float(v) for v in row] for row in m.reshape(4, 4).T] for m in values]
        else:
            binds = [np.eye(4).tolist() for _ in joints]
        if len(binds) != len(joints):
            raise SceneError(f"{self.name}: skin {index} has {len(joints)} joints and {len(binds)} inverse bind matrices")
        return {"joints": joints, "inverse_bind": binds}

    def _layout(self, primitive: dict, skinned: bool = False) -> tuple[dict, str, int]:
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
        if skinned:
            wanted.append(("joints", attributes["JOINTS_0"], ("u8x4", "u16x4")))
            wanted.append(("weights", attributes["WEIGHTS_0"], ("f32x4", "u8x4n", "u16x4n")))
        for key, accessor_index, formats in wanted:
            file, entry = self.file.accessor(int(accessor_index), formats)
            files.add(file)
            entries[key] = entry
        if len(files) > 1:
            raise SceneError(f"{self.name}: a primitive's accessors lie in several buffers")
        count = entries["indices"]["count"] if "indices" in entries else entries["positions"]["count"]
        return entries, files.pop(), count // 3

    def _bounds(self, accessor_index, world: np.ndarray) -> None:
        accessor = self.gltf["accessors"][int(accessor_index)]
        if "min" not in accessor or "max" not in accessor:
            return
        low, high = np.array(accessor["min"][:3], float), np.array(accessor["max"][:3], float)
        corners = np.array([[(low, high)[(i >> k) & 1][k] for k in range(3)] for i in range(8)])
        placed = corners @ world[:3, :3].T + world[:3, 3]
        self.out.lower = np.minimum(self.out.lower, placed.min(axis=0))
        self.out.upper = np.maximum(self.out.upper, placed.max(axis=0))

    # -- camera and lights ---------------------------------------------------------------

    def _camera(self, index: int, world: np.ndarray) -> None:
        camera = self.gltf["cameras"][index]
        if camera.get("type") != "perspective":
            self._warn(f"camera {index}: only perspective cameras are supported; ignored")
            return
        perspective = camera["perspective"]
        # placed as a camera on a moving node is at each moment (farm.scene.rig)
        self.out.camera = {**rig.camera_at(world.tolist()), "fov": math.degrees(float(perspective["yfov"])),
                           "fov_axis": "y"}
        if "aspectRatio" in perspective and float(perspective["aspectRatio"]) > 0:
            self.out.aspect = float(perspective["aspectRatio"])

    def _light(self, index: int, world: np.ndarray) -> None:
        light = self.gltf["extensions"]["KHR_lights_punctual"]["lights"][index]
        colour = np.array(light.get("color", [1.0, 1.0, 1.0]), float)
        power = (colour * float(light.get("intensity", 1.0)) / LUMENS_PER_WATT).tolist()
        placed = rig.light_at(world.tolist())  # as a light on a moving node is at each moment
        position, direction = placed["position"], placed["direction"]
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


def _local_matrix(node: dict) -> np.ndarray:
    """A node's local transform: its column-major matrix, or translation x rotation x scale."""
    if "matrix" in node:
        values = [float(v) for v in node["matrix"]]
        if len(values) != 16:
            raise SceneError("a node matrix needs 16 numbers")
        return np.array(values).reshape(4, 4).T
    return np.array(rig.local_matrix(node.get("translation", [0, 0, 0]), node.get("rotation", [0, 0, 0, 1]),
                                     node.get("scale", [1, 1, 1])))
