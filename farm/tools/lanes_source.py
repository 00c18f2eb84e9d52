"""The OpenCL C of farm.tools.lanes_probe: one small path tracer written over a lane type
(`W` lanes; `PACKET`: the lanes' rays walked together). Built with the farm kernel's
options and headers (types.h, rng.h, sampling.h, trace.h)."""

SOURCE = r"""
#pragma OPENCL FP_CONTRACT OFF
#include "types.h"
#include "rng.h"
#include "sampling.h"
#include "trace.h"

#if W == 1
typedef float VF;
typedef int VI;
#define LANE_F(v, l) (v)
#define LANE_I(v, l) (v)
#define TO_F(v) convert_float(v)
#else
#define VF_(n) float##n
#define VI_(n) int##n
#define VF_N(n) VF_(n)
#define VI_N(n) VI_(n)
typedef VF_N(W) VF;
typedef VI_N(W) VI;
#define LANE_F(v, l) (((float *)&(v))[l])
#define LANE_I(v, l) (((int *)&(v))[l])
#define CONVERT_(n) convert_float##n
#define CONVERT_N(n) CONVERT_(n)
#define TO_F(v) CONVERT_N(W)(v)
#endif

inline VF power_h(VF a, VF b) { return (a * a) / (a * a + b * b); }

#if W > 1 && defined(PACKET)
inline int any_lane(VI m) {
    int found = 0;
    for (int l = 0; l < W; ++l) found |= LANE_I(m, l);
    return found;
}

/* The lanes' rays walked together (a packet): a child is visited if any live lane's ray
 * meets it nearer than that lane's best hit; each leaf's triangles tested against every
 * lane at once. Children pushed farthest first by their nearest lane's distance. */
inline void walk_lanes(const SceneRef *s, VI live, VF ox, VF oy, VF oz, VF dx, VF dy, VF dz, VF t_max, bool any,
                       VI skip, VF *t_out, VI *prim_out) {
    VF ix, iy, iz;
    for (int l = 0; l < W; ++l) {
        float3 inv = reciprocals((float3)(LANE_F(dx, l), LANE_F(dy, l), LANE_F(dz, l)));
        LANE_F(ix, l) = inv.x; LANE_F(iy, l) = inv.y; LANE_F(iz, l) = inv.z;
    }
    VF t_best = select((VF)(-1.0f), t_max, live);  /* a dead lane meets nothing */
    VI best = (VI)(-1), open = live;
    int stack_index[STACK_SIZE * 8], stack_count[STACK_SIZE * 8];
    int top = 0;
    stack_index[top] = 0; stack_count[top] = -1; ++top;
    while (top > 0) {
        --top;
        int index = stack_index[top], count = stack_count[top];
        if (count < 0) {
            __global const Node *n = &s->nodes[index];
            __global const float *lx = (__global const float *)&n->lower_x, *ly = (__global const float *)&n->lower_y,
                                *lz = (__global const float *)&n->lower_z;
            __global const float *ux = (__global const float *)&n->upper_x, *uy = (__global const float *)&n->upper_y,
                                *uz = (__global const float *)&n->upper_z;
            __global const int *children = (__global const int *)&n->child, *counts = (__global const int *)&n->count;
            float keys[8];
            int order[8], pushed = 0;
            for (int c = 0; c < 8; ++c) {
                if (counts[c] == 0) continue;
                VF t0 = (lx[c] - ox) * ix, t1 = (ux[c] - ox) * ix;
                VF near = fmin(t0, t1), far = fmax(t0, t1);
                t0 = (ly[c] - oy) * iy; t1 = (uy[c] - oy) * iy;
                near = fmax(near, fmin(t0, t1)); far = fmin(far, fmax(t0, t1));
                t0 = (lz[c] - oz) * iz; t1 = (uz[c] - oz) * iz;
                near = fmax(fmax(near, fmin(t0, t1)), 0.0f);
                far = fmin(far, fmax(t0, t1)) * 1.0000004f;
                VI hit = open & (near <= far) & (near < t_best);
                if (!any_lane(hit)) continue;
                float key = INFINITY;
                for (int l = 0; l < W; ++l) if (LANE_I(hit, l)) key = fmin(key, LANE_F(near, l));
                int j = pushed++;
                for (; j > 0 && keys[j - 1] < key; --j) { keys[j] = keys[j - 1]; order[j] = order[j - 1]; }
                keys[j] = key; order[j] = c;
            }
            for (int j = 0; j < pushed; ++j) {
                stack_index[top] = children[order[j]]; stack_count[top] = counts[order[j]]; ++top;
            }
            continue;
        }
        for (int k = index; k < index + count; ++k) {
            __global const TrianglePack *tp = &s->packs[k];
            __global const int *prims = (__global const int *)&tp->prim;
            for (int j = 0; j < 4; ++j) {
                int prim = prims[j];
                if (prim < 0) continue;
                float px = ((__global const float *)&tp->plane_x)[j], py = ((__global const float *)&tp->plane_y)[j],
                      pz = ((__global const float *)&tp->plane_z)[j], pw = ((__global const float *)&tp->plane_w)[j];
                VF along = px * dx + py * dy + pz * dz;
                VF t = -(px * ox + py * oy + pz * oz + pw) / along;
                VF hx = ox + dx * t, hy = oy + dy * t, hz = oz + dz * t;
                VF u = ((__global const float *)&tp->b1_x)[j] * hx + ((__global const float *)&tp->b1_y)[j] * hy
                     + ((__global const float *)&tp->b1_z)[j] * hz + ((__global const float *)&tp->b1_w)[j];
                VF v = ((__global const float *)&tp->b2_x)[j] * hx + ((__global const float *)&tp->b2_y)[j] * hy
                     + ((__global const float *)&tp->b2_z)[j] * hz + ((__global const float *)&tp->b2_w)[j];
                VI ok = open & (along != 0.0f) & (t > 0.0f) & (t < t_best) & (u >= 0.0f) & (u <= 1.0f)
                      & (v >= 0.0f) & (u + v <= 1.0f) & (skip != (VI)(prim));
                t_best = select(t_best, t, ok);
                best = select(best, (VI)(prim), ok);
                if (any) open = open & ~ok;
            }
        }
        if (any && !any_lane(open)) break;
    }
    *t_out = select((VF)(INFINITY), t_best, best >= (VI)(0));
    *prim_out = best;
}
#else
/* The nearest hit of each live lane's ray: t (INFINITY for none) and primitive (-1). */
inline void walk_lanes(const SceneRef *s, VI live, VF ox, VF oy, VF oz, VF dx, VF dy, VF dz, VF t_max, bool any,
                       VI skip, VF *t_out, VI *prim_out) {
    int stack_index[STACK_SIZE], stack_count[STACK_SIZE];
    float stack_t[STACK_SIZE];
    for (int l = 0; l < W; ++l) {
        float t = LANE_F(t_max, l);
        int best = -1;
        float b1 = 0.0f, b2 = 0.0f;
        if (LANE_I(live, l)) {
            float3 o = (float3)(LANE_F(ox, l), LANE_F(oy, l), LANE_F(oz, l));
            float3 d = (float3)(LANE_F(dx, l), LANE_F(dy, l), LANE_F(dz, l));
            if (!walk(s, 0, o, d, reciprocals(d), any, LANE_I(skip, l), &t, &best, &b1, &b2, stack_index,
                      stack_count, stack_t, 0)) {
                best = -1;
                t = INFINITY;
            }
        }
        LANE_F(*t_out, l) = t;
        LANE_I(*prim_out, l) = best;
    }
}
#endif

__kernel void probe(__global const Frame *frame, __global const Node *top, __global const Instance *instances,
                    __global const Motion *motions, __global const Node *nodes, __global const TrianglePack *packs,
                    __global const TriangleData *tri_data, __global const ShadingNormals *normals,
                    __global const SurfaceExtras *extras, __global const Sphere *spheres,
                    __global const Material *materials, __global const Texture *textures,
                    __global const float *texels, __global const Light *lights,
                    __global const float *env_marginal, __global const float *env_conditional,
                    __global const float *env_pdf_table, __global const int *env_guide, int spp,
                    __global float *out) {
    SceneRef s = {frame, top, instances, motions, nodes, packs, tri_data, normals, extras, spheres, materials,
                  textures, texels, lights, env_marginal, env_conditional, env_pdf_table, env_guide};
    const int width = frame->size.x, height = frame->size.y, max_depth = frame->size.w, rr_depth = frame->counts.w;
    const int n_lights = frame->counts.y;
    const uint seed = as_uint(frame->counts.z);
    VI pixel;
    for (int l = 0; l < W; ++l) LANE_I(pixel, l) = (int)get_global_id(0) * W + l;
    const VI inside = pixel < (VI)(width * height);
    VI px = pixel % (VI)(width), py = pixel / (VI)(width);
    VF sum_r = (VF)(0.0f), sum_g = (VF)(0.0f), sum_b = (VF)(0.0f);
    for (int i = 0; i < spp; ++i) {
        VI key;
        for (int l = 0; l < W; ++l) LANE_I(key, l) = (int)sample_key(seed, (uint)LANE_I(pixel, l), (uint)i);
        uint dim = 0;
#define RAND(out) do { for (int l = 0; l < W; ++l) LANE_F(out, l) = rand01((uint)LANE_I(key, l), dim); ++dim; } while (0)
        VF u1, u2, u3;
        RAND(u1);
        RAND(u2);
        VF sx = 2.0f * (TO_F(px) + u1) / (float)width - 1.0f;
        VF sy = 1.0f - 2.0f * (TO_F(py) + u2) / (float)height;
        VF dx = frame->forward.x + frame->right.x * sx + frame->up.x * sy;
        VF dy = frame->forward.y + frame->right.y * sx + frame->up.y * sy;
        VF dz = frame->forward.z + frame->right.z * sx + frame->up.z * sy;
        VF len = sqrt(dx * dx + dy * dy + dz * dz);
        dx /= len; dy /= len; dz /= len;
        VF ox = (VF)(frame->origin.x), oy = (VF)(frame->origin.y), oz = (VF)(frame->origin.z);
        VF tr = (VF)(1.0f), tg = (VF)(1.0f), tb = (VF)(1.0f);
        VF lr = (VF)(0.0f), lg = (VF)(0.0f), lb = (VF)(0.0f);
        VF prev_pdf = (VF)(0.0f);
        VI prev_delta = inside, live = inside, none = (VI)(-1);
        for (int depth = 1; depth <= max_depth; ++depth) {
            VF t;
            VI prim;
            walk_lanes(&s, live, ox, oy, oz, dx, dy, dz, (VF)(INFINITY), false, none, &t, &prim);
            live = live & (prim >= (VI)(0));
            VF nx, ny, nz, er, eg, eb, rr, rg, rb, pick, area;
            VI light;
            for (int l = 0; l < W; ++l) {  /* gathers: the hit's triangle and material */
                __global const TriangleData *td = &tri_data[max(LANE_I(prim, l), 0)];
                __global const Material *m = &materials[td->info.x];
                __global const Light *lt = &lights[max(td->info.y, 0)];
                LANE_F(nx, l) = td->n.x; LANE_F(ny, l) = td->n.y; LANE_F(nz, l) = td->n.z;
                LANE_F(er, l) = m->emission.value.x; LANE_F(eg, l) = m->emission.value.y;
                LANE_F(eb, l) = m->emission.value.z;
                LANE_F(rr, l) = m->reflectance.value.x; LANE_F(rg, l) = m->reflectance.value.y;
                LANE_F(rb, l) = m->reflectance.value.z;
                LANE_I(light, l) = td->info.y;
                LANE_F(pick, l) = lt->pick.x; LANE_F(area, l) = lt->pick.z;
            }
            VF px_ = ox + dx * t, py_ = oy + dy * t, pz_ = oz + dz * t;
            VF cos_front = -(nx * dx + ny * dy + nz * dz);
            VI emits = live & (cos_front > 0.0f) & (light >= (VI)(0));
            VF light_pdf = pick * t * t / (cos_front * area);
            VF w = select(power_h(prev_pdf, light_pdf), (VF)(1.0f), prev_delta);
            lr += select((VF)(0.0f), tr * er * w, emits);
            lg += select((VF)(0.0f), tg * eg * w, emits);
            lb += select((VF)(0.0f), tb * eb * w, emits);
            if (depth == max_depth) break;
            VF side = select((VF)(1.0f), (VF)(-1.0f), cos_front < 0.0f);  /* two-sided */
            nx *= side; ny *= side; nz *= side;
            VF eps = 1e-4f * (1.0f + fmax(fabs(px_), fmax(fabs(py_), fabs(pz_))));
            /* next-event estimation: a light by its pick probability, a point on it */
            RAND(u1);
            RAND(u2);
            RAND(u3);
            VI chosen = (VI)(0);
            for (int k = 0; k + 1 < n_lights; ++k) chosen += select((VI)(0), (VI)(1), u1 >= (VF)(lights[k].pick.y));
            VF cx, cy, cz, e1x, e1y, e1z, e2x, e2y, e2z, lnx, lny, lnz, lpick, larea, ler, leg, leb;
            VI lprim;
            for (int l = 0; l < W; ++l) {
                __global const Light *lt = &lights[LANE_I(chosen, l)];
                __global const Material *m = &materials[tri_data[lt->info.y].info.x];
                LANE_F(cx, l) = lt->corner.x; LANE_F(cy, l) = lt->corner.y; LANE_F(cz, l) = lt->corner.z;
                LANE_F(e1x, l) = lt->edge1.x; LANE_F(e1y, l) = lt->edge1.y; LANE_F(e1z, l) = lt->edge1.z;
                LANE_F(e2x, l) = lt->edge2.x; LANE_F(e2y, l) = lt->edge2.y; LANE_F(e2z, l) = lt->edge2.z;
                LANE_F(lnx, l) = lt->direction.x; LANE_F(lny, l) = lt->direction.y; LANE_F(lnz, l) = lt->direction.z;
                LANE_F(lpick, l) = lt->pick.x; LANE_F(larea, l) = lt->pick.z;
                LANE_F(ler, l) = m->emission.value.x; LANE_F(leg, l) = m->emission.value.y;
                LANE_F(leb, l) = m->emission.value.z;
                LANE_I(lprim, l) = lt->info.y;
            }
            VF root = sqrt(u2), b1 = root * (1.0f - u3), b2 = root * u3;
            VF wx = cx + e1x * b1 + e2x * b2 - px_, wy = cy + e1y * b1 + e2y * b2 - py_,
               wz = cz + e1z * b1 + e2z * b2 - pz_;
            VF dist2 = wx * wx + wy * wy + wz * wz, dist = sqrt(dist2);
            wx /= dist; wy /= dist; wz /= dist;
            VF cos_light = -(wx * lnx + wy * lny + wz * lnz), cos_surface = wx * nx + wy * ny + wz * nz;
            VI lit = (n_lights > 0 ? live : (VI)(0)) & (cos_light > 0.0f) & (cos_surface > 0.0f);
            VF t_shadow;
            VI blocker;
            VF sox = px_ + nx * eps, soy = py_ + ny * eps, soz = pz_ + nz * eps;
            walk_lanes(&s, lit, sox, soy, soz, wx, wy, wz, dist * (1.0f - 1e-5f), true, lprim, &t_shadow, &blocker);
            VI seen = lit & (blocker < (VI)(0));
            VF pdf_l = lpick * dist2 / (cos_light * larea), pdf_b = cos_surface * INV_PI_F;
            VF scale = power_h(pdf_l, pdf_b) * cos_surface * INV_PI_F / pdf_l;
            lr += select((VF)(0.0f), tr * rr * ler * scale, seen);
            lg += select((VF)(0.0f), tg * rg * leg * scale, seen);
            lb += select((VF)(0.0f), tb * rb * leb * scale, seen);
            /* the next direction: cosine-weighted about the normal */
            RAND(u1);
            RAND(u2);
            VF r = sqrt(u1), phi = 6.28318530718f * u2, z = sqrt(fmax(1.0f - u1, 0.0f));
            VF cs = cos(phi) * r, sn = sin(phi) * r;
            VF sign = select((VF)(1.0f), (VF)(-1.0f), nz < 0.0f);
            VF a = -1.0f / (sign + nz), c = nx * ny * a;
            VF txx = 1.0f + sign * nx * nx * a, txy = sign * c, txz = -sign * nx;
            VF bx = c, by = sign + ny * ny * a, bz = -ny;
            dx = txx * cs + bx * sn + nx * z;
            dy = txy * cs + by * sn + ny * z;
            dz = txz * cs + bz * sn + nz * z;
            prev_pdf = z * INV_PI_F;
            prev_delta = (VI)(0);
            tr *= rr; tg *= rg; tb *= rb;
            if (depth >= rr_depth) {
                RAND(u1);
                VF q = fmin(fmax(tr, fmax(tg, tb)), 0.95f);
                live = live & (u1 < q);
                tr /= q; tg /= q; tb /= q;
            }
            ox = px_ + nx * eps; oy = py_ + ny * eps; oz = pz_ + nz * eps;
            int any_live = 0;
            for (int l = 0; l < W; ++l) any_live |= LANE_I(live, l);
            if (!any_live) break;
        }
        sum_r += lr; sum_g += lg; sum_b += lb;
    }
    for (int l = 0; l < W; ++l) {
        int p = LANE_I(pixel, l);
        if (p < width * height) {
            out[3 * p] = LANE_F(sum_r, l) / (float)spp;
            out[3 * p + 1] = LANE_F(sum_g, l) / (float)spp;
            out[3 * p + 2] = LANE_F(sum_b, l) / (float)spp;
        }
    }
}
"""
