/* Sampling routines built from +, *, / and sqrt only: with contraction off and correctly
 * rounded sqrt, they give the same bits on any OpenCL device, unlike library sin/cos. */
#ifndef FARM_SAMPLING_H
#define FARM_SAMPLING_H

#include "builtins.h"

/* Vector helpers spelled out in +, * and sqrt: the built-ins may fuse or approximate
 * differently from one OpenCL implementation to the next. */
inline float dot3(float3 a, float3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline float3 cross3(float3 a, float3 b) {
    return (float3)(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}
inline float3 unit3(float3 v) { return v / sqrt_f(dot3(v, v)); }

/* Minimum and maximum as a compare and a select, which every compiler inlines into one
 * instruction (PoCL called its library fmin/fmax out of line: 23% of the samples of a
 * profile). A NaN in `a` gives `b`, as fmin/fmax do; callers put the bound in `b`. */
inline float min_f(float a, float b) { return a < b ? a : b; }
inline float max_f(float a, float b) { return a > b ? a : b; }
inline float clamp_f(float x, float lo, float hi) { return min_f(max_f(x, lo), hi); }
inline float3 clamp_f3(float3 x, float lo, float hi) {
    return (float3)(clamp_f(x.x, lo, hi), clamp_f(x.y, lo, hi), clamp_f(x.z, lo, hi));
}

#define PI_F 3.14159265358979323846f
#define INV_PI_F 0.31830988618379067154f

/* sin and cos of r in [0, pi/2] (r2 = r * r), Taylor series (error < 1e-7); macros, so that
 * one path's unit_circle and the lanes' (lanes.h) share one text and so the same bits. */
#define QUARTER_SIN(r, r2) ((r) * (1.0f + (r2) * (-1.0f / 6.0f + (r2) * (1.0f / 120.0f + (r2) * (-1.0f / 5040.0f \
                           + (r2) * (1.0f / 362880.0f + (r2) * (-1.0f / 39916800.0f)))))))
#define QUARTER_COS(r2) (1.0f + (r2) * (-0.5f + (r2) * (1.0f / 24.0f + (r2) * (-1.0f / 720.0f \
                        + (r2) * (1.0f / 40320.0f + (r2) * (-1.0f / 3628800.0f + (r2) * (1.0f / 479001600.0f)))))))

/* (cos, sin) of 2*pi*u for u in [0, 1), the series on a quarter turn. */
inline float2 unit_circle(float u) {
    float quarter = floor_f(u * 4.0f);
    float r = (u * 4.0f - quarter) * (0.5f * PI_F);
    float r2 = r * r;
    float s = QUARTER_SIN(r, r2), c = QUARTER_COS(r2);
    int q = (int)quarter;
    if (q == 0) return (float2)(c, s);
    if (q == 1) return (float2)(-s, c);
    if (q == 2) return (float2)(-c, -s);
    return (float2)(s, -c);
}

/* Arc tangent of x in (-pi/2, pi/2): Cephes' atanf (Moshier), range reduced to
 * |x| <= tan(pi/8) and a degree-9 odd polynomial; relative error about 2e-7. */
inline float atan_f(float x) {
    float a = fabs_f(x), base = 0.0f;
    if (a > 2.414213562373095f) {  /* tan(3 pi / 8) */
        base = 0.5f * PI_F;
        a = -1.0f / a;
    } else if (a > 0.4142135623730950f) {  /* tan(pi / 8) */
        base = 0.25f * PI_F;
        a = (a - 1.0f) / (a + 1.0f);
    }
    float z = a * a;
    float r = base + ((((8.05374449538e-2f * z - 1.38776856032e-1f) * z + 1.99777106478e-1f) * z
                       - 3.33329491539e-1f) * z * a + a);
    return x < 0.0f ? -r : r;
}

/* The angle of (x, y) in [-pi, pi], as atan2(y, x). */
inline float atan2_f(float y, float x) {
    if (x == 0.0f) return y > 0.0f ? 0.5f * PI_F : y < 0.0f ? -0.5f * PI_F : 0.0f;
    float a = atan_f(y / x);
    if (x > 0.0f) return a;
    return y >= 0.0f ? a + PI_F : a - PI_F;
}

/* Arc sine for |x| <= 0.5: Cephes' asinf polynomial; relative error about 3e-7. */
inline float asin_small(float x) {
    float z = x * x;
    return ((((4.2163199048e-2f * z + 2.4181311049e-2f) * z + 4.5470025998e-2f) * z + 7.4953002686e-2f) * z
            + 1.6666752422e-1f) * z * x + x;
}

/* Arc cosine of x in [-1, 1], in [0, pi]: Cephes' acosf. Written out here rather than
 * taken from the device's library so that environment lookups, sphere uvs and spot
 * falloff give the same bits on every device, and inline (PoCL called its atan2 out of
 * line: a fifth of the kernel's time on the showcase scene). */
inline float acos_f(float x) {
    if (x < -0.5f) return PI_F - 2.0f * asin_small(sqrt_f(0.5f * (1.0f + x)));
    if (x > 0.5f) return 2.0f * asin_small(sqrt_f(0.5f * (1.0f - x)));
    return 0.5f * PI_F - asin_small(x);
}

/* An orthonormal basis around unit n (Duff et al. 2017, branchless). */
inline void basis(float3 n, float3 *t, float3 *b) {
    float sign = n.z >= 0.0f ? 1.0f : -1.0f;
    float a = -1.0f / (sign + n.z);
    float c = n.x * n.y * a;
    *t = (float3)(1.0f + sign * n.x * n.x * a, sign * c, -sign * n.x);
    *b = (float3)(c, sign + n.y * n.y * a, -n.y);
}

/* Uniform point on the unit sphere. */
inline float3 sample_sphere(float u1, float u2) {
    float z = 1.0f - 2.0f * u1;
    float r = sqrt_f(max_f(1.0f - z * z, 0.0f));
    float2 cs = unit_circle(u2);
    return (float3)(r * cs.x, r * cs.y, z);
}

/* Uniform barycentrics (b1, b2) on a triangle: the point is v0 + b1 * e1 + b2 * e2. */
inline float2 sample_triangle(float u1, float u2) {
    float s = sqrt_f(u1);
    return (float2)(s * (1.0f - u2), s * u2);
}

#endif
