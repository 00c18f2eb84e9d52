"""The numpy dtypes that mirror the structs of kernels/types.h, and the enumerations and
limits they share with the kernel (KERNEL_CONSTANTS: the kernel's only copy). Every field
is a float4, int4, float8 or int8 (or a struct of them), so both sides agree on the layout;
render.py checks every field's offset against the compiled kernel."""

from __future__ import annotations

import numpy as np


F4, I4 = ("<f4", 4), ("<i4", 4)
# A wide BVH node: its children's boxes as eight lanes per coordinate, tested at once.
F8, I8 = ("<f4", 8), ("<i4", 8)
NODE = np.dtype(
    [("lower_x", *F8), ("lower_y", *F8), ("lower_z", *F8), ("upper_x", *F8), ("upper_y", *F8), ("upper_z", *F8),
     ("child", *I8), ("count", *I8)]
)
# One placement of a bottom level (a mesh's own tree) in the world: rows of the 3x4
# world-to-object and object-to-world matrices (xyz the linear part, w the translation),
# and x: its tree's root in `nodes`, y: the light index of its first emissive triangle,
# z: INSTANCE_* flags.
INSTANCE = np.dtype(
    [("to_object0", *F4), ("to_object1", *F4), ("to_object2", *F4),
     ("to_world0", *F4), ("to_world1", *F4), ("to_world2", *F4), ("info", *I4)]
)
INSTANCE_IDENTITY, INSTANCE_MIRRORED, INSTANCE_MOVING = 1, 2, 4  # flags: placed as it is; mirrored; moving
# A moving instance's placement at the shutter's open (0) and close (1), as pbrt-v4's
# AnimatedTransform keeps it: translation t, rotation q (a unit quaternion, xyz w), and the
# rest of the linear part k (the polar decomposition's stretch, rows); at a sample's time
# the kernel lerps t and k and slerps q.
MOTION = np.dtype(
    [("t0", *F4), ("q0", *F4), ("k0_0", *F4), ("k0_1", *F4), ("k0_2", *F4),
     ("t1", *F4), ("q1", *F4), ("k1_0", *F4), ("k1_1", *F4), ("k1_2", *F4)]
)
NODE_INSTANCE = -2  # a top level's child lane of this count holds an instance (`child` its index)
NODE_TOP = -5  # a top level's child lane of this count is a node of the top level (-1: of `nodes`)
# Baldwin and Weber's form: rows mapping a world point to (b1, b2) and to the plane's
# signed distance (in units of its dominant normal component); three dot products a test.
TRIANGLE = np.dtype([("b1", *F4), ("b2", *F4), ("plane", *F4)])
# Up to four primitives of a leaf, each row of a triangle's Baldwin-Weber form as one lane
# per coordinate, so one ray meets four triangles in a few vector instructions.
TRIANGLE_PACK = np.dtype(
    [(f"{row}_{axis}", *F4) for row in ("b1", "b2", "plane") for axis in "xyzw"] + [("prim", *I4)]
)
PACK_WIDTH = 4
TRIANGLE_DATA = np.dtype([("n", *F4), ("uv01", *F4), ("uv2", *F4), ("info", *I4)])
SHADING_NORMALS = np.dtype([("n0", *F4), ("n1", *F4), ("n2", *F4)])
# What only some triangles need (normal maps, a second uv set), kept apart so that the
# others do not carry it.
SURFACE_EXTRAS = np.dtype([("t0", *F4), ("t1", *F4), ("t2", *F4), ("uv1_01", *F4), ("uv1_2", *F4)])
SPHERE = np.dtype([("center_radius", *F4), ("row0", *F4), ("row1", *F4), ("row2", *F4), ("info", *I4)])
PARAM = np.dtype([("value", *F4), ("texture", *I4), ("bias", *F4)])
MATERIAL = np.dtype(
    [
        ("kind", *I4),
        ("reflectance", PARAM),
        ("roughness", PARAM),
        ("specular", PARAM),
        ("transmittance", PARAM),
        ("emission", PARAM),
        ("eta", *F4),
        ("k", *F4),
        ("ior", *F4),
        ("metallic", PARAM),
        ("normal_map", PARAM),
        ("alpha", PARAM),
    ]
)
TEXTURE = np.dtype(
    [("info", *I4), ("mode", *I4), ("transform", *F4), ("offset", *F4), ("color0", *F4), ("color1", *F4)]
)
LIGHT = np.dtype(
    [
        ("info", *I4), ("pick", *F4), ("position", *F4), ("direction", *F4), ("intensity", *F4), ("spot", *F4),
        ("corner", *F4), ("edge1", *F4), ("edge2", *F4),
    ]
)
FRAME = np.dtype(
    [
        ("origin", *F4),
        ("forward", *F4),
        ("right", *F4),
        ("up", *F4),
        ("lens_u", *F4),
        ("lens_v", *F4),
        ("env_radiance", *F4),
        ("env_row0", *F4),
        ("env_row1", *F4),
        ("env_row2", *F4),
        ("size", *I4),
        ("counts", *I4),
        ("options", *I4),
        ("env", *I4),
        ("origin1", *F4),   # with motion blur: the camera at the shutter's close (the fields above: at its open)
        ("forward1", *F4),
        ("right1", *F4),
        ("up1", *F4),
    ]
)

# Enumerations the kernel shares (KERNEL_CONSTANTS): the codes in Material.kind.x,
# Texture.info.x and mode.y, Light.info.x, Frame.options.x and env.z.
MATERIAL_KINDS = {"diffuse": 0, "conductor": 1, "dielectric": 2, "plastic": 3, "principled": 4}
TEXTURE_IMAGE, TEXTURE_CHECKERBOARD = 0, 1
WRAP_MODES = {"repeat": 0, "mirror": 1, "clamp": 2}
LIGHT_TRIANGLE, LIGHT_SPHERE, LIGHT_POINT, LIGHT_SPOT, LIGHT_SUN, LIGHT_ENVIRONMENT = range(6)
SAMPLER_KINDS = {"independent": 0, "sobol": 1}
STRATEGY_KINDS = {"mis": 0, "light": 1, "bsdf": 2}
LUMINANCE = np.array([0.2126, 0.7152, 0.0722])
STACK_SIZE = 128  # entries of the kernel's traversal stack (kernels/trace.h); pack.py refuses trees needing more
# GGX alpha below which the kernel treats a conductor or dielectric as perfectly smooth,
# and the least it gives principled; pack.py tabulates no plastic coating smoother.
ALPHA_MIN = 1e-3

# The numbers above that the kernel uses, by their names in kernels/: farm.worker.render
# passes them as -D build options, so the kernel has no copy of its own to disagree. A
# float is a float in the kernel too.
KERNEL_CONSTANTS: dict[str, int | float] = {
    **{f"MATERIAL_{name.upper()}": kind for name, kind in MATERIAL_KINDS.items()},
    "TEXTURE_IMAGE": TEXTURE_IMAGE,
    "TEXTURE_CHECKERBOARD": TEXTURE_CHECKERBOARD,
    **{f"WRAP_{name.upper()}": mode for name, mode in WRAP_MODES.items()},
    "LIGHT_TRIANGLE": LIGHT_TRIANGLE,
    "LIGHT_SPHERE": LIGHT_SPHERE,
    "LIGHT_POINT": LIGHT_POINT,
    "LIGHT_SPOT": LIGHT_SPOT,
    "LIGHT_SUN": LIGHT_SUN,
    "LIGHT_ENVIRONMENT": LIGHT_ENVIRONMENT,
    **{f"SAMPLER_{name.upper()}": kind for name, kind in SAMPLER_KINDS.items()},
    **{f"STRATEGY_{name.upper()}": kind for name, kind in STRATEGY_KINDS.items()},
    "STACK_SIZE": STACK_SIZE,
    "INSTANCE_IDENTITY": INSTANCE_IDENTITY,
    "INSTANCE_MIRRORED": INSTANCE_MIRRORED,
    "INSTANCE_MOVING": INSTANCE_MOVING,
    "NODE_INSTANCE": NODE_INSTANCE,
    "NODE_TOP": NODE_TOP,
    "ALPHA_MIN": ALPHA_MIN,
}
