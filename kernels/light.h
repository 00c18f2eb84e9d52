/* Lights: choosing one by power, sampling a direction towards it, and the density with
 * which a direction found by BSDF sampling would have been chosen (for MIS). */
#ifndef FARM_LIGHT_H
#define FARM_LIGHT_H

#include "types.h"
#include "sampling.h"
#include "texture.h"

typedef struct {
    float3 wi;        /* unit direction from the shading point towards the light */
    float dist;       /* distance to the sampled point; INFINITY for sun and environment */
    float3 radiance;  /* arriving radiance (or irradiance-like value for delta lights) */
    float pdf;        /* solid angle density including the choice; for delta lights, the choice probability */
    bool delta;
    int prim;         /* the emitting primitive (triangle, or triangle count + sphere), else -1 */
    int instance;     /* the instance it is in (FARM_INSTANCES) */
} LightSample;

inline float power_heuristic(float a, float b) {
    float a2 = a * a, b2 = b * b;
    return a2 + b2 > 0.0f ? a2 / (a2 + b2) : 0.0f;
}

/* Whether env_sample chooses directions uniformly (no map, or a map it does not follow). */
inline bool env_uniform(__global const Frame *f) { return f->options.y < 0 || f->env.w != 0; }

/* Index i with cdf[i] <= u < cdf[i + 1] in cdf[0..n] (the last such i in [0, n - 1]: bins of
 * zero probability are skipped), searched only between the entries of `guide` for u's
 * step of `steps` (farm.scene.lights.environment_guides): the bin lies there, so the
 * search finds the bin a search of all n finds, in a step or two (a search of all took one
 * a halving, and was a tenth of the showcase's time). The select is compiled into a jump
 * on x86 (LLVM's conversion of cmov in loops); forced branch-free (the sign bit of
 * u - cdf[...]) the showcase was 2-5% slower on Zen 5: the jump lets the next load start
 * early. */
inline int search_cdf(__global const float *cdf, __global const int *guide, int steps, float u) {
    int at = min_i((int)(u * (float)steps), steps - 1);  /* steps is a power of two: u * steps is exact */
    int base = guide[at], size = guide[at + 1] - base + 1;
    while (size > 1) {
        int step = size / 2;
        base = cdf[base + step] <= u ? base + step : base;
        size -= step;
    }
    return base;
}

inline float3 emission_at(const SceneRef *s, int material, float4 uv) {
    return param_rgb(s, s->materials[material].emission, uv);
}

__attribute__((always_inline)) inline float2 sphere_uv(__global const Sphere *sphere, float3 n) {
    float3 in_map = (float3)(dot3(sphere->row0.xyz, n), dot3(sphere->row1.xyz, n), dot3(sphere->row2.xyz, n));
    float u = atan2_f(in_map.y, in_map.x) * (0.5f * INV_PI_F);
    if (u < 0.0f) u += 1.0f;
    return (float2)(u, acos_f(clamp_f(in_map.z, -1.0f, 1.0f)) * INV_PI_F);
}

/* Whether p is outside the sphere (its lights are then sampled by the cone they subtend);
 * *one_minus_cos_max gets 1 - cos of the cone's half angle, free of cancellation. */
inline bool sphere_cone(__global const Sphere *sphere, float3 p, float *one_minus_cos_max) {
    float3 axis = sphere->center_radius.xyz - p;
    float dc2 = dot3(axis, axis);
    float r2 = sphere->center_radius.w * sphere->center_radius.w;
    if (dc2 <= r2 * 1.0001f) return false;
    float sin2_max = r2 / dc2;
    *one_minus_cos_max = sin2_max / (1.0f + sqrt_f(1.0f - sin2_max));
    return true;
}

/* A direction towards `light` (light_lanes.h, pick_light_v) from p. False if nothing arrives. Not for the
 * environment, which the paths in lanes sample (light_lanes.h, env_sample_v). */
inline bool sample_picked_light(const SceneRef *s, __global const Light *light, float3 p, float2 u, LightSample *ls) {
    float pmf = light->pick.x;
    int kind = light->info.x;
    ls->delta = kind == LIGHT_POINT || kind == LIGHT_SPOT || kind == LIGHT_SUN;
    ls->prim = kind == LIGHT_TRIANGLE ? light->info.y
             : kind == LIGHT_SPHERE ? s->frame->counts.x + light->info.y : -1;
    ls->instance = light->info.z;
    if (kind == LIGHT_TRIANGLE || kind == LIGHT_SPHERE) {
        float3 point, normal;
        int material;
        float4 uv;
        if (kind == LIGHT_TRIANGLE) {
            __global const TriangleData *td = &s->tri_data[light->info.y];
            float2 b = sample_triangle(u.x, u.y);
            point = light->corner.xyz + light->edge1.xyz * b.x + light->edge2.xyz * b.y;
            normal = light->direction.xyz;  /* the front normal in world space, whatever the instance */
            material = td->info.x;
            uv = triangle_uvs(s, td, b.x, b.y);
        } else {
            __global const Sphere *sphere = &s->spheres[light->info.y];
            float3 center = sphere->center_radius.xyz;
            float radius = sphere->center_radius.w;
            float one_minus_cos_max;
            if (sphere_cone(sphere, p, &one_minus_cos_max)) {
                /* Uniform in the cone of directions the sphere subtends from p. */
                float3 axis = center - p;
                float dc = sqrt_f(dot3(axis, axis));
                axis = axis / dc;
                float cos_theta = 1.0f - u.x * one_minus_cos_max;
                float sin_theta = sqrt_f(max_f(1.0f - cos_theta * cos_theta, 0.0f));
                float2 cs = unit_circle(u.y);
                float3 t, b;
                basis(axis, &t, &b);
                float3 wi = t * (sin_theta * cs.x) + b * (sin_theta * cs.y) + axis * cos_theta;
                /* The nearer intersection of that direction with the sphere. */
                float along = dc * cos_theta;
                float dist = along - sqrt_f(max_f(radius * radius - dc * dc * sin_theta * sin_theta, 0.0f));
                point = p + wi * dist;
                normal = unit3(point - center);
                material = sphere->info.x;
                uv = sphere_uv(sphere, normal).xyxy;
                ls->dist = dist;
                ls->wi = wi;
                ls->pdf = pmf / (2.0f * PI_F * one_minus_cos_max);
                ls->radiance = emission_at(s, material, uv);
                return dist > 0.0f;
            }
            normal = sample_sphere(u.x, u.y);  /* from inside: uniform over its area */
            point = center + normal * radius;
            material = sphere->info.x;
            uv = sphere_uv(sphere, normal).xyxy;
        }
        float3 to_light = point - p;
        float dist2 = dot3(to_light, to_light);
        if (!(dist2 > 0.0f)) return false;
        ls->dist = sqrt_f(dist2);
        ls->wi = to_light / ls->dist;
        float cos_light = -dot3(normal, ls->wi);
        if (cos_light <= 0.0f) return false;  /* emitters shine from their front only */
        ls->pdf = pmf * dist2 / (cos_light * light->pick.z);
        ls->radiance = emission_at(s, material, uv);
        return true;
    }
    if (kind == LIGHT_POINT || kind == LIGHT_SPOT) {
        float3 to_light = light->position.xyz - p;
        float dist2 = dot3(to_light, to_light);
        if (!(dist2 > 0.0f)) return false;
        ls->dist = sqrt_f(dist2);
        ls->wi = to_light / ls->dist;
        ls->pdf = pmf;
        ls->radiance = light->intensity.xyz / dist2;
        if (kind == LIGHT_SPOT) {
            float cos_theta = -dot3(ls->wi, light->direction.xyz);
            if (cos_theta <= light->spot.x) return false;
            if (cos_theta < light->spot.y)  /* linear in angle between beam width and cutoff */
                ls->radiance *= (light->spot.z - acos_f(cos_theta)) * light->spot.w;
        }
        return true;
    }
    ls->wi = -light->direction.xyz;  /* LIGHT_SUN */
    ls->dist = INFINITY;
    ls->pdf = pmf;
    ls->radiance = light->intensity.xyz;
    return true;
}

/* Density (solid angle, choice included) with which a light sample taken at `origin`
 * picks the point hit at distance t on area light `index` whose front normal makes
 * cosine cos_light with the ray. */
inline float area_light_pdf(const SceneRef *s, int index, float3 origin, float t, float cos_light) {
    __global const Light *light = &s->lights[index];
    if (cos_light <= 0.0f) return 0.0f;
    float one_minus_cos_max;
    if (light->info.x == LIGHT_SPHERE && sphere_cone(&s->spheres[light->info.y], origin, &one_minus_cos_max))
        return light->pick.x / (2.0f * PI_F * one_minus_cos_max);
    return light->pick.x * t * t / (cos_light * light->pick.z);
}

#endif
