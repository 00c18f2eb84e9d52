/* A material at a surface point as its BSDF reads it (the BSDFs themselves, for paths in
 * lanes: bsdf_lanes.h), made lane by lane (pathtrace.cl's bsdf_at). */
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

#endif
