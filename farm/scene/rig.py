"""A glTF file's animated node tree as the scene document carries it (`rig`), and its pose
at a time: the world matrix of every node, from which the shapes and the camera that hang
on a node (`"rig": index`) take their transform.

    "rig": {"nodes": [
        {"parent": -1, "matrix": [[...], [...], [...], [...]]},            # a still node
        {"parent": 0, "translation": [x, y, z], "rotation": [x, y, z, w], "scale": [x, y, z],
         "channels": {"rotation": {"interpolation": "LINEAR", "times": [...], "values": [[...], ...]}}},
    ]}

A node's parent comes before it; `matrix` is row-major (the document's convention), the
rest pose's translation, rotation (a unit quaternion, glTF's x, y, z, w) and scale are
glTF's, and each channel replaces one of them by its sampler's value at the time: STEP,
LINEAR (slerp for rotations) or CUBICSPLINE (each key's value between its in- and
out-tangent), as glTF 2.0's animation samplers say, held before the first key and after
the last. farm.scene.gltf_animation writes it on the client; every worker evaluates it
(Python floats, the same operations: the same pose everywhere).
"""

from __future__ import annotations

import math

from farm.scene.document import Node

PATHS = {"translation": 3, "rotation": 4, "scale": 3, "weights": 0}  # 0: morph weights, one per target
MAX_TARGETS = 64
INTERPOLATIONS = ("STEP", "LINEAR", "CUBICSPLINE")
MAX_NODES = 10_000
MAX_KEYS = 216_000


def check(node: Node) -> None:
    """A rig from Redis or a file is input from outside: every field checked, one line naming a bad one."""
    node.expect_keys(required=("nodes",))
    items = node.child("nodes").items()
    if not 1 <= len(items) <= MAX_NODES:
        node.child("nodes").fail(f"expected 1 to {MAX_NODES} nodes, got {len(items)}")
    for index, item in enumerate(items):
        item.expect_keys(required=("parent",), optional=("matrix", "translation", "rotation", "scale", "channels"))
        item.child("parent").integer(-1, index - 1, what="parent (an earlier node, or -1)")
        if "matrix" in item.value:
            rows = item.child("matrix").list_of(4)
            for row in rows:
                for value in row.list_of(4):
                    value.number()
            if set(item.value) & {"translation", "rotation", "scale", "channels"}:
                item.fail("a node with a matrix has no translation, rotation, scale or channels")
            continue
        for path, width in PATHS.items():
            if path in item.value:
                for value in item.child(path).list_of(width):
                    value.number()
        for path, sampler in (item.child("channels").named("channel") if "channels" in item.value else []):
            if path not in PATHS:
                sampler.fail(f"unknown channel {path!r} (known: {', '.join(PATHS)})")
            width = PATHS[path]
            if path == "weights":
                first = sampler.child("values").items()
                width = len(first[0].value) if first and isinstance(first[0].value, list) else 0
                if not 1 <= width <= MAX_TARGETS:
                    sampler.fail(f"expected 1 to {MAX_TARGETS} morph weights a key, got {width}")
            _check_sampler(sampler, width)


def _check_sampler(node: Node, width: int) -> None:
    node.expect_keys(required=("interpolation", "times", "values"))
    how = node.child("interpolation").choice(INTERPOLATIONS)
    times = node.child("times").items()
    if not 1 <= len(times) <= MAX_KEYS:
        node.child("times").fail(f"expected 1 to {MAX_KEYS} key times, got {len(times)}")
    last = -math.inf
    for item in times:
        time = item.number()
        if not time > last:
            item.fail(f"key times must increase, got {time} after {last}")
        last = time
    values = node.child("values").list_of(len(times) * (3 if how == "CUBICSPLINE" else 1))
    for value in values:
        for number in value.list_of(width):
            number.number()


def times(rig: dict) -> list[float]:
    """Every key time of every channel."""
    return [t for node in rig["nodes"] for sampler in node.get("channels", {}).values() for t in sampler["times"]]


def pose(rig: dict, seconds: float) -> list[list[list[float]]]:
    """The world matrix (row-major 4x4) of every node at `seconds`."""
    worlds: list[list[list[float]]] = []
    for node in rig["nodes"]:
        local = node["matrix"] if "matrix" in node else _trs(node, seconds)
        parent = node["parent"]
        worlds.append(multiply(worlds[parent], local) if parent >= 0 else [list(map(float, row)) for row in local])
    return worlds


def _trs(node: dict, seconds: float) -> list[list[float]]:
    values = {path: node.get(path, default)
              for path, default in (("translation", [0, 0, 0]), ("rotation", [0, 0, 0, 1]), ("scale", [1, 1, 1]))}
    for path, sampler in node.get("channels", {}).items():
        if path != "weights":  # a mesh's morph weights, not its node's transform: morph_weights()
            values[path] = _sample(sampler, seconds, path == "rotation")
    return local_matrix(values["translation"], values["rotation"], values["scale"])


def local_matrix(translation, rotation, scale) -> list[list[float]]:
    """A glTF node's local transform, translation x rotation x scale, row-major; the
    quaternion (x, y, z, w) normalised first."""
    x, y, z, w = (float(v) for v in rotation)
    norm = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    rotation = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    sx, sy, sz = (float(v) for v in scale)
    tx, ty, tz = (float(v) for v in translation)
    return [[rotation[0][0] * sx, rotation[0][1] * sy, rotation[0][2] * sz, tx],
            [rotation[1][0] * sx, rotation[1][1] * sy, rotation[1][2] * sz, ty],
            [rotation[2][0] * sx, rotation[2][1] * sy, rotation[2][2] * sz, tz],
            [0.0, 0.0, 0.0, 1.0]]


def morph_weights(rig: dict, node: int, seconds: float) -> list[float] | None:
    """A node's morph target weights at `seconds`, where a channel animates them."""
    sampler = rig["nodes"][node].get("channels", {}).get("weights")
    return None if sampler is None else _sample(sampler, seconds, False)


def _sample(sampler: dict, seconds: float, rotation: bool) -> list[float]:
    times, values, how = sampler["times"], sampler["values"], sampler["interpolation"]
    cubic = how == "CUBICSPLINE"

    def value(k: int) -> list[float]:
        return [float(v) for v in values[3 * k + 1 if cubic else k]]

    if seconds <= times[0]:
        return value(0)
    if seconds >= times[-1]:
        return value(len(times) - 1)
    k = next(i for i, t in enumerate(times) if t > seconds) - 1
    t0, t1 = times[k], times[k + 1]
    u, dt = (seconds - t0) / (t1 - t0), t1 - t0
    if how == "STEP":
        return value(k)
    a, b = value(k), value(k + 1)
    if cubic:  # glTF 2.0, Appendix C: Hermite with tangents scaled by the key interval
        out0 = [float(v) for v in values[3 * k + 2]]
        in1 = [float(v) for v in values[3 * (k + 1)]]
        u2, u3 = u * u, u * u * u
        h = (2 * u3 - 3 * u2 + 1, u3 - 2 * u2 + u, -2 * u3 + 3 * u2, u3 - u2)
        mixed = [h[0] * p + h[1] * dt * m + h[2] * q + h[3] * dt * n for p, m, q, n in zip(a, out0, b, in1)]
    elif rotation:
        mixed = slerp(a, b, u)
    else:
        mixed = [p + (q - p) * u for p, q in zip(a, b)]
    if rotation:
        norm = math.sqrt(sum(c * c for c in mixed)) or 1.0
        mixed = [c / norm for c in mixed]
    return mixed


def slerp(a: list[float], b: list[float], u: float) -> list[float]:
    """Quaternions `a` to `b` along the shorter arc (unnormalised: lerp where they nearly agree)."""
    dot = sum(p * q for p, q in zip(a, b))
    if dot < 0:  # the shorter arc
        b, dot = [-q for q in b], -dot
    if dot > 0.9995:
        return [p + (q - p) * u for p, q in zip(a, b)]
    theta = math.acos(min(1.0, dot))
    wa, wb = math.sin((1 - u) * theta) / math.sin(theta), math.sin(u * theta) / math.sin(theta)
    return [wa * p + wb * q for p, q in zip(a, b)]


def multiply(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [[sum(a[i][k] * float(b[k][j]) for k in range(4)) for j in range(4)] for i in range(4)]


def light_at(world: list[list[float]]) -> dict:
    """A glTF light's position and direction (its node's -z) from its node's world matrix."""
    return {"position": [world[i][3] for i in range(3)], "direction": [-world[i][2] for i in range(3)]}


def camera_at(world: list[list[float]]) -> dict:
    """A glTF camera's eye, look-at point and up from its node's world matrix (it looks
    along its -z, up its +y), as farm.scene.gltf places a still one."""
    position = [world[i][3] for i in range(3)]
    forward = [-world[i][2] for i in range(3)]
    length = math.sqrt(sum(c * c for c in forward)) or 1.0
    return {"position": position, "look_at": [p + f / length for p, f in zip(position, forward)],
            "up": [world[i][1] for i in range(3)]}
