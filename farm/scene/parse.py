"""Validate a scene document (format version 1) into frozen dataclasses, strictly.

Unknown keys, wrong types and impossible values are errors naming their place in the
file (`shapes[2].material`), never silently ignored.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from farm import defaults
from farm.scene import matrix
from farm.scene.animation import moment, moving_shapes
from farm.scene.document import Node, kind_of
from farm.scene.materials import parse_materials, parse_textures
from farm.scene.model import (
    IDENTITY, SAMPLERS, STRATEGIES, Box, Camera, EnvironmentLight, Film, Material, Matrix, Mesh, PointLight, Rectangle,
    Scene, Sphere, SpotLight, SunLight,
)

FORMAT_VERSION = 1
MAX_JOINTS = 1024  # joints of one skin: production rigs have a few hundred
MAX_TARGETS = 64  # morph targets of one mesh (faces have dozens)
SHAPE_TYPES = ("sphere", "rectangle", "box", "mesh")
LIGHT_TYPES = ("point", "spot", "sun", "environment")
def scene_digest(document: dict) -> str:
    """SHA-256 of the document's canonical JSON: equal scenes, equal digests."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_scene(document: Any, source: str = "scene", time: float | None = None) -> Scene:
    """Validate a decoded scene document and build the Scene it describes: with keyframes
    (farm.scene.animation), the scene at `time` seconds (default: its first key's); its
    digest is the whole document's, keyframes and all, as stored for the workers."""
    still, span, time = moment(document, time, source)  # a glTF skin with no animation is posed too
    root = Node(still, source)
    root.expect_keys(
        required=("version", "camera", "film", "materials", "shapes"),
        optional=("max_depth", "rr_depth", "seed", "sampler", "strategy", "description", "textures", "lights", "assets",
                  "warnings"),
    )
    version = root.child("version").integer()
    if version != FORMAT_VERSION:
        root.child("version").fail(f"unsupported scene format version {version} (this farm reads {FORMAT_VERSION})")
    if "description" in root.value:
        root.child("description").string()

    camera = _camera(root.child("camera"))
    film = _film(root.child("film"))
    textures = parse_textures(root.child("textures")) if "textures" in root.value else {}
    materials = parse_materials(root.child("materials"), textures)
    shapes_node = root.child("shapes")
    shown = tuple(index for index, node in enumerate(shapes_node.items()) if not _hidden(node))
    shapes = tuple(_shape(shapes_node.child(index), materials) for index in shown)
    if not shapes:
        shapes_node.fail("a scene needs at least one shape" + " not hidden at this moment" * bool(shapes_node.items()))
    lights = tuple(_light(node) for node in root.child("lights").items()) if "lights" in root.value else ()
    if sum(isinstance(light, EnvironmentLight) for light in lights) > 1:
        root.child("lights").fail("a scene can have at most one environment light")
    max_depth = root.child("max_depth").integer(1, 1024) if "max_depth" in root.value else 8
    rr_depth = root.child("rr_depth").integer(1, 1024) if "rr_depth" in root.value else 5
    seed = root.child("seed").integer(0, 2**32 - 1) if "seed" in root.value else 0
    sampler = root.child("sampler").choice(SAMPLERS) if "sampler" in root.value else "sobol"
    strategy = root.child("strategy").choice(STRATEGIES) if "strategy" in root.value else "mis"
    assets = _assets(root.child("assets")) if "assets" in root.value else {}
    warnings = tuple(w.string() for w in root.child("warnings").items()) if "warnings" in root.value else ()
    try:
        digest = scene_digest(document)
    except ValueError:
        root.fail("numbers must be finite")
    scene = Scene(
        camera, film, materials, shapes, max_depth, seed, digest, textures, lights, rr_depth, sampler, strategy, assets,
        warnings, span, time, _kept(moving_shapes(document), shown) if span is not None else (), shown=shown,
    )
    triangles = sum(len(shape.triangles) for shape in shapes if isinstance(shape, Mesh))
    if triangles > defaults.MAX_TRIANGLES:
        shapes_node.fail(f"{triangles} inline triangles, over the limit of {defaults.MAX_TRIANGLES} (FARM_MAX_TRIANGLES)")
    if assets:
        missing = [name for name in scene.files() if name not in assets]
        if missing:
            root.child("assets").fail(f"no digest for {', '.join(missing)}")
    return scene


def _camera(node: Node) -> Camera:
    node.expect_keys(
        required=("position", "look_at", "fov"),
        optional=("up", "fov_axis", "aperture_radius", "focus_distance", "clip")
    )
    position = node.child("position").vec3()
    look_at = node.child("look_at").vec3()
    up = node.child("up").vec3() if "up" in node.value else (0.0, 1.0, 0.0)
    fov = node.child("fov").number()
    if not 0.0 < fov < 180.0:
        node.child("fov").fail(f"field of view must be between 0 and 180 degrees, got {fov}")
    fov_axis = node.child("fov_axis").choice(("x", "y")) if "fov_axis" in node.value else "y"
    forward = matrix.sub(look_at, position)
    if matrix.length(forward) == 0.0:
        node.fail("position and look_at are the same point")
    if matrix.length(matrix.cross(forward, up)) <= 1e-9 * matrix.length(forward) * max(matrix.length(up), 1e-30):
        node.child("up").fail("up must not be zero or parallel to the viewing direction")
    aperture = node.child("aperture_radius").number(0.0) if "aperture_radius" in node.value else 0.0
    focus = None
    if "focus_distance" in node.value:
        focus = node.child("focus_distance").number()
        if focus <= 0.0:
            node.child("focus_distance").fail(f"focus distance must be positive, got {focus}")
    clip = (0.0, 0.0)
    if "clip" in node.value:
        near, far = (value.number(0.0) for value in node.child("clip").list_of(2))
        if far and not far > near:
            node.child("clip").fail(f"the far plane must lie past the near one, got {near} and {far}")
        clip = (near, far)
    return Camera(position, look_at, up, fov, fov_axis, aperture, focus, clip)


def _film(node: Node) -> Film:
    node.expect_keys(required=("width", "height", "spp"))
    limit = defaults.MAX_RESOLUTION
    width = node.child("width").integer(1, limit, what="width (pixels)")
    height = node.child("height").integer(1, limit, what="height (pixels)")
    spp = node.child("spp").integer(1, defaults.MAX_SPP, what="samples per pixel")
    return Film(width, height, spp)


def _light(node: Node):
    if not isinstance(node.value, dict):
        node.fail(f"expected a light object, got {kind_of(node.value)}")
    kind = node.child("type").choice(LIGHT_TYPES)
    if kind == "point":
        node.expect_keys(required=("type", "position", "intensity"))
        return PointLight(node.child("position").vec3(), node.child("intensity").colour(0.0))
    if kind == "spot":
        node.expect_keys(
            required=("type", "position", "intensity"), optional=("direction", "look_at", "cutoff_angle", "beam_width")
        )
        position = node.child("position").vec3()
        if ("direction" in node.value) == ("look_at" in node.value):
            node.fail("give a spot light either direction or look_at")
        if "direction" in node.value:
            direction = _nonzero(node.child("direction"))
        else:
            direction = matrix.sub(node.child("look_at").vec3(), position)
            if matrix.length(direction) == 0.0:
                node.child("look_at").fail("look_at is the light's own position")
        cutoff = node.child("cutoff_angle").number(0.0, 90.0) if "cutoff_angle" in node.value else 20.0
        beam = node.child("beam_width").number(0.0, 90.0) if "beam_width" in node.value else min(15.0, cutoff * 0.75)
        if cutoff <= 0.0 or beam > cutoff:
            node.fail(f"need 0 < beam_width <= cutoff_angle, got {beam} and {cutoff}")
        return SpotLight(position, direction, node.child("intensity").colour(0.0), cutoff, beam)
    if kind == "sun":
        node.expect_keys(required=("type", "direction", "irradiance"))
        return SunLight(_nonzero(node.child("direction")), node.child("irradiance").colour(0.0))
    node.expect_keys(required=("type",), optional=("radiance", "file", "scale", "transform", "sampling"))
    if "radiance" in node.value and "file" in node.value:
        node.fail("give an environment either radiance or file, not both")
    radiance = node.child("radiance").colour(0.0) if "radiance" in node.value else (1.0, 1.0, 1.0)
    file = node.child("file").relative_file((".exr", ".hdr")) if "file" in node.value else None
    scale = node.child("scale").number(0.0) if "scale" in node.value else 1.0
    transform = _transform(node.child("transform")) if "transform" in node.value else IDENTITY
    if not matrix.is_rotation(transform):
        node.child("transform").fail("an environment's transform may only rotate")
    sampling = node.child("sampling").choice(("importance", "uniform")) if "sampling" in node.value else "importance"
    return EnvironmentLight(radiance, file, scale, transform, sampling)


def _nonzero(node: Node):
    vector = node.vec3()
    if matrix.length(vector) == 0.0:
        node.fail("direction must not be zero")
    return vector


def _assets(node: Node) -> dict[str, str]:
    """The digests of the scene's files, as `load_scene` records them."""
    if not isinstance(node.value, dict):
        node.fail(f"expected an object of file digests, got {kind_of(node.value)}")
    assets = {}
    for name in node.value:
        digest = node.child(name).string()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            node.child(name).fail("expected a SHA-256 hex digest")
        assets[name] = digest
    return assets


def _hidden(node: Node) -> bool:
    """Whether the shape is left out of this scene: `hidden` true (a shot's shape scaled to
    nothing or invisible at this moment: farm.scene.animation)."""
    return isinstance(node.value, dict) and "hidden" in node.value and node.child("hidden").boolean()


def _kept(indexes: tuple[int, ...], shown: tuple[int, ...]) -> tuple[int, ...]:
    """`indexes` of the document's shapes as places in the scene's, which holds `shown`."""
    place = {index: number for number, index in enumerate(shown)}
    return tuple(place[index] for index in indexes if index in place)


def _shape(node: Node, materials: dict[str, Material]):
    if not isinstance(node.value, dict):
        node.fail(f"expected a shape object, got {kind_of(node.value)}")
    kind = node.child("type").choice(SHAPE_TYPES)
    extra = {
        "sphere": ("center", "radius"),
        "mesh": ("file", "binary", "base64", "vertices", "triangles", "normals", "uvs", "face_normals", "skin_matrices",
                 "morph"),
    }.get(kind, ())
    node.expect_keys(required=("type", "material"), optional=extra + ("transform", "hidden"))
    material = node.child("material").string()
    if material not in materials:
        known = ", ".join(sorted(materials))
        node.child("material").fail(f"unknown material {material!r} (defined: {known})")
    transform = _transform(node.child("transform")) if "transform" in node.value else IDENTITY
    if kind == "sphere":
        center = node.child("center").vec3() if "center" in node.value else (0.0, 0.0, 0.0)
        radius = node.child("radius").number() if "radius" in node.value else 1.0
        if radius <= 0.0:
            node.child("radius").fail(f"radius must be positive, got {radius}")
        if not matrix.is_similarity(transform):
            node.child("transform").fail("a sphere's transform may only translate, rotate and scale uniformly")
        return Sphere(material, transform, center, radius)
    if kind == "rectangle":
        return Rectangle(material, transform)
    if kind == "box":
        return Box(material, transform)
    face_normals = node.child("face_normals").boolean() if "face_normals" in node.value else False
    if "file" in node.value:
        for key in ("vertices", "triangles", "normals", "uvs"):
            if key in node.value:
                node.child(key).fail("give a mesh either a file or inline vertices and triangles, not both")
        if "binary" in node.value:
            binary = _binary(node.child("binary"))
            skin = _skin(node, binary, transform) if "skin_matrices" in node.value else ()
            morph = _morph(node.child("morph")) if "morph" in node.value else ()
            return Mesh(material, transform, file=node.child("file").relative_file(None), face_normals=face_normals,
                        binary=binary, base64=node.optional("base64", Node.byte_range), skin=skin, morph=morph)
        return Mesh(material, transform, file=node.child("file").relative_file((".obj",)), face_normals=face_normals)
    for key in ("binary", "base64"):
        if key in node.value:
            node.child(key).fail("a binary layout needs the file it describes")
    if "vertices" not in node.value or "triangles" not in node.value:
        node.fail("a mesh needs a file, or vertices and triangles")
    vertices = tuple(v.vec3() for v in node.child("vertices").items())
    if isinstance(node.value["triangles"], list) and len(node.value["triangles"]) > defaults.MAX_TRIANGLES:
        node.child("triangles").fail(f"over the limit of {defaults.MAX_TRIANGLES} triangles (FARM_MAX_TRIANGLES)")
    triangles = tuple(_triangle(t, len(vertices)) for t in node.child("triangles").items())
    if not triangles:
        node.child("triangles").fail("a mesh needs at least one triangle")
    normals: tuple = ()
    uvs: tuple = ()
    if "normals" in node.value:
        normals = tuple(_nonzero(n) for n in node.child("normals").items())
        if len(normals) != len(vertices):
            node.child("normals").fail(f"expected one normal per vertex ({len(vertices)}), got {len(normals)}")
    if "uvs" in node.value:
        uvs = tuple(uv.vec2() for uv in node.child("uvs").items())
        if len(uvs) != len(vertices):
            node.child("uvs").fail(f"expected one uv per vertex ({len(vertices)}), got {len(uvs)}")
    return Mesh(material, transform, None, vertices, triangles, normals, uvs, face_normals)


def _binary(node: Node, formats: dict | None = None) -> tuple:
    """Where a mesh's accessors lie in its binary file (farm.scene.mesh.load_binary); with
    `formats`, those parts alone (a morph target's)."""
    from farm.scene.mesh import BINARY_FORMATS

    if formats is None:
        node.expect_keys(required=("positions",),
                         optional=("normals", "uvs", "uvs1", "tangents", "indices", "joints", "weights"))
        uv_formats = ("f32x2", "u8x2n", "u16x2n", "f64x2")
        formats = {"positions": ("f32x3", "f64x3"), "normals": ("f32x3", "f64x3"), "uvs": uv_formats, "uvs1": uv_formats,
                   "tangents": ("f32x4",), "joints": ("u8x4", "u16x4"), "weights": ("f32x4", "u8x4n", "u16x4n"),
                   "indices": ("u8", "u16", "u32")}
    parts = []
    for part in node.value:
        entry = node.child(part)
        entry.expect_keys(required=("offset", "count", "format"), optional=("stride",))
        fmt = entry.child("format").choice(formats[part])
        dtype, components, _ = BINARY_FORMATS[fmt]
        element = np.dtype(dtype).itemsize * components
        stride = entry.child("stride").integer(element, 255, what="stride") if "stride" in entry.value else element
        parts.append((part, entry.child("offset").integer(0, 2**53, what="offset"),
                      entry.child("count").integer(0, 3 * defaults.MAX_TRIANGLES, what="count"), fmt, stride))
    return tuple(parts)


def _skin(node: Node, binary: tuple, transform) -> tuple:
    """A skinned mesh's joint matrices at the frame's moment (farm.scene.skin)."""
    if not {"joints", "weights"} <= {part for part, *_ in binary}:
        node.child("skin_matrices").fail("a skinned mesh needs joints and weights in its binary layout")
    if transform != IDENTITY:
        node.child("transform").fail("a skinned mesh takes its place from its joints; it has no transform")
    items = node.child("skin_matrices").items()
    if not 1 <= len(items) <= MAX_JOINTS:
        node.child("skin_matrices").fail(f"expected 1 to {MAX_JOINTS} joint matrices, got {len(items)}")
    return tuple(tuple(tuple(value.number() for value in row.list_of(4)) for row in item.list_of(4)) for item in items)


def _morph(node: Node) -> tuple:
    """A mesh's morph targets and their weights at the frame's moment (farm.scene.skin):
    ((layout of each target's offsets, ...), (weight, ...))."""
    node.expect_keys(required=("targets", "weights"))
    targets = node.child("targets").items()
    if not 1 <= len(targets) <= MAX_TARGETS:
        node.child("targets").fail(f"expected 1 to {MAX_TARGETS} morph targets, got {len(targets)}")
    layouts = []
    for target in targets:
        target.expect_keys(optional=("positions", "normals", "tangents"))
        layouts.append(_binary(target, {"positions": ("f32x3",), "normals": ("f32x3",), "tangents": ("f32x3",)}))
    weights = tuple(weight.number() for weight in node.child("weights").list_of(len(targets)))
    return tuple(layouts), weights


def _triangle(node: Node, vertex_count: int) -> tuple[int, int, int]:
    indices = node.list_of(3)
    result = tuple(index.integer(0, vertex_count - 1, what="vertex index") for index in indices)
    return result  # type: ignore[return-value]


def parse_transform(value: Any, where: str) -> Matrix:
    """A transform object (as a shape's) on its own: for a glTF file's placement."""
    return _transform(Node(value, where))


def _transform(node: Node) -> Matrix:
    """Either {"matrix": 4x4 rows} or {"scale", "rotate", "translate"} applied in that order."""
    node.expect_keys(optional=("matrix", "translate", "rotate", "scale"))
    if "matrix" in node.value:
        if len(node.value) > 1:
            node.fail("give either matrix or scale/rotate/translate, not both")
        rows = node.child("matrix").list_of(4)
        given = tuple(tuple(row.list_of(4)[i].number() for i in range(4)) for row in rows)
        if given[3] != (0.0, 0.0, 0.0, 1.0):
            node.child("matrix").fail("the last row must be [0, 0, 0, 1] (no projective transforms)")
        if matrix.singular(given):
            node.child("matrix").fail("the matrix is singular")
        return given
    result = IDENTITY
    if "scale" in node.value:
        scale_node = node.child("scale")
        if isinstance(scale_node.value, list):
            scale = scale_node.vec3()
        else:
            s = scale_node.number()
            scale = (s, s, s)
        if any(s == 0.0 for s in scale):
            scale_node.fail("scale must not be zero")
        result = matrix.matmul(matrix.scaling(scale), result)
    if "rotate" in node.value:
        rotate_node = node.child("rotate")
        steps = rotate_node.items() if isinstance(rotate_node.value, list) else [rotate_node]
        for step in steps:
            step.expect_keys(required=("axis", "angle"))
            axis = step.child("axis").vec3()
            if matrix.length(axis) == 0.0:
                step.child("axis").fail("rotation axis must not be zero")
            result = matrix.matmul(matrix.rotation(axis, step.child("angle").number()), result)
    if "translate" in node.value:
        result = matrix.matmul(matrix.translation(node.child("translate").vec3()), result)
    return result
