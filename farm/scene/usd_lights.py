"""A USD stage's camera and UsdLux lights as the scene document's (farm.scene.usd walks
the stage; these convert what it finds). Light units: `intensity` x 2^`exposure` x `color`
is the radiance of an area light's surface (the document's `emission`), divided by its
area where `normalize` says so; a sun's irradiance is its radiance times the solid angle of
its disc."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from farm.scene import rig


def camera(converter, camera, world: np.ndarray) -> None:
    """The stage's camera as the document's (`converter`: farm.scene.usd's walker)."""
    from pxr import UsdGeom

    if camera.GetProjectionAttr().Get() == UsdGeom.Tokens.orthographic:
        converter._warn(f"{camera.GetPath()}: orthographic cameras are not rendered; framing the model instead")
        return
    focal = float(camera.GetFocalLengthAttr().Get(converter.time))
    vertical = float(camera.GetVerticalApertureAttr().Get(converter.time))
    horizontal = float(camera.GetHorizontalApertureAttr().Get(converter.time))
    entry = {**rig.camera_at(world.tolist()), "fov": math.degrees(2 * math.atan(vertical / (2 * focal))),
             "fov_axis": "y"}
    stop = float(camera.GetFStopAttr().Get(converter.time) or 0.0)
    if stop > 0:  # the lens's focal length in tenths of a stage unit (USD's camera units), in metres
        scale = float(np.linalg.norm(world[:3, 1]))
        entry["aperture_radius"] = focal * 0.1 * scale / (2 * stop)
        entry["focus_distance"] = float(camera.GetFocusDistanceAttr().Get(converter.time)) * scale
    converter.out.camera = entry
    if vertical > 0:
        converter.out.aspect = horizontal / vertical

def light(converter, prim, world: np.ndarray) -> None:
    """A UsdLux light as the document's light, or as an emissive shape (`converter`: farm.scene.usd's walker)."""
    from pxr import UsdLux

    light = UsdLux.LightAPI(prim)
    colour = np.array(light.GetColorAttr().Get(converter.time) or (1, 1, 1), float)
    radiance = colour * float(light.GetIntensityAttr().Get(converter.time) or 0.0) * \
        2.0 ** float(light.GetExposureAttr().Get(converter.time) or 0.0)
    normalize = bool(light.GetNormalizeAttr().Get(converter.time))
    place = rig.light_at(world.tolist())
    axes = np.linalg.norm(world[:3, :3], axis=0)
    if prim.IsA(UsdLux.RectLight) or prim.IsA(UsdLux.DiskLight):
        rect = prim.IsA(UsdLux.RectLight)
        if rect:
            shape_light = UsdLux.RectLight(prim)
            width, height = float(shape_light.GetWidthAttr().Get()), float(shape_light.GetHeightAttr().Get())
            outline = [(-width / 2, -height / 2), (width / 2, -height / 2), (width / 2, height / 2),
                       (-width / 2, height / 2)]
            area = width * height * axes[0] * axes[1]
        else:
            radius = float(UsdLux.DiskLight(prim).GetRadiusAttr().Get())
            outline = [(radius * math.cos(a), radius * math.sin(a))
                       for a in np.linspace(0, 2 * math.pi, 33)[:-1]]
            area = math.pi * radius * radius * axes[0] * axes[1]
        if normalize and area > 0:
            radiance = radiance / area
        corners = np.array([[x, y, 0.0, 1.0] for x, y in outline]) @ world.T
        # its light leaves along its -z: the front of a triangle wound clockwise seen from +z
        triangles = [[0, i + 1, i] for i in range(1, len(outline) - 1)]
        name = f"{converter.prefix}{prim.GetPath()}"
        converter.out.materials[name] = {"reflectance": 0.0, "emission": radiance.tolist()}
        converter.out.shapes.append({"type": "mesh", "material": name, "vertices": corners[:, :3].tolist(),
                                "triangles": triangles})
        converter._bounds(corners[:, :3])
        converter.emitters += 1
    elif prim.IsA(UsdLux.SphereLight):
        sphere = UsdLux.SphereLight(prim)
        radius = float(sphere.GetRadiusAttr().Get()) * float(axes.mean())
        point = bool(sphere.GetTreatAsPointAttr().Get()) or radius <= 0
        if normalize and radius > 0:
            radiance = radiance / (4 * math.pi * radius * radius)
        if point:  # a point of the same power: intensity = radiance x its disc's area
            converter.out.lights.append({"type": "point", "position": place["position"],
                                    "intensity": (radiance * math.pi * max(radius, 0.0) ** 2).tolist()})
            if radius <= 0:
                converter._warn(f"{prim.GetPath()}: a sphere light of no radius gives no light")
        else:
            name = f"{converter.prefix}{prim.GetPath()}"
            converter.out.materials[name] = {"reflectance": 0.0, "emission": radiance.tolist()}
            converter.out.shapes.append({"type": "sphere", "material": name, "center": place["position"],
                                    "radius": radius})
            converter.emitters += 1
    elif prim.IsA(UsdLux.DistantLight):
        angle = float(UsdLux.DistantLight(prim).GetAngleAttr().Get() or 0.0)
        # radiance over the sun's disc of `angle` degrees: irradiance = radiance x its solid angle
        half = math.radians(angle / 2)
        solid = 2 * math.pi * (1 - math.cos(half)) if half > 0 else 1.0
        irradiance = radiance if normalize or half <= 0 else radiance * solid
        converter.out.lights.append({"type": "sun", "direction": place["direction"], "irradiance": irradiance.tolist()})
    elif prim.IsA(UsdLux.DomeLight):
        texture = UsdLux.DomeLight(prim).GetTextureFileAttr().Get()
        entry = {"type": "environment", "radiance": radiance.tolist()}
        if texture is not None and texture.resolvedPath:
            try:
                entry = {"type": "environment", "file": Path(texture.resolvedPath).resolve().relative_to(
                    converter.folder.resolve()).as_posix(), "scale": float(radiance.mean())}
            except ValueError:
                converter._warn(f"{prim.GetPath()}: dome texture {texture.path} is not under the stage's folder; "
                           f"a uniform sky instead")
        converter.out.lights.append(entry)
    else:
        converter._warn(f"{prim.GetPath()}: {prim.GetTypeName()} is not rendered")
