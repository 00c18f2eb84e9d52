/* Texture lookups: images (bilinear or nearest, with wrapping) and checkerboards.
 * uv (0, 0) is the bottom-left of an image, (1, 1) its top-right. A surface point carries
 * two uv sets as one float4 (xy: the first, zw: the second); each texture reads its own. */
#ifndef FARM_TEXTURE_H
#define FARM_TEXTURE_H

#include "types.h"
#include "builtins.h"

inline int wrap_index(int i, int n, int mode) {
    if (mode == WRAP_CLAMP) return clamp_i(i, 0, n - 1);
    if (mode == WRAP_MIRROR) {
        int period = 2 * n;
        int m = i % period;
        if (m < 0) m += period;
        return m < n ? m : period - 1 - m;
    }
    int m = i % n;
    return m < 0 ? m + n : m;
}

/* One texel as RGBA: grey images repeat their channel, missing alpha is 1. */
inline float4 texel(const SceneRef *s, __global const Texture *t, int x, int y) {
    int channels = t->mode.x;
    __global const float *p = s->texels + t->info.y + (y * t->info.z + x) * channels;
    if (channels == 1) return (float4)(p[0], p[0], p[0], 1.0f);
    if (channels == 2) return (float4)(p[0], p[0], p[0], p[1]);
    if (channels == 3) return (float4)(p[0], p[1], p[2], 1.0f);
    return (float4)(p[0], p[1], p[2], p[3]);
}

/* Bilinear interpolation at texel coordinates (x, y), texel centres at integers. */
__attribute__((always_inline)) inline float4 bilinear(const SceneRef *s, __global const Texture *t, float x, float y, int wrap_x, int wrap_y) {
    int width = t->info.z, height = t->info.w;
    float fx = floor_f(x), fy = floor_f(y);
    float ax = x - fx, ay = y - fy;
    int x0 = wrap_index((int)fx, width, wrap_x), x1 = wrap_index((int)fx + 1, width, wrap_x);
    int y0 = wrap_index((int)fy, height, wrap_y), y1 = wrap_index((int)fy + 1, height, wrap_y);
    float4 top = texel(s, t, x0, y0) * (1.0f - ax) + texel(s, t, x1, y0) * ax;
    float4 bottom = texel(s, t, x0, y1) * (1.0f - ax) + texel(s, t, x1, y1) * ax;
    return top * (1.0f - ay) + bottom * ay;
}

inline float4 texture_eval(const SceneRef *s, int index, float4 uvs) {
    __global const Texture *t = &s->textures[index];
    float2 uv = t->mode.w ? uvs.zw : uvs.xy;
    float2 st = (float2)(t->transform.x * uv.x + t->transform.y * uv.y, t->transform.z * uv.x + t->transform.w * uv.y)
              + t->offset.xy;
    if (t->info.x == TEXTURE_CHECKERBOARD) {
        int parity = ((int)floor_f(st.x) + (int)floor_f(st.y)) & 1;
        return parity ? t->color1 : t->color0;
    }
    int width = t->info.z, height = t->info.w, wrap = t->mode.y;
    float x = st.x * (float)width - 0.5f;
    float y = (1.0f - st.y) * (float)height - 0.5f;  /* row 0 is the top of the image */
    if (t->mode.z) {
        int ix = wrap_index((int)floor_f(x + 0.5f), width, wrap), iy = wrap_index((int)floor_f(y + 0.5f), height, wrap);
        return texel(s, t, ix, iy);
    }
    return bilinear(s, t, x, y, wrap, wrap);
}

/* A parameter is its value, or its texture times the value (the reference's factor, 1 by
 * default: glTF's baseColorFactor times baseColorTexture). */
/* A parameter's value: the constant, or the texel times the factor, plus the bias where
 * there is one (none: not even + 0, which would turn a -0 into +0). */
inline float3 param_rgb(const SceneRef *s, Param p, float4 uv) {
    if (p.texture.x < 0) return p.value.xyz;
    float3 v = texture_eval(s, p.texture.x, uv).xyz * p.value.xyz;
    return p.texture.z ? v + p.bias.xyz : v;
}

inline float param_scalar(const SceneRef *s, Param p, float4 uv) {
    if (p.texture.x < 0) return p.value.x;
    float4 v = texture_eval(s, p.texture.x, uv);
    int c = p.texture.y;
    float x = (c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w) * p.value.x;
    return p.texture.z ? x + p.bias.x : x;
}

/* Both uv sets at barycentrics (b1, b2) of a triangle; without a second set, the first twice. */
inline float4 triangle_uvs(const SceneRef *s, __global const TriangleData *td, float b1, float b2) {
    float b0 = 1.0f - b1 - b2;
    float2 uv = td->uv01.xy * b0 + td->uv01.zw * b1 + td->uv2.xy * b2;
    /* float4s built lane by lane: Oclgrind's uninitialised-value check crashes on a vector
     * built from two float2s (the tests run it over every bundled scene). */
    if (td->info.w < 0) return (float4)(uv.x, uv.y, uv.x, uv.y);
    __global const SurfaceExtras *e = &s->extras[td->info.w];
    float2 uv1 = e->uv1_01.xy * b0 + e->uv1_01.zw * b1 + e->uv1_2.xy * b2;
    return (float4)(uv.x, uv.y, uv1.x, uv1.y);
}

/* Whether a ray stops at barycentrics (b1, b2) of triangle `prim`: not where its
 * material's alpha is below the cutoff (glTF's MASK), for every ray alike. */
inline bool covered(const SceneRef *s, int prim, float b1, float b2) {
    __global const TriangleData *td = &s->tri_data[prim];
    __global const Material *m = &s->materials[td->info.x];
    if (m->ior.z <= 0.0f) return true;
    return param_scalar(s, m->alpha, triangle_uvs(s, td, b1, b2)) >= m->ior.z;
}

#endif
