"""Blender's Cycles rendering a scene farm.tools.bench_cycles exported, for `farm bench --quality
--cycles`. Runs in the Python that has Blender's `bpy` module (Python 3.13: `pip install bpy`),
not in farm's, so it imports nothing of farm's:

    python3.13 cycles_render.py SCENE_BASE OUT_DIR SAMPLES:THRESHOLD ...

SCENE_BASE.npz holds world-space triangles and a material per triangle, SCENE_BASE.json the
materials (Lambertian reflectance, emission from the front only, as farm's and Mitsuba's
emitters: Cycles' emission shines from the back too unless told), the pinhole camera, the
film and the path depth. Each SAMPLES:THRESHOLD (0: uniform samples; else Cycles' adaptive
sampling with that noise threshold, SAMPLES the most) is rendered on the CPU threads the JSON names (the machine's cores) with a box
pixel filter and denoised by OIDN (Cycles' own, guided by its albedo and normal) into an
EXR; one line `RESULT path seconds` each, the seconds of the render alone (the scene is
synced and the kernels loaded once first, by a one-sample render).
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
    mesh.update()
    scene.collection.objects.link(bpy.data.objects.new("scene", mesh))

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

    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0
    scene.world = world

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
    scene.cycles.use_denoising = True
    scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.view_settings.view_transform = "Standard"
    settings = scene.render.image_settings
    settings.file_format, settings.color_depth, settings.exr_codec = "OPEN_EXR", "32", "NONE"
    return bpy, scene


def _material(bpy, material: dict):
    made = bpy.data.materials.new(material["name"])
    made.use_nodes = True
    nodes, links = made.node_tree.nodes, made.node_tree.links
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    diffuse = nodes.new("ShaderNodeBsdfDiffuse")
    diffuse.inputs["Color"].default_value = (*material["reflectance"], 1.0)
    shader = diffuse.outputs[0]
    if max(material["emission"]) > 0:
        emission = nodes.new("ShaderNodeEmission")
        emission.inputs["Color"].default_value = (*material["emission"], 1.0)
        geometry = nodes.new("ShaderNodeNewGeometry")
        front = nodes.new("ShaderNodeMath")  # strength 1 - backfacing: the front only
        front.operation = "SUBTRACT"
        front.inputs[0].default_value = 1.0
        links.new(geometry.outputs["Backfacing"], front.inputs[1])
        links.new(front.outputs[0], emission.inputs["Strength"])
        added = nodes.new("ShaderNodeAddShader")
        links.new(diffuse.outputs[0], added.inputs[0])
        links.new(emission.outputs[0], added.inputs[1])
        shader = added.outputs[0]
        made.cycles.emission_sampling = "FRONT"
    links.new(shader, output.inputs["Surface"])
    return made


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
