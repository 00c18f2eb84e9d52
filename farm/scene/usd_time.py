"""A USD stage's time-sampled transforms as the document's rig (farm.scene.rig), so that
`submit --frames` renders each frame with the stage's prims where USD puts them then.

A stage's time code T is the document's T / timeCodesPerSecond seconds, so `--frames F
--fps N` shows time code F where N is the stage's rate. A prim whose transform (or an
ancestor's) is time-varying gets a rig node under one still node holding the stage's frame
(its units and up axis, and the include's transform): translation, rotation and scale
keyed at every whole time code of the stage's range and at its start and end, each taken
from USD's own local-to-world matrix there. A frame at a whole time code is the stage's pose
exactly; between keys (a shutter's samples) the rig interpolates linearly, rotations along
the shorter arc, where USD interpolates each xformOp's values. Channels that do not change
are left out. A sheared matrix (a non-uniform scale under a rotated child) has no
translation-rotation-scale form: its keys keep the nearest rotation, said in a warning.
A mesh whose points are time-sampled deforms: its corners' offsets at every key go into
the stage's mesh file as a morph sequence (StageMotion.deform, farm.scene.animation).
"""

from __future__ import annotations

import math

import numpy as np

from farm.exceptions import SceneError
from farm.scene.matrix import singular
from farm.scene.rig import MAX_KEYS


class StageMotion:
    """Which prims of `converter`'s stage move, and their rig nodes."""

    def __init__(self, converter):
        stage = converter.stage
        self.converter = converter
        self.moving: dict = {}  # prim path -> whether its world transform varies with time
        self.blinking: dict = {}  # prim path -> whether its visibility (or an ancestor's) varies with time
        self.nodes: dict = {}  # prim path -> its rig node
        self.root: int | None = None
        self.codes: list[float] = []
        self.times: list[float] = []  # each code's moment in the document, in seconds
        if stage.HasAuthoredTimeCodeRange():
            start, end = float(stage.GetStartTimeCode()), float(stage.GetEndTimeCode())
            self.rate = float(stage.GetTimeCodesPerSecond()) or 24.0
            if not (math.isfinite(start) and math.isfinite(end) and end - start < MAX_KEYS):
                raise SceneError(f"{converter.name}: a time range of {start:g} to {end:g} has more than "
                                 f"{MAX_KEYS:,} time codes (keys a moving prim may have)")
            self.codes = sorted({start, end} | {float(c) for c in range(math.ceil(start), math.floor(end) + 1)})
            self.times = [code / self.rate for code in self.codes]

    def moves(self, prim) -> bool:
        """Whether the prim's world transform varies (call in the walk's order: parents first)."""
        from pxr import UsdGeom

        path = prim.GetPath()
        moving = bool(self.codes) and (self.moving.get(path.GetParentPath(), False) or (
            prim.IsA(UsdGeom.Xformable) and UsdGeom.Xformable(prim).TransformMightBeTimeVarying()))
        self.moving[path] = moving
        return moving

    def blinks(self, prim) -> bool:
        """Whether the prim's visibility (or an ancestor's) is time-sampled (call in the walk's
        order: parents first); such a prim is walked even where it starts invisible."""
        from pxr import UsdGeom

        path = prim.GetPath()
        blinking = bool(self.codes) and (self.blinking.get(path.GetParentPath(), False) or (
            prim.IsA(UsdGeom.Imageable) and UsdGeom.Imageable(prim).GetVisibilityAttr().ValueMightBeTimeVarying()))
        self.blinking[path] = blinking
        return blinking

    def shown_at_start(self, prim, lights: list[dict]) -> bool:
        """Whether the prim's document `lights` are kept: those of a prim whose visibility is
        time-sampled as it is at the stage's start (said in a warning; a light made a shape,
        a rect, disk or sphere, is shown and hidden as a shape is: `show`)."""
        from pxr import UsdGeom

        if not lights or not self.blinking.get(prim.GetPath()):
            return True
        self.converter._warn(f"{prim.GetPath()}: a light's time-sampled visibility is read at the start")
        return UsdGeom.Imageable(prim).ComputeVisibility(self.converter.time) != UsdGeom.Tokens.invisible

    def show(self, prim, shapes: list[dict]) -> None:
        """Key the prim's visibility (USD's, inherited) on its `shapes` at every key, where it
        changes (a frame hides them where it says invisible: farm.scene.animation)."""
        from pxr import Usd, UsdGeom

        if not shapes or not self.blinking.get(prim.GetPath()):
            return
        imageable = UsdGeom.Imageable(prim)
        visible = [imageable.ComputeVisibility(Usd.TimeCode(code)) != UsdGeom.Tokens.invisible for code in self.codes]
        if not all(visible):
            for shape in shapes:
                shape["visibility"] = {"times": self.times, "visible": visible}

    def unflattened(self, prim) -> np.ndarray | None:
        """The document's matrix of a moving prim at the first key where it is not scaled to
        nothing (None: never): where its shapes are made, its rig node placing them."""
        from pxr import Usd, UsdGeom

        for code in self.codes:
            world = self.converter.frame @ matrix_of(UsdGeom.XformCache(Usd.TimeCode(code)).GetLocalToWorldTransform(prim))
            if not flattened(world):
                return world
        return None

    def attach(self, prim, world: np.ndarray, shapes: list[dict]) -> None:
        """Hang the moving prim's `shapes` (made at its matrix `world`) on its rig node: a shape
        placed by a transform keeps its place in the prim's space (a still child node where
        that is not the prim's own); a sphere's centre and radius go into the prim's space."""
        node = self.node(prim)
        inverse = np.linalg.inv(world)
        for shape in shapes:
            if shape["type"] == "sphere":
                scale = float(np.linalg.norm(world[:3, 0]))
                shape["center"] = (inverse @ [*shape["center"], 1.0])[:3].tolist()
                shape["radius"] = shape["radius"] / scale
                shape["rig"] = node
                continue
            placed = inverse @ np.array(shape["transform"]["matrix"], float)
            if np.allclose(placed, np.eye(4), atol=1e-12):
                shape["rig"] = node
            else:
                self.converter.out.rig.append({"parent": node, "matrix": placed.tolist()})
                shape["rig"] = len(self.converter.out.rig) - 1

    def turn(self, prim, world: np.ndarray, light: dict) -> None:
        """A moving dome's map turned with its rig node: its own turn (usd_lights: a pole
        axis) kept relative to the prim's rotation at the start, which farm.scene.animation
        composes with the node's at each moment. A mirrored one stays as it starts, warned."""
        if not np.linalg.det(world[:3, :3]) > 0:
            self.converter._warn(f"{prim.GetPath()}: a mirrored moving dome stays as it is at the start")
            return
        start = world[:3, :3] / np.linalg.norm(world[:3, :3], axis=0)
        own = np.array(light.get("transform", {"matrix": np.eye(4).tolist()})["matrix"], float)
        relative = np.eye(4)
        relative[:3, :3] = start.T @ own[:3, :3]
        light["transform"] = {"matrix": relative.tolist()}
        light["rig"] = self.node(prim)

    def lens_keys(self, camera, world: np.ndarray) -> list[dict]:
        """The camera's field of view and lens at every key (its time-sampled focal length,
        focus distance or f-stop): the document camera's keyframes, interpolated linearly."""
        from pxr import Usd

        from farm.scene.usd_lights import camera_lens

        keys = []
        for code, time in zip(self.codes, self.times):
            lens = camera_lens(self.converter, camera, Usd.TimeCode(code), world, thin_lens=True)
            if lens is None:
                raise SceneError(f"{self.converter.name}: {camera.GetPath()}: focal length and vertical aperture "
                                 f"must be positive at time code {code:g}")
            keys.append({"time": time, **lens})
        return keys

    def deform(self, mesh, points: np.ndarray, vertex: np.ndarray, normals_at, blocks: list) -> None:
        """Make a mesh whose points are time-sampled (a character, a cloth or a cache from
        Houdini or Maya) a morph sequence (farm.scene.animation): each of its blocks' shapes
        (`blocks`: (the block's key, its corners' rows, the shape)) gets the offsets of its
        corners from the first key's (`points`, as the mesh was made) at every later key, and
        of their normals where `normals_at(time)` gives the corners' normals and they vary.
        A mesh whose point count changes over time (a fluid's surface) stays as it starts,
        with a warning."""
        from pxr import Usd

        attribute = mesh.GetPointsAttr()
        if len(self.codes) < 2 or not attribute.ValueMightBeTimeVarying():
            return
        moments = [Usd.TimeCode(code) for code in self.codes[1:]]
        if any(len(attribute.Get(time) or []) != len(points) for time in moments):
            self.converter._warn(f"{mesh.GetPath()}: its point count changes over time: rendered as it is at the start")
            return
        first = normals_at(Usd.TimeCode(self.codes[0])) if normals_at is not None else None
        targets: list[list[dict]] = [[] for _ in blocks]
        for time in moments:
            offsets = {"positions": (np.array(attribute.Get(time), float).reshape(-1, 3) - points)[vertex].reshape(-1, 3)}
            normals = normals_at(time) if first is not None else None
            if normals is not None and not np.array_equal(normals, first):
                offsets["normals"] = (normals - first).reshape(-1, 3)
            for made, (key, rows, _) in zip(targets, blocks):
                made.append(self.converter.meshes.block((*key, "deform", time.GetValue()),
                                                        {part: values[rows] for part, values in offsets.items()}))
        for made, (_, _, shape) in zip(targets, blocks):
            shape["morph"] = {"targets": made, "times": self.times}

    def node(self, prim) -> int:
        """The rig node of the moving prim: its world matrix in the document at each key."""
        from pxr import Usd, UsdGeom

        if prim.GetPath() in self.nodes:
            return self.nodes[prim.GetPath()]
        rig = self.converter.out.rig
        if self.root is None:
            rig.append({"parent": -1, "matrix": self.converter.frame.tolist()})
            self.root = len(rig) - 1
        xformable = UsdGeom.Xformable(prim)
        keys = [_trs(matrix_of(xformable.ComputeLocalToWorldTransform(Usd.TimeCode(code)))) for code in self.codes]
        if any(sheared for *_, sheared in keys):
            self.converter._warn(f"{prim.GetPath()}: a sheared moving transform, keyed as its nearest rotation")
        rotations = [keys[0][1]]
        for _, rotation, _, _ in keys[1:]:  # each the sign nearer the last: slerp takes the shorter arc
            rotations.append(rotation if np.dot(rotation, rotations[-1]) >= 0 else -rotation)
        entry: dict = {"parent": self.root}
        for path, values in (("translation", [k[0] for k in keys]), ("rotation", rotations),
                             ("scale", [k[2] for k in keys])):
            entry[path] = [float(v) for v in values[0]]
            if any(not np.array_equal(v, values[0]) for v in values[1:]):
                entry.setdefault("channels", {})[path] = {
                    "interpolation": "LINEAR", "times": self.times, "values": [[float(x) for x in v] for v in values]}
        rig.append(entry)
        self.nodes[prim.GetPath()] = len(rig) - 1
        return len(rig) - 1


def flattened(matrix: np.ndarray) -> bool:
    """Whether `matrix` takes an axis (or all) to nothing, as the scene parser judges it:
    relative to its largest axis, so that a tiny uniform scale is not."""
    return singular(matrix.tolist())


def matrix_of(gf) -> np.ndarray:
    """A Gf.Matrix4d (points as rows, p * M) as a column-vector matrix (M p)."""
    return np.array(gf, float).T


def _trs(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Translation, rotation (a unit quaternion x, y, z, w) and scale of `matrix` (M = T R
    S), and whether it was sheared (R then the nearest rotation, by polar decomposition)."""
    linear = matrix[:3, :3]
    scale = np.linalg.norm(linear, axis=0)
    if np.linalg.det(linear) < 0:
        scale[0] = -scale[0]
    rotation = linear / np.where(scale == 0, 1.0, scale)
    u, _, vt = np.linalg.svd(rotation)
    if np.linalg.det(u @ vt) < 0:  # an axis scaled to nothing leaves a reflection as near: not a rotation
        u[:, 2] = -u[:, 2]
    nearest = u @ vt
    kept = scale != 0  # a zero column says nothing of the rotation
    sheared = not np.allclose(nearest[:, kept], rotation[:, kept], atol=1e-6)
    return matrix[:3, 3].copy(), _quaternion(nearest), scale, sheared


def _quaternion(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w) of a rotation matrix (Shoemake's branch on the largest diagonal term)."""
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    q = np.array(q)
    return q / np.linalg.norm(q)
