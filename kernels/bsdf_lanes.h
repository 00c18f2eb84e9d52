/* The materials' BSDFs (bsdf.h's record) for the paths in lanes (kernels/lanes.h): each lane
 * its own material, each material kind's code run once for all the lanes that have it, the
 * same operations in every lane, so the same bits at any width. A branch of one path's
 * code is a select here: both sides are computed where lanes differ.
 *
 * wi points towards where the light goes (the viewer), wo towards where it comes from;
 * eval returns f(wi, wo) |cos wo| and the density of sampling wo, both without delta
 * components; sample returns that value divided by the density (the path weight).
 * Opaque materials see wi.z > 0 (the caller flips them to the viewer's side); a dielectric
 * is entered when wi.z > 0 and left when wi.z < 0. Rough conductors and dielectrics: GGX,
 * visible normals sampled (Heitz 2018), Smith masking, Walter et al. 2007 with Mitsuba's
 * radiance scaling on refraction; plastic and principled as Mitsuba 3's. */
#ifndef FARM_BSDF_LANES_H
#define FARM_BSDF_LANES_H

#include "bsdf.h"
#include "lanes.h"

typedef struct {
    VI kind;
    VF3 reflectance, specular, transmittance, eta, k;
    VF alpha, roughness, metallic, ior, fdr;
    VI table_size, table;  /* plastic: its coating table's size (0: none) and first texel */
} Bsdfs;

inline void set_bsdf_lane(const SceneRef *s, Bsdfs *bs, int l, const Bsdf *b) {
    LI(bs->kind, l) = b->kind;
    set_lane3(&bs->reflectance, l, b->reflectance);
    set_lane3(&bs->specular, l, b->specular);
    set_lane3(&bs->transmittance, l, b->transmittance);
    set_lane3(&bs->eta, l, b->eta);
    set_lane3(&bs->k, l, b->k);
    LF(bs->alpha, l) = b->alpha;
    LF(bs->roughness, l) = b->roughness;
    LF(bs->metallic, l) = b->metallic;
    LF(bs->ior, l) = b->ior;
    LF(bs->fdr, l) = b->fdr;
    LI(bs->table_size, l) = b->table_size;
    LI(bs->table, l) = (int)(b->coating - s->texels);
}

/* set_bsdf_lane for the lanes of m at once: b's values where m is set. */
inline void set_bsdf_lanes(const SceneRef *s, Bsdfs *bs, VI m, const Bsdf *b) {
    bs->kind = SEL(bs->kind, (VI)(b->kind), m);
    bs->reflectance = select3(bs->reflectance, splat3(b->reflectance), m);
    bs->specular = select3(bs->specular, splat3(b->specular), m);
    bs->transmittance = select3(bs->transmittance, splat3(b->transmittance), m);
    bs->eta = select3(bs->eta, splat3(b->eta), m);
    bs->k = select3(bs->k, splat3(b->k), m);
    bs->alpha = SEL(bs->alpha, (VF)(b->alpha), m);
    bs->roughness = SEL(bs->roughness, (VF)(b->roughness), m);
    bs->metallic = SEL(bs->metallic, (VF)(b->metallic), m);
    bs->ior = SEL(bs->ior, (VF)(b->ior), m);
    bs->fdr = SEL(bs->fdr, (VF)(b->fdr), m);
    bs->table_size = SEL(bs->table_size, (VI)(b->table_size), m);
    bs->table = SEL(bs->table, (VI)((int)(b->coating - s->texels)), m);
}

inline VF clamp_v(VF x, float lo, float hi) { return min_v(max_v(x, (VF)(lo)), (VF)(hi)); }
inline VF mean3v(VF3 v) { return (v.x + v.y + v.z) * (1.0f / 3.0f); }
inline VF pow5v(VF x) { VF x2 = x * x; return x2 * x2 * x; }
inline VF3 cross3v(VF3 a, VF3 b) {
    return vf3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}
inline VF3 zero3(void) { return splat3((float3)(0.0f)); }
inline VF3 mirror3(VF3 v) { return vf3(-v.x, -v.y, v.z); }  /* (-x, -y, z) */

inline VF fresnel_dielectric_v(VF cos_i, VF eta_it, VF *cos_t) {
    VF sin_t2 = (1.0f - cos_i * cos_i) / (eta_it * eta_it);
    VI total = MASK(sin_t2 >= 1.0f);
    VF ct = SQRT_V(1.0f - sin_t2);
    VF rs = (cos_i - eta_it * ct) / (cos_i + eta_it * ct);
    VF rp = (eta_it * cos_i - ct) / (eta_it * cos_i + ct);
    *cos_t = SEL(ct, (VF)(0.0f), total);
    return SEL(0.5f * (rs * rs + rp * rp), (VF)(1.0f), total);
}

inline VF fresnel_conductor1(VF c2, VF s2, VF two_cos_i, VF eta, VF k) {
    VF eta2 = eta * eta, k2 = k * k;
    VF t0 = eta2 - k2 - s2;
    VF a2b2 = SQRT_V(t0 * t0 + 4.0f * eta2 * k2);
    VF t1 = a2b2 + c2;
    VF a = SQRT_V(max_v(0.5f * (a2b2 + t0), (VF)(0.0f)));
    VF t2 = two_cos_i * a;
    VF rs = (t1 - t2) / (t1 + t2);
    VF t3 = c2 * a2b2 + s2 * s2;
    VF t4 = t2 * s2;
    VF rp = rs * (t3 - t4) / (t3 + t4);
    return 0.5f * (rp + rs);
}

inline VF3 fresnel_conductor_v(VF cos_i, VF3 eta, VF3 k) {
    VF c2 = cos_i * cos_i, s2 = 1.0f - c2, two_cos_i = 2.0f * cos_i;
    return vf3(fresnel_conductor1(c2, s2, two_cos_i, eta.x, k.x), fresnel_conductor1(c2, s2, two_cos_i, eta.y, k.y),
               fresnel_conductor1(c2, s2, two_cos_i, eta.z, k.z));
}

inline VF ggx_d_v(VF3 m, VF alpha) {
    VF a2 = alpha * alpha;
    VF t = (m.x * m.x + m.y * m.y) / a2 + m.z * m.z;
    return 1.0f / (PI_F * a2 * t * t);
}

inline VF ggx_g1_v(VF3 v, VF3 m, VF alpha) {
    VF z2 = v.z * v.z;
    VF tan2 = max_v(1.0f - z2, (VF)(0.0f)) / z2;
    VF g = 2.0f / (1.0f + SQRT_V(1.0f + alpha * alpha * tan2));
    return SEL(g, (VF)(0.0f), MASK(dot3v(v, m) * v.z <= 0.0f));
}

inline VF3 ggx_sample_visible_v(VF3 wi, VF alpha, VF ux, VF uy) {
    VF3 vh = unit3v(vf3(alpha * wi.x, alpha * wi.y, wi.z));
    VF len2 = vh.x * vh.x + vh.y * vh.y;
    VF len = SQRT_V(len2);
    VI tilted = MASK(len2 > 0.0f);
    VF3 t1 = select3(vf3((VF)(1.0f), (VF)(0.0f), (VF)(0.0f)), vf3(-vh.y / len, vh.x / len, 0.0f / len), tilted);
    VF3 t2 = cross3v(vh, t1);
    VF r = SQRT_V(ux), c, sn;
    unit_circle_v(uy, &c, &sn);
    VF p1 = r * c, p2 = r * sn;
    VF blend = 0.5f * (1.0f + vh.z);
    p2 = (1.0f - blend) * SQRT_V(max_v(1.0f - p1 * p1, (VF)(0.0f))) + blend * p2;
    VF3 nh = add3(add3(scale3(t1, p1), scale3(t2, p2)), scale3(vh, SQRT_V(max_v(1.0f - p1 * p1 - p2 * p2, (VF)(0.0f)))));
    return unit3v(vf3(alpha * nh.x, alpha * nh.y, max_v(nh.z, (VF)(1e-7f))));
}

inline VF ggx_pdf_visible_v(VF3 wi, VF3 m, VF alpha) {
    return ggx_g1_v(wi, m, alpha) * max_v(dot3v(wi, m), (VF)(0.0f)) * ggx_d_v(m, alpha) / wi.z;
}

inline VF3 reflect_about_v(VF3 v, VF3 m) { return sub3(scale3(m, 2.0f * dot3v(v, m)), v); }

inline VI bsdf_is_delta_v(const Bsdfs *b) {
    return (MASK(b->kind == MATERIAL_CONDUCTOR) | MASK(b->kind == MATERIAL_DIELECTRIC)) & MASK(b->alpha < ALPHA_MIN);
}

/* plastic_transmittance: the coating table lane by lane where the lanes of `m` have one */
inline VF plastic_transmittance_v(const SceneRef *s, const Bsdfs *b, VF cos_theta, VI m) {
    VF ct;
    VF value = 1.0f - fresnel_dielectric_v(cos_theta, b->ior, &ct);
    VI tabled = m & MASK(b->table_size != 0);
    if (!any_lane(tabled)) return value;
    VF x = clamp_v(cos_theta, 0.0f, 1.0f) * TO_VF(b->table_size - 1);
    VI i = TO_VI(x), last = b->table_size - 2;
    i = SEL(last, i, MASK(i < last));  /* min_i */
    VF a = x - TO_VF(i);
    VF c0 = (VF)(0.0f), c1 = (VF)(0.0f);
    FOR_LANES(l, tabled) {
        __global const float *coating = s->texels + LI(b->table, l) + LI(i, l);
        LF(c0, l) = coating[0];
        LF(c1, l) = coating[1];
    }
    return SEL(value, c0 * (1.0f - a) + c1 * a, tabled);
}

inline VF plastic_specular_probability_v(const SceneRef *s, const Bsdfs *b, VF cos_i, VI m) {
    VF t = plastic_transmittance_v(s, b, cos_i, m);
    VF s_mean = mean3v(b->specular), d_mean = mean3v(b->reflectance);
    VF weight = SEL((VF)(0.5f), s_mean / (s_mean + d_mean), MASK(s_mean + d_mean > 0.0f));
    VF ps = (1.0f - t) * weight, pd = t * (1.0f - weight);
    return SEL((VF)(1.0f), ps / (ps + pd), MASK(ps + pd > 0.0f));
}

inline VF3 plastic_diffuse_v(const SceneRef *s, const Bsdfs *b, VF cos_i, VF cos_o, VI m) {
    VF ti = plastic_transmittance_v(s, b, cos_i, m), to = plastic_transmittance_v(s, b, cos_o, m);
    return scale3(div3(b->reflectance, 1.0f - b->fdr), ti * to / (b->ior * b->ior) * cos_o * INV_PI_F);
}

inline VF3 rough_dielectric_eval_v(const Bsdfs *b, VF3 wi, VF3 wo, VF *pdf) {
    VI front = MASK(wi.z > 0.0f);
    VF side = SEL((VF)(-1.0f), (VF)(1.0f), front);
    VF eta_it = SEL(1.0f / b->ior, b->ior, front);
    VF3 wi_u = scale3(wi, side), wo_u = scale3(wo, side);
    VI reflect = MASK(wo_u.z > 0.0f);
    VF3 m = select3(unit3v(add3(wi_u, scale3(wo_u, eta_it))), unit3v(add3(wi_u, wo_u)), reflect);
    m = select3(m, neg3(m), MASK(m.z < 0.0f));
    VF cos_im = dot3v(wi_u, m), cos_om = dot3v(wo_u, m);
    VI valid = ~MASK(wi.z == 0.0f) & ~MASK(wo.z == 0.0f)
             & ~(MASK(cos_im <= 0.0f) | SEL(MASK(cos_om >= 0.0f), MASK(cos_om <= 0.0f), reflect));
    VF d = ggx_d_v(m, b->alpha);
    VF g1i = ggx_g1_v(wi_u, m, b->alpha), g1o = ggx_g1_v(wo_u, m, b->alpha);
    VF ct;
    VF f = fresnel_dielectric_v(cos_im, eta_it, &ct);
    VF cos_i = wi_u.z;
    VF denom = cos_im + eta_it * cos_om;
    denom *= denom;
    VF reflect_pdf = f * g1i * d / (4.0f * cos_i);
    VF3 reflect_value = scale3(b->specular, f * d * g1i * g1o / (4.0f * cos_i));
    VF refract_pdf = (1.0f - f) * g1i * cos_im * d / cos_i * eta_it * eta_it * FABS_V(cos_om) / denom;
    VF3 refract_value = scale3(b->transmittance,
                               (1.0f - f) * d * g1i * g1o * cos_im * FABS_V(cos_om) / (cos_i * denom));
    *pdf = SEL((VF)(0.0f), SEL(refract_pdf, reflect_pdf, reflect), valid);
    return select3(zero3(), select3(refract_value, reflect_value, reflect), valid);
}

inline VF principled_specular_probability_v(const Bsdfs *b) {
    VF base = mean3v(b->reflectance), r0 = (b->ior - 1.0f) / (b->ior + 1.0f);
    VF spec = (1.0f - b->metallic) * r0 * r0 + b->metallic * base, diff = (1.0f - b->metallic) * base;
    return SEL((VF)(1.0f), max_v(spec / (spec + diff), (VF)(0.25f)), MASK(diff > 0.0f));
}

inline VF3 principled_eval_v(const Bsdfs *b, VF3 wi, VF3 wo, VF *pdf) {
    VF3 h = unit3v(add3(wi, wo));
    VF cih = dot3v(wi, h);
    VF d = ggx_d_v(h, b->alpha);
    VF g1i = ggx_g1_v(wi, h, b->alpha);
    VF g = g1i * ggx_g1_v(wo, h, b->alpha);
    VF ct;
    VF fd = fresnel_dielectric_v(cih, b->ior, &ct);
    VF w = pow5v(clamp_v(1.0f - cih, 0.0f, 1.0f));
    VF dielectric = (1.0f - b->metallic) * fd;
    VF3 r = b->reflectance;
    VF3 f = vf3(dielectric + b->metallic * (r.x + (1.0f - r.x) * w), dielectric + b->metallic * (r.y + (1.0f - r.y) * w),
                dielectric + b->metallic * (r.z + (1.0f - r.z) * w));
    VF3 value = scale3(f, d * g / (4.0f * wi.z));
    VF fi = pow5v(1.0f - wi.z), fo = pow5v(1.0f - wo.z);
    VF rr = 2.0f * b->roughness * cih * cih;
    VF diffuse = (1.0f - 0.5f * fi) * (1.0f - 0.5f * fo) + rr * (fo + fi + fo * fi * (rr - 1.0f));
    value = add3(value, scale3(r, (1.0f - b->metallic) * INV_PI_F * diffuse * wo.z));
    VF p_spec = principled_specular_probability_v(b);
    *pdf = p_spec * g1i * d / (4.0f * wi.z) + (1.0f - p_spec) * wo.z * INV_PI_F;
    return value;
}

/* bsdf_eval of each lane of `m`: f(wi, wo) |cos wo| and the density of wo. */
inline VF3 bsdf_eval_v(const SceneRef *s, const Bsdfs *b, VI m, VF3 wi, VF3 wo, VF *pdf) {
    VF3 value = zero3();
    *pdf = (VF)(0.0f);
    VI smooth = MASK(b->alpha < ALPHA_MIN);
    VI dielectric = m & MASK(b->kind == MATERIAL_DIELECTRIC) & ~smooth;
    if (any_lane(dielectric)) {
        VF p;
        VF3 v = rough_dielectric_eval_v(b, wi, wo, &p);
        value = select3(value, v, dielectric);
        *pdf = SEL(*pdf, p, dielectric);
    }
    /* opaque materials, from the front only */
    VI opaque = m & ~MASK(b->kind == MATERIAL_DIELECTRIC) & ~MASK(wi.z <= 0.0f) & ~MASK(wo.z <= 0.0f);
    VI diffuse = opaque & MASK(b->kind == MATERIAL_DIFFUSE);
    if (any_lane(diffuse)) {
        value = select3(value, scale3(b->reflectance, wo.z * INV_PI_F), diffuse);
        *pdf = SEL(*pdf, wo.z * INV_PI_F, diffuse);
    }
    VI principled = opaque & MASK(b->kind == MATERIAL_PRINCIPLED);
    if (any_lane(principled)) {
        VF p;
        VF3 v = principled_eval_v(b, wi, wo, &p);
        value = select3(value, v, principled);
        *pdf = SEL(*pdf, p, principled);
    }
    VI conductor = opaque & MASK(b->kind == MATERIAL_CONDUCTOR) & ~smooth;
    if (any_lane(conductor)) {
        VF3 h = unit3v(add3(wi, wo));
        VF d = ggx_d_v(h, b->alpha);
        VF g1i = ggx_g1_v(wi, h, b->alpha), g1o = ggx_g1_v(wo, h, b->alpha);
        VF3 f = fresnel_conductor_v(dot3v(wi, h), b->eta, b->k);
        value = select3(value, scale3(mul3(b->specular, f), d * g1i * g1o / (4.0f * wi.z)), conductor);
        *pdf = SEL(*pdf, g1i * d / (4.0f * wi.z), conductor);
    }
    VI plastic = opaque & MASK(b->kind == MATERIAL_PLASTIC);
    if (any_lane(plastic)) {
        VF p_spec = plastic_specular_probability_v(s, b, wi.z, plastic);
        VF3 v = plastic_diffuse_v(s, b, wi.z, wo.z, plastic);
        VF p = (1.0f - p_spec) * (wo.z * INV_PI_F);
        VI rough = plastic & ~smooth;
        if (any_lane(rough)) {
            VF3 h = unit3v(add3(wi, wo));
            VF d = ggx_d_v(h, b->alpha);
            VF g1i = ggx_g1_v(wi, h, b->alpha), g1o = ggx_g1_v(wo, h, b->alpha);
            VF ct;
            VF f = fresnel_dielectric_v(dot3v(wi, h), b->ior, &ct);
            v = select3(v, add3(v, scale3(b->specular, f * d * g1i * g1o / (4.0f * wi.z))), rough);
            p = SEL(p, p + p_spec * g1i * d / (4.0f * wi.z), rough);
        }
        value = select3(value, v, plastic);
        *pdf = SEL(*pdf, p, plastic);
    }
    return value;
}

/* A cosine-weighted direction about +z (Malley's method); pdf = z / pi. */
inline VF3 sample_cosine_local_v(VF ux, VF uy) {
    VF r = SQRT_V(ux), c, sn;
    unit_circle_v(uy, &c, &sn);
    return vf3(r * c, r * sn, SQRT_V(max_v(1.0f - ux, (VF)(0.0f))));
}

/* bsdf_sample of each lane of `m`: wo, the weight f |cos wo| / pdf, the density and
 * whether it came from a delta component; returns the lanes whose weight is above 0 (the
 * others lost their sample). */
inline VI bsdf_sample_v(const SceneRef *s, const Bsdfs *b, VI m, VF3 wi, VF ux, VF uy, VF u_lobe, VF3 *wo,
                        VF3 *weight, VF *pdf, VI *delta) {
    *wo = zero3();
    *weight = zero3();
    *pdf = (VF)(0.0f);
    *delta = (VI)(0);
    VI smooth = MASK(b->alpha < ALPHA_MIN);
    VF3 mirrored = mirror3(wi);
    VI dielectric = m & MASK(b->kind == MATERIAL_DIELECTRIC);
    if (any_lane(dielectric)) {
        VI front = MASK(wi.z > 0.0f);
        VF side = SEL((VF)(-1.0f), (VF)(1.0f), front);
        VF eta_it = SEL(1.0f / b->ior, b->ior, front);
        VF3 wi_u = scale3(wi, side);
        VF inv = 1.0f / eta_it;
        VI smooth_glass = dielectric & smooth;
        if (any_lane(smooth_glass)) {
            VF ct;
            VF f = fresnel_dielectric_v(wi_u.z, eta_it, &ct);
            VI reflected = MASK(u_lobe < f);
            *wo = select3(*wo, select3(vf3(-wi.x * inv, -wi.y * inv, -ct * side), mirrored, reflected), smooth_glass);
            *pdf = SEL(*pdf, SEL(1.0f - f, f, reflected), smooth_glass);
            *weight = select3(*weight, select3(scale3(b->transmittance, inv * inv), b->specular, reflected), smooth_glass);
            *delta |= smooth_glass;
        }
        VI rough_glass = dielectric & ~smooth & ~MASK(wi_u.z <= 0.0f);
        if (any_lane(rough_glass)) {
            VF3 h = ggx_sample_visible_v(wi_u, b->alpha, ux, uy);
            VF cos_im = dot3v(wi_u, h);
            VF ct;
            VF f = fresnel_dielectric_v(cos_im, eta_it, &ct);
            VI reflected = MASK(u_lobe < f);
            VF3 wo_u = select3(sub3(scale3(h, cos_im * inv - ct), scale3(wi_u, inv)), reflect_about_v(wi_u, h), reflected);
            VI kept = rough_glass & ~(reflected & MASK(wo_u.z <= 0.0f)) & ~(~reflected & MASK(wo_u.z >= 0.0f));
            VF g1 = ggx_g1_v(wo_u, h, b->alpha);
            VF3 w = select3(scale3(b->transmittance, g1 * inv * inv), scale3(b->specular, g1), reflected);
            VF3 out = scale3(wo_u, side);
            VF p;
            rough_dielectric_eval_v(b, wi, out, &p);
            *wo = select3(*wo, out, kept);
            *pdf = SEL(*pdf, p, kept);
            *weight = select3(*weight, select3(zero3(), w, MASK(p > 0.0f)), kept);
        }
    }
    VI opaque = m & ~dielectric & ~MASK(wi.z <= 0.0f);
    VI cosine = opaque & (MASK(b->kind == MATERIAL_DIFFUSE) | MASK(b->kind == MATERIAL_PRINCIPLED)
                          | MASK(b->kind == MATERIAL_PLASTIC));
    VF3 cosine_wo = any_lane(cosine) ? sample_cosine_local_v(ux, uy) : zero3();
    VI diffuse = opaque & MASK(b->kind == MATERIAL_DIFFUSE);
    if (any_lane(diffuse)) {
        *wo = select3(*wo, cosine_wo, diffuse);
        *pdf = SEL(*pdf, cosine_wo.z * INV_PI_F, diffuse);
        *weight = select3(*weight, select3(zero3(), b->reflectance, MASK(cosine_wo.z > 0.0f)), diffuse);
    }
    VI principled = opaque & MASK(b->kind == MATERIAL_PRINCIPLED);
    if (any_lane(principled)) {  /* the GGX lobe or the diffuse base */
        VI specular = MASK(u_lobe < principled_specular_probability_v(b));
        VF3 out = select3(cosine_wo, reflect_about_v(wi, ggx_sample_visible_v(wi, b->alpha, ux, uy)), specular);
        VF p;
        VF3 value = principled_eval_v(b, wi, out, &p);
        VI kept = principled & ~MASK(out.z <= 0.0f);
        *wo = select3(*wo, out, principled);
        *pdf = SEL(*pdf, p, kept);
        *weight = select3(*weight, select3(zero3(), div3(value, p), MASK(p > 0.0f)), kept);
    }
    VI conductor = opaque & MASK(b->kind == MATERIAL_CONDUCTOR);
    VI mirror = conductor & smooth;
    if (any_lane(mirror)) {
        *wo = select3(*wo, mirrored, mirror);
        *pdf = SEL(*pdf, (VF)(1.0f), mirror);
        *delta |= mirror;
        *weight = select3(*weight, mul3(b->specular, fresnel_conductor_v(wi.z, b->eta, b->k)), mirror);
    }
    VI rough_metal = conductor & ~smooth;
    if (any_lane(rough_metal)) {
        VF3 h = ggx_sample_visible_v(wi, b->alpha, ux, uy);
        VF3 out = reflect_about_v(wi, h);
        VI kept = rough_metal & ~MASK(out.z <= 0.0f);
        *wo = select3(*wo, out, rough_metal);
        *pdf = SEL(*pdf, ggx_pdf_visible_v(wi, h, b->alpha) / (4.0f * dot3v(out, h)), kept);
        *weight = select3(*weight, scale3(mul3(b->specular, fresnel_conductor_v(dot3v(wi, h), b->eta, b->k)),
                                          ggx_g1_v(out, h, b->alpha)), kept);
    }
    VI plastic = opaque & MASK(b->kind == MATERIAL_PLASTIC);
    if (any_lane(plastic)) {  /* the specular layer or the diffuse base */
        VF p_spec = plastic_specular_probability_v(s, b, wi.z, plastic);
        VI specular = MASK(u_lobe < p_spec);
        VI coat = plastic & smooth & specular;
        if (any_lane(coat)) {
            VF ct;
            VF f = fresnel_dielectric_v(wi.z, b->ior, &ct);
            *wo = select3(*wo, mirrored, coat);
            *pdf = SEL(*pdf, p_spec, coat);
            *delta |= coat;
            *weight = select3(*weight, scale3(b->specular, f / p_spec), coat);
        }
        VI base = plastic & smooth & ~specular & ~MASK(cosine_wo.z <= 0.0f);
        if (any_lane(base)) {
            VF p = (1.0f - p_spec) * cosine_wo.z * INV_PI_F;
            *wo = select3(*wo, cosine_wo, base);
            *pdf = SEL(*pdf, p, base);
            *weight = select3(*weight, div3(plastic_diffuse_v(s, b, wi.z, cosine_wo.z, base), p), base);
        }
        VI rough = plastic & ~smooth;
        if (any_lane(rough)) {
            VF3 out = select3(cosine_wo, reflect_about_v(wi, ggx_sample_visible_v(wi, b->alpha, ux, uy)), specular);
            VI kept = rough & ~MASK(out.z <= 0.0f);
            VF p;
            VF3 value = bsdf_eval_v(s, b, kept, wi, out, &p);
            *wo = select3(*wo, out, rough);
            *pdf = SEL(*pdf, p, kept);
            *weight = select3(*weight, select3(zero3(), div3(value, p), MASK(p > 0.0f)), kept);
        }
    }
    return m & MASK(max3v(*weight) > 0.0f);
}

#endif
