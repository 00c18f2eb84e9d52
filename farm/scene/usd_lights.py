"""A USD stage's camera and UsdLux lights as the scene document's (farm.scene.usd walks
the stage; these convert what it finds). Light units: `intensity` x 2^`exposure` x `color`
is the radiance of an area light's surface (the document's `emission`), divided by its
area where `normalize` says so; a sun's irradiance is its radiance times the solid angle of
its disc. Where those three are time-sampled in a shot, the light (or the emitting shape's
material) is keyed at every whole time code (_keyed)."""

from __future__ import annotations

import math
import numpy as np

from farm.scene import rig


def camera(converter, camera, world: np.ndarray) -> None:
    """The stage's camera as the document's (`converter`: farm.scene.usd's walker)."""
    from pxr import UsdGeom

    if camera.GetProjectionAttr().Get() == UsdGeom.Tokens.orthographic:
        converter._warn(f"{camera.GetPath()}: orthographic cameras are not rendered; framing the model instead")
        return
    vertical = float(camera.GetVerticalApertureAttr().Get(converter.time))
    horizontal = float(camera.GetHorizontalApertureAttr().Get(converter.time))
    lens = camera_lens(converter, camera, converter.time, world)
    if lens is None or not horizontal > 0:
        converter._warn(f"{camera.GetPath()}: focal length and apertures must be positive; framing the model instead")
        return
    if float(camera.GetFStopAttr().Get(converter.time) or 0.0) > 0 and "focus_distance" not in lens:
        converter._warn(f"{camera.GetPath()}: fStop without a focusDistance: a pinhole instead")
    converter.out.camera = {**rig.camera_at(world.tolist()), **lens, "fov_axis": "y"}
    clipping = camera.GetClippingRangeAttr().Get(converter.time)  # USD's fallback: 1 to 1,000,000 stage units
    scale = float(np.linalg.norm(world[:3, 1]))
    if clipping is not None and 0 <= clipping[0] < clipping[1] and math.isfinite(clipping[1]):
        converter.out.camera["clip"] = [float(clipping[0]) * scale, float(clipping[1]) * scale]
    converter.out.aspect = horizontal / vertical


def camera_lens(converter, camera, time, world: np.ndarray, thin_lens: bool = False) -> dict | None:
    """The camera's field of view at `time`, and with an fStop and a focusDistance its lens
    (`thin_lens`: always, a pinhole as aperture 0, for keys that all set the same fields);
    None where its focal length or vertical aperture is not positive."""
    focal = float(camera.GetFocalLengthAttr().Get(time))
    vertical = float(camera.GetVerticalApertureAttr().Get(time))
    if not (focal > 0 and vertical > 0):
        return None
    entry = {"fov": math.degrees(2 * math.atan(vertical / (2 * focal)))}
    stop = float(camera.GetFStopAttr().Get(time) or 0.0)
    focus = float(camera.GetFocusDistanceAttr().Get(time) or 0.0)
    scale = float(np.linalg.norm(world[:3, 1]))
    if stop > 0 and focus > 0:  # the lens's focal length in tenths of a stage unit (USD's camera units), in metres
        entry["aperture_radius"] = focal * 0.1 * scale / (2 * stop)
        entry["focus_distance"] = focus * scale
    elif thin_lens:
        entry["aperture_radius"], entry["focus_distance"] = 0.0, max(focus, 1.0) * scale
    return entry


def light(converter, prim, world: np.ndarray, local: np.ndarray) -> None:
    """A UsdLux light as the document's light, or as an emissive shape (`converter`:
    farm.scene.usd's walker; `world` its matrix into the document, `local` into the stage,
    whose units `normalize` divides by)."""
    from pxr import UsdLux

    light = UsdLux.LightAPI(prim)
    time = converter.time
    colour = np.array(light.GetColorAttr().Get(time) or (1, 1, 1), float)
    radiance = _radiance(light, time)
    normalize = bool(light.GetNormalizeAttr().Get(time))
    if light.GetEnableColorTemperatureAttr().Get(time):
        converter._warn(f"{prim.GetPath()}: colour temperature is not read (its colour alone)")
    if prim.HasAPI(UsdLux.ShapingAPI) and (UsdLux.ShapingAPI(prim).GetShapingConeAngleAttr().Get(time) or 180) < 180:
        converter._warn(f"{prim.GetPath()}: shaping (a spot light's cone) is not read: it lights every way")
    place = rig.light_at(world.tolist())
    stage_axes = np.linalg.norm(local[:3, :3], axis=0)  # normalize divides by its area in stage units
    name = f"{converter.prefix}{prim.GetPath()}"
    if prim.IsA(UsdLux.RectLight) or prim.IsA(UsdLux.DiskLight):
        if prim.IsA(UsdLux.RectLight):
            rect = UsdLux.RectLight(prim)
            width, height = float(rect.GetWidthAttr().Get(time)), float(rect.GetHeightAttr().Get(time))
            outline = [(-width / 2, -height / 2), (width / 2, -height / 2), (width / 2, height / 2),
                       (-width / 2, height / 2)]
            area = width * height
            if rect.GetTextureFileAttr().Get(time):
                converter._warn(f"{prim.GetPath()}: a rect light's texture is not read")
        else:
            radius = float(UsdLux.DiskLight(prim).GetRadiusAttr().Get(time))
            outline = [(radius * math.cos(a), radius * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 33)[:-1]]
            area = math.pi * radius * radius
        area *= stage_axes[0] * stage_axes[1]

        def scaled(r):  # the radiance as the surface's emission
            return r / area if normalize and area > 0 else r
        radiance = scaled(radiance)
        corners = np.array([[x, y, 0.0, 1.0] for x, y in outline]) @ world.T
        # its light leaves along its -z: the front of a triangle wound clockwise seen from +z
        # (counter-clockwise where the transform mirrors, which turns its -z about)
        mirrored = np.linalg.det(world[:3, :3]) < 0
        triangles = [[0, i, i + 1] if mirrored else [0, i + 1, i] for i in range(1, len(outline) - 1)]
        converter.out.materials[name] = {"reflectance": 0.0, "emission": radiance.tolist()}
        _keyed(converter, light, converter.out.materials[name], "emission", lambda r: scaled(r).tolist())
        converter.out.shapes.append({"type": "mesh", "material": name, "vertices": corners[:, :3].tolist(),
                                     "triangles": triangles})
        converter._bounds(corners[:, :3])
        converter.emitters += 1
    elif prim.IsA(UsdLux.SphereLight):
        sphere = UsdLux.SphereLight(prim)
        own = float(sphere.GetRadiusAttr().Get(time))
        radius = own * float(np.linalg.norm(world[:3, :3], axis=0).mean())

        def scaled(r):  # the radiance as the sphere's emission
            return r / (4 * math.pi * (own * float(stage_axes.mean())) ** 2) if normalize and own > 0 else r
        if sphere.GetTreatAsPointAttr().Get(time) or radius <= 0:
            # a point of the same power: intensity = radiance x the area of its disc
            def intensity(r):
                return (scaled(r) * math.pi * max(radius, 0.0) ** 2).tolist()
            converter.out.lights.append({"type": "point", "position": place["position"],
                                         "intensity": intensity(radiance)})
            _keyed(converter, light, converter.out.lights[-1], "intensity", intensity)
            if radius <= 0:
                converter._warn(f"{prim.GetPath()}: a sphere light of no radius gives no light")
        else:
            converter.out.materials[name] = {"reflectance": 0.0, "emission": scaled(radiance).tolist()}
            _keyed(converter, light, converter.out.materials[name], "emission", lambda r: scaled(r).tolist())
            converter.out.shapes.append({"type": "sphere", "material": name, "center": place["position"],
                                         "radius": radius})
            converter.emitters += 1
    elif prim.IsA(UsdLux.DistantLight):
        angle = float(UsdLux.DistantLight(prim).GetAngleAttr().Get(time) or 0.0)
        # radiance over the sun's disc of `angle` degrees: irradiance = radiance x its solid angle
        half = math.radians(angle / 2)
        solid = 2 * math.pi * (1 - math.cos(half)) if half > 0 else 1.0

        def irradiance(r):
            return (r if normalize or half <= 0 else r * solid).tolist()
        converter.out.lights.append({"type": "sun", "direction": place["direction"], "irradiance": irradiance(radiance)})
        _keyed(converter, light, converter.out.lights[-1], "irradiance", irradiance)
    elif prim.GetTypeName() in ("DomeLight", "DomeLight_1"):
        if any(entry.get("type") == "environment" for entry in converter.out.lights):
            converter._warn(f"{prim.GetPath()}: a second dome light is not rendered (the first lights the scene)")
            return
        attribute = prim.GetAttribute("inputs:texture:file")
        texture = attribute.Get(time)
        entry = {"type": "environment", "radiance": radiance.tolist()}
        if texture is not None and texture.path:
            file = converter.file_name(texture, attribute)
            if file is None:
                converter._warn(f"{prim.GetPath()}: dome texture {texture.path} is not a file under the stage's "
                                f"folder (nor one USD's resolver can open in its package); a uniform sky instead")
            else:
                entry = {"type": "environment", "file": file, "scale": float(radiance.mean())}
                if not np.allclose(colour, colour.mean()):
                    converter._warn(f"{prim.GetPath()}: the dome's colour tint is read as its mean")
                rotation = _dome_rotation(converter, prim, world)
                if rotation is None:
                    converter._warn(f"{prim.GetPath()}: a mirrored or sheared dome is rendered unrotated")
                elif not np.allclose(rotation, np.eye(3), atol=1e-12):
                    matrix = np.eye(4)
                    matrix[:3, :3] = rotation
                    entry["transform"] = {"matrix": matrix.tolist()}
        converter.out.lights.append(entry)
        if "file" in entry:
            _keyed(converter, light, entry, "scale", lambda r: float(r.mean()))
        else:
            _keyed(converter, light, entry, "radiance", lambda r: r.tolist())
    else:
        converter._warn(f"{prim.GetPath()}: {prim.GetTypeName()} is not rendered")


def _radiance(light, time) -> np.ndarray:
    """`intensity` x 2^`exposure` x `color` of a UsdLux light at `time`."""
    colour = np.array(light.GetColorAttr().Get(time) or (1, 1, 1), float)
    return colour * float(light.GetIntensityAttr().Get(time) or 0.0) * 2.0 ** float(light.GetExposureAttr().Get(time) or 0.0)


def _keyed(converter, light, holder: dict, field: str, value) -> None:
    """Key `field` of `holder` (the document's light or the emitting shape's material) at
    every whole time code of a shot where the light's color, intensity or exposure is
    time-sampled: `value` of each code's radiance (farm.scene.animation's keyframes)."""
    from pxr import Usd

    motion = converter.motion
    if not motion.codes or not any(attribute.ValueMightBeTimeVarying() for attribute in (
            light.GetColorAttr(), light.GetIntensityAttr(), light.GetExposureAttr())):
        return
    holder["keyframes"] = [{"time": time, field: value(_radiance(light, Usd.TimeCode(code)))}
                           for code, time in zip(motion.codes, motion.times)]


def _dome_rotation(converter, prim, world: np.ndarray) -> np.ndarray | None:
    """The rotation taking the dome's latitude-longitude map into the document. USD's map is
    OpenEXR's (longitude 0 along +z, +pi/2 along +x, the top row at +y), which is the farm's
    (farm/kernels/light.h env_uv), in the dome's own space; a DomeLight_1 whose poleAxis is Z,
    or `scene` on a Z-up stage, has its pole turned from +y to +z first. None where the
    dome's matrix is not a rotation and a scale."""
    from pxr import UsdGeom

    linear = world[:3, :3] / np.linalg.norm(world[:3, :3], axis=0)
    if np.linalg.det(linear) < 0 or not np.allclose(linear.T @ linear, np.eye(3), atol=1e-6):
        return None
    if prim.GetTypeName() == "DomeLight_1":
        pole = str(prim.GetAttribute("poleAxis").Get() or "scene")
        if pole == "Z" or (pole == "scene" and UsdGeom.GetStageUpAxis(converter.stage) == UsdGeom.Tokens.z):
            linear = linear @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # +y to +z, about x
    u, _, vt = np.linalg.svd(linear)  # exactly orthonormal, for the parser's check
    return u @ vt
