/* Rays against the scene: a wide BVH over triangles and spheres, walked with a small
 * stack, nearest child first.
 *
 * Why a wide tree: measured on PoCL (AVX2), the binary tree's walk was a third of a
 * sample's time, one scalar box test at a time. Eight children a node let one ray test
 * eight boxes with float8 instructions and visit about a third as many nodes (Wald et al.
 * 2008, "Getting Rid of Packets"; Embree's BVH8): with the Sobol change committed beside
 * it, the Cornell box went from 0.97 to 1.45 M samples/s on this project's 2-core CPU.
 * A leaf's triangles are tested four at a time (TrianglePack). On CPUs the rays of a work
 * item's lanes walk together where they go the same way (trace_lanes.h) and one at a time,
 * here, where they scatter. On a GPU each work item walks its own ray, so the same layout
 * serves there too. */
#ifndef FARM_TRACE_H
#define FARM_TRACE_H

#include "types.h"
#include "sampling.h"
#include "texture.h"

/* STACK_SIZE: entries of the traversal stack; the host refuses trees that could need more (pack.py). */
#ifndef STACK_SIZE
#error "STACK_SIZE comes from the host (farm/scene/layout.py, KERNEL_CONSTANTS)"
#endif

typedef struct {
    float t;
    float b1, b2;  /* barycentrics of corners 1 and 2 (triangles) */
    int prim;      /* < triangle count: a triangle; else a sphere */
    int instance;  /* FARM_INSTANCES: the instance it was found in; -1 the world */
} Hit;

/* Nearest positive root of |o + t d - c| = r no farther than t_max (else INFINITY); d need
 * not be unit. */
inline float hit_sphere(__global const Sphere *sphere, float3 o, float3 d, float t_max) {
    float3 c = sphere->center_radius.xyz;
    float r = sphere->center_radius.w;
    float3 oc = o - c;
    float a = dot3(d, d);
    float half_b = dot3(oc, d);
    float cc = dot3(oc, oc) - r * r;
    float disc = half_b * half_b - a * cc;
    if (disc < 0.0f) return INFINITY;
    float root = sqrt_f(disc);
    float t = (-half_b - root) / a;
    if (!(t > 0.0f)) t = (-half_b + root) / a;
    return (t > 0.0f && t <= t_max) ? t : INFINITY;
}

/* 1 / x, with |x| raised to at least 1e-18 first (as Embree's rcp_safe): a ray parallel to
 * a slab gets huge finite distances instead of infinities, and one lying in a box's face
 * counts as inside it instead of making a NaN. */
inline float safe_reciprocal(float x) {
    return 1.0f / (fabs_f(x) < 1e-18f ? copysign_f(1e-18f, x) : x);
}

inline float3 reciprocals(float3 d) {
    return (float3)(safe_reciprocal(d.x), safe_reciprocal(d.y), safe_reciprocal(d.z));
}

/* One bit per lane that is true (all bits set), lane 0 lowest. */
inline int lane_bits(int8 m) {
    int8 bits = m & (int8)(1, 2, 4, 8, 16, 32, 64, 128);
    int4 halves = bits.lo | bits.hi;
    int2 quarter = halves.lo | halves.hi;
    return quarter.x | quarter.y;
}

inline int lane_bits4(int4 m) {
    int4 bits = m & (int4)(1, 2, 4, 8);
    int2 halves = bits.lo | bits.hi;
    return halves.x | halves.y;
}

/* The lowest set bit's position (ctz is OpenCL 2.0). */
inline int first_lane(int bits) { return 31 - clz_i(bits & -bits); }

inline float8 min8(float8 a, float8 b) { return a < b ? a : b; }
inline float8 max8(float8 a, float8 b) { return a > b ? a : b; }

/* The children of wide node `n` that the ray meets nearer than t_best, pushed on the stack
 * sorted by distance, the nearest on top; whether there was any. */
__attribute__((always_inline)) inline bool push_children(__global const Node *n, float8 ox, float8 oy, float8 oz,
                                                        float8 ix, float8 iy, float8 iz, float t_best,
                                                        int *stack_index, int *stack_count, float *stack_t, int *top_at) {
    int top = *top_at;
    /* Slab tests of all eight boxes. The far distance is widened by a few ulps so
     * that rounding never loses a primitive lying on a box's face. */
    float8 t0 = (n->lower_x - ox) * ix, t1 = (n->upper_x - ox) * ix;
    float8 near = min8(t0, t1), far = max8(t0, t1);
    t0 = (n->lower_y - oy) * iy; t1 = (n->upper_y - oy) * iy;
    near = max8(near, min8(t0, t1)); far = min8(far, max8(t0, t1));
    t0 = (n->lower_z - oz) * iz; t1 = (n->upper_z - oz) * iz;
    near = max8(max8(near, min8(t0, t1)), (float8)(0.0f));
    far = min8(far, max8(t0, t1)) * 1.0000004f;
    int8 counts = n->count;
    int mask = lane_bits((near <= far) & (near <= (float8)(t_best)) & (counts != (int8)(0)));
    if (mask != 0) {
        /* Lanes read through pointers: vstore8 would be a call on PoCL. */
        const float *nears = (const float *)&near;
        const int *sizes = (const int *)&counts;
        __global const int *children = (__global const int *)&n->child;
        /* Insert each child hit below the nearer ones already pushed. */
        int first = top;
        while (mask != 0) {
            int lane = first_lane(mask);
            mask &= mask - 1;
            float t = nears[lane];
            int j = top++;
            for (; j > first && stack_t[j - 1] < t; --j) {
                stack_t[j] = stack_t[j - 1];
                stack_index[j] = stack_index[j - 1];
                stack_count[j] = stack_count[j - 1];
            }
            stack_t[j] = t;
            stack_index[j] = children[lane];
            stack_count[j] = sizes[lane];
        }
        *top_at = top;
        return true;
    }
    return false;
}

/* Whether a hit at distance t on primitive `prim` is nearer than the best so far (t_best,
 * best; best -1: none yet, nothing at t_best itself counts). Of hits at the same distance
 * the lowest primitive wins, so that the hit found does not depend on the order the tree
 * is walked in: the lanes' rays walked together (trace_lanes.h) visit nodes in another
 * order than one ray, and must find what it finds. For that a node or leaf as near as the
 * best hit is visited too. */
inline bool nearer(float t, int prim, float t_best, int best) {
    return t < t_best || (best >= 0 && t == t_best && prim < best);
}

/* The nearest hit in one level's tree from its root node `root` nearer (see nearer) than the
 * hit found before (*t_found, *best_found; -1: none, *t_found where the ray ends); with
 * `any`, the first hit found. Primitive `skip` (or -1) is never hit: a shadow ray aimed at a
 * point on a light must not be stopped by that light's own surface, which rounding can
 * put a hair in front. The walk holds one child entry at a time: a node (count -1) or a
 * leaf. A node's children hit go on the stack sorted by distance, the nearest on top, and
 * the nearest is taken. On a hit, *t_best, *best and the barycentrics are the hit's and
 * the answer is true. */
__attribute__((always_inline)) inline bool walk(const SceneRef *s, int root, float3 o, float3 d,
                                               float3 inv_d, bool any, int skip,
                                               float *t_found, int *best_found, float *b1_found, float *b2_found,
                                               int *stack_index, int *stack_count, float *stack_t, int base) {
    const int n_triangles = s->frame->counts.x;
    const float8 ox = (float8)(o.x), oy = (float8)(o.y), oz = (float8)(o.z);
    const float8 ix = (float8)(inv_d.x), iy = (float8)(inv_d.y), iz = (float8)(inv_d.z);
    const float4 ox4 = (float4)(o.x), oy4 = (float4)(o.y), oz4 = (float4)(o.z);
    const float4 dx = (float4)(d.x), dy = (float4)(d.y), dz = (float4)(d.z);
    int top = base;  /* the stack's entries from `base` on are this walk's */
    float t_best = *t_found;
    int best = *best_found;  /* -1, or a hit found before (an earlier level, another part of the tree) */
    bool found_here = false;
    float best_b1 = 0.0f, best_b2 = 0.0f;
    int index = root, count = -1;  /* the level's root node */
    while (true) {
        if (count >= 0) {  /* a leaf: `count` packs of four primitives from `index` */
            for (int k = index; k < index + count; ++k) {
                __global const TrianglePack *tp = &s->packs[k];
                int4 prims = tp->prim;
                /* Baldwin-Weber, four triangles at once: the plane first, then the
                 * barycentrics of the point hit. A zero plane (sphere, empty) never hits. */
                float4 along = tp->plane_x * dx + tp->plane_y * dy + tp->plane_z * dz;
                float4 t = -(tp->plane_x * ox4 + tp->plane_y * oy4 + tp->plane_z * oz4 + tp->plane_w) / along;
                float4 px = ox4 + dx * t, py = oy4 + dy * t, pz = oz4 + dz * t;
                float4 u = tp->b1_x * px + tp->b1_y * py + tp->b1_z * pz + tp->b1_w;
                float4 v = tp->b2_x * px + tp->b2_y * py + tp->b2_z * pz + tp->b2_w;
                int4 ok = (along != (float4)(0.0f)) & (t > (float4)(0.0f)) & (t <= (float4)(t_best))
                        & (u >= (float4)(0.0f)) & (u <= (float4)(1.0f)) & (v >= (float4)(0.0f))
                        & (u + v <= (float4)(1.0f)) & (prims != (int4)(skip));
                int hits = lane_bits4(ok);
#ifdef FARM_CUT_OUTS
                if (hits != 0) {  /* a hit where alpha cuts the surface out is none */
                    for (int lanes = hits; lanes != 0; lanes &= lanes - 1) {
                        int lane = first_lane(lanes);
                        if (!covered(s, ((const int *)&prims)[lane], ((const float *)&u)[lane], ((const float *)&v)[lane]))
                            hits &= ~(1 << lane);
                    }
                    ok = ((int4)(hits) & (int4)(1, 2, 4, 8)) != (int4)(0);
                }
#endif
                if (hits != 0) {
                    float4 masked = ok ? t : (float4)(INFINITY);
                    float2 pair = masked.lo < masked.hi ? masked.lo : masked.hi;
                    float nearest = min_f(pair.x, pair.y);
                    /* Of the hits at the nearest distance, the lowest primitive (see walk). */
                    int4 at = ok & (masked == (float4)(nearest));
                    int4 ids = at ? prims : (int4)(INT_MAX);
                    int2 low = ids.lo < ids.hi ? ids.lo : ids.hi;
                    int prim = min_i(low.x, low.y);
                    if (nearer(nearest, prim, t_best, best)) {
                        int lane = first_lane(lane_bits4(at & (prims == (int4)(prim))));
                        t_best = nearest;
                        best = prim;
                        found_here = true;
                        best_b1 = ((const float *)&u)[lane];
                        best_b2 = ((const float *)&v)[lane];
                        if (any) { *t_found = t_best; *best_found = best; return true; }
                    }
                }
                int spheres = lane_bits4(prims >= (int4)(n_triangles));
                while (spheres != 0) {  /* rare: spheres share leaves with triangles */
                    int lane = first_lane(spheres);
                    spheres &= spheres - 1;
                    int prim = ((const int *)&prims)[lane];
                    if (prim == skip) continue;
                    float t_sphere = hit_sphere(&s->spheres[prim - n_triangles], o, d, t_best);
                    if (nearer(t_sphere, prim, t_best, best)) {
                        t_best = t_sphere; best = prim; best_b1 = 0.0f; best_b2 = 0.0f;
                        found_here = true;
                        if (any) { *t_found = t_best; *best_found = best; return true; }
                    }
                }
            }
        } else if (push_children(&s->nodes[index], ox, oy, oz, ix, iy, iz, t_best, stack_index, stack_count, stack_t,
                                 &top)) {  /* a node: on to its nearest child hit */
            --top;
            index = stack_index[top];
            count = stack_count[top];
            continue;
        }
        /* Pop the next entry still nearer than the best hit. */
        bool found = false;
        while (top > base) {
            --top;
            if (stack_t[top] <= t_best) {
                index = stack_index[top];
                count = stack_count[top];
                found = true;
                break;
            }
        }
        if (!found) break;
    }
    if (!found_here) return false;
    *t_found = t_best;
    *best_found = best;
    *b1_found = best_b1;
    *b2_found = best_b2;
    return true;
}

#ifdef FARM_INSTANCES
inline float3 instance_point(float4 r0, float4 r1, float4 r2, float3 p) {
    return (float3)(dot3(r0.xyz, p) + r0.w, dot3(r1.xyz, p) + r1.w, dot3(r2.xyz, p) + r2.w);
}

inline float3 instance_vector(float4 r0, float4 r1, float4 r2, float3 v) {
    return (float3)(dot3(r0.xyz, v), dot3(r1.xyz, v), dot3(r2.xyz, v));
}

/* An instance's placement at one time: rows of its world-to-object (o) and object-to-world
 * (w) 3x4 matrices. */
typedef struct {
    float4 o0, o1, o2;
    float4 w0, w1, w2;
} Placement;

#ifdef FARM_MOTION
/* The shorter-arc spherical interpolation of unit quaternions (farm.scene.motion.slerp). */
inline float4 slerp_q(float4 a, float4 b, float u) {
    float c = clamp_f(a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w, -1.0f, 1.0f);
    float4 q;
    if (c > 0.9995f) {
        q = a + (b - a) * u;
    } else {
        float angle = acos_f(c);
        float turn = angle * (0.5f * INV_PI_F);  /* unit_circle takes turns */
        float sa = unit_circle(turn).y;
        q = (a * unit_circle((1.0f - u) * turn).y + b * unit_circle(u * turn).y) / sa;
    }
    return q / sqrt_f(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
}
#endif

/* Instance `index` placed at `time` in [0, 1] across the shutter (a moving one, FARM_MOTION:
 * translation and stretch lerped, rotation slerped, as farm.scene.motion.placement_at). */
inline Placement placement_of(const SceneRef *s, int index, float time) {
    __global const Instance *inst = &s->instances[index];
    Placement p;
#ifdef FARM_MOTION
    if (inst->info.z & INSTANCE_MOVING) {
        __global const Motion *m = &s->motions[index];
        float4 q = slerp_q(m->q0, m->q1, time);
        float3 t = m->t0.xyz + (m->t1.xyz - m->t0.xyz) * time;
        float3 k0 = m->k0_0.xyz + (m->k1_0.xyz - m->k0_0.xyz) * time;
        float3 k1 = m->k0_1.xyz + (m->k1_1.xyz - m->k0_1.xyz) * time;
        float3 k2 = m->k0_2.xyz + (m->k1_2.xyz - m->k0_2.xyz) * time;
        float x = q.x, y = q.y, z = q.z, w = q.w;
        float3 r0 = (float3)(1.0f - 2.0f * (y * y + z * z), 2.0f * (x * y - z * w), 2.0f * (x * z + y * w));
        float3 r1 = (float3)(2.0f * (x * y + z * w), 1.0f - 2.0f * (x * x + z * z), 2.0f * (y * z - x * w));
        float3 r2 = (float3)(2.0f * (x * z - y * w), 2.0f * (y * z + x * w), 1.0f - 2.0f * (x * x + y * y));
        /* L = R K, row by row */
        float3 l0 = k0 * r0.x + k1 * r0.y + k2 * r0.z;
        float3 l1 = k0 * r1.x + k1 * r1.y + k2 * r1.z;
        float3 l2 = k0 * r2.x + k1 * r2.y + k2 * r2.z;
        p.w0 = (float4)(l0, t.x);
        p.w1 = (float4)(l1, t.y);
        p.w2 = (float4)(l2, t.z);
        /* L^-1 = adj(L) / det(L): the adjugate's rows from the columns' cross products */
        float3 c0 = cross3(l1, l2), c1 = cross3(l2, l0), c2 = cross3(l0, l1);
        float inv_det = 1.0f / dot3(l0, c0);
        float3 i0 = (float3)(c0.x, c1.x, c2.x) * inv_det;
        float3 i1 = (float3)(c0.y, c1.y, c2.y) * inv_det;
        float3 i2 = (float3)(c0.z, c1.z, c2.z) * inv_det;
        p.o0 = (float4)(i0, -dot3(i0, t));
        p.o1 = (float4)(i1, -dot3(i1, t));
        p.o2 = (float4)(i2, -dot3(i2, t));
        return p;
    }
#endif
    p.o0 = inst->to_object0;
    p.o1 = inst->to_object1;
    p.o2 = inst->to_object2;
    p.w0 = inst->to_world0;
    p.w1 = inst->to_world1;
    p.w2 = inst->to_world2;
    return p;
}

/* A normal of the instance's space in world space (unit): the inverse transpose, whose rows
 * are the world-to-object matrix's columns. */
inline float3 instance_normal(const Placement *p, float3 n) {
    return unit3(p->o0.xyz * n.x + p->o1.xyz * n.y + p->o2.xyz * n.z);
}

/* The two-level walk (farm.scene.instances): the top level's tree over the instances, the
 * nearest first; an instance met is walked in its own level with the ray taken into its
 * space (an affine map, the direction not renormalised, so a distance t means the same
 * point in both: pbrt-v4's TransformedPrimitive, Embree's instances); the world's level,
 * in world space already, is walked as it is. Each level's walk is `walk`, with loop
 * invariants of its own, so that the world's rays run the one-level kernel's code. */
__attribute__((always_inline)) inline bool trace_instances(const SceneRef *s, float3 o, float3 d, bool any, int ignore,
                                                          int ignore_instance, float *t_best, int *best, float *b1,
                                                          float *b2, int *best_instance, int *stack_index,
                                                          int *stack_count, float *stack_t, float time) {
    const float3 inv_d = reciprocals(d);
    int top = 0;  /* one stack for both levels: a level's walk uses the entries above the top level's */
    int index = 0, count = NODE_TOP;  /* the top level's root */
    bool found = false;
    while (true) {
        if (count == NODE_TOP) {
            /* the lanes made here, not held across the levels' walks (registers for their loops) */
            if (push_children(&s->top[index], (float8)(o.x), (float8)(o.y), (float8)(o.z), (float8)(inv_d.x),
                              (float8)(inv_d.y), (float8)(inv_d.z), *t_best, stack_index, stack_count, stack_t, &top)) {
                --top;
                index = stack_index[top];
                count = stack_count[top];
                continue;
            }
        } else {  /* a level: an instance (NODE_INSTANCE), or the world's root (-1), walked as it is */
            int root = index, level_skip = ignore_instance < 0 ? ignore : -1, level_instance = -1;
            float3 lo = o, ld = d, linv = inv_d;
            if (count == NODE_INSTANCE) {
                __global const Instance *inst = &s->instances[index];
                root = inst->info.x;
                level_skip = index == ignore_instance ? ignore : -1;
                level_instance = index;
                if ((inst->info.z & INSTANCE_IDENTITY) == 0) {
                    Placement p = placement_of(s, index, time);
                    lo = instance_point(p.o0, p.o1, p.o2, o);
                    ld = instance_vector(p.o0, p.o1, p.o2, d);
                    linv = reciprocals(ld);
                }
            }
            if (walk(s, root, lo, ld, linv, any, level_skip, t_best, best, b1, b2, stack_index, stack_count,
                     stack_t, top)) {
                *best_instance = level_instance;
                found = true;
                if (any) return true;
            }
        }
        /* Pop the next entry still nearer than the best hit. */
        bool more = false;
        while (top > 0) {
            --top;
            if (stack_t[top] <= *t_best) {
                index = stack_index[top];
                count = stack_count[top];
                more = true;
                break;
            }
        }
        if (!more) break;
    }
    return found;
}
#endif

/* Nearest hit before t_max; with `any`, stop at the first hit found (shadow rays).
 * Primitive `ignore` of instance `ignore_instance` (or -1) is never hit (see walk). `time`:
 * the sample's in the shutter, where moving instances are (FARM_MOTION).
 * Inlined by force at its two calls (with sample2's, 3-5% on PoCL). */
__attribute__((always_inline)) inline bool trace(const SceneRef *s, float3 o, float3 d, float t_max, bool any, int ignore,
                                                int ignore_instance, float time, Hit *hit) {
    float t_best = t_max, b1 = 0.0f, b2 = 0.0f;
    int best = -1;
    int stack_index[STACK_SIZE], stack_count[STACK_SIZE];
    float stack_t[STACK_SIZE];
#ifdef FARM_INSTANCES
    int instance = -1;
    if (!trace_instances(s, o, d, any, ignore, ignore_instance, &t_best, &best, &b1, &b2, &instance, stack_index,
                         stack_count, stack_t, time))
        return false;
    hit->instance = instance;
#else
    if (!walk(s, 0, o, d, reciprocals(d), any, ignore, &t_best, &best, &b1, &b2, stack_index, stack_count, stack_t, 0))
        return false;
#endif
    hit->t = t_best;
    hit->b1 = b1;
    hit->b2 = b2;
    hit->prim = best;
    return true;
}

#endif
