/* A unidirectional path tracer: BSDF sampling and next-event estimation combined by
 * multiple importance sampling (power heuristic), Russian roulette after rr_depth.
 * One work item renders one pixel of one bucket, all its samples. */
#pragma OPENCL FP_CONTRACT OFF

/* The tile's layout and fixed point come from the host (farm/protocol/tiles.py,
 * KERNEL_CONSTANTS), as -D build options passed by farm/worker/render.py: this file has no
 * copy of them. */
#if !defined(CHANNELS) || !defined(AOV_CHANNELS) || !defined(AOV_ALBEDO) || !defined(AOV_NORMAL) \
    || !defined(AOV_DEPTH) || !defined(AOV_LUMINANCE_SQUARE) || !defined(AOV_MATERIAL)
#error "CHANNELS, AOV_CHANNELS and AOV_* come from the host (farm/protocol/tiles.py, KERNEL_CONSTANTS)"
#endif
#if !defined(LUMINANCE_R) || !defined(LUMINANCE_G) || !defined(LUMINANCE_B) \
    || !defined(SUM_SCALE) || !defined(SAMPLE_MAX)
#error "LUMINANCE_*, SUM_SCALE and SAMPLE_MAX come from the host (farm/protocol/tiles.py, KERNEL_CONSTANTS)"
#endif

/* A pixel's numbers in the sums: the radiance's, and with FARM_AOVS the AOVs' too. */
#ifdef FARM_AOVS
#define PIXEL_CHANNELS AOV_CHANNELS
#else
#define PIXEL_CHANNELS CHANNELS
#endif

#include "types.h"
#include "rng.h"
#include "sampler.h"
#include "sampling.h"
#include "trace.h"
#include "texture.h"
#include "bsdf.h"
#include "light.h"

/* Offset scale for secondary rays, relative to the magnitude of the hit position. */
#define RAY_EPSILON 1e-4f

inline float ray_epsilon(float3 p) {
    return RAY_EPSILON * (1.0f + max3(fabs_f3(p)));
}

/* A ray origin just off the surface, on the side direction d leaves towards. */
inline float3 offset_origin(float3 p, float3 ng, float3 d) {
    return p + ng * (dot3(ng, d) > 0.0f ? ray_epsilon(p) : -ray_epsilon(p));
}

typedef struct {
    float3 p;
    float3 ng;      /* geometric normal of the front side */
    float3 ns;      /* shading normal, on the same side as ng */
    float4 uv;      /* both uv sets */
    int material;
    int light;      /* light index or -1 */
} Surface;

/* The shading normal a tangent-space normal map gives: the map's (x, y, z) in [-1, 1]
 * (x and y times its scale) along the tangent, the bitangent and the interpolated normal,
 * the tangent first made perpendicular to that normal (glTF's convention: bitangent =
 * w cross(normal, tangent)). Falls back to the normal where the frame degenerates. A map
 * may tilt the normal away from the viewer, who then sees the back of a shading frame
 * and a black texel (a known artefact of normal maps at grazing angles): the normal is
 * then moved towards the viewer until it faces them at cosine NORMAL_MAP_MIN_COS, as
 * Cycles' ensure_valid_reflection does. */
#define NORMAL_MAP_MIN_COS 0.05f

inline float3 facing_viewer(float3 n, float3 ng, float3 wi) {
    float side = dot3(ng, wi) < 0.0f ? -1.0f : 1.0f;
    float cos_n = dot3(n, wi) * side;
    if (cos_n >= NORMAL_MAP_MIN_COS) return n;
    float3 moved = n + wi * (side * (NORMAL_MAP_MIN_COS - cos_n));
    return unit3(moved);
}

inline float3 mapped_normal(const SceneRef *s, __global const Material *m, __global const SurfaceExtras *e,
                            const Hit *hit, float3 ns, float3 ng, float3 wi, float4 uv, float time) {
    float b0 = 1.0f - hit->b1 - hit->b2;
    float4 t = e->t0 * b0 + e->t1 * hit->b1 + e->t2 * hit->b2;
#ifdef FARM_INSTANCES
    if (hit->instance >= 0) {  /* the tangent, a direction on the surface, goes as vectors do */
        Placement p = placement_of(s, hit->instance, time);
        t.xyz = instance_vector(p.w0, p.w1, p.w2, t.xyz);
        if (s->instances[hit->instance].info.z & INSTANCE_MIRRORED) t.w = -t.w;
    }
#endif
    float3 tangent = t.xyz - ns * dot3(ns, t.xyz);
    float len2 = dot3(tangent, tangent);
    if (!(len2 > 1e-12f)) return ns;
    tangent = tangent / sqrt_f(len2);
    float3 bitangent = cross3(ns, tangent) * (t.w < 0.0f ? -1.0f : 1.0f);
    float3 c = texture_eval(s, m->normal_map.texture.x, uv).xyz * 2.0f - 1.0f;
    float scale = m->normal_map.value.x;
    float3 n = tangent * (c.x * scale) + bitangent * (c.y * scale) + ns * c.z;
    len2 = dot3(n, n);
    return len2 > 1e-12f ? facing_viewer(n / sqrt_f(len2), ng, wi) : ns;
}

inline Surface surface_at(const SceneRef *s, float3 o, float3 d, const Hit *hit, float time) {
    Surface sf;
    sf.p = o + d * hit->t;
    int n_triangles = s->frame->counts.x;
#ifdef FARM_INSTANCES
    /* A level's normals are in its own space: the instance it was found in turns them (the
     * world's, instance -1, are in world space). An instance placed as it is turns them by
     * the identity. */
    const bool moved = hit->instance >= 0;
    __global const Instance *inst = &s->instances[max_i(hit->instance, 0)];
    Placement placed;
    if (moved) placed = placement_of(s, hit->instance, time);
#endif
    if (hit->prim < n_triangles) {
        __global const TriangleData *td = &s->tri_data[hit->prim];
        sf.ng = td->n.xyz;
#ifdef FARM_INSTANCES
        if (moved) sf.ng = instance_normal(&placed, sf.ng);
#endif
        sf.ns = sf.ng;
        sf.uv = triangle_uvs(s, td, hit->b1, hit->b2);
        sf.material = td->info.x;
        sf.light = td->info.y;
#ifdef FARM_INSTANCES
        if (moved && sf.light >= 0) sf.light += inst->info.y;  /* the level's emissive triangle: this instance's light */
#endif
        if (td->info.z >= 0) {
            __global const ShadingNormals *vn = &s->normals[td->info.z];
            float3 n = vn->n0.xyz * (1.0f - hit->b1 - hit->b2) + vn->n1.xyz * hit->b1 + vn->n2.xyz * hit->b2;
#ifdef FARM_INSTANCES
            if (moved && dot3(n, n) > 0.0f) n = instance_normal(&placed, n);
#endif
            float len2 = dot3(n, n);
            if (len2 > 0.0f) {
                sf.ns = n / sqrt_f(len2);
                /* Vertex normals say which side is the front when the winding disagrees. */
                if (dot3(sf.ns, sf.ng) < 0.0f) sf.ng = -sf.ng;
            }
        }
        if (td->info.w >= 0) {  /* only normal-mapped or second-uv triangles have extras */
            __global const Material *m = &s->materials[sf.material];
            if (m->normal_map.texture.x >= 0)
                sf.ns = mapped_normal(s, m, &s->extras[td->info.w], hit, sf.ns, sf.ng, -d, sf.uv, time);
        }
    } else {
        __global const Sphere *sphere = &s->spheres[hit->prim - n_triangles];
        float3 p = sf.p;
#ifdef FARM_INSTANCES
        if (moved) p = instance_point(placed.o0, placed.o1, placed.o2, p);
#endif
        sf.ng = unit3(p - sphere->center_radius.xyz);
        sf.uv = sphere_uv(sphere, sf.ng).xyxy;
#ifdef FARM_INSTANCES
        if (moved) sf.ng = instance_normal(&placed, sf.ng);
#endif
        sf.ns = sf.ng;
        sf.material = sphere->info.x;
        sf.light = sphere->info.y;
    }
    return sf;
}

inline Bsdf bsdf_at(const SceneRef *s, int material, float4 uv) {
    __global const Material *m = &s->materials[material];
    Bsdf b;
    b.kind = m->kind.x;
    b.reflectance = clamp_f3(param_rgb(s, m->reflectance, uv), 0.0f, 1.0f);
    b.specular = clamp_f3(param_rgb(s, m->specular, uv), 0.0f, 1.0f);
    b.transmittance = clamp_f3(param_rgb(s, m->transmittance, uv), 0.0f, 1.0f);
    float roughness = clamp_f(param_scalar(s, m->roughness, uv), 0.0f, 1.0f);
    b.alpha = roughness * roughness;
    b.roughness = roughness;
    b.metallic = 0.0f;
    if (b.kind == MATERIAL_PRINCIPLED) {  /* as Mitsuba's: never smoother than ALPHA_MIN */
        b.alpha = max_f(b.alpha, ALPHA_MIN);
        b.metallic = clamp_f(param_scalar(s, m->metallic, uv), 0.0f, 1.0f);
    }
    b.eta = m->eta.xyz;
    b.k = m->k.xyz;
    b.ior = m->ior.x;
    b.fdr = m->ior.y;
    /* The table holds the coating's transmittance for the material's own roughness. */
    b.table_size = m->kind.y >= 0 ? m->kind.z : 0;
    b.coating = s->texels + max_i(m->kind.y, 0);
    return b;
}

inline bool has_emission(__global const Material *m) {
    return m->emission.texture.x >= 0 || max3(m->emission.value.xyz) > 0.0f;
}

/* Arbitrary output variables of one sample (built with FARM_AOVS): the albedo and the
 * shading normal (world space, facing the viewer) at the first hit that is not a perfect
 * mirror or smooth glass (those are followed), and the distance along the camera ray to the
 * first hit and that hit's material. All zero (material -1) where the path finds no such hit. */
typedef struct {
    float3 albedo, normal;
    float depth;
    int material;
    bool done;
} Aov;

/* What a BSDF reflects at normal incidence, for the albedo AOV a denoiser is guided by. */
inline float3 bsdf_albedo(const Bsdf *b) {
    if (b->kind == MATERIAL_CONDUCTOR) return b->specular * fresnel_conductor(1.0f, b->eta, b->k);
    if (b->kind == MATERIAL_DIELECTRIC) return b->transmittance;
    return b->reflectance;  /* diffuse; plastic's and principled's base colour */
}

/* `far`: where the camera ray ends (the far clipping plane, else INFINITY); `skipped`: how
 * far its origin was moved along it to the near plane (added to the depth AOV). */
float3 radiance(const SceneRef *s, Sampler *sampler, float3 o, float3 d, Aov *aov, float time, float far,
                float skipped) {
    __global const Frame *frame = s->frame;
    const int max_depth = frame->size.w, rr_depth = frame->counts.w, n_lights = frame->counts.y;
    const bool has_env = frame->options.w != 0;
    const int env_light = frame->options.z;
    const int strategy = frame->env.z;
    float3 result = (float3)(0.0f);
    float3 throughput = (float3)(1.0f);
    float prev_pdf = 0.0f;   /* density of the BSDF sample that made this ray */
    bool prev_delta = true;  /* camera rays and delta bounces: no light sampling competed */
    /* `depth` counts path segments: 1 is the camera ray, so max_depth 1 shows lights only. */
    for (int depth = 1; depth <= max_depth; ++depth) {
        Hit hit;
        if (!trace(s, o, d, depth == 1 ? far : INFINITY, false, -1, -1, time, &hit)) {
            if (has_env) {
                bool mis = !prev_delta && strategy == STRATEGY_MIS && env_light >= 0;
                float env_density;
                float3 value = env_eval(s, d, mis ? &env_density : 0);
                float weight = 1.0f;
                if (!prev_delta && strategy == STRATEGY_LIGHT) weight = 0.0f;
                else if (mis) weight = power_heuristic(prev_pdf, s->lights[env_light].pick.x * env_density);
                result += throughput * value * weight;
            }
            break;
        }
        Surface sf = surface_at(s, o, d, &hit, time);
        __global const Material *m = &s->materials[sf.material];
        float cos_front = -dot3(sf.ng, d);
        if (cos_front > 0.0f && has_emission(m)) {
            float weight = 1.0f;
            if (!prev_delta && strategy == STRATEGY_LIGHT && sf.light >= 0) weight = 0.0f;
            else if (!prev_delta && strategy == STRATEGY_MIS && sf.light >= 0)
                weight = power_heuristic(prev_pdf, area_light_pdf(s, sf.light, o, hit.t, cos_front));
            result += throughput * emission_at(s, sf.material, sf.uv) * weight;
        }
        if (depth == max_depth) break;

        Bsdf b = bsdf_at(s, sf.material, sf.uv);
        float3 ng = sf.ng, ns = sf.ns;
        if (b.kind != MATERIAL_DIELECTRIC && cos_front < 0.0f) {  /* opaque: two-sided */
            ng = -ng;
            ns = -ns;
        }
#ifdef FARM_AOVS
        if (!aov->done) {
            if (depth == 1) {
                aov->depth = hit.t + skipped;
                aov->material = sf.material;
            }
            if (!bsdf_is_delta(&b)) {
                aov->albedo = clamp_f3(bsdf_albedo(&b), 0.0f, 1.0f);
                aov->normal = dot3(ns, d) > 0.0f ? -ns : ns;
                aov->done = true;
            }
        }
#endif
        float3 tangent, bitangent;
        basis(ns, &tangent, &bitangent);
        float3 wi_world = -d;
        float3 wi = (float3)(dot3(wi_world, tangent), dot3(wi_world, bitangent), dot3(wi_world, ns));
        float geo_i = dot3(wi_world, ng);

        if (n_lights > 0 && !bsdf_is_delta(&b) && strategy != STRATEGY_BSDF) {
            LightSample ls;
            float u_pick = sample1(sampler, bounce_choice(depth, CHOICE_LIGHT));
            if (sample_light(s, sf.p, u_pick, sample2(sampler, bounce_pair(depth, PAIR_LIGHT_POINT)), &ls)
                && max3(ls.radiance) > 0.0f) {
                float3 wo = (float3)(dot3(ls.wi, tangent), dot3(ls.wi, bitangent), dot3(ls.wi, ns));
                float geo_o = dot3(ls.wi, ng);
                float bsdf_pdf;
                float3 f = bsdf_eval(&b, wi, wo, &bsdf_pdf);
                /* The geometric normal must agree with the shading frame about the side. */
                bool consistent = (geo_o * geo_i > 0.0f) == (wo.z * wi.z > 0.0f) && geo_o != 0.0f;
                if (consistent && max3(f) > 0.0f) {
                    float3 origin = offset_origin(sf.p, ng, ls.wi);
                    float t_max = INFINITY;
                    if (ls.dist != INFINITY) {  /* up to the point on the light, measured from the offset origin */
                        float3 span = sf.p + ls.wi * ls.dist - origin;
                        t_max = sqrt_f(dot3(span, span)) * (1.0f - 1e-5f);
                    }
                    Hit blocker;
                    if (!trace(s, origin, ls.wi, t_max, true, ls.prim, ls.instance, time, &blocker)) {
                        float weight = ls.delta || strategy == STRATEGY_LIGHT ? 1.0f : power_heuristic(ls.pdf, bsdf_pdf);
                        result += throughput * f * ls.radiance * (weight / ls.pdf);
                    }
                }
            }
        }

        float3 wo;
        float pdf;
        bool delta;
        float u_lobe = sample1(sampler, bounce_choice(depth, CHOICE_LOBE));
        float3 weight = bsdf_sample(&b, wi, sample2(sampler, bounce_pair(depth, PAIR_BSDF)), u_lobe,
                                    &wo, &pdf, &delta);
        if (!(max3(weight) > 0.0f)) break;
        float3 wo_world = tangent * wo.x + bitangent * wo.y + ns * wo.z;
        float geo_o = dot3(wo_world, ng);
        if ((geo_o * geo_i > 0.0f) != (wo.z * wi.z > 0.0f) || geo_o == 0.0f) break;
        throughput *= weight;
        prev_pdf = pdf;
        prev_delta = delta;

        if (depth >= rr_depth) {
            float q = min_f(max3(throughput), 0.95f);
            if (!(sample1(sampler, bounce_choice(depth, CHOICE_ROULETTE)) < q)) break;
            throughput /= q;
        }
        o = offset_origin(sf.p, ng, wo_world);
        d = wo_world;
    }
    return result;
}

/* A sample's value in the running sums: a 64-bit fixed-point number, SUM_SCALE units to
 * 1, so that sums are exact and the same whatever the order and grouping they are added
 * in: passes, progressive rounds, a bucket's samples split across workers, or the client
 * adding them. A value is clamped to [-SAMPLE_MAX, SAMPLE_MAX], so that FARM_MAX_SAMPLES
 * (2^20) samples cannot overflow (2^18 * 2^24 * 2^20 = 2^62); NaN counts as 0. Both
 * numbers come from the host (farm/protocol/tiles.py). */

inline long fixed_point(float value) {
    float x = value == value ? clamp_f(value, -SAMPLE_MAX, SAMPLE_MAX) * SUM_SCALE : 0.0f;
    return convert_long(rint_f(x));
}

inline void add_fixed3(long *sums, float3 value) {
    sums[0] += fixed_point(value.x);
    sums[1] += fixed_point(value.y);
    sums[2] += fixed_point(value.z);
}

/* Render samples of the bucket at (x0, y0) of size w x h, adding their fixed-point values
 * to `sums` (w * h * PIXEL_CHANNELS longs, row-major): with `accumulate` 0 the sums start from 0.
 * A pixel's samples are those of its cell's range (ranges: one [first, end) per cell of
 * cell_size px, cells_x to a row of the frame; one cell for a uniform render) that lie in
 * this pass's window [window_first, window_end).
 * One work item renders one pixel: work item i the pixel (i * stride) mod (w * h) of the
 * bucket, row-major. A stride near w * h / golden ratio, coprime with it (the host's choice
 * on CPUs), spreads any run of consecutive work groups over the whole bucket, so PoCL's
 * threads, which take work groups in runs of up to half a launch, get even shares of a
 * bucket whose top is dearer than its bottom; a stride of 1 keeps neighbours together
 * (GPU warps). The launch is padded to whole work groups; extra work items do nothing. */
__kernel void render_bucket(__global const Frame *frame,
                            __global const Node *top,
                            __global const Instance *instances,
                            __global const Motion *motions,
                            __global const Node *nodes,
                            __global const TrianglePack *packs,
                            __global const TriangleData *tri_data,
                            __global const ShadingNormals *normals,
                            __global const SurfaceExtras *extras,
                            __global const Sphere *spheres,
                            __global const Material *materials,
                            __global const Texture *textures,
                            __global const float *texels,
                            __global const Light *lights,
                            __global const float *env_marginal,
                            __global const float *env_conditional,
                            __global const float *env_pdf_table,
                            __global const int *env_guide,
                            int x0, int y0, int w, int h, int stride,
                            int cell_size, int cells_x, __global const int *ranges,
                            int window_first, int window_end, int accumulate,
                            __global long *sums) {
    const int count = w * h;
    if ((int)get_global_id(0) >= count) return;
    const int index = (int)(((ulong)get_global_id(0) * (ulong)stride) % (ulong)count);
    const int gx = index % w, gy = index / w;
    SceneRef s = {frame, top, instances, motions, nodes, packs, tri_data, normals, extras, spheres, materials, textures, texels,
                  lights, env_marginal, env_conditional, env_pdf_table, env_guide};
    int px = x0 + gx, py = y0 + gy;
    const int width = frame->size.x, height = frame->size.y;
    const uint seed = as_uint(frame->counts.z);
    const uint pixel = (uint)py * (uint)width + (uint)px;
    const float aperture = frame->lens_v.x * frame->lens_v.x + frame->lens_v.y * frame->lens_v.y
                         + frame->lens_v.z * frame->lens_v.z;
    const int cell = (py / cell_size) * cells_x + px / cell_size;
    const int first = max_i(ranges[2 * cell], window_first), end = min_i(ranges[2 * cell + 1], window_end);
    /* A pixel's PIXEL_CHANNELS sums: radiance, then with FARM_AOVS albedo, normal, depth,
     * the luminance's square (for its variance), and the material seen by sample 0 plus 1
     * (an id is not averaged: only sample 0 adds it); the host divides by the samples taken. */
    __global long *target = sums + (size_t)(gy * w + gx) * PIXEL_CHANNELS;
    long sum[PIXEL_CHANNELS];
    for (int c = 0; c < PIXEL_CHANNELS; ++c) sum[c] = accumulate ? target[c] : 0;
    for (int i = first; i < end; ++i) {
        Sampler sampler = make_sampler(frame->options.x, seed, pixel, (uint)i);
        float2 u = sample2(&sampler, PAIR_PIXEL);
        float sx = 2.0f * ((float)px + u.x) / (float)width - 1.0f;
        float sy = 1.0f - 2.0f * ((float)py + u.y) / (float)height;
        float3 o = frame->origin.xyz;
        float3 d = unit3(frame->forward.xyz + frame->right.xyz * sx + frame->up.xyz * sy);
        float time = 0.5f;  /* where the shutter is closed, nothing reads it */
#ifdef FARM_MOTION
        /* The sample's moment in the shutter, a dimension of its own; the camera between
         * its place at the open and at the close. */
        time = sample1(&sampler, CHOICE_TIME);
        o = frame->origin.xyz + (frame->origin1.xyz - frame->origin.xyz) * time;
        float3 forward = frame->forward.xyz + (frame->forward1.xyz - frame->forward.xyz) * time;
        float3 right = frame->right.xyz + (frame->right1.xyz - frame->right.xyz) * time;
        float3 up = frame->up.xyz + (frame->up1.xyz - frame->up.xyz) * time;
        d = unit3(forward + right * sx + up * sy);
#endif
        if (aperture > 0.0f) {  /* thin lens: rays through the lens meet on the focus plane */
            float3 focus = o + d * (frame->lens_u.w / dot3(d, frame->forward.xyz));
            float2 lens = sample2(&sampler, PAIR_LENS);
            float2 disk = sample_disk(lens.x, lens.y);
            o = o + frame->lens_u.xyz * disk.x + frame->lens_v.xyz * disk.y;
            d = unit3(focus - o);
        }
        /* clipping planes: the camera ray starts at the near one and ends at the far one
         * (distances along the viewing direction, as USD's and Cycles' clipping) */
        float far = INFINITY, skipped = 0.0f;
        if (frame->forward.w > 0.0f || frame->right.w > 0.0f) {
            float along = dot3(d, frame->forward.xyz);
            skipped = frame->forward.w / along;
            if (frame->forward.w > 0.0f) o = o + d * skipped;
            if (frame->right.w > 0.0f) far = frame->right.w / along - skipped;
        }
        Aov aov = {(float3)(0.0f), (float3)(0.0f), 0.0f, -1, false};
        float3 value = radiance(&s, &sampler, o, d, &aov, time, far, skipped);
        add_fixed3(sum, value);
#ifdef FARM_AOVS
        add_fixed3(sum + AOV_ALBEDO, aov.albedo);
        add_fixed3(sum + AOV_NORMAL, aov.normal);
        sum[AOV_DEPTH] += fixed_point(aov.depth);
        float luminance = LUMINANCE_R * value.x + LUMINANCE_G * value.y + LUMINANCE_B * value.z;
        sum[AOV_LUMINANCE_SQUARE] += fixed_point(luminance * luminance);
        if (i == 0) sum[AOV_MATERIAL] += fixed_point((float)(aov.material + 1));
#endif
    }
    for (int c = 0; c < PIXEL_CHANNELS; ++c) target[c] = sum[c];
}

/* f(wi, wo) |cos wo| and the density of wo for each pair (wi xyz, wo xyz in the local
 * frame, z the normal) of one material at one uv, for testing the BSDFs term by term
 * against the reference renderer's. */
__kernel void eval_bsdf(__global const Material *materials,
                        __global const Texture *textures,
                        __global const float *texels,
                        int material, float u, float v,
                        __global const float *directions,
                        __global float *out) {
    int i = get_global_id(0);
    SceneRef s;
    s.materials = materials;
    s.textures = textures;
    s.texels = texels;
    Bsdf b = bsdf_at(&s, material, (float4)(u, v, u, v));
    float pdf;
    float3 value = bsdf_eval(&b, vload3(2 * i, directions), vload3(2 * i + 1, directions), &pdf);
    vstore3(value, 2 * i, out);
    out[6 * i + 3] = pdf;
}

/* Nearest hit of each ray (origin xyz, direction xyz): distance (INFINITY for none) and
 * primitive, for testing the BVH against brute force. */
__kernel void trace_rays(__global const Frame *frame,
                         __global const Node *top,
                         __global const Instance *instances,
                         __global const Motion *motions,
                         __global const Node *nodes,
                         __global const TrianglePack *packs,
                         __global const TriangleData *tri_data,
                         __global const SurfaceExtras *extras,
                         __global const Sphere *spheres,
                         __global const Material *materials,
                         __global const Texture *textures,
                         __global const float *texels,
                         __global const float *rays,
                         __global float *t_out,
                         __global int *prim_out) {
    int i = get_global_id(0);
    SceneRef s;
    s.frame = frame;
    s.top = top;
    s.instances = instances;
    s.motions = motions;
    s.nodes = nodes;
    s.packs = packs;
    s.tri_data = tri_data;
    s.extras = extras;
    s.spheres = spheres;
    s.materials = materials;
    s.textures = textures;
    s.texels = texels;
    float3 o = vload3(2 * i, rays), d = vload3(2 * i + 1, rays);
    Hit hit;
    bool found = trace(&s, o, d, INFINITY, false, -1, -1, 0.5f, &hit);
    t_out[i] = found ? hit.t : INFINITY;
    prim_out[i] = found ? hit.prim : -1;
}
