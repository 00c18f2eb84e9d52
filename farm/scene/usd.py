"""USD stages (.usd, .usda, .usdc, .usdz) turned into the farm's scene format (issue 32).

Pixar's `usd-core` composes the stage (layers, references, payloads loaded, the authored
variant selections) and resolves every value; this module walks what it composed, on the
client only (workers never read USD), into ordinary scene-document entries, as
farm.scene.gltf does for glTF: meshes in one binary file made beside the document (object
space, normals and uvs per corner; MESH_FILE), UsdPreviewSurface materials, the first camera (or the one `convert` names), UsdLux lights.
The stage's `metersPerUnit` and `upAxis` are applied: the document is in metres, +y up.

What is converted, and what is named in a warning instead: docs/scenes.md, "USD stages".
Materials: farm.scene.usd_materials; the camera and lights: farm.scene.usd_lights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from farm import defaults
from farm.exceptions import SceneError
from farm.protocol.assets import write_generated
from farm.scene import usd_instancer, usd_lights, usd_shapes
from farm.scene.usd_shapes import MESH_FILE, MeshFile
from farm.scene.usd_time import StageMotion, flattened, matrix_of
from farm.scene.usd_materials import UsdMaterials, bound
from farm.scene.gltf import Converted

USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")
IMPLICIT = ("Cylinder", "Cone", "Capsule", "Plane")  # tessellated: farm.scene.usd_shapes

def convert(path: Path, folder: Path, transform: np.ndarray, prefix: str, camera: str | None = None) -> Converted:
    """Convert the stage at `path` (a file under the scene's `folder`, where its textures
    must lie too); `transform` places it (after its own units and axis); names get `prefix`;
    `camera` picks a UsdGeomCamera by its prim path, else the first."""
    try:
        from pxr import Usd
    except ImportError:
        raise SceneError(f"{path.name}: reading USD needs usd-core: pip install 'farm[usd]'") from None
    try:
        stage = Usd.Stage.Open(str(path), Usd.Stage.LoadAll)
        if stage is None:
            raise SceneError(f"{path.name}: not a USD stage usd-core can open")
        return _Converter(stage, path, folder, prefix).run(transform, camera)
    except SceneError:
        raise
    except Exception as exc:  # pxr raises its own Tf errors for a malformed stage
        first = " ".join(str(exc).split())[:300]
        raise SceneError(f"{path.name}: cannot read the USD stage ({type(exc).__name__}: {first})") from None


def stage_frame(stage, name: str) -> np.ndarray:
    """The matrix from the stage's space to the document's: its units to metres, its up
    axis to +y (a Z-up stage turned -90 degrees about x)."""
    from pxr import UsdGeom

    scale = float(UsdGeom.GetStageMetersPerUnit(stage))
    if not (math.isfinite(scale) and scale > 0):
        raise SceneError(f"{name}: metersPerUnit is {scale}: not a positive number")
    frame = np.diag([scale, scale, scale, 1.0])
    if UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z:
        frame = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float) @ frame
    return frame


# The stage's meshes travel as one binary file of accessors (farm.scene.mesh.load_binary),
# made on the client and kept as a generated file (farm.protocol.assets.GENERATED): a
# document of inline meshes would pass FARM_MAX_SCENE_BYTES at about 59,000 triangles.
class _Converter(UsdMaterials):
    def __init__(self, stage, path: Path, folder: Path, prefix: str):
        from pxr import Usd, UsdGeom

        self.stage, self.folder, self.prefix = stage, folder, prefix
        self.name = path.name
        # values at the stage's start, else each attribute's first time sample (a cache of
        # Houdini or Maya writes samples only); --frames does not yet read it frame by frame
        self.time = Usd.TimeCode(stage.GetStartTimeCode()) if stage.HasAuthoredTimeCodeRange() \
            else Usd.TimeCode.EarliestTime()
        self.xforms = UsdGeom.XformCache(self.time)
        self.out = Converted()
        self.material_names: dict[str, str] = {}
        self.packaged: dict[str, str | None] = {}  # a package's files read out (UsdMaterials._packaged)
        self.second_uv: dict[str, str] = {}  # material name -> the primvar of its second uv set
        self.subdivided: list[str] = []  # meshes whose subdivision scheme is not none
        self.meshes = MeshFile(self.name)
        self.motion = StageMotion(self)
        self.emitters = 0  # lights made shapes (rect, disk, sphere)

    def _warn(self, message: str) -> None:
        text = f"{self.name}: {message}"
        if text not in self.out.warnings:
            self.out.warnings.append(text)

    def run(self, transform: np.ndarray, camera: str | None) -> Converted:
        from pxr import Usd, UsdGeom, UsdLux

        self.frame = transform @ stage_frame(self.stage, self.name)
        cameras = []
        walk = iter(Usd.PrimRange(self.stage.GetPseudoRoot(), Usd.TraverseInstanceProxies()))
        for prim in walk:
            if self.hidden(prim):
                walk.PruneChildren()
                continue
            local = matrix_of(self.xforms.GetLocalToWorldTransform(prim))
            moving = self.motion.moves(prim)
            made = len(self.out.shapes)
            if prim.IsA(UsdGeom.PointInstancer):  # its prototypes are its children: not drawn where they stand
                walk.PruneChildren()
                usd_instancer.instances(self, UsdGeom.PointInstancer(prim), self.frame @ local, moving)
                self.motion.show(prim, self.out.shapes[made:])
                continue
            world = self.frame @ local
            if flattened(world):  # a moving prim is made where it first has a size (hidden until then)
                world = self.motion.unflattened(prim) if moving else None
            if world is None:
                if prim.IsA(UsdGeom.Gprim) or prim.IsA(UsdGeom.Xform):
                    self._warn(f"{prim.GetPath()}: scaled to nothing; left out")
                walk.PruneChildren()
                continue
            if self.geometry(prim, world):
                pass
            elif prim.IsA(UsdGeom.Camera):
                cameras.append((prim, world))
            elif prim.HasAPI(UsdLux.LightAPI) or prim.IsA(UsdLux.BoundableLightBase) or \
                    prim.IsA(UsdLux.NonboundableLightBase):
                lights = len(self.out.lights)
                usd_lights.light(self, prim, world, local)
                if not self.motion.shown_at_start(prim, self.out.lights[lights:]):
                    del self.out.lights[lights:]
                for light in self.out.lights[lights:] if moving else []:  # placed and aimed by its node
                    if light["type"] in ("point", "sun"):
                        light["rig"] = self.motion.node(prim)
                    elif light["type"] == "environment":
                        if "file" in light:  # only a map shows a turn
                            self.motion.turn(prim, world, light)
                    else:
                        self._warn(f"{prim.GetPath()}: a moving {prim.GetTypeName()} stays where it is at the start")
            elif prim.IsA(UsdGeom.Gprim):
                self._warn(f"{prim.GetPath()}: {prim.GetTypeName()} is not rendered")
            if moving and len(self.out.shapes) > made:  # placed at each frame's moment (farm.scene.usd_time)
                self.motion.attach(prim, world, self.out.shapes[made:])
            self.motion.show(prim, self.out.shapes[made:])
        chosen = [c for c in cameras if camera is None or str(c[0].GetPath()) == camera]
        self.out.cameras = [str(c[0].GetPath()) for c in cameras]
        if chosen:
            usd_lights.camera(self, UsdGeom.Camera(chosen[0][0]), chosen[0][1])
            if self.out.camera is not None and self.motion.moving.get(chosen[0][0].GetPath()):
                self.out.camera["rig"] = self.motion.node(chosen[0][0])
            lens = UsdGeom.Camera(chosen[0][0])
            if self.out.camera is not None and self.motion.codes and any(attribute.ValueMightBeTimeVarying() for attribute in (
                    lens.GetFocalLengthAttr(), lens.GetFocusDistanceAttr(), lens.GetFStopAttr())):
                self.out.camera["keyframes"] = self.motion.lens_keys(lens, chosen[0][1])
        if self.subdivided:
            self._warn(f"{len(self.subdivided)} subdivision surface(s) rendered as their control cages "
                       f"(subdivisionScheme not none: {', '.join(self.subdivided[:3])}{', ...' * (len(self.subdivided) > 3)})")
        self.out.emitters = self.emitters
        if self.meshes.parts:  # the meshes' file, named by its content
            name = write_generated(self.meshes.data(), ".bin")
            for shape in self.out.shapes:
                if shape.get("file") == MESH_FILE:
                    shape["file"] = name
        return self.out

    # -- geometry ------------------------------------------------------------------------

    def geometry(self, prim, world: np.ndarray) -> bool:
        """The prim's shapes at `world`, if it is a surface the farm draws."""
        from pxr import UsdGeom

        if prim.IsA(UsdGeom.Mesh):
            self._mesh(UsdGeom.Mesh(prim), world)
        elif prim.IsA(UsdGeom.Sphere):
            self._sphere(UsdGeom.Sphere(prim), world)
        elif prim.IsA(UsdGeom.Cube):
            self._cube(UsdGeom.Cube(prim), world)
        elif prim.GetTypeName() in IMPLICIT:
            self._implicit(prim, world)
        else:
            return False
        return True

    def hidden(self, prim) -> bool:
        """Whether a walk leaves the prim and its children out: inactive or undefined, of the
        proxy or guide purpose, or invisible and never shown (purpose and visibility are
        inherited, so a pruned prim's children go with it; StageMotion.blinks)."""
        from pxr import UsdGeom

        if not prim.IsActive() or not prim.IsDefined():
            return True
        imageable = UsdGeom.Imageable(prim)
        if not imageable or imageable.GetPurposeAttr().Get() in (UsdGeom.Tokens.proxy, UsdGeom.Tokens.guide):
            return bool(imageable)
        return not self.motion.blinks(prim) and imageable.GetVisibilityAttr().Get(self.time) == UsdGeom.Tokens.invisible

    def _bounds(self, points: np.ndarray) -> None:
        if len(points):
            self.out.lower = np.minimum(self.out.lower, points.min(axis=0))
            self.out.upper = np.maximum(self.out.upper, points.max(axis=0))

    def box_bounds(self, lower, upper, matrix: np.ndarray) -> None:
        """Take the box [lower, upper] placed by `matrix` into the stage's bounds (its corners)."""
        corners = np.array([[x, y, z, 1.0] for x in (lower[0], upper[0]) for y in (lower[1], upper[1])
                            for z in (lower[2], upper[2])]) @ matrix.T
        self._bounds(corners[:, :3])

    def _mesh(self, mesh, world: np.ndarray) -> None:
        from pxr import UsdGeom

        path = mesh.GetPath()
        points = np.array(mesh.GetPointsAttr().Get(self.time) or [], float).reshape(-1, 3)
        counts = np.array(mesh.GetFaceVertexCountsAttr().Get(self.time) or [], np.int64)
        indices = np.array(mesh.GetFaceVertexIndicesAttr().Get(self.time) or [], np.int64)
        if not len(points) or not len(counts):
            if len(counts):
                self._warn(f"{path}: no points at the time read; left out")
            return
        if counts.min() < 0 or counts.sum() != len(indices) or (len(indices) and
                                                                  (indices.min() < 0 or indices.max() >= len(points))):
            raise SceneError(f"{self.name}: {path}: face counts and indices do not fit its {len(points)} points")
        if mesh.GetSubdivisionSchemeAttr().Get() not in (None, UsdGeom.Tokens.none):  # USD's default: catmullClark
            self.subdivided.append(str(path))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # the faces drawn: three corners at least (Hydra skips the others), and not holes
        drawn = counts >= 3
        holes = np.array(mesh.GetHoleIndicesAttr().Get(self.time) or [], np.int64)
        drawn[holes[(holes >= 0) & (holes < len(counts))]] = False
        if (counts < 3).any():
            self._warn(f"{path}: {int((counts < 3).sum())} face(s) of fewer than three corners left out")
        # fan triangles of every face drawn, in face order: corners (face-vertex positions) and faces
        fans = np.where(drawn, counts - 2, 0)
        if self.out.triangles + int(fans.sum()) > defaults.MAX_TRIANGLES:
            raise SceneError(f"{self.name}: more than {defaults.MAX_TRIANGLES:,} triangles (FARM_MAX_TRIANGLES)")
        faces = np.repeat(np.arange(len(counts)), fans)
        fan = np.arange(len(faces)) - np.repeat(np.cumsum(fans) - fans, fans) + 1  # 1, 2, ... within each face
        base = starts[faces]
        corners = np.stack([base, base + fan, base + fan + 1], axis=1)
        if not len(corners):
            return
        if mesh.GetOrientationAttr().Get() == UsdGeom.Tokens.leftHanded:
            corners = corners[:, ::-1]
        vertex = indices[corners]  # the point of each corner (a mirroring transform: the packer turns them)
        moved = (points @ world[:3, :3].T + world[:3, 3])[vertex].reshape(-1, 3)
        primvars = UsdGeom.PrimvarsAPI(mesh)
        normals_primvar = primvars.GetPrimvar("normals")  # it wins over `normals`, as USD says
        primvar = bool(normals_primvar and normals_primvar.HasAuthoredValue())
        normals = normals_primvar if primvar else mesh.GetNormalsAttr()

        def normals_at(time):  # each corner's normal at `time`, or None
            values = normals.ComputeFlattened(time) if primvar else normals.Get(time)
            interpolation = normals.GetInterpolation() if primvar else mesh.GetNormalsInterpolation()
            return self._corner_values(values, interpolation, corners, vertex, faces, len(points), 3,
                                       f"{path}.{'primvars:' * primvar}normals")
        shape_normals = normals_at(self.time)
        uvs = None
        st = primvars.GetPrimvar("st")
        if st and st.HasAuthoredValue():
            values = st.ComputeFlattened(self.time)
            uvs = self._corner_values(values, st.GetInterpolation(), corners, vertex, faces, len(points), 2,
                                      f"{path}.st")
        # faces by material: the GeomSubsets of the materialBind family, the rest the mesh's own
        material_of_face = np.full(len(counts), -1, np.int64)
        materials = [self._material(bound(mesh.GetPrim()), mesh.GetPrim())]
        for subset in UsdGeom.Subset.GetGeomSubsets(mesh, UsdGeom.Tokens.face, "materialBind"):
            chosen = np.array(subset.GetIndicesAttr().Get(self.time) or [], np.int64)
            chosen = chosen[(chosen >= 0) & (chosen < len(counts))]
            materials.append(self._material(bound(subset.GetPrim()), mesh.GetPrim()))
            material_of_face[chosen] = len(materials) - 2
        triangles_material = material_of_face[faces]
        second = sorted({self.second_uv[m] for m in materials if m in self.second_uv})
        uvs1 = None
        if second:
            if len(second) > 1:
                self._warn(f"{path}: its materials read uv sets {', '.join(second)}: only {second[0]!r} (one a mesh)")
            extra = primvars.GetPrimvar(second[0])
            if extra and extra.HasAuthoredValue():
                uvs1 = self._corner_values(extra.ComputeFlattened(self.time), extra.GetInterpolation(), corners,
                                           vertex, faces, len(points), 2, f"{path}.{second[0]}")
            else:
                self._warn(f"{path}: no primvar {second[0]!r} for its material's second uv set: `st` instead")
        # one block of the stage's mesh file per material: the same block for every instance
        # of one prototype, so the packer keeps its triangles once (farm.scene.instances)
        prim = mesh.GetPrim()
        block = str((prim.GetPrimInPrototype() if prim.IsInstanceProxy() else prim).GetPath())
        corner_points = points[vertex].reshape(-1, 3)
        blocks = []  # (its key, its corners' rows, its shape)
        for number, material in enumerate(materials):
            picked = np.nonzero(triangles_material == number - 1)[0]
            if not len(picked):
                continue
            rows = (picked[:, None] * 3 + np.arange(3)).reshape(-1)
            arrays = {"positions": corner_points[rows]}
            if shape_normals is not None:
                arrays["normals"] = shape_normals.reshape(-1, 3)[rows]
            if uvs is not None:  # stored as glTF's, v running down
                arrays["uvs"] = uvs.reshape(-1, 2)[rows] * [1.0, -1.0] + [0.0, 1.0]
            if uvs1 is not None:
                arrays["uvs1"] = uvs1.reshape(-1, 2)[rows] * [1.0, -1.0] + [0.0, 1.0]
            layout = self.meshes.block((block, number, second[0] if uvs1 is not None else None), arrays)
            shape = {"type": "mesh", "material": material, "file": MESH_FILE, "binary": layout,
                     "transform": {"matrix": world.tolist()}}
            blocks.append(((block, number), rows, shape))
            self.out.shapes.append(shape)  # both sides of it shade (the kernel's): doubleSided needs nothing
            self.out.triangles += len(picked)
        self.motion.deform(mesh, points, vertex, normals_at if shape_normals is not None else None, blocks)
        self._bounds(moved)

    def _implicit(self, prim, world: np.ndarray) -> None:
        """A Cylinder, Cone, Capsule or Plane as triangles (farm.scene.usd_shapes), one block
        of the mesh file for each size: every prim of one size shares it."""
        from pxr import UsdGeom

        kind = prim.GetTypeName()
        schema = getattr(UsdGeom, kind)(prim)
        axis = str(schema.GetAxisAttr().Get(self.time) or "Z")
        if kind == "Plane":
            size = (float(schema.GetWidthAttr().Get(self.time)), float(schema.GetLengthAttr().Get(self.time)))
        else:
            size = (float(schema.GetRadiusAttr().Get(self.time)), float(schema.GetHeightAttr().Get(self.time)))
        if not all(math.isfinite(v) and v >= 0 for v in size) or axis not in ("X", "Y", "Z"):
            self._warn(f"{prim.GetPath()}: a {kind} of size {size} along {axis!r} is not rendered")
            return
        corners, normals = getattr(usd_shapes, kind.lower())(*size, axis)
        if self.out.triangles + len(corners) > defaults.MAX_TRIANGLES:
            raise SceneError(f"{self.name}: more than {defaults.MAX_TRIANGLES:,} triangles (FARM_MAX_TRIANGLES)")
        layout = self.meshes.block((kind, size, axis), {"positions": corners.reshape(-1, 3),
                                                        "normals": normals.reshape(-1, 3)})
        self.out.shapes.append({"type": "mesh", "material": self._material(bound(prim), prim), "file": MESH_FILE,
                                "binary": layout, "transform": {"matrix": world.tolist()}})
        self.out.triangles += len(corners)
        self._bounds(corners.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3])

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
        scale = self._uniform_scale(world, sphere.GetPath())
        if scale is None:
            return
        radius = float(sphere.GetRadiusAttr().Get(self.time)) * scale
        centre = world[:3, 3]
        material = self._material(bound(sphere.GetPrim()),
                                  sphere.GetPrim())
        self.out.shapes.append({"type": "sphere", "material": material, "center": centre.tolist(), "radius": radius})
        self._bounds(np.array([centre - radius, centre + radius]))

    def _cube(self, cube, world: np.ndarray) -> None:
        half = float(cube.GetSizeAttr().Get(self.time)) / 2  # the farm's box is [-1, 1] on each axis
        placed = world @ np.diag([half, half, half, 1.0])
        material = self._material(bound(cube.GetPrim()),
                                  cube.GetPrim())
        self.out.shapes.append({"type": "box", "material": material, "transform": {"matrix": placed.tolist()}})
        self.box_bounds((-1, -1, -1), (1, 1, 1), placed)
