"""Blender's Cycles rendering a scene farm.tools.bench_cycles exported, for `farm bench --quality
--cycles`. Runs in the Python that has Blender's `bpy` module (Python 3.13: `pip install bpy`),
not in farm's, so it imports nothing of farm's:

    python3.13 cycles_render.py SCENE_BASE OUT_DIR SAMPLES:THRESHOLD ...

SCENE_BASE.npz holds world-space triangles with their uvs and a material per triangle,
SCENE_BASE.json the materials (emission from the front only, as farm's and Mitsuba's
emitters: Cycles' emission shines from the back too unless told), the spheres (fine meshes
shaded by their radial normals), the environment, the pinhole camera, the film and the path
depth. Each SAMPLES:THRESHOLD (0: uniform samples; else Cycles' adaptive sampling with that
noise threshold, SAMPLES the most) is rendered on the CPU threads the JSON names (the
machine's cores) with a box pixel filter and denoised by OIDN (Cycles' own, guided by its
albedo and normal) into an EXR; one line `RESULT path seconds` each, the seconds of the
render alone (the scene is synced and the kernels loaded once first, by a one-sample render).
"""

from __future__ import annotations

import json
import math
import sys
import time


def build(base: str):
    import bpy
    import numpy as np
    from mathutils import Matrix, Vector

    meta = json.load(open(base + ".json"))
    arrays = np.load(base + ".npz")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    mesh = bpy.data.meshes.new("scene")
    mesh.from_pydata(arrays["vertices"].tolist(), [], arrays["faces"].tolist())
    for material in meta["materials"]:
        mesh.materials.append(_material(bpy, material))
    mesh.polygons.foreach_set("material_index", arrays["material"].astype(np.int32).tolist())
    mesh.uv_layers.new(name="uv").data.foreach_set("uv", arrays["uvs"].astype(np.float32).ravel().tolist())
    mesh.update()
    scene.collection.objects.link(bpy.data.objects.new("scene", mesh))
    for number, sphere in enumerate(meta["spheres"]):
        scene.collection.objects.link(bpy.data.objects.new(f"sphere{number}", _sphere(bpy, np, sphere, mesh.materials)))

    camera = meta["camera"]
    data = bpy.data.cameras.new("camera")
    data.sensor_width = data.sensor_height = 36.0
    data.sensor_fit = "VERTICAL" if camera["fov_axis"] == "y" else "HORIZONTAL"
    if camera["fov_axis"] == "y":
        data.angle_y = math.radians(camera["fov"])
    else:
        data.angle_x = math.radians(camera["fov"])
    position, target, up = (Vector(camera[k]) for k in ("position", "look_at", "up"))
    forward = (target - position).normalized()
    right = forward.cross(up).normalized()
    up = right.cross(forward)
    placed = bpy.data.objects.new("camera", data)
    placed.matrix_world = Matrix(((right.x, up.x, -forward.x, position.x), (right.y, up.y, -forward.y, position.y),
                                  (right.z, up.z, -forward.z, position.z), (0, 0, 0, 1)))
    scene.collection.objects.link(placed)
    scene.camera = placed

    scene.world = _world(bpy, meta["environment"])

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.render.threads_mode = "FIXED"
    scene.render.threads = meta["threads"]
    scene.render.use_persistent_data = True  # synced (BVH built) once, by the warm-up render
    scene.render.resolution_x, scene.render.resolution_y = meta["width"], meta["height"]
    scene.render.resolution_percentage = 100
    scene.cycles.pixel_filter_type = "BOX"  # samples stay in their pixel, as farm's and the reference's
    scene.cycles.filter_width = 1.0
    bounces = meta["max_depth"] - 1  # farm's and Mitsuba's depth counts path segments
    for name in ("max_bounces", "diffuse_bounces", "glossy_bounces", "transmission_bounces", "transparent_max_bounces"):
        setattr(scene.cycles, name, bounces)
    scene.cycles.sample_clamp_direct = scene.cycles.sample_clamp_indirect = 0.0  # no clamping: unbiased
    scene.cycles.blur_glossy = 0.0  # nor glossy filtering
    scene.cycles.use_denoising = True
    scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.view_settings.view_transform = "Standard"
    settings = scene.render.image_settings
    settings.file_format, settings.color_depth, settings.exr_codec = "OPEN_EXR", "32", "NONE"
    return bpy, scene


def _sphere(bpy, np, sphere: dict, materials):
    """A sphere as a fine mesh (512 x 256 facets, each under a ten-thousandth of the radius
    from the true surface) shaded by its exact radial normals. Not Cycles' point clouds,
    which are true spheres but are not hit from inside: glass balls rendered as shells that
    bend light once."""
    rings, segments = 256, 512
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    normals = np.stack([np.outer(np.sin(theta), np.cos(phi)), np.outer(np.cos(theta), np.ones_like(phi)),
                        np.outer(np.sin(theta), np.sin(phi))], axis=-1).reshape(-1, 3)
    normals = np.concatenate([[[0.0, 1.0, 0.0]], normals, [[0.0, -1.0, 0.0]]])
    grid = 1 + np.arange((rings - 1) * segments).reshape(rings - 1, segments)
    after = np.roll(grid, -1, axis=1)
    # every face counter-clockwise seen from outside (Cycles takes the front from the winding)
    quads = np.stack([grid[:-1], after[:-1], after[1:], grid[1:]], axis=-1).reshape(-1, 4)
    bottom = len(normals) - 1
    faces = ([(0, int(b), int(a)) for a, b in zip(grid[0], after[0])] + quads.tolist()
             + [(bottom, int(a), int(b)) for a, b in zip(grid[-1], after[-1])])
    made = bpy.data.meshes.new("sphere")
    made.from_pydata((np.array(sphere["center"]) + sphere["radius"] * normals).tolist(), [], faces)
    made.materials.append(materials[sphere["material"]])
    made.shade_smooth()
    made.normals_split_custom_set_from_vertices(normals.tolist())
    made.update()
    return made


def _material(bpy, material: dict):
    """farm's material as Cycles nodes: diffuse, GGX conductor (complex index per channel) and
    GGX glass as Cycles' own closures, which are the same models (Cycles squares its
    roughness input, as farm does); plastic as the Principled BSDF, which layers its
    Lambertian base under a GGX coat as farm's (Mitsuba's roughplastic) does, but weighs
    the base by the coat's albedo towards the viewer only: an approximation."""
    made = bpy.data.materials.new(material["name"])
    made.use_nodes = True
    nodes, links = made.node_tree.nodes, made.node_tree.links
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    kind = material["kind"]
    if kind == "conductor":
        bsdf = nodes.new("ShaderNodeBsdfMetallic")
        bsdf.fresnel_type = "PHYSICAL_CONDUCTOR"
        bsdf.inputs["IOR"].default_value = material["eta"]
        bsdf.inputs["Extinction"].default_value = material["k"]
    elif kind == "dielectric":
        bsdf = nodes.new("ShaderNodeBsdfGlass")
        bsdf.inputs["IOR"].default_value = material["ior"]
    elif kind == "plastic":
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        bsdf.inputs["IOR"].default_value = material["ior"]
        _colour(nodes, links, material["reflectance"], bsdf.inputs["Base Color"])
    else:
        bsdf = nodes.new("ShaderNodeBsdfDiffuse")
        _colour(nodes, links, material["reflectance"], bsdf.inputs["Color"])
    if kind != "diffuse":
        bsdf.distribution = "GGX"  # single scattering, as farm's
        bsdf.inputs["Roughness"].default_value = material["roughness"]
    shader = bsdf.outputs[0]
    if max(material["emission"]) > 0:
        emission = nodes.new("ShaderNodeEmission")
        emission.inputs["Color"].default_value = (*material["emission"], 1.0)
        geometry = nodes.new("ShaderNodeNewGeometry")
        front = _math(nodes, links, "SUBTRACT", 1.0, geometry.outputs["Backfacing"])  # strength: the front only
        links.new(front, emission.inputs["Strength"])
        added = nodes.new("ShaderNodeAddShader")
        links.new(shader, added.inputs[0])
        links.new(emission.outputs[0], added.inputs[1])
        shader = added.outputs[0]
        made.cycles.emission_sampling = "FRONT"
    links.new(shader, output.inputs["Surface"])
    return made


def _math(nodes, links, operation: str, *inputs):
    """A Math node of `operation` on numbers or sockets; its output."""
    node = nodes.new("ShaderNodeMath")
    node.operation = operation
    for slot, value in zip(node.inputs, inputs):
        if isinstance(value, (int, float)):
            slot.default_value = value
        else:
            links.new(value, slot)
    return node.outputs[0]


def _colour(nodes, links, value, socket) -> None:
    """A colour: RGB, or farm's checkerboard on the first uv set (squares where
    floor(s) + floor(t) is even take color0; (s, t) = transform uv + offset), times its factor."""
    if isinstance(value, list):
        socket.default_value = (*value, 1.0)
        return
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = "uv"
    split = nodes.new("ShaderNodeSeparateXYZ")
    links.new(uv.outputs["UV"], split.inputs[0])
    (a, b, c, d), (ou, ov) = value["transform"], value["offset"]
    u, v = split.outputs["X"], split.outputs["Y"]
    s = _math(nodes, links, "ADD", _math(nodes, links, "MULTIPLY_ADD", u, a, ou), _math(nodes, links, "MULTIPLY", v, b))
    t = _math(nodes, links, "ADD", _math(nodes, links, "MULTIPLY_ADD", u, c, ov), _math(nodes, links, "MULTIPLY", v, d))
    parity = _math(nodes, links, "FLOORED_MODULO", _math(nodes, links, "ADD", _math(nodes, links, "FLOOR", s),
                                                          _math(nodes, links, "FLOOR", t)), 2.0)
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    slot = {s.identifier: s for s in (*mix.inputs, *mix.outputs)}  # the colour sockets (names repeat per type)
    links.new(parity, slot["Factor_Float"])
    slot["A_Color"].default_value = (*[x * f for x, f in zip(value["color0"], value["factor"])], 1.0)
    slot["B_Color"].default_value = (*[x * f for x, f in zip(value["color1"], value["factor"])], 1.0)
    links.new(slot["Result_Color"], socket)


def _world(bpy, environment):
    """The background: black, a constant radiance, or the equirectangular image looked up as
    farm and Mitsuba do (u = atan2(x, -z) / 2 pi, v = acos(y) / pi of the direction in the
    map's frame, columns centred at (i + 0.5) / width, the first row at the zenith and the
    last at the nadir, bilinear), through an image texture node fed those coordinates."""
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = nodes["Background"]
    if environment is None:
        background.inputs["Strength"].default_value = 0.0
        return world
    background.inputs["Strength"].default_value = environment["scale"]
    if environment["file"] is None:
        background.inputs["Color"].default_value = (*environment["radiance"], 1.0)
        return world
    direction = nodes.new("ShaderNodeTexCoord").outputs["Generated"]  # in a world: the ray's direction
    x, y, z = [], [], []
    for row, out in zip(environment["rows"], (x, y, z)):
        dot = nodes.new("ShaderNodeVectorMath")
        dot.operation = "DOT_PRODUCT"
        links.new(direction, dot.inputs[0])
        dot.inputs[1].default_value = row
        out.append(dot.outputs["Value"])
    image = nodes.new("ShaderNodeTexImage")
    image.image = bpy.data.images.load(environment["file"])
    image.image.colorspace_settings.name = "Non-Color"  # radiance as stored (Radiance HDR, OpenEXR: linear)
    image.interpolation, image.extension = "Linear", "REPEAT"
    height = image.image.size[1]
    u = _math(nodes, links, "DIVIDE", _math(nodes, links, "ARCTAN2", x[0], _math(nodes, links, "MULTIPLY", z[0], -1.0)),
              2 * math.pi)  # Cycles' image lookup wraps u into [0, 1)
    polar = _math(nodes, links, "DIVIDE", _math(nodes, links, "ARCCOSINE", y[0]), math.pi)
    # row from the top = v (height - 1); Cycles' row from the bottom = v' height - 0.5
    v = _math(nodes, links, "MULTIPLY_ADD", polar, -(height - 1) / height, (height - 0.5) / height)
    uv = nodes.new("ShaderNodeCombineXYZ")
    links.new(u, uv.inputs["X"])
    links.new(v, uv.inputs["Y"])
    links.new(uv.outputs[0], image.inputs["Vector"])
    links.new(image.outputs["Color"], background.inputs["Color"])
    return world


def main(argv: list[str]) -> int:
    base, out_dir, settings = argv[0], argv[1], argv[2:]
    bpy, scene = build(base)
    scene.cycles.samples = 1
    scene.render.filepath = f"{out_dir}/warm-up.exr"
    bpy.ops.render.render(write_still=True)
    for setting in settings:
        samples, threshold = setting.split(":")
        scene.cycles.samples = int(samples)
        scene.cycles.use_adaptive_sampling = float(threshold) > 0
        if float(threshold) > 0:
            scene.cycles.adaptive_threshold = float(threshold)
        scene.render.filepath = f"{out_dir}/cycles-{samples}-{threshold}.exr"
        started = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        print(f"RESULT {scene.render.filepath} {time.perf_counter() - started:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
