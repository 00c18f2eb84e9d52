/* The lanes' rays walked through the tree together (LANES > 1, scenes of one level): a packet
 * (Wald et al. 2001; Embree's packet kernels, which Mitsuba's LLVM variant calls with its
 * lanes). A node's eight boxes are tested against every lane's ray, one box at a time, and a
 * child is visited when any lane's ray meets it no farther than that lane's best hit; a
 * leaf's triangles and spheres are tested against the lanes that met the leaf, one at a time.
 *
 * Where few of the lanes' rays meet a node (ALONE or fewer: rays that have bounced off
 * different surfaces scatter) each of them walks that node's subtree alone (trace.h's walk),
 * as Embree's hybrid traversal does. Measured on a Zen 4 building for x86-64-v4 (16 lanes),
 * 256x256 against the walk lane by lane: the Cornell box and the showcase about 1.1x, the
 * 1M-triangle mesh 1.0-1.1x; camera and first shadow rays only as packets, about the same.
 *
 * The same bits as one ray's walk: every test is that walk's arithmetic in lanes, and the
 * hit kept is the nearest, the lowest primitive of those as near (trace.h, nearer), which
 * does not depend on the order the walk takes. */
#ifndef FARM_TRACE_LANES_H
#define FARM_TRACE_LANES_H

#include "lanes.h"
#include "trace.h"

#if LANES > 1 && !defined(FARM_INSTANCES)
#define PACKET_WALK 1

/* safe_reciprocal in lanes */
inline VF safe_reciprocal_v(VF x) {
    VF tiny = LANES_PASTE(as_float, LANES)((VU)(as_uint(1e-18f)) | (TO_VU(x) & (VU)(0x80000000u)));
    return 1.0f / SEL(x, tiny, MASK(FABS_V(x) < 1e-18f));
}

/* hit_sphere (trace.h) in lanes: the same operations, each branch a select. */
inline VF hit_sphere_v(__global const Sphere *sphere, VF3 o, VF3 d, VF t_max) {
    float3 c = sphere->center_radius.xyz;
    float r = sphere->center_radius.w;
    VF3 oc = sub3(o, splat3(c));
    VF a = dot3v(d, d);
    VF half_b = dot3v(oc, d);
    VF cc = dot3v(oc, oc) - r * r;
    VF disc = half_b * half_b - a * cc;
    VF root = SQRT_V(SEL(disc, (VF)(0.0f), MASK(disc < 0.0f)));
    VF t = (-half_b - root) / a;
    t = SEL((-half_b + root) / a, t, MASK(t > 0.0f));
    return SEL((VF)(INFINITY), t, ~MASK(disc < 0.0f) & MASK(t > 0.0f) & MASK(t <= t_max));
}

/* The number of lanes set in mask m. */
inline int lanes_set(VI m) {
    int n = 0;
    for (int l = 0; l < LANES; ++l) n -= LI(m, l);
    return n;
}

#ifndef ALONE
#define ALONE 3  /* at most this many rays meeting a node walk it alone */
#endif

/* nearer (trace.h) in lanes, for primitive `prim` in every lane. */
inline VI nearer_v(VF t, int prim, VF t_best, VI best) {
    return MASK(t < t_best) | (MASK(best >= 0) & MASK(t == t_best) & MASK((VI)(prim) < best));
}

/* The least of the lanes. */
inline float least_lane(VF v) {
#if LANES == 16
    float8 a = v.lo < v.hi ? v.lo : v.hi;
#else
    float8 a = v;
#endif
    float4 b = a.lo < a.hi ? a.lo : a.hi;
    float2 c = b.lo < b.hi ? b.lo : b.hi;
    return c.x < c.y ? c.x : c.y;
}

/* The nearest hit of each ray of `live` (origin o, direction d) nearer than t_max (or, with
 * `any`, whether there is one): its distance, primitive and barycentrics in the lanes of
 * *t_found, *best_found, *b1_found and *b2_found; the mask of the rays that hit. Primitive
 * skip[l] is never hit by lane l's ray (see walk). */
__attribute__((always_inline)) inline VI walk_lanes(const SceneRef *s, VI live, VF3 o, VF3 d, VF t_max, bool any, VI skip, VF *t_found,
                     VI *best_found, VF *b1_found, VF *b2_found) {
    const int n_triangles = s->frame->counts.x;
    const VF ix = safe_reciprocal_v(d.x), iy = safe_reciprocal_v(d.y), iz = safe_reciprocal_v(d.z);
    VF t_best = t_max, best_b1 = (VF)(0.0f), best_b2 = (VF)(0.0f);
    VI best = (VI)(-1);
    VI open = live;  /* the lanes still looking: with `any`, those not yet blocked */
    int stack_index[STACK_SIZE], stack_count[STACK_SIZE];
    VF stack_near[STACK_SIZE];  /* each lane's distance to the entry's box, NAN where its ray missed it */
    int alone_index[STACK_SIZE], alone_count[STACK_SIZE];  /* a lane's own walk's */
    float alone_t[STACK_SIZE];
    int top = 0;
    int index = 0, count = -1;  /* the root node */
    VI met = live;              /* the lanes whose rays met the entry visited */
    while (true) {
        if (count >= 0) {  /* a leaf: `count` packs of four primitives from `index` */
            for (int k = index; k < index + count; ++k) {
                __global const TrianglePack *tp = &s->packs[k];
                __global const int *prims = (__global const int *)&tp->prim;
                __global const float *plane_x = (__global const float *)&tp->plane_x,
                                     *plane_y = (__global const float *)&tp->plane_y,
                                     *plane_z = (__global const float *)&tp->plane_z,
                                     *plane_w = (__global const float *)&tp->plane_w;
                __global const float *b1_x = (__global const float *)&tp->b1_x, *b1_y = (__global const float *)&tp->b1_y,
                                     *b1_z = (__global const float *)&tp->b1_z, *b1_w = (__global const float *)&tp->b1_w;
                __global const float *b2_x = (__global const float *)&tp->b2_x, *b2_y = (__global const float *)&tp->b2_y,
                                     *b2_z = (__global const float *)&tp->b2_z, *b2_w = (__global const float *)&tp->b2_w;
                for (int j = 0; j < 4; ++j) {
                    int prim = prims[j];
                    if (prim < 0) continue;  /* an empty slot */
                    if (prim >= n_triangles) {  /* a sphere (they share leaves with triangles) */
                        VF t_sphere = hit_sphere_v(&s->spheres[prim - n_triangles], o, d, t_best);
                        VI ok = met & open & MASK(skip != (VI)(prim)) & nearer_v(t_sphere, prim, t_best, best);
                        t_best = SEL(t_best, t_sphere, ok);
                        best = SEL(best, (VI)(prim), ok);
                        best_b1 = SEL(best_b1, (VF)(0.0f), ok);
                        best_b2 = SEL(best_b2, (VF)(0.0f), ok);
                        if (any) open &= ~ok;
                        continue;
                    }
                    /* Baldwin-Weber, as walk's: the same operations in the same order */
                    float px = plane_x[j], py = plane_y[j], pz = plane_z[j];
                    VF along = px * d.x + py * d.y + pz * d.z;
                    VF t = -(px * o.x + py * o.y + pz * o.z + plane_w[j]) / along;
                    VF hx = o.x + d.x * t, hy = o.y + d.y * t, hz = o.z + d.z * t;
                    VF u = b1_x[j] * hx + b1_y[j] * hy + b1_z[j] * hz + b1_w[j];
                    VF v = b2_x[j] * hx + b2_y[j] * hy + b2_z[j] * hz + b2_w[j];
                    VI ok = met & open & MASK(along != 0.0f) & MASK(t > 0.0f) & MASK(u >= 0.0f) & MASK(u <= 1.0f)
                          & MASK(v >= 0.0f) & MASK(u + v <= 1.0f) & MASK(skip != (VI)(prim))
                          & nearer_v(t, prim, t_best, best);
#ifdef FARM_CUT_OUTS
                    FOR_LANES(l, ok) {  /* a hit where alpha cuts the surface out is none */
                        if (!covered(s, prim, LF(u, l), LF(v, l))) LI(ok, l) = 0;
                    }
#endif
                    t_best = SEL(t_best, t, ok);
                    best = SEL(best, (VI)(prim), ok);
                    best_b1 = SEL(best_b1, u, ok);
                    best_b2 = SEL(best_b2, v, ok);
                    if (any) open &= ~ok;
                }
            }
            if (any && !any_lane(open)) break;
        } else if (lanes_set(met) <= ALONE) {  /* a node few rays met: each walks it alone */
            FOR_LANES(l, met) {
                float t = LF(t_best, l), b1 = 0.0f, b2 = 0.0f;
                int prim = LI(best, l);
                if (walk(s, index, lane3(o, l), lane3(d, l), (float3)(LF(ix, l), LF(iy, l), LF(iz, l)), any, LI(skip, l),
                         &t, &prim, &b1, &b2, alone_index, alone_count, alone_t, 0)) {
                    LF(t_best, l) = t; LI(best, l) = prim;
                    LF(best_b1, l) = b1; LF(best_b2, l) = b2;
                    if (any) LI(open, l) = 0;
                }
            }
            if (any && !any_lane(open)) break;
        } else {  /* a node: the children any lane's ray meets, pushed farthest first */
            __global const Node *n = &s->nodes[index];
            __global const float *lower_x = (__global const float *)&n->lower_x,
                                 *lower_y = (__global const float *)&n->lower_y,
                                 *lower_z = (__global const float *)&n->lower_z;
            __global const float *upper_x = (__global const float *)&n->upper_x,
                                 *upper_y = (__global const float *)&n->upper_y,
                                 *upper_z = (__global const float *)&n->upper_z;
            __global const int *children = (__global const int *)&n->child, *sizes = (__global const int *)&n->count;
            float keys[8];
            int order[8], pushed = 0;
            VF nears[8];
            for (int c = 0; c < 8; ++c) {
                if (sizes[c] == 0) continue;
                /* push_children's slab test */
                VF t0 = (lower_x[c] - o.x) * ix, t1 = (upper_x[c] - o.x) * ix;
                VF near = min_v(t0, t1), far = max_v(t0, t1);
                t0 = (lower_y[c] - o.y) * iy; t1 = (upper_y[c] - o.y) * iy;
                near = max_v(near, min_v(t0, t1)); far = min_v(far, max_v(t0, t1));
                t0 = (lower_z[c] - o.z) * iz; t1 = (upper_z[c] - o.z) * iz;
                near = max_v(max_v(near, min_v(t0, t1)), (VF)(0.0f));
                far = min_v(far, max_v(t0, t1)) * 1.0000004f;
                VI hit = met & open & MASK(near <= far) & MASK(near <= t_best);
                if (!any_lane(hit)) continue;
                nears[c] = SEL((VF)(NAN), near, hit);
                float key = least_lane(SEL((VF)(INFINITY), near, hit));
                int j = pushed++;
                for (; j > 0 && keys[j - 1] < key; --j) {
                    keys[j] = keys[j - 1];
                    order[j] = order[j - 1];
                }
                keys[j] = key;
                order[j] = c;
            }
            for (int j = 0; j < pushed; ++j) {
                int c = order[j];
                stack_index[top] = children[c];
                stack_count[top] = sizes[c];
                stack_near[top] = nears[c];
                ++top;
            }
        }
        /* Pop the next entry some open lane's ray met no farther than its best hit. */
        bool found = false;
        while (top > 0) {
            --top;
            met = open & MASK(stack_near[top] <= t_best);
            if (any_lane(met)) {
                index = stack_index[top];
                count = stack_count[top];
                found = true;
                break;
            }
        }
        if (!found) break;
    }
    *t_found = t_best;
    *best_found = best;
    *b1_found = best_b1;
    *b2_found = best_b2;
    return live & MASK(best >= 0);
}
#endif

/* trace for the rays of `live` (origin o, direction d, ending at t_max): hits[l] and a lane
 * of the mask answered are lane l's; walked together where this build can (walk_lanes),
 * else one at a time. Lane l's skip and skip_instance: trace's ignore and ignore_instance
 * (-1: none). */
__attribute__((always_inline)) inline VI trace_lanes(const SceneRef *s, VI live, VF3 o, VF3 d, VF t_max, bool any, VI skip,
                      VI skip_instance, VF time, Hit *hits) {
#ifdef PACKET_WALK
    VF t, b1, b2;
    VI prim;
    VI found = walk_lanes(s, live, o, d, t_max, any, skip, &t, &prim, &b1, &b2);
    FOR_LANES(l, found) {
        hits[l].t = LF(t, l);
        hits[l].b1 = LF(b1, l);
        hits[l].b2 = LF(b2, l);
        hits[l].prim = LI(prim, l);
    }
#else
    VI found = (VI)(0);
    FOR_LANES(l, live) {
        if (trace(s, lane3(o, l), lane3(d, l), LF(t_max, l), any, LI(skip, l), LI(skip_instance, l), LF(time, l),
                  &hits[l]))
            LI(found, l) = -1;
    }
#endif
    return found;
}

#endif
