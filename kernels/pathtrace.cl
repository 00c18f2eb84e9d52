/* A unidirectional path tracer: BSDF sampling and next-event estimation combined by
 * multiple importance sampling (power heuristic), Russian roulette after rr_depth.
 * One work item renders LANES pixels of one bucket (kernels/lanes.h: one on GPUs, a 4x4
 * block on CPUs), all their samples, their paths side by side in vector lanes. */
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
#include "sampling.h"
#include "trace.h"
#include "trace_lanes.h"
#include "texture.h"
#include "bsdf.h"
#include "light.h"
#include "lanes.h"
#include "sampler.h"
#include "bsdf_lanes.h"
#include "light_lanes.h"

/* Offset scale for secondary rays, relative to the magnitude of the hit position. */
#define RAY_EPSILON 1e-4f

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

/* Inlined by force on PoCL, as bsdf_at (and walk_lanes and trace_lanes everywhere): called,
 * it wrote the record it returns in small stores that the caller read back in wide loads, a
 * stall each lane (store-to-load forwarding fails; 11% of radiance's time on the Cornell box). */
FORCED_INLINE Surface surface_at(const SceneRef *s, float3 o, float3 d, const Hit *hit, float time) {
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

/* surface_at for the lanes of `m`, whose hits are spheres of a scene without instances, in
 * lanes: the same operations (sphere_uv's atan2 and acos as atan2_v's and acos_v's selects),
 * so the same bits; a sphere's (u, v) lane by lane was 6% of the showcase's time. */
inline void sphere_surfaces_v(const SceneRef *s, VI m, VF3 o, VF3 d, const Hit *hits, Surface *sf) {
    const int n_triangles = s->frame->counts.x;
    VF t = (VF)(0.0f);
    VF3 center = splat3((float3)(0.0f)), row0 = center, row1 = center, row2 = center;
    FOR_LANES(l, m) {
        __global const Sphere *sphere = &s->spheres[hits[l].prim - n_triangles];
        LF(t, l) = hits[l].t;
        set_lane3(&center, l, sphere->center_radius.xyz);
        set_lane3(&row0, l, sphere->row0.xyz);
        set_lane3(&row1, l, sphere->row1.xyz);
        set_lane3(&row2, l, sphere->row2.xyz);
    }
    VF3 p = add3(o, scale3(d, t));
    VF3 ng = unit3v(sub3(p, center));
    VF3 in_map = vf3(dot3v(row0, ng), dot3v(row1, ng), dot3v(row2, ng));
    VF u = atan2_v(in_map.y, in_map.x) * (0.5f * INV_PI_F);
    u = SEL(u, u + 1.0f, MASK(u < 0.0f));
    VF v = acos_v(clamp_v(in_map.z, -1.0f, 1.0f)) * INV_PI_F;
    FOR_LANES(l, m) {
        __global const Sphere *sphere = &s->spheres[hits[l].prim - n_triangles];
        sf[l].p = lane3(p, l);
        sf[l].ng = lane3(ng, l);
        sf[l].ns = sf[l].ng;
        sf[l].uv = (float4)(LF(u, l), LF(v, l), LF(u, l), LF(v, l));
        sf[l].material = sphere->info.x;
        sf[l].light = sphere->info.y;
    }
}

FORCED_INLINE Bsdf bsdf_at(const SceneRef *s, int material, float4 uv) {
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

/* Whether bsdf_at gives material m's BSDF whatever the uv: none of the parameters it reads
 * is textured. */
inline bool bsdf_uniform(__global const Material *m) {
    return m->reflectance.texture.x < 0 && m->specular.texture.x < 0 && m->transmittance.texture.x < 0
        && m->roughness.texture.x < 0 && (m->kind.x != MATERIAL_PRINCIPLED || m->metallic.texture.x < 0);
}

/* The BSDFs at the surfaces of the lanes of `live` (of materials material[l] at sf[l].uv):
 * each material's once for all its lanes where it does not depend on the uv (bsdf_uniform),
 * else lane by lane (a Bsdf made and spread lane by lane for every lane was 6% of the
 * Cornell box's time). Every lane gets the first material's values first, so that no lane
 * of the record is left unset. */
inline void bsdfs_at(const SceneRef *s, VI live, VI material, const Surface *sf, Bsdfs *b) {
    VI todo = live;
    bool unset = true;  /* no lane set yet */
    while (any_lane(todo)) {
        const int first = first_set(todo), m = LI(material, first);
        VI same = todo & MASK(material == (VI)(m));
        if (bsdf_uniform(&s->materials[m])) {
            Bsdf one = bsdf_at(s, m, sf[first].uv);
            set_bsdf_lanes(s, b, unset ? (VI)(-1) : same, &one);
        } else {
            FOR_LANES(l, same) {
                Bsdf one = bsdf_at(s, m, sf[l].uv);
                if (unset) set_bsdf_lanes(s, b, (VI)(-1), &one);
                else set_bsdf_lane(s, b, l, &one);
                unset = false;
            }
        }
        unset = false;
        todo &= ~same;
    }
}

inline bool has_emission(__global const Material *m) {
    return m->emission.texture.x >= 0 || max3(m->emission.value.xyz) > 0.0f;
}

/* Arbitrary output variables of one sample (built with FARM_AOVS): the albedo and the
 * shading normal (world space, facing the viewer) at the first hit that is not a perfect
 * mirror or smooth glass (those are followed), and the distance along the camera ray to the
 * first hit and that hit's material; in lanes. All zero (material -1) where the path finds
 * no such hit. */
typedef struct {
    VF3 albedo, normal;
    VF depth;
    VI material;
    VI done;  /* the lanes whose AOVs are found */
} Aovs;

/* What the lanes' BSDFs reflect at normal incidence, for the albedo AOV a denoiser is guided
 * by: a conductor's Fresnel reflectance tinted, a dielectric's transmittance, and the
 * others' (diffuse) reflectance, plastic's and principled's base colour. */
inline VF3 bsdf_albedo_v(const Bsdfs *b) {
    VF3 conductor = mul3(b->specular, fresnel_conductor_v((VF)(1.0f), b->eta, b->k));
    return select3(select3(b->reflectance, b->transmittance, MASK(b->kind == MATERIAL_DIELECTRIC)), conductor,
                   MASK(b->kind == MATERIAL_CONDUCTOR));
}

/* A ray origin just off the surface, on the side direction d leaves towards, by RAY_EPSILON
 * times the magnitude of p. */
inline VF3 offset_origin_v(VF3 p, VF3 ng, VF3 d) {
    VF epsilon = RAY_EPSILON * (1.0f + max3v(vf3(FABS_V(p.x), FABS_V(p.y), FABS_V(p.z))));
    return add3(p, scale3(ng, SEL(-epsilon, epsilon, MASK(dot3v(ng, d) > 0.0f))));
}

inline VF power_heuristic_v(VF a, VF b) {
    VF a2 = a * a, b2 = b * b;
    return SEL((VF)(0.0f), a2 / (a2 + b2), MASK(a2 + b2 > 0.0f));
}

/* The radiance of the paths in the lanes of `live` (one sample each), each as one path's
 * integrator would find it: the arithmetic, the BSDFs and the light samples in lanes (a
 * lane whose path has ended idles); a walk, a surface's gathers and the lights not in lanes
 * lane by lane.
 * `far`: where each camera ray ends (the far clipping plane, else INFINITY); `skipped`: how
 * far its origin was moved along it to the near plane (added to the depth AOV). */
VF3 radiance(const SceneRef *s, const Samplers *sampler, VI live, VF3 o, VF3 d, Aovs *aov, VF time, VF far,
             VF skipped) {
    __global const Frame *frame = s->frame;
    const int max_depth = frame->size.w, rr_depth = frame->counts.w, n_lights = frame->counts.y;
    const bool has_env = frame->options.w != 0;
    const int env_light = frame->options.z;
    const int strategy = frame->env.z;
    VF3 result = splat3((float3)(0.0f));
    VF3 throughput = splat3((float3)(1.0f));
    VF prev_pdf = (VF)(0.0f);   /* density of the BSDF sample that made this ray */
    VI prev_delta = (VI)(-1);   /* camera rays and delta bounces: no light sampling competed */
    /* `depth` counts path segments: 1 is the camera ray, so max_depth 1 shows lights only. */
    for (int depth = 1; depth <= max_depth && any_lane(live); ++depth) {
        Hit hits[LANES];
        VI found = trace_lanes(s, live, o, d, depth == 1 ? far : (VF)(INFINITY), false, (VI)(-1), (VI)(-1), time, hits);
        VI missed = live & ~found;
        if (has_env && any_lane(missed)) {
            VF density;
            VF3 value = env_eval_v(s, d, &density, missed);
            VI mis = ~prev_delta & UNIFORM(strategy == STRATEGY_MIS && env_light >= 0);
            VF weight = SEL(SEL((VF)(1.0f), power_heuristic_v(prev_pdf, s->lights[max_i(env_light, 0)].pick.x * density), mis),
                            (VF)(0.0f), ~prev_delta & UNIFORM(strategy == STRATEGY_LIGHT));
            result = select3(result, add3(result, scale3(mul3(throughput, value), weight)), missed);
        }
        live &= found;
        if (!any_lane(live)) break;
        Surface sf[LANES];
        VF cos_front = (VF)(0.0f);
        VI on_sphere = (VI)(0), material = (VI)(0);
#ifndef FARM_INSTANCES
        FOR_LANES(l, live) LI(on_sphere, l) = hits[l].prim >= s->frame->counts.x ? -1 : 0;
        if (any_lane(on_sphere)) sphere_surfaces_v(s, on_sphere, o, d, hits, sf);
#endif
        FOR_LANES(l, live) {
            float3 dl = lane3(d, l);
            if (!LI(on_sphere, l)) sf[l] = surface_at(s, lane3(o, l), dl, &hits[l], LF(time, l));
            LI(material, l) = sf[l].material;
            __global const Material *m = &s->materials[sf[l].material];
            float c = -dot3(sf[l].ng, dl);
            LF(cos_front, l) = c;
            if (c > 0.0f && has_emission(m)) {
                float weight = 1.0f;
                if (!LI(prev_delta, l) && strategy == STRATEGY_LIGHT && sf[l].light >= 0) weight = 0.0f;
                else if (!LI(prev_delta, l) && strategy == STRATEGY_MIS && sf[l].light >= 0)
                    weight = power_heuristic(LF(prev_pdf, l), area_light_pdf(s, sf[l].light, lane3(o, l), hits[l].t, c));
                set_lane3(&result, l, lane3(result, l) + lane3(throughput, l) * emission_at(s, sf[l].material, sf[l].uv) * weight);
            }
        }
        if (depth == max_depth) break;

        Bsdfs b;
        bsdfs_at(s, live, material, sf, &b);
        VI delta_bsdf = bsdf_is_delta_v(&b);
        VF3 p = splat3((float3)(0.0f)), ng = p, ns = p;
#ifdef FARM_AOVS
        VF hit_t = (VF)(0.0f);
#endif
        FOR_LANES(l, live) {
            float3 ngl = sf[l].ng, nsl = sf[l].ns;
            if (LI(b.kind, l) != MATERIAL_DIELECTRIC && LF(cos_front, l) < 0.0f) {  /* opaque: two-sided */
                ngl = -ngl;
                nsl = -nsl;
            }
            set_lane3(&p, l, sf[l].p);
            set_lane3(&ng, l, ngl);
            set_lane3(&ns, l, nsl);
#ifdef FARM_AOVS
            LF(hit_t, l) = hits[l].t;
#endif
        }
#ifdef FARM_AOVS
        VI open = live & ~aov->done;
        if (any_lane(open)) {
            if (depth == 1) {
                aov->depth = SEL(aov->depth, hit_t + skipped, open);
                aov->material = SEL(aov->material, material, open);
            }
            VI found = open & ~delta_bsdf;
            VF3 albedo = bsdf_albedo_v(&b);
            albedo = vf3(clamp_v(albedo.x, 0.0f, 1.0f), clamp_v(albedo.y, 0.0f, 1.0f), clamp_v(albedo.z, 0.0f, 1.0f));
            aov->albedo = select3(aov->albedo, albedo, found);
            aov->normal = select3(aov->normal, select3(ns, neg3(ns), MASK(dot3v(ns, d) > 0.0f)), found);
            aov->done |= found;
        }
#endif
        VF3 tangent, bitangent;
        basis_v(ns, &tangent, &bitangent);
        VF3 wi_world = neg3(d);
        VF3 wi = vf3(dot3v(wi_world, tangent), dot3v(wi_world, bitangent), dot3v(wi_world, ns));
        VF geo_i = dot3v(wi_world, ng);

        VI lit = live & ~delta_bsdf;
        if (n_lights > 0 && strategy != STRATEGY_BSDF && any_lane(lit)) {
            VF u_pick = sample1_v(sampler, bounce_choice(depth, CHOICE_LIGHT)), ux, uy;
            sample2_v(sampler, bounce_pair(depth, PAIR_LIGHT_POINT), &ux, &uy);
            VF3 light_wi, light_radiance;
            VF light_dist, light_pdf;
            VI light_delta;
            VI light_prim, light_instance;
            VI sampled = sample_light_v(s, lit, p, u_pick, ux, uy, &light_wi, &light_dist, &light_radiance, &light_pdf,
                                        &light_delta, &light_prim, &light_instance);
            /* the BSDF towards it */
            VF3 wo = vf3(dot3v(light_wi, tangent), dot3v(light_wi, bitangent), dot3v(light_wi, ns));
            VF geo_o = dot3v(light_wi, ng);
            VF bsdf_pdf;
            VF3 f = bsdf_eval_v(s, &b, sampled, wi, wo, &bsdf_pdf);
            /* The geometric normal must agree with the shading frame about the side. */
            VI consistent = MASK(MASK(geo_o * geo_i > 0.0f) == MASK(wo.z * wi.z > 0.0f)) & MASK(geo_o != 0.0f);
            VI shadow = sampled & consistent & MASK(max3v(f) > 0.0f);
            if (any_lane(shadow)) {
                VF3 origin = offset_origin_v(p, ng, light_wi);
                /* up to the point on the light, measured from the offset origin */
                VF3 span = sub3(add3(p, scale3(light_wi, light_dist)), origin);
                VF t_max = SEL(SQRT_V(dot3v(span, span)) * (1.0f - 1e-5f), (VF)(INFINITY),
                                  MASK(light_dist == INFINITY));
                Hit blockers[LANES];
                VI seen = shadow & ~trace_lanes(s, shadow, origin, light_wi, t_max, true, light_prim, light_instance,
                                                time, blockers);
                VF weight = SEL(power_heuristic_v(light_pdf, bsdf_pdf), (VF)(1.0f),
                                   light_delta | UNIFORM(strategy == STRATEGY_LIGHT));
                result = select3(result, add3(result, scale3(mul3(mul3(throughput, f), light_radiance), weight / light_pdf)),
                                 seen);
            }
        }

        VF u_lobe = sample1_v(sampler, bounce_choice(depth, CHOICE_LOBE)), ux, uy;
        sample2_v(sampler, bounce_pair(depth, PAIR_BSDF), &ux, &uy);
        VF3 wo, weight;
        VF pdf;
        VI delta;
        VI going = bsdf_sample_v(s, &b, live, wi, ux, uy, u_lobe, &wo, &weight, &pdf, &delta);
        VF3 wo_world = add3(add3(scale3(tangent, wo.x), scale3(bitangent, wo.y)), scale3(ns, wo.z));
        VF geo_o = dot3v(wo_world, ng);
        going &= MASK(MASK(geo_o * geo_i > 0.0f) == MASK(wo.z * wi.z > 0.0f)) & MASK(geo_o != 0.0f);
        throughput = select3(throughput, mul3(throughput, weight), going);
        prev_pdf = SEL(prev_pdf, pdf, going);
        prev_delta = SEL(prev_delta, delta, going);
        live = going;

        if (depth >= rr_depth) {
            VF q = min_v(max3v(throughput), (VF)(0.95f));
            live &= MASK(sample1_v(sampler, bounce_choice(depth, CHOICE_ROULETTE)) < q);
            throughput = div3(throughput, q);
        }
        o = offset_origin_v(p, ng, wo_world);
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

inline VL fixed_point_v(VF value) {
    VF x = SEL((VF)(0.0f), clamp_v(value, -SAMPLE_MAX, SAMPLE_MAX) * SUM_SCALE, MASK(value == value));
    return TO_VL(RINT_V(x));
}

inline void add_fixed3(VL *sums, VF3 value) {
    sums[0] += fixed_point_v(value.x);
    sums[1] += fixed_point_v(value.y);
    sums[2] += fixed_point_v(value.z);
}

/* Render samples of the bucket at (x0, y0) of size w x h, adding their fixed-point values
 * to `sums` (w * h * PIXEL_CHANNELS longs, row-major): with `accumulate` 0 the sums start from 0.
 * A pixel's samples are those of its cell's range (ranges: one [first, end) per cell of
 * cell_size px, cells_x to a row of the frame; one cell for a uniform render) that lie in
 * this pass's window [window_first, window_end).
 * One work item renders a block of BLOCK_W x BLOCK_H pixels, one a lane (kernels/lanes.h):
 * work item i the block (i * stride) mod (the bucket's blocks), row-major, each pixel its
 * own samples (the lanes of pixels with fewer samples idle once theirs are done). A stride
 * near the blocks / golden ratio, coprime with them (the host's choice on CPUs), spreads any
 * run of consecutive work groups over the whole bucket, so PoCL's threads, which take work
 * groups in runs of up to half a launch, get even shares of a bucket whose top is dearer
 * than its bottom; a stride of 1 keeps neighbours together (GPU warps, one-pixel blocks).
 * The launch is padded to whole work groups; extra work items, and lanes past the bucket's
 * edge, do nothing. */
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
    const int blocks_x = (w + BLOCK_W - 1) / BLOCK_W, blocks = blocks_x * ((h + BLOCK_H - 1) / BLOCK_H);
    if ((int)get_global_id(0) >= blocks) return;
    /* this work item's block of the bucket, and each lane's pixel in it */
    const int block = (int)(((ulong)get_global_id(0) * (ulong)stride) % (ulong)blocks);
    const VI gx = (block % blocks_x) * BLOCK_W + LANE_INDEX % BLOCK_W;
    const VI gy = (block / blocks_x) * BLOCK_H + LANE_INDEX / BLOCK_W;
    SceneRef s = {frame, top, instances, motions, nodes, packs, tri_data, normals, extras, spheres, materials, textures, texels,
                  lights, env_marginal, env_conditional, env_pdf_table, env_guide};
    const int width = frame->size.x, height = frame->size.y;
    const uint seed = as_uint(frame->counts.z);
    const float aperture = frame->lens_v.x * frame->lens_v.x + frame->lens_v.y * frame->lens_v.y
                         + frame->lens_v.z * frame->lens_v.z;
    const VI inside = MASK(gx < w) & MASK(gy < h);
    VI px = (VI)(0), py = (VI)(0), first = (VI)(0), end = (VI)(0);
    int offset[LANES];  /* each lane's pixel in the bucket, row-major */
    /* A pixel's PIXEL_CHANNELS sums: radiance, then with FARM_AOVS albedo, normal, depth,
     * the luminance's square (for its variance), and the material seen by sample 0 plus 1
     * (an id is not averaged: only sample 0 adds it); the host divides by the samples taken. */
    VL sum[PIXEL_CHANNELS];
    for (int c = 0; c < PIXEL_CHANNELS; ++c) sum[c] = (VL)(0);
    int most = 0;
    FOR_LANES(l, inside) {
        LI(px, l) = x0 + LI(gx, l);
        LI(py, l) = y0 + LI(gy, l);
        const int cell = (LI(py, l) / cell_size) * cells_x + LI(px, l) / cell_size;
        LI(first, l) = max_i(ranges[2 * cell], window_first);
        LI(end, l) = min_i(ranges[2 * cell + 1], window_end);
        most = max_i(most, LI(end, l) - LI(first, l));
        offset[l] = LI(gy, l) * w + LI(gx, l);
        __global long *target = sums + (size_t)offset[l] * PIXEL_CHANNELS;
        if (accumulate)
            for (int c = 0; c < PIXEL_CHANNELS; ++c) LL(sum[c], l) = target[c];
    }
    const VU pixel = TO_VU(py * width + px);
    for (int k = 0; k < most; ++k) {
        const VI i = first + k;
        const VI active = inside & MASK(i < end);
        Samplers sampler = make_samplers(frame->options.x, seed, pixel, TO_VU(i));
        VF ux, uy;
        sample2_v(&sampler, PAIR_PIXEL, &ux, &uy);
        VF sx = 2.0f * (TO_VF(px) + ux) / (float)width - 1.0f;
        VF sy = 1.0f - 2.0f * (TO_VF(py) + uy) / (float)height;
        VF3 o = splat3(frame->origin.xyz);
        VF3 d = unit3v(add3(add3(splat3(frame->forward.xyz), scale3(splat3(frame->right.xyz), sx)),
                            scale3(splat3(frame->up.xyz), sy)));
        VF time = (VF)(0.5f);  /* where the shutter is closed, nothing reads it */
#ifdef FARM_MOTION
        /* The sample's moment in the shutter, a dimension of its own; the camera between
         * its place at the open and at the close. */
        time = sample1_v(&sampler, CHOICE_TIME);
        o = add3(o, scale3(splat3(frame->origin1.xyz - frame->origin.xyz), time));
        VF3 forward = add3(splat3(frame->forward.xyz), scale3(splat3(frame->forward1.xyz - frame->forward.xyz), time));
        VF3 right = add3(splat3(frame->right.xyz), scale3(splat3(frame->right1.xyz - frame->right.xyz), time));
        VF3 up = add3(splat3(frame->up.xyz), scale3(splat3(frame->up1.xyz - frame->up.xyz), time));
        d = unit3v(add3(add3(forward, scale3(right, sx)), scale3(up, sy)));
#endif
        if (aperture > 0.0f) {  /* thin lens: rays through the lens meet on the focus plane */
            VF3 focus = add3(o, scale3(d, frame->lens_u.w / dot3v(d, splat3(frame->forward.xyz))));
            VF lx, ly, c, sn;
            sample2_v(&sampler, PAIR_LENS, &lx, &ly);
            unit_circle_v(ly, &c, &sn);  /* a uniform point on the unit disk */
            VF r = SQRT_V(lx);
            o = add3(add3(o, scale3(splat3(frame->lens_u.xyz), c * r)), scale3(splat3(frame->lens_v.xyz), sn * r));
            d = unit3v(sub3(focus, o));
        }
        /* clipping planes: the camera ray starts at the near one and ends at the far one
         * (distances along the viewing direction, as USD's and Cycles' clipping) */
        VF far = (VF)(INFINITY), skipped = (VF)(0.0f);
        if (frame->forward.w > 0.0f || frame->right.w > 0.0f) {
            VF along = dot3v(d, splat3(frame->forward.xyz));
            skipped = frame->forward.w / along;
            if (frame->forward.w > 0.0f) o = add3(o, scale3(d, skipped));
            if (frame->right.w > 0.0f) far = frame->right.w / along - skipped;
        }
        Aovs aov = {splat3((float3)(0.0f)), splat3((float3)(0.0f)), (VF)(0.0f), (VI)(-1), (VI)(0)};
        /* the sums in lanes; a lane whose pixel has no sample here adds 0 (its AOVs stay none) */
        VF3 value = select3(splat3((float3)(0.0f)), radiance(&s, &sampler, active, o, d, &aov, time, far, skipped),
                            active);
        add_fixed3(sum, value);
#ifdef FARM_AOVS
        add_fixed3(sum + AOV_ALBEDO, aov.albedo);
        add_fixed3(sum + AOV_NORMAL, aov.normal);
        sum[AOV_DEPTH] += fixed_point_v(aov.depth);
        VF luminance = LUMINANCE_R * value.x + LUMINANCE_G * value.y + LUMINANCE_B * value.z;
        sum[AOV_LUMINANCE_SQUARE] += fixed_point_v(luminance * luminance);
        sum[AOV_MATERIAL] += fixed_point_v(SEL((VF)(0.0f), TO_VF(aov.material + 1), MASK(i == 0)));
#endif
    }
    FOR_LANES(l, inside) {
        __global long *target = sums + (size_t)offset[l] * PIXEL_CHANNELS;
        for (int c = 0; c < PIXEL_CHANNELS; ++c) target[c] = LL(sum[c], l);
    }
}

/* f(wi, wo) |cos wo| and the density of wo for each of `count` pairs (wi xyz, wo xyz in the
 * local frame, z the normal) of one material at one uv, LANES pairs a work item, for testing
 * the BSDFs term by term against the reference renderer's. */
__kernel void eval_bsdf(__global const Material *materials,
                        __global const Texture *textures,
                        __global const float *texels,
                        int material, float u, float v, int count,
                        __global const float *directions,
                        __global float *out) {
    SceneRef s;
    s.materials = materials;
    s.textures = textures;
    s.texels = texels;
    Bsdf one = bsdf_at(&s, material, (float4)(u, v, u, v));
    Bsdfs b;
    VF3 wi = splat3((float3)(0.0f)), wo = wi;
    const VI pair = (int)get_global_id(0) * LANES + LANE_INDEX, inside = MASK(pair < count);
    for (int l = 0; l < LANES; ++l) {
        set_bsdf_lane(&s, &b, l, &one);
        if (!LI(inside, l)) continue;
        set_lane3(&wi, l, vload3(2 * LI(pair, l), directions));
        set_lane3(&wo, l, vload3(2 * LI(pair, l) + 1, directions));
    }
    VF pdf;
    VF3 value = bsdf_eval_v(&s, &b, inside, wi, wo, &pdf);
    FOR_LANES(l, inside) {
        vstore3(lane3(value, l), 2 * LI(pair, l), out);
        out[6 * LI(pair, l) + 3] = LF(pdf, l);
    }
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
