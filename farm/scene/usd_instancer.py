"""UsdGeomPointInstancer: each instance a copy of its prototype's surfaces under its own
transform, as USD's ComputeInstanceTransformsAtTime gives it (position, orientation,
scale, and the prototype root's own transform), with the instancer's mask (invisibleIds,
deactivated ids) applied. A prototype's surfaces are converted once, in the prototype's
space, and their blocks of the stage's mesh file are shared by every instance, so the
packer keeps a prototype used often enough once and places it per instance
(farm.scene.instances): 10,000 trees cost one tree's triangles plus 10,000 placements.

Not drawn, each said in a warning: lights and cameras inside a prototype, an instancer
inside a prototype, a moving instancer's motion (it stays where it is at the start), a
sphere an instance scales unevenly.
"""

from __future__ import annotations

import numpy as np

from farm.exceptions import SceneError
from farm.scene.usd_time import flattened, matrix_of


def instances(converter, instancer, world: np.ndarray, moving: bool) -> None:
    """Add the instances of `instancer` (at `world`, its matrix into the document) to
    `converter`'s shapes (`converter`: farm.scene.usd's walker)."""
    from pxr import UsdGeom

    path = instancer.GetPath()
    time = converter.time
    if moving:
        converter._warn(f"{path}: a moving point instancer stays where it is at the start")
    targets = instancer.GetPrototypesRel().GetTargets()
    indices = np.array(instancer.GetProtoIndicesAttr().Get(time) or [], np.int64)
    if not len(indices):
        return
    if indices.min() < 0 or indices.max() >= len(targets):
        raise SceneError(f"{converter.name}: {path}: protoIndices name prototype {int(indices.max())} "
                         f"of its {len(targets)}")
    placements = instancer.ComputeInstanceTransformsAtTime(time, time, UsdGeom.PointInstancer.IncludeProtoXform,
                                                           UsdGeom.PointInstancer.IgnoreMask)
    if len(placements) != len(indices):
        raise SceneError(f"{converter.name}: {path}: {len(placements)} instance transforms for "
                         f"{len(indices)} protoIndices (positions, orientations and scales must match them)")
    mask = list(instancer.ComputeMaskAtTime(time) or [])
    templates = [_prototype(converter, converter.stage.GetPrimAtPath(target), path) for target in targets]
    uneven = False
    for number, (index, placement) in enumerate(zip(indices, placements)):
        if mask and not mask[number]:
            continue
        placed = world @ matrix_of(placement)
        if flattened(placed):  # scaled to nothing: USD's way to hide an instance too
            continue
        shapes, lower, upper = templates[index]
        for shape in shapes:
            copy = dict(shape)
            if shape["type"] == "sphere":
                scales = np.linalg.norm(placed[:3, :3], axis=0)
                if not np.allclose(scales, scales.mean(), rtol=2e-3):  # orientations are half floats
                    uneven = True
                    continue
                copy["center"] = (placed @ [*shape["center"], 1.0])[:3].tolist()
                copy["radius"] = shape["radius"] * float(scales.mean())
            else:
                copy["transform"] = {"matrix": (placed @ np.array(shape["transform"]["matrix"])).tolist()}
            converter.out.shapes.append(copy)
        if shapes:
            converter.box_bounds(lower, upper, placed)
    if uneven:
        converter._warn(f"{path}: spheres of instances scaled unevenly are not rendered")


def _prototype(converter, root, instancer_path) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """The surfaces under the prototype `root` as shapes in its own space (its root's
    transform is the instances'), and their box there."""
    from pxr import Usd, UsdGeom, UsdLux

    out = converter.out
    made, lower, upper = len(out.shapes), out.lower.copy(), out.upper.copy()
    out.lower, out.upper = np.full(3, np.inf), np.full(3, -np.inf)
    if not root.IsValid():
        raise SceneError(f"{converter.name}: {instancer_path}: a prototype that is not on the stage")
    root_world = matrix_of(converter.xforms.GetLocalToWorldTransform(root))
    if flattened(root_world):  # scaled to nothing: so is every instance
        out.lower, out.upper = lower, upper
        return [], np.zeros(3), np.zeros(3)
    inverse = np.linalg.inv(root_world)
    inverse[3] = (0.0, 0.0, 0.0, 1.0)  # affine: exactly
    walk = iter(Usd.PrimRange(root, Usd.TraverseInstanceProxies()))
    for prim in walk:
        if converter.hidden(prim):  # undefined prims too, which the range's own predicate leaves out anyway
            walk.PruneChildren()
            continue
        if prim.IsA(UsdGeom.PointInstancer) or prim.IsA(UsdGeom.Camera) or prim.HasAPI(UsdLux.LightAPI):
            converter._warn(f"{prim.GetPath()}: a {prim.GetTypeName()} inside a point instancer's prototype "
                            f"is not rendered")
            walk.PruneChildren()
            continue
        converter.geometry(prim, inverse @ matrix_of(converter.xforms.GetLocalToWorldTransform(prim)))
    shapes = out.shapes[made:]
    del out.shapes[made:]
    box = out.lower, out.upper
    out.lower, out.upper = lower, upper
    return shapes, *box
