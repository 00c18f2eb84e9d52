"""How much SIMD across paths gains on this CPU: issue 30's route to speed, measured.

`python -m farm.tools.lanes_probe [--scene S] [--spp N] [--repeat N]` renders the scene's
packed geometry with one small path tracer written once over a lane type: as `float`, one
path per work item (the farm kernel's way), and as `float8`/`float16`, that many paths in
the lanes of one work item (Mitsuba's LLVM variant runs sixteen in AVX-512 lanes). Shading,
light sampling, the sampler and the path's bookkeeping run in the lanes; the BVH walk is the
farm's own (trace.h), lane by lane. It prints samples/s of each width, alternating, and of
the farm kernel on the same frame, so the ratio says what rewriting the kernel in lanes
would buy before anyone does it.

The tracer: diffuse surfaces (every material's reflectance, emission where it has some),
next-event estimation on the scene's triangle lights with multiple importance sampling
(power heuristic) against cosine-weighted BSDF samples, Russian roulette from the scene's
depth on; a hashed independent sampler (rng.h). It is not the farm kernel (no textures,
no other BSDFs, no spheres, instances or environments: a scene needing them is refused);
it is the same work for every width, which is what the probe compares.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

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

__kernel void probe(__global const Frame *frame, __global const Node *top, __global const Instance *instances,
                    __global const Motion *motions, __global const Node *nodes, __global const TrianglePack *packs,
                    __global const TriangleData *tri_data, __global const ShadingNormals *normals,
                    __global const SurfaceExtras *extras, __global const Sphere *spheres,
                    __global const Material *materials, __global const Texture *textures,
                    __global const float *texels, __global const Light *lights,
                    __global const float *env_marginal, __global const float *env_conditional,
                    __global const float *env_pdf_table, int spp, __global float *out) {
    SceneRef s = {frame, top, instances, motions, nodes, packs, tri_data, normals, extras, spheres, materials,
                  textures, texels, lights, env_marginal, env_conditional, env_pdf_table};
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

WIDTHS = (1, 4, 8, 16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m farm.tools.lanes_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", help="a scene of diffuse triangles and triangle lights (default the Cornell box), "
                                        "or mesh:N, farm bench's generated mesh of N triangles in the box")
    parser.add_argument("--spp", type=int, default=16, help="samples per pixel (default 16)")
    parser.add_argument("--width", type=int, default=256, help="frame width in pixels (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each width once a round (default 3)")
    parser.add_argument("--mitsuba", action="store_true",
                        help="time Mitsuba 3's llvm_ad_rgb on the same frame in each round too (farm bench --mitsuba's)")
    args = parser.parse_args(argv)
    import pyopencl as cl

    from farm.tools.bench_scenes import load_scaled
    from farm.worker.device import open_device
    from farm.worker.render import Renderer, build_options

    from farm.protocol.assets import FolderAssets
    from farm.scene.layout import LIGHT_TRIANGLE
    from farm.scene.pack import pack
    from farm.tools.bench_scenes import default_scene, resolve_scene

    path = resolve_scene(args.scene) if args.scene else default_scene()
    scene, _ = load_scaled(argparse.Namespace(scene=path, spp=args.spp, width=args.width))
    packed = pack(scene, FolderAssets(str(Path(path).parent)))
    if len(packed.spheres) or len(packed.instances) or int(packed.frame["options"].reshape(-1)[3]) \
            or (packed.lights["info"][:, 0] != LIGHT_TRIANGLE).any():
        print("lanes_probe: the probe renders triangles and triangle lights only (no spheres, instances or sky)",
              file=sys.stderr)
        return 2
    device = open_device("cpu")
    renderer = Renderer(device, packed)
    pixels = packed.width * packed.height
    programs = {}
    for width in WIDTHS:
        programs[width] = cl.Program(device.context, SOURCE).build(options=build_options(device) + [f"-DW={width}"])
    out = cl.Buffer(device.context, cl.mem_flags.WRITE_ONLY, pixels * 3 * 4)
    timings: dict[str, list[float]] = {}
    images = {}

    def lanes(width: int) -> float:
        kernel = cl.Kernel(programs[width], "probe")
        kernel.set_args(*renderer.buffers.values(), np.int32(args.spp), out)
        items = -(-pixels // width)
        local = 16 if width == 1 else max(1, 16 // width)
        started = time.perf_counter()
        cl.enqueue_nd_range_kernel(device.queue, kernel, (-(-items // local) * local,), (local,))
        device.queue.finish()
        seconds = time.perf_counter() - started
        image = np.empty(pixels * 3, np.float32)
        cl.enqueue_copy(device.queue, image, out)
        images[width] = image
        return seconds

    def farm_kernel() -> float:
        started = time.perf_counter()
        renderer.render_frame()
        return time.perf_counter() - started

    mitsuba = None
    if args.mitsuba:
        from farm.tools.bench_mitsuba import mitsuba_frames

        frames, cannot_run = mitsuba_frames(argparse.Namespace(scene=path), scene)
        mitsuba = frames.get("llvm_ad_rgb")
        if mitsuba is None:
            print(f"mitsuba llvm_ad_rgb: {cannot_run.get('llvm_ad_rgb', 'not installed')}")
    for width in WIDTHS:  # warm: every program built and run once
        lanes(width)
    farm_kernel()
    for _ in range(args.repeat):
        if mitsuba is not None:
            mitsuba[0]()
            started = time.perf_counter()
            mitsuba[1]()
            timings.setdefault("mitsuba llvm_ad_rgb", []).append(time.perf_counter() - started)
        timings.setdefault("farm kernel", []).append(farm_kernel())
        for width in WIDTHS:
            timings.setdefault(f"probe, {width} lane{'s' * (width > 1)}", []).append(lanes(width))
    samples = pixels * args.spp
    print(f"device: {device}")
    print(f"scene: {scene.film.width}x{scene.film.height}, {args.spp} spp, medians of {args.repeat}")
    base = statistics.median(timings["probe, 1 lane"])
    for name, seconds in timings.items():
        median = statistics.median(seconds)
        print(f"{name:22} {samples / median / 1e6:7.3f} M samples/s  {base / median:5.2f}x the probe's one lane")
    reference = images[1].reshape(-1, 3)
    farm_image = renderer.render_frame().reshape(-1, 3)
    print(f"mean pixel: probe {reference.mean(axis=0).tolist()}, farm kernel "
          f"{farm_image.mean(axis=0).tolist()} (other samplers, the same scene: equal within noise); "
          f"mean |difference| {float(np.abs(reference - farm_image).mean()):.3e}")
    differ = [width for width in WIDTHS[1:] if not np.array_equal(images[width].view(np.uint32),
                                                                   images[1].view(np.uint32))]
    print(f"{', '.join(str(w) for w in WIDTHS[1:])} lanes against 1: "
          + (f"DIFFER at {', '.join(str(w) for w in differ)} lanes" if differ else "the same bits"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
