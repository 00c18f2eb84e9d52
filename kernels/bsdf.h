/* A material at a surface point as its BSDF reads it (the BSDFs themselves, for paths in
 * lanes: bsdf_lanes.h), and the few one-path pieces the integrator uses lane by lane. */
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

inline bool bsdf_is_delta(const Bsdf *b) {
    return (b->kind == MATERIAL_CONDUCTOR || b->kind == MATERIAL_DIELECTRIC) && b->alpha < ALPHA_MIN;
}

#endif
