/* Materials as BSDFs in the local shading frame (z = shading normal).
 *
 * wi points towards where the light goes (the viewer), wo towards where it comes from;
 * eval returns f(wi, wo) |cos wo| and the density of sampling wo, both without delta
 * components; sample returns that value divided by the density (the path weight).
 * Opaque materials see wi.z > 0 (the caller flips them to the viewer's side);
 * a dielectric is entered when wi.z > 0 and left when wi.z < 0. */
#ifndef FARM_BSDF_H
#define FARM_BSDF_H

#include "types.h"
#include "sampling.h"

/* ALPHA_MIN: GGX alpha below which a conductor or dielectric is perfectly smooth. */
#ifndef ALPHA_MIN
#error "ALPHA_MIN comes from the host (farm/scene/layout.py, KERNEL_CONSTANTS)"
#endif

typedef struct {
    int kind;
    float3 reflectance, specular, transmittance;
    float alpha;   /* GGX roughness; < ALPHA_MIN: smooth */
    float roughness;  /* principled: the roughness alpha came from (its retro-reflection uses it) */
    float metallic;   /* principled */
    float3 eta, k; /* conductor */
    float ior;     /* dielectric, plastic: interior / exterior */
    float fdr;     /* plastic: internal diffuse Fresnel reflectance */
    __global const float *coating;  /* plastic: the rough coating's transmittance by cosine */
    int table_size;                       /* 0: use the smooth coating's 1 - Fresnel */
} Bsdf;

inline float max3(float3 v) { return max_f(v.x, max_f(v.y, v.z)); }
inline float mean3(float3 v) { return (v.x + v.y + v.z) * (1.0f / 3.0f); }

/* Fresnel reflectance of a dielectric for cos_i > 0 on the side of relative index eta_it
 * (transmitted side / incident side); *cos_t gets the refracted cosine (0 on total
 * internal reflection). */
inline float fresnel_dielectric(float cos_i, float eta_it, float *cos_t) {
    float sin_t2 = (1.0f - cos_i * cos_i) / (eta_it * eta_it);
    if (sin_t2 >= 1.0f) { *cos_t = 0.0f; return 1.0f; }
    float ct = sqrt_f(1.0f - sin_t2);
    float rs = (cos_i - eta_it * ct) / (cos_i + eta_it * ct);
    float rp = (eta_it * cos_i - ct) / (eta_it * cos_i + ct);
    *cos_t = ct;
    return 0.5f * (rs * rs + rp * rp);
}

/* Fresnel reflectance of a conductor of complex index eta + i k, per channel. */
inline float3 fresnel_conductor(float cos_i, float3 eta, float3 k) {
    float c2 = cos_i * cos_i, s2 = 1.0f - c2;
    float3 eta2 = eta * eta, k2 = k * k;
    float3 t0 = eta2 - k2 - s2;
    float3 a2b2 = sqrt_f3(t0 * t0 + 4.0f * eta2 * k2);
    float3 t1 = a2b2 + c2;
    float3 a = sqrt_f3(max_f3(0.5f * (a2b2 + t0), 0.0f));
    float3 t2 = 2.0f * cos_i * a;
    float3 rs = (t1 - t2) / (t1 + t2);
    float3 t3 = c2 * a2b2 + s2 * s2;
    float3 t4 = t2 * s2;
    float3 rp = rs * (t3 - t4) / (t3 + t4);
    return 0.5f * (rp + rs);
}

/* GGX normal distribution D(m), m.z > 0. */
inline float ggx_d(float3 m, float alpha) {
    float a2 = alpha * alpha;
    float t = (m.x * m.x + m.y * m.y) / a2 + m.z * m.z;
    return 1.0f / (PI_F * a2 * t * t);
}

/* Smith masking G1 of direction v against microfacet m. */
inline float ggx_g1(float3 v, float3 m, float alpha) {
    if (dot3(v, m) * v.z <= 0.0f) return 0.0f;
    float z2 = v.z * v.z;
    float tan2 = max_f(1.0f - z2, 0.0f) / z2;
    return 2.0f / (1.0f + sqrt_f(1.0f + alpha * alpha * tan2));
}

/* A microfacet normal from the distribution of normals visible from wi (wi.z > 0), Heitz 2018. */
inline float3 ggx_sample_visible(float3 wi, float alpha, float2 u) {
    float3 vh = unit3((float3)(alpha * wi.x, alpha * wi.y, wi.z));
    float len2 = vh.x * vh.x + vh.y * vh.y;
    float3 t1 = len2 > 0.0f ? (float3)(-vh.y, vh.x, 0.0f) / sqrt_f(len2) : (float3)(1.0f, 0.0f, 0.0f);
    float3 t2 = cross3(vh, t1);
    float r = sqrt_f(u.x);
    float2 cs = unit_circle(u.y);
    float p1 = r * cs.x, p2 = r * cs.y;
    float blend = 0.5f * (1.0f + vh.z);
    p2 = (1.0f - blend) * sqrt_f(max_f(1.0f - p1 * p1, 0.0f)) + blend * p2;
    float3 nh = t1 * p1 + t2 * p2 + vh * sqrt_f(max_f(1.0f - p1 * p1 - p2 * p2, 0.0f));
    return unit3((float3)(alpha * nh.x, alpha * nh.y, max_f(nh.z, 1e-7f)));
}

/* Density of ggx_sample_visible's normal m. */
inline float ggx_pdf_visible(float3 wi, float3 m, float alpha) {
    return ggx_g1(wi, m, alpha) * max_f(dot3(wi, m), 0.0f) * ggx_d(m, alpha) / wi.z;
}

inline float3 reflect_about(float3 v, float3 m) { return m * (2.0f * dot3(v, m)) - v; }

inline bool bsdf_is_delta(const Bsdf *b) {
    return (b->kind == MATERIAL_CONDUCTOR || b->kind == MATERIAL_DIELECTRIC) && b->alpha < ALPHA_MIN;
}

/* How much of the light arriving at cosine cos_theta passes plastic's coating. */
inline float plastic_transmittance(const Bsdf *b, float cos_theta) {
    if (b->table_size == 0) {
        float ct;
        return 1.0f - fresnel_dielectric(cos_theta, b->ior, &ct);
    }
    float x = clamp_f(cos_theta, 0.0f, 1.0f) * (float)(b->table_size - 1);
    int i = min_i((int)x, b->table_size - 2);
    float a = x - (float)i;
    return b->coating[i] * (1.0f - a) + b->coating[i + 1] * a;
}

/* The probability that plastic samples its specular layer, as Mitsuba's plastic. */
inline float plastic_specular_probability(const Bsdf *b, float cos_i) {
    float t = plastic_transmittance(b, cos_i);
    float s_mean = mean3(b->specular), d_mean = mean3(b->reflectance);
    float weight = s_mean + d_mean > 0.0f ? s_mean / (s_mean + d_mean) : 0.5f;
    float ps = (1.0f - t) * weight, pd = t * (1.0f - weight);
    return ps + pd > 0.0f ? ps / (ps + pd) : 1.0f;
}

/* Plastic's diffuse base seen through the coating, times cos wo. */
inline float3 plastic_diffuse(const Bsdf *b, float cos_i, float cos_o) {
    float ti = plastic_transmittance(b, cos_i), to = plastic_transmittance(b, cos_o);
    return b->reflectance / (1.0f - b->fdr) * (ti * to / (b->ior * b->ior) * cos_o * INV_PI_F);
}

/* Rough dielectric: value (f |cos wo|) and density of wo, Walter et al. 2007 with
 * Mitsuba's radiance scaling on refraction. */
inline float3 rough_dielectric_eval(const Bsdf *b, float3 wi, float3 wo, float *pdf) {
    *pdf = 0.0f;
    if (wi.z == 0.0f || wo.z == 0.0f) return (float3)(0.0f);
    float side = wi.z > 0.0f ? 1.0f : -1.0f;
    float eta_it = wi.z > 0.0f ? b->ior : 1.0f / b->ior;
    float3 wi_u = wi * side, wo_u = wo * side;
    bool reflect = wo_u.z > 0.0f;
    float3 m = reflect ? unit3(wi_u + wo_u) : unit3(wi_u + wo_u * eta_it);
    if (m.z < 0.0f) m = -m;
    float cos_im = dot3(wi_u, m), cos_om = dot3(wo_u, m);
    if (cos_im <= 0.0f || (reflect ? cos_om <= 0.0f : cos_om >= 0.0f)) return (float3)(0.0f);
    float d = ggx_d(m, b->alpha);
    float g1i = ggx_g1(wi_u, m, b->alpha), g1o = ggx_g1(wo_u, m, b->alpha);
    float ct;
    float f = fresnel_dielectric(cos_im, eta_it, &ct);
    float cos_i = wi_u.z;
    if (reflect) {
        *pdf = f * g1i * d / (4.0f * cos_i);
        return b->specular * (f * d * g1i * g1o / (4.0f * cos_i));
    }
    float denom = cos_im + eta_it * cos_om;
    denom *= denom;
    *pdf = (1.0f - f) * g1i * cos_im * d / cos_i * eta_it * eta_it * fabs_f(cos_om) / denom;
    return b->transmittance * ((1.0f - f) * d * g1i * g1o * cos_im * fabs_f(cos_om) / (cos_i * denom));
}

/* Principled (glTF metallic-roughness as Mitsuba 3's principled evaluates it, its other
 * parameters at their defaults): a GGX lobe whose Fresnel blends the exact dielectric term
 * of index ior (1.5 by default) with Schlick's from the base colour by metallic, plus
 * (1 - metallic) of a Burley diffuse base with retro-reflection. alpha >= ALPHA_MIN,
 * never a delta. */
inline float pow5(float x) { float x2 = x * x; return x2 * x2 * x; }

inline float principled_specular_probability(const Bsdf *b) {
    float base = mean3(b->reflectance), r0 = (b->ior - 1.0f) / (b->ior + 1.0f);
    float spec = (1.0f - b->metallic) * r0 * r0 + b->metallic * base, diff = (1.0f - b->metallic) * base;
    return diff > 0.0f ? max_f(spec / (spec + diff), 0.25f) : 1.0f;
}

inline float3 principled_eval(const Bsdf *b, float3 wi, float3 wo, float *pdf) {
    float3 h = unit3(wi + wo);
    float cih = dot3(wi, h);
    float d = ggx_d(h, b->alpha);
    float g = ggx_g1(wi, h, b->alpha) * ggx_g1(wo, h, b->alpha);
    float ct;
    float fd = fresnel_dielectric(cih, b->ior, &ct);
    float w = pow5(clamp_f(1.0f - cih, 0.0f, 1.0f));
    float3 f = (1.0f - b->metallic) * fd + b->metallic * (b->reflectance + (1.0f - b->reflectance) * w);
    float3 value = f * (d * g / (4.0f * wi.z));
    float fi = pow5(1.0f - wi.z), fo = pow5(1.0f - wo.z);
    float rr = 2.0f * b->roughness * cih * cih;
    float diffuse = (1.0f - 0.5f * fi) * (1.0f - 0.5f * fo) + rr * (fo + fi + fo * fi * (rr - 1.0f));
    value += b->reflectance * ((1.0f - b->metallic) * INV_PI_F * diffuse * wo.z);
    float p_spec = principled_specular_probability(b);
    *pdf = p_spec * ggx_g1(wi, h, b->alpha) * d / (4.0f * wi.z) + (1.0f - p_spec) * wo.z * INV_PI_F;
    return value;
}

inline float3 bsdf_eval(const Bsdf *b, float3 wi, float3 wo, float *pdf) {
    *pdf = 0.0f;
    if (b->kind == MATERIAL_DIELECTRIC) {
        if (b->alpha < ALPHA_MIN) return (float3)(0.0f);
        return rough_dielectric_eval(b, wi, wo, pdf);
    }
    if (wi.z <= 0.0f || wo.z <= 0.0f) return (float3)(0.0f);
    if (b->kind == MATERIAL_DIFFUSE) {
        *pdf = wo.z * INV_PI_F;
        return b->reflectance * (wo.z * INV_PI_F);
    }
    if (b->kind == MATERIAL_PRINCIPLED) return principled_eval(b, wi, wo, pdf);
    if (b->kind == MATERIAL_CONDUCTOR) {
        if (b->alpha < ALPHA_MIN) return (float3)(0.0f);
        float3 m = unit3(wi + wo);
        float d = ggx_d(m, b->alpha);
        float g1i = ggx_g1(wi, m, b->alpha), g1o = ggx_g1(wo, m, b->alpha);
        *pdf = g1i * d / (4.0f * wi.z);
        return b->specular * fresnel_conductor(dot3(wi, m), b->eta, b->k) * (d * g1i * g1o / (4.0f * wi.z));
    }
    /* plastic */
    float p_spec = plastic_specular_probability(b, wi.z);
    float3 value = plastic_diffuse(b, wi.z, wo.z);
    float pdf_diffuse = wo.z * INV_PI_F;
    *pdf = (1.0f - p_spec) * pdf_diffuse;
    if (b->alpha >= ALPHA_MIN) {
        float3 m = unit3(wi + wo);
        float d = ggx_d(m, b->alpha);
        float g1i = ggx_g1(wi, m, b->alpha), g1o = ggx_g1(wo, m, b->alpha);
        float ct;
        float f = fresnel_dielectric(dot3(wi, m), b->ior, &ct);
        value += b->specular * (f * d * g1i * g1o / (4.0f * wi.z));
        *pdf += p_spec * g1i * d / (4.0f * wi.z);
    }
    return value;
}

/* Sample wo; returns the weight f |cos wo| / pdf, or 0 when the sample is lost.
 * *delta tells whether wo came from a delta component (its pdf is then a probability). */
inline float3 bsdf_sample(const Bsdf *b, float3 wi, float2 u, float u_lobe, float3 *wo, float *pdf, bool *delta) {
    *delta = false;
    *pdf = 0.0f;
    if (b->kind == MATERIAL_DIELECTRIC) {
        float side = wi.z > 0.0f ? 1.0f : -1.0f;
        float eta_it = wi.z > 0.0f ? b->ior : 1.0f / b->ior;
        float3 wi_u = wi * side;
        if (b->alpha < ALPHA_MIN) {
            float ct;
            float f = fresnel_dielectric(wi_u.z, eta_it, &ct);
            *delta = true;
            if (u_lobe < f) {
                *wo = (float3)(-wi.x, -wi.y, wi.z);
                *pdf = f;
                return b->specular;
            }
            float inv = 1.0f / eta_it;
            *wo = (float3)(-wi.x * inv, -wi.y * inv, -ct * side);
            *pdf = 1.0f - f;
            return b->transmittance * (inv * inv);
        }
        if (wi_u.z <= 0.0f) return (float3)(0.0f);
        float3 m = ggx_sample_visible(wi_u, b->alpha, u);
        float cos_im = dot3(wi_u, m);
        float ct;
        float f = fresnel_dielectric(cos_im, eta_it, &ct);
        float3 wo_u;
        float3 weight;
        if (u_lobe < f) {
            wo_u = reflect_about(wi_u, m);
            if (wo_u.z <= 0.0f) return (float3)(0.0f);
            weight = b->specular * ggx_g1(wo_u, m, b->alpha);
        } else {
            float inv = 1.0f / eta_it;
            wo_u = m * (cos_im * inv - ct) - wi_u * inv;
            if (wo_u.z >= 0.0f) return (float3)(0.0f);
            weight = b->transmittance * (ggx_g1(wo_u, m, b->alpha) * inv * inv);
        }
        *wo = wo_u * side;
        rough_dielectric_eval(b, wi, *wo, pdf);
        return *pdf > 0.0f ? weight : (float3)(0.0f);
    }
    if (wi.z <= 0.0f) return (float3)(0.0f);
    if (b->kind == MATERIAL_DIFFUSE) {
        *wo = sample_cosine_local(u.x, u.y);
        *pdf = wo->z * INV_PI_F;
        return wo->z > 0.0f ? b->reflectance : (float3)(0.0f);
    }
    if (b->kind == MATERIAL_PRINCIPLED) {  /* the GGX lobe or the diffuse base */
        if (u_lobe < principled_specular_probability(b)) {
            *wo = reflect_about(wi, ggx_sample_visible(wi, b->alpha, u));
        } else {
            *wo = sample_cosine_local(u.x, u.y);
        }
        if (wo->z <= 0.0f) return (float3)(0.0f);
        float3 value = principled_eval(b, wi, *wo, pdf);
        return *pdf > 0.0f ? value / *pdf : (float3)(0.0f);
    }
    if (b->kind == MATERIAL_CONDUCTOR) {
        if (b->alpha < ALPHA_MIN) {
            *wo = (float3)(-wi.x, -wi.y, wi.z);
            *pdf = 1.0f;
            *delta = true;
            return b->specular * fresnel_conductor(wi.z, b->eta, b->k);
        }
        float3 m = ggx_sample_visible(wi, b->alpha, u);
        *wo = reflect_about(wi, m);
        if (wo->z <= 0.0f) return (float3)(0.0f);
        *pdf = ggx_pdf_visible(wi, m, b->alpha) / (4.0f * dot3(*wo, m));
        return b->specular * fresnel_conductor(dot3(wi, m), b->eta, b->k) * ggx_g1(*wo, m, b->alpha);
    }
    /* plastic: the specular layer or the diffuse base */
    float p_spec = plastic_specular_probability(b, wi.z);
    if (b->alpha < ALPHA_MIN) {
        if (u_lobe < p_spec) {
            float ct;
            float f = fresnel_dielectric(wi.z, b->ior, &ct);
            *wo = (float3)(-wi.x, -wi.y, wi.z);
            *pdf = p_spec;
            *delta = true;
            return b->specular * (f / p_spec);
        }
        *wo = sample_cosine_local(u.x, u.y);
        if (wo->z <= 0.0f) return (float3)(0.0f);
        *pdf = (1.0f - p_spec) * wo->z * INV_PI_F;
        return plastic_diffuse(b, wi.z, wo->z) / *pdf;
    }
    if (u_lobe < p_spec) {
        float3 m = ggx_sample_visible(wi, b->alpha, u);
        *wo = reflect_about(wi, m);
    } else {
        *wo = sample_cosine_local(u.x, u.y);
    }
    if (wo->z <= 0.0f) return (float3)(0.0f);
    float3 value = bsdf_eval(b, wi, *wo, pdf);
    return *pdf > 0.0f ? value / *pdf : (float3)(0.0f);
}

#endif
