"""The same scene for Mitsuba 3, as a dict for `mitsuba.load_dict`: the reference renderer
our pixels are compared with (tests/test_reference.py), and the executable form of the
conventions in docs/scenes.md. Needs the `mitsuba` package and a variant set by the caller
(e.g. `mitsuba.set_variant("scalar_rgb")`).

Every convention of ours maps onto one of Mitsuba's without adjustment except two:
opaque materials are two-sided here (wrapped in `twosided` there), and image textures
have v = 0 at the image's bottom here and at its top there (flipped through `to_uv`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from farm.scene.model import (
    Box, Checkerboard, EnvironmentLight, ImageTexture, Material, Mesh, PointLight, Rectangle, Scene, Sphere, SpotLight,
    SunLight, TextureRef,
)


def to_mitsuba(scene: Scene, folder: str | Path | None = None, spp: int | None = None) -> dict:
    """The scene as a Mitsuba 3 scene dict; files are named relative to `folder`."""
    import mitsuba as mi

    folder = Path(folder) if folder is not None else Path(".")
    camera, film = scene.camera, scene.film
    sensor = {
        "type": "thinlens" if camera.aperture_radius > 0 else "perspective",
        "fov": camera.fov,
        "fov_axis": camera.fov_axis,
        "to_world": mi.ScalarTransform4f().look_at(
            origin=list(camera.position), target=list(camera.look_at), up=list(camera.up)
        ),
        "film": {
            "type": "hdrfilm", "width": film.width, "height": film.height, "rfilter": {"type": "box"},
            "pixel_format": "rgb", "component_format": "float32",
        },
        "sampler": {"type": "independent", "sample_count": spp or film.spp, "seed": scene.seed},
    }
    if camera.aperture_radius > 0:
        sensor["aperture_radius"] = camera.aperture_radius
        sensor["focus_distance"] = camera.focus_distance or float(
            np.linalg.norm(np.subtract(camera.look_at, camera.position))
        )
    result: dict = {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": scene.max_depth, "rr_depth": scene.rr_depth},
        "sensor": sensor,
    }
    textures = scene.textures
    for index, shape in enumerate(scene.shapes):
        material = scene.materials[shape.material]
        entry = _shape(shape, folder, mi)
        entry["bsdf"] = _bsdf(material, textures, folder, mi)
        if material.emissive:
            entry["emitter"] = {"type": "area", "radiance": _colour(material.emission, textures, folder, mi, True)}
        result[f"shape{index}"] = entry
    for index, light in enumerate(scene.lights):
        result[f"light{index}"] = _light(light, folder, mi)
    return result


def _matrix(transform, mi):
    return mi.ScalarTransform4f(np.array(transform, np.float64).tolist())


def _shape(shape, folder: Path, mi) -> dict:
    if isinstance(shape, Sphere):
        return {"type": "sphere", "center": list(shape.center), "radius": shape.radius,
                "to_world": _matrix(shape.transform, mi)}
    if isinstance(shape, Rectangle):
        return {"type": "rectangle", "to_world": _matrix(shape.transform, mi)}
    if isinstance(shape, Box):
        return {"type": "cube", "to_world": _matrix(shape.transform, mi)}
    if isinstance(shape, Mesh) and shape.file:
        return {"type": "obj", "filename": str(folder / shape.file), "face_normals": shape.face_normals,
                "to_world": _matrix(shape.transform, mi)}
    raise ValueError("inline meshes have no Mitsuba equivalent here; write them to an OBJ file")


def _texture(texture, folder: Path, mi, colour: bool) -> dict:
    su, sv = texture.scale
    ou, ov = texture.offset
    if isinstance(texture, Checkerboard):  # Mitsuba's has 2 x 2 squares per uv unit
        to_uv = mi.ScalarTransform4f().translate([ou / 2, ov / 2, 0]) @ mi.ScalarTransform4f().scale([su / 2, sv / 2, 1])
        # Mitsuba's checkerboard picks the other colour where it gives a number (eval_1
        # tests `neq` where eval tests `eq`, src/textures/checkerboard.cpp): swap them there.
        color0, color1 = (texture.color0, texture.color1) if colour else (texture.color1, texture.color0)
        return {"type": "checkerboard", "to_uv": to_uv,
                "color0": {"type": "rgb", "value": list(color0)}, "color1": {"type": "rgb", "value": list(color1)}}
    assert isinstance(texture, ImageTexture)
    # Mitsuba reads image rows from v = 0 at the top: v' = 1 - (v * sv + ov).
    to_uv = mi.ScalarTransform4f().translate([ou, 1 - ov, 0]) @ mi.ScalarTransform4f().scale([su, -sv, 1])
    linear = texture.colorspace == "linear" or (texture.colorspace == "auto" and not colour)
    return {"type": "bitmap", "filename": str(folder / texture.file), "to_uv": to_uv, "raw": linear,
            "filter_type": texture.filter, "wrap_mode": texture.wrap}


def _colour(value, textures, folder, mi, colour=True):
    if isinstance(value, TextureRef):
        return _texture(textures[value.name], folder, mi, colour)
    if isinstance(value, tuple):
        return {"type": "rgb", "value": list(value)}
    return float(value)


def _bsdf(material: Material, textures, folder: Path, mi) -> dict:
    if material.kind == "principled":  # takes roughness itself, textured or not
        return {"type": "twosided", "bsdf": {
            "type": "principled", "eta": material.ior, "base_color": _colour(material.reflectance, textures, folder, mi),
            "metallic": _colour(material.metallic, textures, folder, mi, colour=False),
            "roughness": _colour(material.roughness, textures, folder, mi, colour=False)}}
    rough = isinstance(material.roughness, TextureRef) or material.roughness > 0
    alpha = None
    if rough:
        if isinstance(material.roughness, TextureRef):
            raise ValueError("a roughness texture has no direct Mitsuba equivalent (Mitsuba's alpha = roughness^2)")
        alpha = material.roughness**2
    kind = material.kind
    if kind == "diffuse":
        inner = {"type": "diffuse", "reflectance": _colour(material.reflectance, textures, folder, mi)}
    elif kind == "conductor":
        inner = {"type": "roughconductor" if rough else "conductor",
                 "eta": {"type": "rgb", "value": list(material.eta)}, "k": {"type": "rgb", "value": list(material.k)},
                 "specular_reflectance": _colour(material.specular, textures, folder, mi)}
        if rough:
            inner.update(distribution="ggx", alpha=alpha, sample_visible=True)
    elif kind == "plastic":
        inner = {"type": "roughplastic" if rough else "plastic", "int_ior": material.ior,
                 "ext_ior": material.exterior_ior, "nonlinear": False,
                 "diffuse_reflectance": _colour(material.reflectance, textures, folder, mi),
                 "specular_reflectance": _colour(material.specular, textures, folder, mi)}
        if rough:
            inner.update(distribution="ggx", alpha=alpha, sample_visible=True)
    else:  # dielectric: sided, not wrapped
        bsdf = {"type": "roughdielectric" if rough else "dielectric", "int_ior": material.ior,
                "ext_ior": material.exterior_ior,
                "specular_reflectance": _colour(material.specular, textures, folder, mi),
                "specular_transmittance": _colour(material.transmittance, textures, folder, mi)}
        if rough:
            bsdf.update(distribution="ggx", alpha=alpha, sample_visible=True)
        return bsdf
    return {"type": "twosided", "bsdf": inner}


def _light(light, folder: Path, mi) -> dict:
    if isinstance(light, PointLight):
        return {"type": "point", "position": list(light.position), "intensity": {"type": "rgb", "value": list(light.intensity)}}
    if isinstance(light, SpotLight):
        position = np.array(light.position, np.float64)
        target = position + np.array(light.direction, np.float64)
        up = [0, 1, 0] if abs(light.direction[1]) < 0.9 * np.linalg.norm(light.direction) else [1, 0, 0]
        return {"type": "spot", "intensity": {"type": "rgb", "value": list(light.intensity)},
                "cutoff_angle": light.cutoff_angle, "beam_width": light.beam_width,
                "to_world": mi.ScalarTransform4f().look_at(origin=position.tolist(), target=target.tolist(), up=up)}
    if isinstance(light, SunLight):
        return {"type": "directional", "direction": list(light.direction),
                "irradiance": {"type": "rgb", "value": list(light.irradiance)}}
    assert isinstance(light, EnvironmentLight)
    if light.file:
        return {"type": "envmap", "filename": str(folder / light.file), "scale": light.scale,
                "to_world": _matrix(light.transform, mi)}
    radiance = [c * light.scale for c in light.radiance]
    return {"type": "constant", "radiance": {"type": "rgb", "value": radiance}}


def render(scene: Scene, folder=None, spp: int | None = None, variant: str = "scalar_rgb") -> np.ndarray:
    """Render with Mitsuba: (height, width, 3) float32 linear RGB, like Renderer.render_frame."""
    import mitsuba as mi

    mi.set_variant(variant)
    image = mi.render(mi.load_dict(to_mitsuba(scene, folder, spp)), seed=scene.seed)
    return np.array(image, dtype=np.float32)[:, :, :3]
