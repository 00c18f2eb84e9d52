/* A unidirectional path tracer for diffuse surfaces and area lights, with next-event
 * estimation. One work item renders one pixel of one bucket, all its samples. */
#pragma OPENCL FP_CONTRACT OFF

#include "types.h"
#include "rng.h"
#include "sampling.h"
#include "intersect.h"

/* Random dimensions of one sample: two for the pixel, then DIMS_PER_BOUNCE per vertex. */
#define DIM_PIXEL 0
#define DIMS_PER_BOUNCE 5
#define DIM_LIGHT_PICK 0
#define DIM_LIGHT_POINT 1
#define DIM_BSDF 3

/* Offset scale for secondary rays, relative to the magnitude of the hit position. */
#define RAY_EPSILON 1e-4f

inline float ray_epsilon(float3 p) {
    return RAY_EPSILON * (1.0f + fmax(fabs(p.x), fmax(fabs(p.y), fabs(p.z))));
}

/* Pick a light by power and a point on it; returns the light index, fills point and normal. */
inline int sample_light(__global const Light *lights, int n_lights,
                        __global const Triangle *triangles, __global const Sphere *spheres,
                        float u0, float u1, float u2, float3 *point, float3 *normal) {
    int lo = 0, hi = n_lights - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (u0 < lights[mid].data.z) hi = mid; else lo = mid + 1;
    }
    __global const Light *light = &lights[lo];
    if (light->info.x == LIGHT_TRIANGLE) {
        __global const Triangle *tri = &triangles[light->info.y];
        float2 b = sample_triangle(u1, u2);
        *point = tri->v0.xyz + tri->e1.xyz * b.x + tri->e2.xyz * b.y;
        *normal = tri->n.xyz;
    } else {
        __global const Sphere *s = &spheres[light->info.y];
        float3 dir = sample_sphere(u1, u2);
        *point = s->center_radius.xyz + dir * s->center_radius.w;
        *normal = dir;
    }
    return lo;
}

float3 radiance(__global const Frame *frame,
                __global const Triangle *triangles, __global const Sphere *spheres,
                __global const Material *materials, __global const Light *lights,
                uint key, float3 o, float3 d) {
    const int max_depth = frame->size.w;
    const int n_triangles = frame->counts.x, n_spheres = frame->counts.y, n_lights = frame->counts.z;
    float3 result = (float3)(0.0f);
    float3 throughput = (float3)(1.0f);
    /* `depth` counts path segments: 1 is the camera ray, so max_depth 1 shows lights only. */
    for (int depth = 1; depth <= max_depth; ++depth) {
        Hit hit;
        if (!intersect(triangles, n_triangles, spheres, n_spheres, o, d, INFINITY, &hit)) break;
        __global const Material *m = &materials[hit.material];
        bool front = dot3(hit.n, d) < 0.0f;
        /* Emission seen directly; later vertices' emission is counted by light sampling. */
        if (depth == 1 && front) result += throughput * m->emission.xyz;
        if (depth == max_depth) break;

        float3 p = o + d * hit.t;
        float3 n = front ? hit.n : -hit.n;  /* diffuse surfaces are two-sided */
        float3 albedo = m->diffuse.xyz;
        if (albedo.x == 0.0f && albedo.y == 0.0f && albedo.z == 0.0f) break;
        float3 origin = p + n * ray_epsilon(p);
        uint dim = 2 + (uint)(depth - 1) * DIMS_PER_BOUNCE;

        if (n_lights > 0) {
            float3 lp, ln;
            int l = sample_light(lights, n_lights, triangles, spheres,
                                 rand01(key, dim + DIM_LIGHT_PICK),
                                 rand01(key, dim + DIM_LIGHT_POINT),
                                 rand01(key, dim + DIM_LIGHT_POINT + 1), &lp, &ln);
            float3 to_light = lp - origin;
            float dist2 = dot3(to_light, to_light);
            float dist = sqrt(dist2);
            float3 wi = to_light / dist;
            float cos_surface = dot3(n, wi);
            float cos_light = -dot3(ln, wi);
            if (cos_surface > 0.0f && cos_light > 0.0f &&
                !occluded(triangles, n_triangles, spheres, n_spheres, origin, wi,
                          dist * (1.0f - 1e-4f))) {
                __global const Light *light = &lights[l];
                int light_material = light->info.x == LIGHT_TRIANGLE
                    ? triangles[light->info.y].info.x : spheres[light->info.y].info.x;
                float3 le = materials[light_material].emission.xyz;
                /* pdf in area measure: p(light) / area */
                float weight = cos_surface * cos_light * light->data.x / (dist2 * light->data.y);
                result += throughput * albedo * INV_PI_F * le * weight;
            }
        }

        /* Cosine sampling: the pdf cancels the cosine and 1/pi of the diffuse BSDF. */
        d = sample_cosine(n, rand01(key, dim + DIM_BSDF), rand01(key, dim + DIM_BSDF + 1));
        o = origin;
        throughput *= albedo;
    }
    return result;
}

/* Render the bucket at (x0, y0) of size w x h into `out` (w * h * 3 floats, row-major).
 * The launch is padded to whole work groups; extra work items do nothing. */
__kernel void render_bucket(__global const Frame *frame,
                            __global const Triangle *triangles,
                            __global const Sphere *spheres,
                            __global const Material *materials,
                            __global const Light *lights,
                            int x0, int y0, int w, int h,
                            __global float *out) {
    int gx = get_global_id(0), gy = get_global_id(1);
    if (gx >= w || gy >= h) return;
    int px = x0 + gx, py = y0 + gy;
    const int width = frame->size.x, height = frame->size.y, spp = frame->size.z;
    const uint seed = as_uint(frame->counts.w);
    const uint pixel = (uint)py * (uint)width + (uint)px;
    const float3 origin = frame->origin.xyz;
    float3 sum = (float3)(0.0f);
    for (int s = 0; s < spp; ++s) {
        uint key = sample_key(seed, pixel, (uint)s);
        float sx = 2.0f * ((float)px + rand01(key, DIM_PIXEL)) / (float)width - 1.0f;
        float sy = 1.0f - 2.0f * ((float)py + rand01(key, DIM_PIXEL + 1)) / (float)height;
        float3 d = unit3(frame->forward.xyz + frame->right.xyz * sx + frame->up.xyz * sy);
        sum += radiance(frame, triangles, spheres, materials, lights, key, origin, d);
    }
    vstore3(sum / (float)spp, gy * w + gx, out);
}

/* sizeof each shared struct, so the host can check its dtypes against this compiler. */
__kernel void struct_sizes(__global int *out) {
    out[0] = sizeof(Triangle);
    out[1] = sizeof(Sphere);
    out[2] = sizeof(Material);
    out[3] = sizeof(Light);
    out[4] = sizeof(Frame);
}
