"""Keyframes of the JSON scene format, and the scene document at a time.

A camera may have `keyframes`, each a `time` in seconds and any of its own fields
(position, look_at, up, fov, aperture_radius, focus_distance); a shape may have
`keyframes` of `translate`, `rotate` ({"axis", "angle"}) and `scale`, which make its
transform (scale, then rotate, then translate, as a static `transform`'s); a light may
have `keyframes` of its position, direction and brightness (intensity, irradiance,
radiance, scale: its type's), a material of its `emission`. Every key of
an object gives the same fields; `interpolation` beside them is "linear" (default: vectors
and numbers lerp, rotations slerp) or "step" (each key holds until the next). Before the
first key an object is as its first key says, after the last as its last.

`at_time(document, seconds)` is the still document of that moment: keyframes evaluated and
removed, everything else untouched. Client and workers evaluate it alike (Python floats,
the same operations in the same order), so a frame is the same scene on every worker, and
the same bits as that still rendered alone. Cf. glTF 2.0's animation samplers, whose
LINEAR and STEP this follows (CUBICSPLINE comes with glTF's own animations).
"""

from __future__ import annotations

import bisect
import copy
import math
from typing import Any

from farm.scene import matrix, rig
from farm.scene.document import Node
from farm.scene.model import IDENTITY

INTERPOLATIONS = ("linear", "step")
CAMERA_FIELDS = ("position", "look_at", "up", "fov", "aperture_radius", "focus_distance")
SHAPE_FIELDS = ("translate", "rotate", "scale")
# A light's keys: where it is and how bright (its type's own fields: parse_scene checks them
# on the posed light); a material's: its emission (a constant colour).
LIGHT_FIELDS = ("position", "direction", "intensity", "irradiance", "radiance", "scale")
MATERIAL_FIELDS = ("emission",)
COLOUR_FIELDS = ("intensity", "irradiance", "radiance", "emission")  # a colour or one number for all three
# Most keys one object may have: a key a frame for an hour at 60 fps.
MAX_KEYS = 216_000


def animated(document: Any, source: str = "scene") -> list[tuple[Node, tuple[str, ...], tuple]]:
    """The objects of `document` that have keyframes: (node, the fields a key may give,
    where it is: ("camera",) or ("shapes", i)); checked, so that a bad key is one line
    naming it (SceneError) before anything renders."""
    if not isinstance(document, dict):
        return []
    root, found = Node(document, source), []
    if isinstance(document.get("camera"), dict) and "keyframes" in document["camera"]:
        found.append((root.child("camera"), CAMERA_FIELDS, ("camera",)))
    if isinstance(document.get("shapes"), list):
        for index, node in enumerate(root.child("shapes").items()):
            if isinstance(node.value, dict) and "keyframes" in node.value:
                if "transform" in node.value:
                    node.child("transform").fail("a shape with keyframes takes its transform from them")
                found.append((node, SHAPE_FIELDS, ("shapes", index)))
    if isinstance(document.get("lights"), list):
        for index, node in enumerate(root.child("lights").items()):
            if isinstance(node.value, dict) and "keyframes" in node.value:
                found.append((node, LIGHT_FIELDS, ("lights", index)))
    if isinstance(document.get("materials"), dict):
        for name, node in root.child("materials").named("material"):
            if isinstance(node.value, dict) and "keyframes" in node.value:
                found.append((node, MATERIAL_FIELDS, ("materials", name)))
    for node, fields, _ in found:
        _check(node, fields)
    return found


def moment(document: Any, seconds: float | None, source: str = "scene") -> tuple[Any, tuple[float, float] | None,
                                                                                float]:
    """(the still document at `seconds`, the first and last key's time over the whole scene
    (keyframes, and a glTF file's animations: its `rig`) or None for a still scene, the
    moment shown): everything checked once. `seconds` None is the first key's moment;
    `document` itself comes back where nothing is animated or rigged."""
    found = animated(document, source)
    rigged = _checked_rig(document, source) if isinstance(document, dict) and "rig" in document else None
    sequences = _sequences(document, source) + _visibilities(document, source)
    times = [key["time"] for node, _, _ in found for key in node.value["keyframes"]]
    times += rig.times(rigged) if rigged is not None else []
    times += [moment for keys in sequences for moment in (keys[0], keys[-1])]
    span = (min(times), max(times)) if times else None
    seconds = (0.0 if span is None else span[0]) if seconds is None else float(seconds)
    if not found and rigged is None and not sequences:
        return document, span, seconds  # nothing moves
    return _posed(document, found, rigged, seconds), span, seconds


def _sequences(document: Any, source: str) -> list[list[float]]:
    """The key times of each morph sequence in `document`'s shapes, checked: a deforming
    mesh's shape at every key (farm.scene.usd_time), its `morph` holding `times` (2 to
    MAX_KEYS increasing seconds) and one target fewer: the mesh itself is the shape at the
    first time, target k its offsets at time k + 1; posed as `sequence_weights` says."""
    shapes = document.get("shapes") if isinstance(document, dict) else None
    found = []
    for index, shape in enumerate(shapes if isinstance(shapes, list) else []):
        if isinstance(shape, dict) and isinstance(shape.get("morph"), dict) and "times" in shape["morph"]:
            morph = Node(shape["morph"], f"{source}.shapes[{index}].morph")
            morph.expect_keys(required=("targets", "times"))
            keys = _key_times(morph.child("times"), 2)
            morph.child("targets").list_of(len(keys) - 1)
            found.append(keys)
    return found


def _visibilities(document: Any, source: str) -> list[list[float]]:
    """The key times of each shape's `visibility` (a shot's prim shown and hidden over time:
    farm.scene.usd_time), checked: `times`, 1 to MAX_KEYS increasing seconds, and `visible`,
    true or false from each time on (the first's before it)."""
    shapes = document.get("shapes") if isinstance(document, dict) else None
    found = []
    for index, shape in enumerate(shapes if isinstance(shapes, list) else []):
        if isinstance(shape, dict) and "visibility" in shape:
            keys = Node(shape["visibility"], f"{source}.shapes[{index}].visibility")
            keys.expect_keys(required=("times", "visible"))
            moments = _key_times(keys.child("times"), 1)
            for seen in keys.child("visible").list_of(len(moments)):
                seen.boolean()
            found.append(moments)
    return found


def _key_times(node: Node, fewest: int) -> list[float]:
    """The seconds of a list of key times: `fewest` to MAX_KEYS numbers, increasing."""
    times = node.items()
    if not fewest <= len(times) <= MAX_KEYS:
        node.fail(f"expected {fewest} to {MAX_KEYS} key times, got {len(times)}")
    moments = [time.number() for time in times]
    if any(not b > a for a, b in zip(moments, moments[1:])):
        node.fail("key times must increase")
    return moments


def sequence_weights(times: list[float], seconds: float) -> list[tuple[int, float]]:
    """(target, weight) of a morph sequence with key `times` at `seconds`: between two keys
    their shapes mixed linearly, as USD interpolates points; the first shape (no target)
    up to the first time, the last from the last time on. A weight of 0 is left out."""
    if not seconds > times[0]:
        return []
    if seconds >= times[-1]:
        return [(len(times) - 2, 1.0)]
    after = bisect.bisect_right(times, seconds)  # times[after - 1] <= seconds < times[after]
    u = (seconds - times[after - 1]) / (times[after] - times[after - 1])
    return [(target, weight) for target, weight in ((after - 2, 1.0 - u), (after - 1, u))
            if target >= 0 and weight > 0.0]


def _checked_rig(document: dict, source: str) -> dict:
    """The document's rig, checked, with every shape and camera that names a node of it."""
    rig.check(Node(document["rig"], f"{source}.rig"))
    count = len(document["rig"]["nodes"])
    holders = [("camera", document.get("camera"))] + [
        (f"shapes[{index}]", shape) for index, shape in enumerate(document.get("shapes") or [])] + [
        (f"lights[{index}]", light) for index, light in enumerate(document.get("lights") or [])]
    for where, holder in holders:
        if isinstance(holder, dict) and "rig" in holder:
            Node(holder["rig"], f"{source}.{where}.rig").integer(0, count - 1, what="rig node")
            if holder.get("type") == "environment" and "transform" in holder and not (
                    isinstance(holder["transform"], dict) and set(holder["transform"]) == {"matrix"}):
                Node(holder["transform"], f"{source}.{where}.transform").fail(
                    "a dome turned by a rig node gives its own turn as a matrix")
        if isinstance(holder, dict) and isinstance(holder.get("morph"), dict) and "rig" in holder["morph"]:
            Node(holder["morph"]["rig"], f"{source}.{where}.morph.rig").integer(0, count - 1, what="rig node")
        if isinstance(holder, dict) and "skin" in holder:
            skin = Node(holder["skin"], f"{source}.{where}.skin")
            skin.expect_keys(required=("joints", "inverse_bind"))
            joints = skin.child("joints").items()
            for joint in joints:
                joint.integer(0, count - 1, what="rig node")
            for bind in skin.child("inverse_bind").list_of(len(joints)):
                for row in bind.list_of(4):
                    for value in row.list_of(4):
                        value.number()
    return document["rig"]


def moving_shapes(document: Any) -> tuple[int, ...]:
    """The places in `document`'s shapes of those that move or deform over time (keyframes,
    a rig node, a skin, rigged morph weights): the shapes a shot places anew each frame."""
    shapes = document.get("shapes") if isinstance(document, dict) else None
    if not isinstance(shapes, list):
        return ()
    return tuple(index for index, shape in enumerate(shapes) if isinstance(shape, dict) and (
        "keyframes" in shape or "rig" in shape or "skin" in shape
        or "visibility" in shape
        or (isinstance(shape.get("morph"), dict) and ("rig" in shape["morph"] or "times" in shape["morph"]))))


def at_time(document: dict, seconds: float, source: str = "scene") -> dict:
    """The still document at `seconds`; `document` itself where nothing is animated."""
    return moment(document, seconds, source)[0]


def _posed(document: dict, found: list, rigged: dict | None, seconds: float) -> dict:
    """A copy of `document` with its keyframes (`found`, checked) and its rig (`rigged`,
    checked) evaluated at `seconds` and removed."""
    still = copy.deepcopy(document)
    for shape in still.get("shapes", []):
        if isinstance(shape, dict) and "visibility" in shape:  # shown or hidden as its last key up to the moment says
            keys = shape.pop("visibility")
            if not keys["visible"][max(0, bisect.bisect_right(keys["times"], seconds) - 1)]:
                shape["hidden"] = True
        # a deforming mesh: the two keys around the moment, mixed
        if isinstance(shape, dict) and isinstance(shape.get("morph"), dict) and "times" in shape["morph"]:
            morph = shape.pop("morph")
            picked = sequence_weights(morph["times"], seconds)
            if picked:
                shape["morph"] = {"targets": [morph["targets"][target] for target, _ in picked],
                                  "weights": [weight for _, weight in picked]}
    if rigged is not None:
        worlds = rig.pose(rigged, seconds)
        del still["rig"]
        for shape in still.get("shapes", []):
            if isinstance(shape, dict) and "rig" in shape:
                shape["transform"] = {"matrix": worlds[shape.pop("rig")]}
                if matrix.singular(shape["transform"]["matrix"]):  # scaled to nothing now: how USD hides a prim
                    shape["hidden"] = True
            if isinstance(shape, dict) and isinstance(shape.get("morph"), dict) and "rig" in shape["morph"]:
                weights = rig.morph_weights(rigged, shape["morph"].pop("rig"), seconds)
                if weights is not None:  # the node's weights channel, else the weights at rest
                    shape["morph"]["weights"] = weights
            if isinstance(shape, dict) and "skin" in shape:  # each joint's world matrix times its inverse bind
                skin = shape.pop("skin")
                shape["skin_matrices"] = [rig.multiply(worlds[j], bind) for j, bind in zip(skin["joints"],
                                                                                          skin["inverse_bind"])]
        for light in still.get("lights", []):  # a glTF light on a moving node: placed and aimed by it
            if isinstance(light, dict) and "rig" in light:
                world = worlds[light.pop("rig")]
                if light.get("type") == "environment":  # a dome: its map turned by the node, then by its own turn
                    own = light.get("transform", {}).get("matrix", IDENTITY)
                    light["transform"] = {"matrix": [list(row) for row in matrix.matmul(matrix.turn_of(world), own)]}
                    continue
                placed = rig.light_at(world)
                light.update({key: placed[key] for key in ("position", "direction") if key in light})
        if isinstance(still.get("camera"), dict) and "rig" in still["camera"]:
            still["camera"].update(rig.camera_at(worlds[still["camera"].pop("rig")]))
    for _, fields, where in found:
        target = still
        for part in where:
            target = target[part]
        keys = target.pop("keyframes")
        how = target.pop("interpolation", "linear")
        values = _evaluate(keys, seconds, how)
        if fields is SHAPE_FIELDS:
            target["transform"] = {name: values[name] for name in SHAPE_FIELDS if name in values}
        else:
            target.update(values)
    return still


def _check(node: Node, fields: tuple[str, ...]) -> None:
    if "interpolation" in node.value:
        node.child("interpolation").choice(INTERPOLATIONS)
    keys = node.child("keyframes")
    items = keys.items()
    if not items or len(items) > MAX_KEYS:
        keys.fail(f"expected 1 to {MAX_KEYS} keyframes, got {len(items)}")
    names, last = None, -math.inf
    for key in items:
        key.expect_keys(required=("time",), optional=fields)
        time = key.child("time").number()
        if not time > last:
            key.child("time").fail(f"keyframe times must increase, got {time} after {last}")
        last = time
        given = tuple(sorted(set(key.value) - {"time"}))
        if not given:
            key.fail(f"a keyframe gives at least one of {', '.join(fields)}")
        if names is not None and given != names:
            key.fail(f"every keyframe of an object gives the same fields: {', '.join(names)}, got {', '.join(given)}")
        names = given
        for name in given:
            _check_value(key.child(name), name)


def _check_value(node: Node, name: str) -> None:
    if name in ("position", "look_at", "up", "translate", "direction"):
        node.vec3()
    elif name in COLOUR_FIELDS:
        node.colour(0.0)
    elif name == "rotate":
        node.expect_keys(required=("axis", "angle"))
        axis = node.child("axis").vec3()
        node.child("angle").number()
        if axis == (0.0, 0.0, 0.0):
            node.child("axis").fail("a rotation's axis must not be zero")
    elif name == "scale" and isinstance(node.value, list):
        node.vec3()
    else:  # fov, aperture_radius, focus_distance, a uniform scale: parse_scene checks the ranges
        node.number()


def _evaluate(keys: list[dict], seconds: float, how: str) -> dict:
    """The fields of `keys` at `seconds`."""
    if seconds <= keys[0]["time"]:
        return _fields(keys[0])
    if seconds >= keys[-1]["time"]:
        return _fields(keys[-1])
    after = next(i for i, key in enumerate(keys) if key["time"] > seconds)
    a, b = keys[after - 1], keys[after]
    if how == "step":
        return _fields(a)
    u = (seconds - a["time"]) / (b["time"] - a["time"])
    return {name: _mix(name, a[name], b[name], u) for name in _fields(a)}


def _fields(key: dict) -> dict:
    return {name: value for name, value in key.items() if name != "time"}


def _mix(name: str, a, b, u: float):
    if name == "rotate":
        return _slerp(a, b, u)
    if isinstance(a, list) or isinstance(b, list):
        a, b = (v if isinstance(v, list) else [v] * 3 for v in (a, b))
        return [_lerp(x, y, u) for x, y in zip(a, b)]
    return _lerp(a, b, u)


def _lerp(a: float, b: float, u: float) -> float:
    return a + (b - a) * u


def _quaternion(rotate: dict) -> list[float]:
    x, y, z = rotate["axis"]
    norm = math.sqrt(x * x + y * y + z * z)
    half = math.radians(rotate["angle"]) / 2
    s = math.sin(half) / norm
    return [math.cos(half), x * s, y * s, z * s]


def _slerp(a: dict, b: dict, u: float) -> dict:
    """Spherical interpolation along the shorter arc (farm.scene.rig's, as glTF's rotations
    take), back to {"axis", "angle"} (degrees)."""
    q = rig.slerp(_quaternion(a), _quaternion(b), u)
    norm = math.sqrt(sum(c * c for c in q))
    w, x, y, z = (c / norm for c in q)
    s = math.sqrt(max(0.0, 1 - w * w))
    if s < 1e-12:
        return {"axis": [0.0, 1.0, 0.0], "angle": 0.0}
    return {"axis": [x / s, y / s, z / s], "angle": math.degrees(2 * math.acos(max(-1.0, min(1.0, w))))}
