/* Structs shared with the host. Each mirrors a numpy dtype in farm/scene/layout.py;
 * every field is a float4, int4, float8 or int8 (or a struct of them), so both sides agree on the
 * layout. The enumerations (MATERIAL_*, TEXTURE_*, WRAP_*, LIGHT_*, STRATEGY_*, SAMPLER_*) come
 * from there too, as -D build options (layout.KERNEL_CONSTANTS, passed by farm/worker/render.py):
 * this file has no copy of them. */
#ifndef FARM_TYPES_H
#define FARM_TYPES_H

#if !defined(MATERIAL_DIFFUSE) || !defined(MATERIAL_CONDUCTOR) || !defined(MATERIAL_DIELECTRIC) \
    || !defined(MATERIAL_PLASTIC) || !defined(MATERIAL_PRINCIPLED)
#error "MATERIAL_* come from the host (farm/scene/layout.py, KERNEL_CONSTANTS)"
#endif
#if !defined(TEXTURE_IMAGE) || !defined(TEXTURE_CHECKERBOARD) \
    || !defined(WRAP_REPEAT) || !defined(WRAP_MIRROR) || !defined(WRAP_CLAMP)
#error "TEXTURE_* and WRAP_* come from the host (farm/scene/layout.py, KERNEL_CONSTANTS)"
#endif
#if !defined(LIGHT_TRIANGLE) || !defined(LIGHT_SPHERE) || !defined(LIGHT_POINT) || !defined(LIGHT_SPOT) \
    || !defined(LIGHT_SUN) || !defined(LIGHT_ENVIRONMENT)
#error "LIGHT_* come from the host (farm/scene/layout.py, KERNEL_CONSTANTS)"
#endif
#if !defined(INSTANCE_IDENTITY) || !defined(INSTANCE_MIRRORED) || !defined(INSTANCE_MOVING) \
    || !defined(NODE_INSTANCE) || !defined(NODE_TOP)
#error "INSTANCE_* and NODE_INSTANCE come from the host (farm/scene/layout.py, KERNEL_CONSTANTS)"
#endif
#if !defined(STRATEGY_MIS) || !defined(STRATEGY_LIGHT) || !defined(STRATEGY_BSDF) \
    || !defined(SAMPLER_INDEPENDENT) || !defined(SAMPLER_SOBOL)
#error "STRATEGY_* and SAMPLER_* come from the host (farm/scene/layout.py, KERNEL_CONSTANTS)"
#endif

/* A node of the wide BVH: up to eight children, their boxes as one lane each of six
 * float8 rows, so one ray meets all eight boxes in a few vector instructions. */
typedef struct {
    float8 lower_x, lower_y, lower_z;
    float8 upper_x, upper_y, upper_z;
    int8 child;  /* a node: its index; a leaf: its first TrianglePack */
    int8 count;  /* a node: -1; a leaf: its number of packs; 0: no child in this lane */
} Node;

/* One placement of a bottom level (FARM_INSTANCES): rows of its world-to-object and
 * object-to-world 3x4 matrices (xyz linear, w translation). */
typedef struct {
    float4 to_object0, to_object1, to_object2;
    float4 to_world0, to_world1, to_world2;
    int4 info;  /* x: root of its tree in `nodes`, y: its first light, z: INSTANCE_* flags, w: its level */
} Instance;

/* A moving instance's placement at the shutter's open (0) and close (1) (FARM_MOTION):
 * translation, rotation quaternion (xyz, w), and the linear part's stretch rows. */
typedef struct {
    float4 t0, q0, k0_0, k0_1, k0_2;
    float4 t1, q1, k1_0, k1_1, k1_2;
} Motion;

/* Up to four primitives of a leaf, a triangle's rows one lane per triangle, so one ray
 * meets four triangles at once (Baldwin and Weber 2016: what intersection needs, nothing
 * more). For a point p in the plane, b1 = dot(b1.xyz, p) + b1.w, b2 likewise, and
 * dot(plane.xyz, p) + plane.w = 0. Lanes of spheres and empty lanes have zero rows. */
typedef struct {
    float4 b1_x, b1_y, b1_z, b1_w;
    float4 b2_x, b2_y, b2_z, b2_w;
    float4 plane_x, plane_y, plane_z, plane_w;
    int4 prim;  /* per lane: triangle index, triangle count + sphere index, or -1 for none */
} TrianglePack;

typedef struct {
    float4 n;      /* xyz: unit geometric normal (counter-clockwise winding); w: area */
    float4 uv01;   /* uv of corners 0 (xy) and 1 (zw) */
    float4 uv2;    /* uv of corner 2 (xy) */
    int4 info;     /* x: material, y: light index or -1, z: ShadingNormals index or -1 (flat),
                      w: SurfaceExtras index or -1 */
} TriangleData;

typedef struct {
    float4 n0, n1, n2;  /* unit vertex normals in world space */
} ShadingNormals;

/* What only some triangles need: tangents for a normal map (xyz in world space; w: the
 * bitangent's sign, bitangent = w cross(n, t)) and the corners' second uv set. */
typedef struct {
    float4 t0, t1, t2;
    float4 uv1_01;  /* second uvs of corners 0 (xy) and 1 (zw) */
    float4 uv1_2;   /* of corner 2 (xy) */
} SurfaceExtras;

typedef struct {
    float4 center_radius;     /* xyz: centre, w: radius */
    float4 row0, row1, row2;  /* world-to-object rotation, for uvs */
    int4 info;                /* x: material, y: light index or -1 */
} Sphere;

typedef struct {
    float4 value;  /* the constant: rgb, or x for a scalar; with a texture, its factor */
    int4 texture;  /* x: texture index or -1 for the constant; y: channel for a scalar; z: 1 where `bias` is added */
    float4 bias;   /* with a texture and texture.z: added after the factor (UsdUVTexture's bias) */
} Param;

typedef struct {
    int4 kind;            /* x: MATERIAL_*; y: first texel of plastic's transmittance table or -1, z: its size */
    Param reflectance;    /* diffuse albedo (diffuse, plastic) */
    Param roughness;      /* GGX alpha = roughness^2 */
    Param specular;       /* tint of specular reflection */
    Param transmittance;  /* tint of refraction (dielectric) */
    Param emission;       /* radiance leaving the front side */
    float4 eta;           /* conductor: real part of the index, per channel */
    float4 k;             /* conductor: imaginary part */
    float4 ior;           /* x: interior / exterior index; y: internal diffuse Fresnel reflectance;
                             z: alpha cutoff (0: never cut out) */
    Param metallic;       /* principled: 0 dielectric, 1 metal, blended between */
    Param normal_map;     /* tangent-space normals (texture or -1); value.x scales their x and y */
    Param alpha;          /* coverage, cut out below the cutoff */
} Material;

typedef struct {
    int4 info;         /* x: TEXTURE_*, y: first texel (float index), z: width, w: height */
    int4 mode;         /* x: channels, y: WRAP_*, z: 1 for nearest, 0 for bilinear, w: uv set */
    float4 transform;  /* lookup at (dot(xy, uv), dot(zw, uv)) + offset.xy */
    float4 offset;
    float4 color0;     /* checkerboard colours */
    float4 color1;
} Texture;

typedef struct {
    int4 info;         /* x: LIGHT_*, y: primitive index (triangle, sphere), z: its instance, w: 1 for a
                        * triangle whose emission has no texture (in intensity) */
    float4 pick;       /* x: probability of choosing it, y: cumulative probability, z: area */
    float4 position;   /* point, spot */
    float4 direction;  /* spot: unit axis; sun: unit direction of travel; triangle: unit front normal */
    float4 intensity;  /* point, spot: W/sr; sun: irradiance (an environment's is in Frame); triangle: its
                        * emission where info.w is 1 */
    float4 spot;       /* cos cutoff, cos beam, cutoff (radians), 1 / (cutoff - beam) */
    float4 corner;     /* triangle: first corner */
    float4 edge1;      /* triangle: second corner - first */
    float4 edge2;      /* triangle: third corner - first */
} Light;

typedef struct {
    float4 origin;
    float4 forward;       /* unit viewing direction; w: the near clipping plane's distance along it (0: none) */
    float4 right;         /* scaled by tan(half fov) along x; w: the far clipping plane's (0: none) */
    float4 up;            /* scaled by tan(half fov) along y */
    float4 lens_u;        /* xyz: unit right * aperture radius; w: focus distance */
    float4 lens_v;        /* xyz: unit up * aperture radius */
    float4 env_radiance;  /* constant environment radiance, or the image's scale */
    float4 env_row0, env_row1, env_row2;  /* world-to-environment rotation */
    int4 size;            /* width, height, samples per pixel, max path depth */
    int4 counts;          /* triangles, lights, seed (as uint), Russian roulette depth */
    int4 options;         /* sampler, environment texture or -1, environment light or -1, has environment */
    int4 env;             /* environment distribution width, height; strategy; 1: sample the environment uniformly */
    float4 origin1, forward1, right1, up1;  /* FARM_MOTION: the camera at the shutter's close (origin1.w 1) */
} Frame;

/* Every buffer of a scene, passed around as one value. */
typedef struct {
    __global const Frame *frame;
    __global const Node *top;  /* the instances' tree (FARM_INSTANCES) */
    __global const Instance *instances;
    __global const Motion *motions;
    __global const Node *nodes;
    __global const TrianglePack *packs;
    __global const TriangleData *tri_data;
    __global const ShadingNormals *normals;
    __global const SurfaceExtras *extras;
    __global const Sphere *spheres;
    __global const Material *materials;
    __global const Texture *textures;
    __global const float *texels;
    __global const Light *lights;
    __global const float *env_marginal;
    __global const float *env_conditional;
    __global const float *env_pdf;
    __global const int *env_guide;
} SceneRef;

#endif
