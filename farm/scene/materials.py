"""Textures and materials of a scene document, validated into the model's dataclasses: what
each material type takes, the named metals, and parameters given as a number, a colour or
a texture channel."""

from __future__ import annotations

from typing import Any

from farm.scene.document import Node
from farm.scene.model import MATERIAL_TYPES, Checkerboard, ImageTexture, Material, TextureRef

TEXTURE_TYPES = ("image", "checkerboard")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".hdr")

# Complex refractive index (eta, k) of each conductor Mitsuba 3 names, as its RGB variants
# use them (Mitsuba 3.9.1, `conductor` with `material`: the spectral tables reduced to
# sRGB, out-of-gamut parts clamped to 0), so a named metal renders as it does there.
# Printed by `mi.traverse(mi.load_dict({"type": "conductor", "material": name}))` in scalar_rgb.
METALS = {
    "a-C": ((2.944046, 2.227136, 1.968162), (0.887465, 0.799299, 0.81529)),
    "Ag": ((0.155276, 0.116728, 0.138388), (4.828354, 3.122222, 2.146901)),
    "Al": ((1.657501, 0.880405, 0.521244), (9.223811, 6.269502, 4.837004)),
    "AlAs": ((3.605296, 3.232938, 2.216319), (0.000679, 0.0, 0.007513)),
    "AlAs_palik": ((3.605296, 3.232938, 2.216319), (0.000679, 0.0, 0.007513)),
    "AlSb": ((0.0, 4.139375, 4.669254), (0.0, 0.094009, 1.30057)),
    "AlSb_palik": ((0.0, 4.139375, 4.669254), (0.0, 0.094009, 1.30057)),
    "Au": ((0.143036, 0.375307, 1.442045), (3.982997, 2.385556, 1.603359)),
    "Be": ((4.185012, 3.185029, 2.784061), (3.835466, 3.010122, 2.868994)),
    "Cr": ((4.369668, 2.916505, 1.654905), (5.206547, 4.231306, 3.754699)),
    "CsI": ((2.1449, 1.702319, 1.662427), (0.0, 0.0, 0.0)),
    "Cu": ((0.201005, 0.92375, 1.102215), (3.913262, 2.453045, 2.14209)),
    "Cu_palik": ((0.213229, 0.919715, 1.102411), (3.921873, 2.457332, 2.136584)),
    "Cu2O": ((3.551773, 2.94987, 2.751875), (0.114207, 0.193897, 0.606134)),
    "CuO": ((3.247541, 2.447805, 2.21022), (0.52109, 0.570031, 0.722179)),
    "d-C": ((2.70872, 2.318826, 2.228898), (0.0, 0.0, 0.0)),
    "d-C_palik": ((2.70872, 2.318826, 2.228898), (0.0, 0.0, 0.0)),
    "Hg": ((2.398939, 1.440028, 0.90957), (6.327587, 4.371925, 3.421764)),
    "HgTe": ((4.77904, 3.231196, 2.659901), (1.631613, 1.58081, 1.729287)),
    "Ir": ((3.0863, 2.082191, 1.617915), (5.592153, 4.067088, 3.267312)),
    "K": ((0.064043, 0.04641, 0.038185), (2.1042, 1.34894, 0.913126)),
    "Li": ((0.265791, 0.195618, 0.220949), (3.540155, 2.311123, 1.668607)),
    "MgO": ((2.089584, 1.650723, 1.594879), (0.0, 0.0, 0.0)),
    "Mo": ((4.483974, 3.525131, 2.77631), (4.111437, 3.420827, 3.150607)),
    "Na_palik": ((0.060269, 0.056141, 0.061988), (3.179273, 2.11249, 1.579041)),
    "Nb": ((3.420074, 2.790093, 2.395629), (3.441395, 2.737666, 2.579746)),
    "Ni_palik": ((2.367305, 1.663373, 1.467078), (4.498812, 3.050153, 2.345439)),
    "Rh": ((2.585793, 1.860216, 1.554263), (6.78226, 4.702987, 3.976073)),
    "Se": ((4.058311, 2.842935, 2.820853), (0.75405, 0.638444, 0.521808)),
    "SiC": ((3.172342, 2.525972, 2.479371), (1e-06, 0.0, 1e-05)),
    "SnTe": ((4.52425, 1.981645, 1.281591), (0.0, 0.0, 0.0)),
    "Ta": ((2.062721, 2.392939, 2.627929), (2.40836, 1.741486, 1.947028)),
    "Te": ((7.390234, 4.482105, 2.637106), (3.256022, 3.527059, 3.292054)),
    "ThF4": ((1.830714, 1.442229, 1.387648), (0.0, 0.0, 0.0)),
    "TiC": ((3.700528, 2.837422, 2.582287), (3.265635, 2.351589, 2.172791)),
    "TiN": ((1.64845, 1.150516, 1.379823), (3.368328, 1.943498, 1.102068)),
    "TiO2": ((3.45661, 2.801736, 2.905175), (0.000105, 0.0, 0.000653)),
    "VC": ((3.657566, 2.752736, 2.532672), (3.068301, 2.198687, 1.963193)),
    "V_palik": ((4.277582, 3.512949, 2.761071), (3.491301, 2.889455, 3.111522)),
    "VN": ((2.865602, 2.119189, 1.940091), (3.032243, 2.056116, 1.616306)),
    "W": ((4.370817, 3.300246, 2.998407), (3.500641, 2.604874, 2.273233)),
}


def parse_textures(node: Node) -> dict:
    textures = {}
    for name, child in node.named("texture"):
        kind = child.child("type").choice(TEXTURE_TYPES)
        scale = child.child("scale").vec2() if "scale" in child.value else (1.0, 1.0)
        offset = child.child("offset").vec2() if "offset" in child.value else (0.0, 0.0)
        rotation = child.child("rotation").number(-360.0, 360.0) if "rotation" in child.value else 0.0
        uv_set = child.child("uv_set").integer(0, 1, what="uv set") if "uv_set" in child.value else 0
        placement = ("scale", "offset", "rotation", "uv_set")
        if kind == "checkerboard":
            child.expect_keys(required=("type",), optional=("color0", "color1") + placement)
            color0 = child.child("color0").colour(0.0) if "color0" in child.value else (0.4, 0.4, 0.4)
            color1 = child.child("color1").colour(0.0) if "color1" in child.value else (0.2, 0.2, 0.2)
            if "scale" not in child.value:
                scale = (8.0, 8.0)
            textures[name] = Checkerboard(name, color0, color1, scale, offset, rotation, uv_set)
            continue
        child.expect_keys(required=("type", "file"), optional=("wrap", "filter", "colorspace", "range", "base64") + placement)
        # An image inside another file (a glTF's buffer or data: URI), PNG or JPEG bytes at
        # `range`; with `base64`, the file is the base64 text there (then decoded).
        byte_range = child.optional("range", Node.byte_range)
        encoded = child.optional("base64", Node.byte_range)
        file = child.child("file").relative_file(None if byte_range or encoded else IMAGE_SUFFIXES)
        wrap = child.child("wrap").choice(("repeat", "mirror", "clamp")) if "wrap" in child.value else "repeat"
        filtering = child.child("filter").choice(("bilinear", "nearest")) if "filter" in child.value else "bilinear"
        colorspace = child.child("colorspace").choice(("auto", "srgb", "linear")) if "colorspace" in child.value else "auto"
        textures[name] = ImageTexture(name, file, wrap, filtering, scale, offset, colorspace, rotation, uv_set,
                                      byte_range, encoded)
    return textures


# Which parameters each material type takes, beside `type` and `emission`.
MATERIAL_PARAMETERS = {
    "diffuse": ("reflectance",),
    "conductor": ("metal", "eta", "k", "roughness", "specular"),
    "dielectric": ("ior", "exterior_ior", "roughness", "specular", "transmittance"),
    "plastic": ("reflectance", "ior", "roughness", "specular"),
    "principled": ("base_color", "metallic", "roughness", "ior"),
}


def parse_materials(node: Node, textures: dict) -> dict[str, Material]:
    materials = {}
    for name, child in node.named("material"):
        kind = child.child("type").choice(MATERIAL_TYPES) if "type" in child.value else "diffuse"
        child.expect_keys(optional=("type", "emission", "normal_map", "alpha", "alpha_cutoff") + MATERIAL_PARAMETERS[kind])
        fields: dict[str, Any] = {}
        for key in ("reflectance", "specular", "transmittance"):
            if key in child.value:
                fields[key] = _param(child.child(key), textures, colour=True, high=1.0)
        if "emission" in child.value:
            fields["emission"] = _param(child.child("emission"), textures, colour=True)
        if "base_color" in child.value:  # glTF's and Mitsuba's name for it
            fields["reflectance"] = _param(child.child("base_color"), textures, colour=True, high=1.0)
        for key in ("roughness", "metallic", "alpha"):
            if key in child.value:
                fields[key] = _param(child.child(key), textures, colour=False, high=1.0)
        if "alpha_cutoff" in child.value:
            fields["alpha_cutoff"] = child.child("alpha_cutoff").number(0.0, 1.0)
        if "normal_map" in child.value:
            normal_map = _param(child.child("normal_map"), textures, colour=False, high=None)
            if not isinstance(normal_map, TextureRef):
                child.child("normal_map").fail('expected {"texture": name} (a tangent-space normal map)')
            fields["normal_map"] = normal_map
        for key in ("ior", "exterior_ior"):
            if key in child.value:
                fields[key] = child.child(key).number(1.0, 10.0)
        if kind == "conductor":
            fields["eta"], fields["k"] = _metal(child)
        if kind == "principled":
            fields.setdefault("roughness", 0.5)  # Mitsuba's default, as its base colour's 0.5
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
        node.expect_keys(required=("texture",), optional=("factor", "bias") if colour else ("channel", "factor", "bias"))
        name = node.child("texture").string()
        if name not in textures:
            known = ", ".join(sorted(textures)) or "none"
            node.child("texture").fail(f"unknown texture {name!r} (defined: {known})")
        channel = "rgba".index(node.child("channel").choice(("r", "g", "b", "a"))) if "channel" in value else 0
        factor = (1.0, 1.0, 1.0)
        if "factor" in value:
            factor_node = node.child("factor")
            if colour:
                factor = factor_node.colour(0.0, high)
            else:
                factor = (factor_node.number(0.0, high),) * 3
        bias = (0.0, 0.0, 0.0)
        if "bias" in value:
            bias = node.child("bias").colour() if colour else (node.child("bias").number(),) * 3
        return TextureRef(name, channel, factor, bias)
    return node.colour(0.0, high) if colour else node.number(0.0, high)
