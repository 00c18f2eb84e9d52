"""glTF materials and their textures as the farm's scene-document entries.

Metallic-roughness becomes the `principled` material (metal and dielectric blended per
texel, as glTF's BRDF), KHR_materials_transmission glass with KHR_materials_ior's index,
emission KHR_materials_emissive_strength times the emissive factor; alpha MASK and BLEND
a cut-out, normal maps data textures. A texture is an image texture (a file, a data: URI
or a range of a buffer) placed by its uv set and KHR_texture_transform.
"""

from __future__ import annotations

import math

from farm.scene.gltf_file import GltfFile

WRAPS = {10497: "repeat", 33648: "mirror", 33071: "clamp"}
NEAREST = (9728, 9984, 9986)


class GltfMaterials:
    """The farm materials and textures of one glTF file, each made once and added to
    `materials` and `textures` (a texture once per placement); names get `prefix`, and
    what is not rendered goes to `warn`."""

    def __init__(self, file: GltfFile, prefix: str, materials: dict, textures: dict, warn):
        self.file = file
        self.gltf = file.document
        self.prefix = prefix
        self.materials = materials
        self.textures = textures
        self.warn = warn
        self.material_names: dict[int, str] = {}
        self.texture_names: dict[tuple, str] = {}

    def material(self, index) -> str:
        """The name of the farm material for glTF material `index` (None: glTF's default)."""
        if index is None:
            name = f"{self.prefix}default"  # glTF's default material: white, metallic 1, roughness 1
            self.materials.setdefault(name, {"type": "principled", "base_color": 1.0, "metallic": 1.0,
                                             "roughness": 1.0})
            return name
        index = int(index)
        if index in self.material_names:
            return self.material_names[index]
        material = self.gltf["materials"][index]
        name = f"{self.prefix}{material.get('name') or index}"
        if name in self.materials:
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
            self.warn(f"material {name}: occlusionTexture ignored (a path tracer traces the occlusion it bakes)")
        if "normalTexture" in material:
            info = material["normalTexture"]
            entry["normal_map"] = self._param(info, float(info.get("scale", 1.0)), colour=False, high=None, linear=True)
        mode = material.get("alphaMode", "OPAQUE")
        if mode in ("MASK", "BLEND"):
            alpha = float(pbr.get("baseColorFactor", [1, 1, 1, 1])[3])
            entry["alpha"] = self._param(pbr.get("baseColorTexture"), alpha, colour=False, channel="a")
            entry["alpha_cutoff"] = float(material.get("alphaCutoff", 0.5)) if mode == "MASK" else 0.5
            if mode == "BLEND":
                self.warn(f"material {name}: alpha BLEND is rendered as a cut-out at alpha 0.5 (MASK)")
        self.materials[name] = entry
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
            self.warn(f"texture {index}: uv set {uv_set} is not read; using the first")
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
            entry["file"] = self.file.name
            entry["base64"] = list(self.file.data_uri(image["uri"], f"image {texture['source']}"))
        elif "uri" in image:
            entry["file"] = self.file.resolve(image["uri"], f"image {texture['source']}")
        else:
            view = self.gltf["bufferViews"][int(image["bufferView"])]
            file, base, encoded = self.file.buffer(int(view["buffer"]))
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
        self.textures[name] = entry
        self.texture_names[key] = name
        return name


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
