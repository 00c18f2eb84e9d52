"""Textures and materials of a scene document, validated into the model's dataclasses: what
each material type takes, the named metals, and parameters given as a number, a colour or
a texture channel."""

from __future__ import annotations

from typing import Any

from farm.scene.document import Node
from farm.scene.model import MATERIAL_TYPES, Checkerboard, ImageTexture, Material, TextureRef

TEXTURE_TYPES = ("image", "checkerboard")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".hdr")

# Complex refractive index (eta, k) of metals at the sRGB primaries' wavelengths
# (red 650 nm, green 550 nm, blue 450 nm), from refractiveindex.info's tables.
METALS = {
    "Ag": ((0.155, 0.117, 0.138), (4.283, 3.429, 2.458)),
    "Al": ((1.502, 0.958, 0.619), (7.681, 6.692, 5.424)),
    "Au": ((0.166, 0.425, 1.428), (3.150, 2.380, 1.797)),
    "Cu": ((0.216, 0.975, 1.225), (3.606, 2.578, 2.319)),
}


def parse_textures(node: Node) -> dict:
    textures = {}
    for name, child in node.named("texture"):
        kind = child.child("type").choice(TEXTURE_TYPES)
        scale = child.child("scale").vec2() if "scale" in child.value else (1.0, 1.0)
        offset = child.child("offset").vec2() if "offset" in child.value else (0.0, 0.0)
        if kind == "checkerboard":
            child.expect_keys(required=("type",), optional=("color0", "color1", "scale", "offset"))
            color0 = child.child("color0").vec3(0.0) if "color0" in child.value else (0.4, 0.4, 0.4)
            color1 = child.child("color1").vec3(0.0) if "color1" in child.value else (0.2, 0.2, 0.2)
            if "scale" not in child.value:
                scale = (8.0, 8.0)
            textures[name] = Checkerboard(name, color0, color1, scale, offset)
            continue
        child.expect_keys(required=("type", "file"), optional=("wrap", "filter", "scale", "offset", "colorspace", "range"))
        byte_range = None
        if "range" in child.value:  # an image inside a binary file: any name, PNG or JPEG bytes
            byte_range = tuple(item.integer(0, 2**53) for item in child.child("range").list_of(2))
        file = child.child("file").relative_file(None if byte_range else IMAGE_SUFFIXES)
        wrap = child.child("wrap").choice(("repeat", "mirror", "clamp")) if "wrap" in child.value else "repeat"
        filtering = child.child("filter").choice(("bilinear", "nearest")) if "filter" in child.value else "bilinear"
        colorspace = child.child("colorspace").choice(("auto", "srgb", "linear")) if "colorspace" in child.value else "auto"
        textures[name] = ImageTexture(name, file, wrap, filtering, scale, offset, colorspace, byte_range)
    return textures


# Which parameters each material type takes, beside `type` and `emission`.
MATERIAL_PARAMETERS = {
    "diffuse": ("reflectance",),
    "conductor": ("metal", "eta", "k", "roughness", "specular"),
    "dielectric": ("ior", "exterior_ior", "roughness", "specular", "transmittance"),
    "plastic": ("reflectance", "ior", "roughness", "specular"),
}


def parse_materials(node: Node, textures: dict) -> dict[str, Material]:
    materials = {}
    for name, child in node.named("material"):
        kind = child.child("type").choice(MATERIAL_TYPES) if "type" in child.value else "diffuse"
        child.expect_keys(optional=("type", "emission") + MATERIAL_PARAMETERS[kind])
        fields: dict[str, Any] = {}
        for key in ("reflectance", "specular", "transmittance"):
            if key in child.value:
                fields[key] = _param(child.child(key), textures, colour=True, high=1.0)
        if "emission" in child.value:
            fields["emission"] = _param(child.child("emission"), textures, colour=True)
        if "roughness" in child.value:
            fields["roughness"] = _param(child.child("roughness"), textures, colour=False, high=1.0)
        for key in ("ior", "exterior_ior"):
            if key in child.value:
                fields[key] = child.child(key).number(1.0, 10.0)
        if kind == "dielectric" and fields.get("ior", 1.5) == fields.get("exterior_ior", 1.0):
            child.fail("ior and exterior_ior are equal: the surface would be invisible")
        if kind == "conductor":
            fields["eta"], fields["k"] = _metal(child)
        materials[name] = Material(name, kind, **fields)
    if not materials:
        node.fail("a scene needs at least one material")
    return materials


def _metal(node: Node):
    """A conductor's complex index: a named metal, or explicit eta and k."""
    if "metal" in node.value:
        if "eta" in node.value or "k" in node.value:
            node.fail("give either metal or eta and k, not both")
        return METALS[node.child("metal").choice(tuple(METALS))]
    if "eta" in node.value or "k" in node.value:
        if not ("eta" in node.value and "k" in node.value):
            node.fail("a conductor needs both eta and k")
        return node.child("eta").vec3(0.0, 100.0), node.child("k").vec3(0.0, 100.0)
    return METALS["Al"]


def _param(node: Node, textures: dict, colour: bool, high: float | None = None):
    """A material parameter: a number, an RGB list (colours), or {"texture": name, "channel"}."""
    value = node.value
    if isinstance(value, dict):
        node.expect_keys(required=("texture",), optional=("factor",) if colour else ("channel", "factor"))
        name = node.child("texture").string()
        if name not in textures:
            known = ", ".join(sorted(textures)) or "none"
            node.child("texture").fail(f"unknown texture {name!r} (defined: {known})")
        channel = "rgba".index(node.child("channel").choice(("r", "g", "b", "a"))) if "channel" in value else 0
        factor = (1.0, 1.0, 1.0)
        if "factor" in value:
            factor_node = node.child("factor")
            if colour:
                factor = factor_node.vec3(0.0, high)
            else:
                factor = (factor_node.number(0.0, high),) * 3
        return TextureRef(name, channel, factor)
    if colour:
        if isinstance(value, list):
            return node.vec3(0.0, high)
        level = node.number(0.0, high)
        return (level, level, level)
    return node.number(0.0, high)
