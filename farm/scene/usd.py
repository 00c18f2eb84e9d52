"""USD stages (.usd, .usda, .usdc, .usdz) turned into the farm's scene format (issue 32).

Pixar's `usd-core` composes the stage (layers, references, payloads loaded, the authored
variant selections) and resolves every value; this module walks what it composed, on the
client only (workers never read USD), into ordinary scene-document entries, as
farm.scene.gltf does for glTF: meshes inline (world-space triangles, normals and uvs per
corner), UsdPreviewSurface materials, the first camera (or `--camera`'s), UsdLux lights.
The stage's `metersPerUnit` and `upAxis` are applied: the document is in metres, +y up.

What is converted: UsdGeomMesh (any polygons, fan-triangulated; vertex, varying,
face-varying and uniform normals and `st`; `orientation`; GeomSubsets of the
`materialBind` family with their own materials), UsdGeomSphere and UsdGeomCube, the
xform stack (UsdGeomXformCache), the `render` purpose (`proxy` and `guide` prims are left
out), scenegraph instances (as copies: their proxies are walked); UsdPreviewSurface's
diffuseColor, emissiveColor, metallic, roughness and ior as constants or from a
UsdUVTexture file (with its `scale` as the factor); UsdGeomCamera's focal length, vertical
aperture, and depth of field from fStop and focusDistance; RectLight and DiskLight as
emissive shapes, SphereLight (a sphere, or a point where it has no radius), DistantLight
(a sun) and DomeLight (a uniform sky, or its texture), with intensity, exposure, colour
and normalize. What is not is named in one warning each: subdivision (rendered as its
control cage), other gprims, other shader networks, texture wrap modes and biases,
point instancers (their prototypes are not placed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from farm.exceptions import SceneError
from farm.scene import usd_lights
from farm.scene.gltf import Converted

USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")

PREVIEW = "UsdPreviewSurface"


def convert(path: Path, folder: Path, transform: np.ndarray, prefix: str, camera: str | None = None) -> Converted:
    """Convert the stage at `path` (a file under the scene's `folder`, where its textures
    must lie too); `transform` places it (after its own units and axis); names get `prefix`;
    `camera` picks a UsdGeomCamera by its prim path, else the first."""
    try:
        from pxr import Usd
    except ImportError:
        raise SceneError(f"{path.name}: reading USD needs usd-core: pip install 'farm[usd]'") from None
    stage = Usd.Stage.Open(str(path), Usd.Stage.LoadAll)
    if stage is None:
        raise SceneError(f"{path.name}: not a USD stage usd-core can open")
    try:
        return _Converter(stage, path, folder, prefix).run(transform, camera)
    except SceneError:
        raise
    except Exception as exc:  # pxr raises its own Tf errors for a malformed stage
        raise SceneError(f"{path.name}: cannot convert the USD stage ({type(exc).__name__}: {exc})") from None


def stage_frame(stage) -> np.ndarray:
    """The matrix from the stage's space to the document's: its units to metres, its up
    axis to +y (a Z-up stage turned -90 degrees about x)."""
    from pxr import UsdGeom

    scale = float(UsdGeom.GetStageMetersPerUnit(stage))
    frame = np.diag([scale, scale, scale, 1.0])
    if UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z:
        frame = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float) @ frame
    return frame


def _matrix(gf) -> np.ndarray:
    """A Gf.Matrix4d (points as rows, p * M) as a column-vector matrix (M p)."""
    return np.array(gf, float).T


class _Converter:
    def __init__(self, stage, path: Path, folder: Path, prefix: str):
        from pxr import Usd, UsdGeom

        self.stage, self.path, self.folder, self.prefix = stage, path, folder, prefix
        self.name = path.name
        self.time = Usd.TimeCode.Default()
        self.xforms = UsdGeom.XformCache(self.time)
        self.out = Converted()
        self.material_names: dict[str, str] = {}
        self.subdivided: list[str] = []  # meshes whose subdivision scheme is not none
        self.emitters = 0  # lights made shapes (rect, disk, sphere)

    def _warn(self, message: str) -> None:
        text = f"{self.name}: {message}"
        if text not in self.out.warnings:
            self.out.warnings.append(text)

    def run(self, transform: np.ndarray, camera: str | None) -> Converted:
        from pxr import Usd, UsdGeom, UsdLux

        self.frame = transform @ stage_frame(self.stage)
        self.meters = float(UsdGeom.GetStageMetersPerUnit(self.stage))
        cameras = []
        for prim in Usd.PrimRange(self.stage.GetPseudoRoot(), Usd.TraverseInstanceProxies()):
            if not prim.IsActive() or not prim.IsDefined():
                continue
            imageable = UsdGeom.Imageable(prim)
            if imageable and imageable.ComputePurpose() in (UsdGeom.Tokens.proxy, UsdGeom.Tokens.guide):
                continue
            if imageable and imageable.ComputeVisibility(self.time) == UsdGeom.Tokens.invisible:
                continue
            world = self.frame @ _matrix(self.xforms.GetLocalToWorldTransform(prim))
            if prim.IsA(UsdGeom.Mesh):
                self._mesh(UsdGeom.Mesh(prim), world)
            elif prim.IsA(UsdGeom.Sphere):
                self._sphere(UsdGeom.Sphere(prim), world)
            elif prim.IsA(UsdGeom.Cube):
                self._cube(UsdGeom.Cube(prim), world)
            elif prim.IsA(UsdGeom.Camera):
                cameras.append((prim, world))
            elif prim.HasAPI(UsdLux.LightAPI) or prim.IsA(UsdLux.BoundableLightBase) or \
                    prim.IsA(UsdLux.NonboundableLightBase):
                usd_lights.light(self, prim, world)
            elif prim.IsA(UsdGeom.PointInstancer):
                self._warn(f"{prim.GetPath()}: point instancers are not rendered yet (their prototypes are not placed)")
            elif prim.IsA(UsdGeom.Gprim):
                self._warn(f"{prim.GetPath()}: {prim.GetTypeName()} is not rendered")
        chosen = [c for c in cameras if camera is None or str(c[0].GetPath()) == camera]
        if camera is not None and not chosen:
            raise SceneError(f"{self.name}: no camera {camera}; its cameras: "
                             f"{', '.join(str(c[0].GetPath()) for c in cameras) or 'none'}")
        if chosen:
            usd_lights.camera(self, UsdGeom.Camera(chosen[0][0]), chosen[0][1])
        if self.subdivided:
            self._warn(f"{len(self.subdivided)} subdivision surface(s) rendered as their control cages "
                       f"(subdivisionScheme not none: {', '.join(self.subdivided[:3])}{', ...' * (len(self.subdivided) > 3)})")
        self.out.emitters = self.emitters
        return self.out

    # -- geometry ------------------------------------------------------------------------

    def _bounds(self, points: np.ndarray) -> None:
        if len(points):
            self.out.lower = np.minimum(self.out.lower, points.min(axis=0))
            self.out.upper = np.maximum(self.out.upper, points.max(axis=0))

    def _mesh(self, mesh, world: np.ndarray) -> None:
        from pxr import UsdGeom, UsdShade

        path = mesh.GetPath()
        points = np.array(mesh.GetPointsAttr().Get(self.time) or [], float).reshape(-1, 3)
        counts = np.array(mesh.GetFaceVertexCountsAttr().Get(self.time) or [], np.int64)
        indices = np.array(mesh.GetFaceVertexIndicesAttr().Get(self.time) or [], np.int64)
        if not len(points) or not len(counts):
            return
        if counts.min() < 3 or counts.sum() != len(indices) or indices.min() < 0 or indices.max() >= len(points):
            raise SceneError(f"{self.name}: {path}: face counts and indices do not fit its {len(points)} points")
        if mesh.GetSubdivisionSchemeAttr().Get() not in (None, UsdGeom.Tokens.none):  # USD's default: catmullClark
            self.subdivided.append(str(path))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # fan triangles of every face, as corners (face-vertex positions) and their faces
        corners, faces = [], []
        for fan in range(1, int(counts.max()) - 1):
            has = counts > fan + 1
            base = starts[has]
            corners.append(np.stack([base, base + fan, base + fan + 1], axis=1))
            faces.append(np.nonzero(has)[0])
        corners, faces = np.concatenate(corners), np.concatenate(faces)
        order = np.argsort(faces, kind="stable")  # each face's triangles together, faces in order
        corners, faces = corners[order], faces[order]
        if mesh.GetOrientationAttr().Get() == UsdGeom.Tokens.leftHanded:
            corners = corners[:, ::-1]
        if np.linalg.det(world[:3, :3]) < 0:  # a mirroring transform keeps front sides in front
            corners = corners[:, ::-1]
        vertex = indices[corners]  # the point of each corner
        moved = (points @ world[:3, :3].T + world[:3, 3])[vertex].reshape(-1, 3)
        shape_normals = self._corner_values(mesh.GetNormalsAttr().Get(self.time), mesh.GetNormalsInterpolation(),
                                            corners, vertex, faces, len(points), 3, f"{path}.normals")
        primvars = UsdGeom.PrimvarsAPI(mesh)
        uvs = None
        st = primvars.GetPrimvar("st")
        if st and st.HasAuthoredValue():
            values = st.ComputeFlattened(self.time)
            uvs = self._corner_values(values, st.GetInterpolation(), corners, vertex, faces, len(points), 2,
                                      f"{path}.st")
        normals = None
        if shape_normals is not None:
            normal_matrix = np.linalg.inv(world[:3, :3]).T
            normals = (shape_normals @ normal_matrix.T)
            lengths = np.linalg.norm(normals, axis=1, keepdims=True)
            normals = np.where(lengths > 0, normals / np.where(lengths > 0, lengths, 1), 0.0)
        # faces by material: the GeomSubsets of the materialBind family, the rest the mesh's own
        material_of_face = np.full(len(counts), -1, np.int64)
        materials = [self._material(UsdShade.MaterialBindingAPI(mesh.GetPrim()).ComputeBoundMaterial()[0],
                                    mesh.GetPrim())]
        for subset in UsdGeom.Subset.GetGeomSubsets(mesh, UsdGeom.Tokens.face, "materialBind"):
            bound = UsdShade.MaterialBindingAPI(subset.GetPrim()).ComputeBoundMaterial()[0]
            chosen = np.array(subset.GetIndicesAttr().Get(self.time) or [], np.int64)
            chosen = chosen[(chosen >= 0) & (chosen < len(counts))]
            materials.append(self._material(bound, mesh.GetPrim()))
            material_of_face[chosen] = len(materials) - 2
        triangles_material = material_of_face[faces]
        double = bool(mesh.GetDoubleSidedAttr().Get())
        for number, material in enumerate(materials):
            picked = np.nonzero(triangles_material == number - 1)[0]
            if not len(picked):
                continue
            rows = (picked[:, None] * 3 + np.arange(3)).reshape(-1)
            shape = {"type": "mesh", "material": material, "vertices": moved[rows].tolist(),
                     "triangles": np.arange(len(rows)).reshape(-1, 3).tolist()}
            if normals is not None:
                shape["normals"] = normals.reshape(-1, 3)[rows].tolist()
            if uvs is not None:
                shape["uvs"] = uvs.reshape(-1, 2)[rows].tolist()
            self.out.shapes.append(shape)
            if double:  # the back as a front of its own: the kernel shades the front side
                back = dict(shape, triangles=[t[::-1] for t in shape["triangles"]])
                if "normals" in back:
                    back["normals"] = (-np.array(back["normals"])).tolist()
                self.out.shapes.append(back)
            self.out.triangles += len(picked)
        self._bounds(moved)

    def _corner_values(self, values, interpolation, corners, vertex, faces, point_count: int, width: int,
                       where: str) -> np.ndarray | None:
        """Per-corner values (n, 3, width) of a primitive's `values` as its interpolation says."""
        if values is None or len(values) == 0:
            return None
        data = np.array(values, float).reshape(-1, width)
        if interpolation in ("vertex", "varying"):
            if len(data) != point_count:
                raise SceneError(f"{self.name}: {where}: {len(data)} values for {point_count} points")
            return data[vertex]
        if interpolation == "faceVarying":
            if len(data) <= corners.max():
                raise SceneError(f"{self.name}: {where}: {len(data)} face-varying values, too few")
            return data[corners]
        if interpolation == "uniform":
            if len(data) <= faces.max():
                raise SceneError(f"{self.name}: {where}: {len(data)} uniform values, too few")
            return np.repeat(data[faces][:, None, :], 3, axis=1)
        if interpolation == "constant":
            return np.broadcast_to(data[0], (len(corners), 3, width)).copy()
        self._warn(f"{where}: interpolation {interpolation!r} is not read")
        return None

    def _uniform_scale(self, world: np.ndarray, path) -> float | None:
        scales = np.linalg.norm(world[:3, :3], axis=0)
        if not np.allclose(scales, scales[0], rtol=1e-6):
            self._warn(f"{path}: a sphere scaled unevenly is not rendered")
            return None
        return float(scales[0])

    def _sphere(self, sphere, world: np.ndarray) -> None:
        from pxr import UsdShade

        scale = self._uniform_scale(world, sphere.GetPath())
        if scale is None:
            return
        radius = float(sphere.GetRadiusAttr().Get(self.time)) * scale
        centre = world[:3, 3]
        material = self._material(UsdShade.MaterialBindingAPI(sphere.GetPrim()).ComputeBoundMaterial()[0],
                                  sphere.GetPrim())
        self.out.shapes.append({"type": "sphere", "material": material, "center": centre.tolist(), "radius": radius})
        self._bounds(np.array([centre - radius, centre + radius]))

    def _cube(self, cube, world: np.ndarray) -> None:
        from pxr import UsdShade

        half = float(cube.GetSizeAttr().Get(self.time)) / 2  # the farm's box is [-1, 1] on each axis
        placed = world @ np.diag([half, half, half, 1.0])
        material = self._material(UsdShade.MaterialBindingAPI(cube.GetPrim()).ComputeBoundMaterial()[0],
                                  cube.GetPrim())
        self.out.shapes.append({"type": "box", "material": material, "transform": {"matrix": placed.tolist()}})
        corners = np.array([[x, y, z, 1.0] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) @ placed.T
        self._bounds(corners[:, :3])

    # -- materials -----------------------------------------------------------------------

    def _material(self, material, prim=None) -> str:
        """The document's name of a bound UsdShade material; where none is, a diffuse of the
        prim's displayColor (USD's fallback look), else of 0.18 grey."""
        from pxr import UsdGeom

        key = str(material.GetPath()) if material else ""
        if not key:
            colour = UsdGeom.Gprim(prim).GetDisplayColorAttr().Get(self.time) if prim is not None else None
            colour = [float(c) for c in colour[0]] if colour else [0.18, 0.18, 0.18]
            key = f"displayColor{colour}"
        if key in self.material_names:
            return self.material_names[key]
        name = f"{self.prefix}{key}"
        self.material_names[key] = name
        self.out.materials[name] = self._preview(material) if material else {"reflectance": colour}
        return name

    def _preview(self, material) -> dict:
        surface = material.ComputeSurfaceSource()[0]
        if not surface or surface.GetIdAttr().Get() != PREVIEW:
            found = surface.GetIdAttr().Get() if surface else "none"
            self._warn(f"{material.GetPath()}: surface shader {found} is not a {PREVIEW}; grey diffuse instead")
            return {"reflectance": 0.5}
        entry: dict = {"type": "principled"}
        for usd_name, farm_name, default in (("diffuseColor", "base_color", (0.18, 0.18, 0.18)),
                                             ("metallic", "metallic", 0.0), ("roughness", "roughness", 0.5),
                                             ("ior", "ior", 1.5), ("emissiveColor", "emission", None)):
            value = self._input(surface, usd_name, default, f"{material.GetPath()}.{usd_name}")
            if value is not None:
                entry[farm_name] = value
        if entry.get("emission") in ([0.0, 0.0, 0.0], 0.0):
            del entry["emission"]
        for other in ("opacity", "clearcoat", "normal", "specularColor", "displacement", "occlusion"):
            source = surface.GetInput(other)
            if source and (source.HasConnectedSource() or source.Get() not in (None, 1.0 if other == "opacity" else 0.0)):
                self._warn(f"{material.GetPath()}: {other} is not rendered yet")
        return entry

    def _input(self, shader, name: str, default, where: str):
        """A UsdPreviewSurface input as the document's value: a constant, or a texture
        (UsdUVTexture's file, its `scale` the factor)."""
        from pxr import UsdShade

        source = shader.GetInput(name)
        if not source:
            return _plain(default)
        if source.HasConnectedSource():
            connected, output, _ = source.GetConnectedSource()
            texture = UsdShade.Shader(connected.GetPrim())
            if texture.GetIdAttr().Get() != "UsdUVTexture":
                self._warn(f"{where}: a {texture.GetIdAttr().Get()} network is not rendered; its default instead")
                return _plain(default)
            return self._texture(texture, str(output), where, default)
        value = source.Get(self.time)
        return _plain(default if value is None else value)

    def _texture(self, texture, output: str, where: str, default):
        asset = texture.GetInput("file").Get() if texture.GetInput("file") else None
        resolved = Path(asset.resolvedPath) if asset is not None and asset.resolvedPath else None
        try:
            name = resolved.resolve().relative_to(self.folder.resolve()).as_posix() if resolved else None
        except ValueError:
            name = None
        if name is None:
            self._warn(f"{where}: texture {asset.path if asset else '(none)'} is not a file under the stage's "
                       f"folder; its default instead")
            return _plain(default)
        colorspace = texture.GetInput("sourceColorSpace").Get() if texture.GetInput("sourceColorSpace") else None
        key = f"{self.prefix}{texture.GetPath()}"
        self.out.textures[key] = {"type": "image", "file": name,
                                  "colorspace": {"sRGB": "srgb", "raw": "linear"}.get(str(colorspace), "auto")}
        value: dict = {"texture": key}
        if output in ("r", "g", "b", "a"):
            value["channel"] = output
        scale = texture.GetInput("scale").Get() if texture.GetInput("scale") else None
        if scale is not None and tuple(scale) != (1.0, 1.0, 1.0, 1.0):
            value["factor"] = float(scale[0]) if "channel" in value else [float(s) for s in tuple(scale)[:3]]
        return value

def _plain(value):
    """A USD value (Gf vector, float) as the document's number or list."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return [float(v) for v in value]
