/* Ray-scene intersection: every triangle and sphere, nearest hit wins. */
#ifndef FARM_INTERSECT_H
#define FARM_INTERSECT_H

#include "types.h"
#include "sampling.h"

typedef struct {
    float t;
    float3 n;      /* unit geometric normal of the front side */
    int material;
    int light;     /* light index of the primitive, or -1 */
} Hit;

/* Moller-Trumbore; returns the distance or INFINITY. */
inline float hit_triangle(__global const Triangle *tri, float3 o, float3 d, float t_max) {
    float3 e1 = tri->e1.xyz, e2 = tri->e2.xyz;
    float3 p = cross3(d, e2);
    float det = dot3(e1, p);
    if (det == 0.0f) return INFINITY;
    float inv = 1.0f / det;
    float3 s = o - tri->v0.xyz;
    float u = dot3(s, p) * inv;
    if (u < 0.0f || u > 1.0f) return INFINITY;
    float3 q = cross3(s, e1);
    float v = dot3(d, q) * inv;
    if (v < 0.0f || u + v > 1.0f) return INFINITY;
    float t = dot3(e2, q) * inv;
    return (t > 0.0f && t < t_max) ? t : INFINITY;
}

/* Nearest positive root of |o + t d - c| = r; d need not be unit. */
inline float hit_sphere(__global const Sphere *sphere, float3 o, float3 d, float t_max) {
    float3 c = sphere->center_radius.xyz;
    float r = sphere->center_radius.w;
    float3 oc = o - c;
    float a = dot3(d, d);
    float half_b = dot3(oc, d);
    float cc = dot3(oc, oc) - r * r;
    float disc = half_b * half_b - a * cc;
    if (disc < 0.0f) return INFINITY;
    float root = sqrt(disc);
    float t = (-half_b - root) / a;
    if (!(t > 0.0f)) t = (-half_b + root) / a;
    return (t > 0.0f && t < t_max) ? t : INFINITY;
}

inline bool intersect(__global const Triangle *triangles, int n_triangles,
                      __global const Sphere *spheres, int n_spheres,
                      float3 o, float3 d, float t_max, Hit *hit) {
    int best = -1;
    bool best_is_sphere = false;
    float t_best = t_max;
    for (int i = 0; i < n_triangles; ++i) {
        float t = hit_triangle(&triangles[i], o, d, t_best);
        if (t < t_best) { t_best = t; best = i; best_is_sphere = false; }
    }
    for (int i = 0; i < n_spheres; ++i) {
        float t = hit_sphere(&spheres[i], o, d, t_best);
        if (t < t_best) { t_best = t; best = i; best_is_sphere = true; }
    }
    if (best < 0) return false;
    hit->t = t_best;
    if (best_is_sphere) {
        __global const Sphere *s = &spheres[best];
        hit->n = unit3(o + d * t_best - s->center_radius.xyz);
        hit->material = s->info.x;
        hit->light = s->info.y;
    } else {
        __global const Triangle *tri = &triangles[best];
        hit->n = tri->n.xyz;
        hit->material = tri->info.x;
        hit->light = tri->info.y;
    }
    return true;
}

/* True if anything lies on the segment o + t d, 0 < t < t_max. */
inline bool occluded(__global const Triangle *triangles, int n_triangles,
                     __global const Sphere *spheres, int n_spheres,
                     float3 o, float3 d, float t_max) {
    for (int i = 0; i < n_triangles; ++i)
        if (hit_triangle(&triangles[i], o, d, t_max) < t_max) return true;
    for (int i = 0; i < n_spheres; ++i)
        if (hit_sphere(&spheres[i], o, d, t_max) < t_max) return true;
    return false;
}

#endif
