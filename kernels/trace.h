/* Rays against the scene: a BVH over triangles and spheres, walked with a small stack,
 * nearer child first. */
#ifndef FARM_TRACE_H
#define FARM_TRACE_H

#include "types.h"
#include "sampling.h"

#define STACK_SIZE 64  /* the host refuses trees deeper than this */

typedef struct {
    float t;
    float b1, b2;  /* barycentrics of corners 1 and 2 (triangles) */
    int prim;      /* < triangle count: a triangle; else a sphere */
} Hit;

/* Baldwin-Weber: the plane first, then the barycentrics of the point hit; returns the
 * distance (or INFINITY) and the barycentrics. */
inline float hit_triangle(__global const Triangle *tri, float3 o, float3 d, float t_max, float *b1, float *b2) {
    float4 plane = tri->plane;
    float along = dot3(plane.xyz, d);
    if (along == 0.0f) return INFINITY;
    float t = -(dot3(plane.xyz, o) + plane.w) / along;
    if (!(t > 0.0f && t < t_max)) return INFINITY;
    float3 p = o + d * t;
    float4 r1 = tri->b1;
    float u = dot3(r1.xyz, p) + r1.w;
    if (u < 0.0f || u > 1.0f) return INFINITY;
    float4 r2 = tri->b2;
    float v = dot3(r2.xyz, p) + r2.w;
    if (v < 0.0f || u + v > 1.0f) return INFINITY;
    *b1 = u;
    *b2 = v;
    return t;
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

/* Slab test. inv_d has no infinities (safe_reciprocal), so no 0 * inf makes a NaN and
 * min_f/max_f are exact. The far distance is widened by a few ulps so that rounding never
 * loses a primitive lying on the box's face. */
inline bool hit_box(float4 lower, float4 upper, float3 o, float3 inv_d, float t_max, float *t_near) {
    float3 t0 = (lower.xyz - o) * inv_d;
    float3 t1 = (upper.xyz - o) * inv_d;
    float near = max_f(max_f(min_f(t0.x, t1.x), min_f(t0.y, t1.y)), max_f(min_f(t0.z, t1.z), 0.0f));
    float far = min_f(min_f(max_f(t0.x, t1.x), max_f(t0.y, t1.y)), max_f(t0.z, t1.z)) * 1.0000004f;
    *t_near = near;
    return near <= far && near < t_max;
}

/* 1 / x, with |x| raised to at least 1e-18 first (as Embree's rcp_safe): a ray parallel to
 * a slab gets huge finite distances instead of infinities, and one lying in a box's face
 * counts as inside it instead of making a NaN. */
inline float safe_reciprocal(float x) {
    return 1.0f / (fabs(x) < 1e-18f ? copysign(1e-18f, x) : x);
}

/* Nearest hit before t_max; with `any`, stop at the first hit found (shadow rays).
 * Primitive `ignore` (or -1) is never hit: a shadow ray aimed at a point on a light must
 * not be stopped by that light's own surface, which rounding can put a hair in front.
 * The walk visits one child entry at a time: an interior node (count -1) or a leaf. */
inline bool trace(const SceneRef *s, float3 o, float3 d, float t_max, bool any, int ignore, Hit *hit) {
    const int n_triangles = s->frame->counts.x;
    float3 inv_d = (float3)(safe_reciprocal(d.x), safe_reciprocal(d.y), safe_reciprocal(d.z));
    int stack_index[STACK_SIZE], stack_count[STACK_SIZE];
    float stack_t[STACK_SIZE];
    int top = 0;
    float t_best = t_max;
    int best = -1;
    float best_b1 = 0.0f, best_b2 = 0.0f;
    int index = 0, count = -1;  /* the root node */
    while (true) {
        if (count >= 0) {  /* a leaf */
            int end = index + count;
            for (int slot = index; slot < end; ++slot) {
                int prim = s->prims[slot];
                if (prim == ignore) continue;
                float t, b1 = 0.0f, b2 = 0.0f;
                if (prim < n_triangles) t = hit_triangle(&s->triangles[prim], o, d, t_best, &b1, &b2);
                else t = hit_sphere(&s->spheres[prim - n_triangles], o, d, t_best);
                if (t < t_best) {
                    t_best = t; best = prim; best_b1 = b1; best_b2 = b2;
                    if (any) { hit->t = t; hit->prim = prim; return true; }
                }
            }
        } else {
            __global const Node *n = &s->nodes[index];
            float t_left, t_right;
            bool hit_left = hit_box(n->left_lower, n->left_upper, o, inv_d, t_best, &t_left);
            bool hit_right = hit_box(n->right_lower, n->right_upper, o, inv_d, t_best, &t_right);
            int4 children = n->children;
            if (hit_left && hit_right) {
                bool left_first = t_left <= t_right;
                stack_index[top] = left_first ? children.z : children.x;
                stack_count[top] = left_first ? children.w : children.y;
                stack_t[top] = left_first ? t_right : t_left;
                ++top;
                index = left_first ? children.x : children.z;
                count = left_first ? children.y : children.w;
                continue;
            }
            if (hit_left) { index = children.x; count = children.y; continue; }
            if (hit_right) { index = children.z; count = children.w; continue; }
        }
        /* Pop the next entry still nearer than the best hit. */
        bool found = false;
        while (top > 0) {
            --top;
            if (stack_t[top] < t_best) {
                index = stack_index[top];
                count = stack_count[top];
                found = true;
                break;
            }
        }
        if (!found) break;
    }
    if (best < 0) return false;
    hit->t = t_best;
    hit->b1 = best_b1;
    hit->b2 = best_b2;
    hit->prim = best;
    return true;
}

#endif
