/* Paths in lanes: one work item follows LANES paths at once (-D LANES=8 or 16 on CPUs, whose
 * compilers do not vectorise across work items; 1, one path a work item, on GPUs), the
 * arithmetic of all of them in one vector instruction, as Mitsuba's LLVM variant and ISPC
 * do. Each lane runs exactly the operations one path would, so every width gives the same
 * bits. What is not arithmetic (a BVH walk, a surface's gathers, a light other than a
 * triangle or the environment) runs lane by lane through the one-path functions.
 *
 * VF, VI, VU, VL: a float, int, uint and long in each lane; VF3 three VFs (x, y, z). A mask (VI) is 0
 * or -1 in each lane, as OpenCL's vector comparisons give; MASK() turns a comparison into
 * one at any width (a scalar comparison gives 1). */
#ifndef FARM_LANES_H
#define FARM_LANES_H

#include "sampling.h"

#ifndef LANES
#define LANES 1
#endif

#if LANES == 1
typedef float VF;
typedef int VI;
typedef uint VU;
#define LF(v, l) (v)
#define LI(v, l) (v)
#define MASK(c) (-(int)(c))
#define TO_VF(v) ((float)(v))
#define TO_VU(v) ((uint)(v))
#define TO_VI(v) ((int)(v))  /* towards zero, as a cast */
#define SQRT_V(v) sqrt_f(v)
#define FLOOR_V(v) floor_f(v)
#define FABS_V(v) fabs_f(v)
#define LANE_INDEX 0
typedef long VL;
#define LL(v, l) (v)
#define TO_VL(v) convert_long(v)
#define RINT_V(v) rint_f(v)
#elif LANES == 8 || LANES == 16
#define LANES_PASTE_(a, b) a##b
#define LANES_PASTE(a, b) LANES_PASTE_(a, b)
typedef LANES_PASTE(float, LANES) VF;
typedef LANES_PASTE(int, LANES) VI;
typedef LANES_PASTE(uint, LANES) VU;
typedef LANES_PASTE(long, LANES) VL;
#define LF(v, l) (((float *)&(v))[l])
#define LI(v, l) (((int *)&(v))[l])
#define LL(v, l) (((long *)&(v))[l])
#define MASK(c) (c)
#define TO_VF(v) LANES_PASTE(convert_float, LANES)(v)
#define TO_VU(v) LANES_PASTE(as_uint, LANES)(v)
#define TO_VI(v) LANES_PASTE(convert_int, LANES)(v)  /* towards zero, as a cast */
#if LANES == 8
#define LANES_TEXT "8"
#define LANE_INDEX ((VI)(0, 1, 2, 3, 4, 5, 6, 7))
#else
#define LANES_TEXT "16"
#define LANE_INDEX ((VI)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#endif
#ifdef FARM_CLANG_BUILTINS
/* As builtins.h's: PoCL's library sqrt, floor, fabs and select of vectors are calls; these
 * are LLVM's instructions (sqrt correctly rounded, the others exact), named for clang. */
VF sqrt_lanes(VF x) __asm("llvm.sqrt.v" LANES_TEXT "f32");
VF floor_lanes(VF x) __asm("llvm.floor.v" LANES_TEXT "f32");
VF fabs_lanes(VF x) __asm("llvm.fabs.v" LANES_TEXT "f32");
VF rint_lanes(VF x) __asm("llvm.rint.v" LANES_TEXT "f32");
#define SQRT_V(v) sqrt_lanes(v)
#define FLOOR_V(v) floor_lanes(v)
#define FABS_V(v) fabs_lanes(v)
#define RINT_V(v) rint_lanes(v)
#define TO_VL(v) __builtin_convertvector(v, VL)  /* towards zero, as a cast */
#else
#define SQRT_V(v) sqrt(v)
#define FLOOR_V(v) floor(v)
#define FABS_V(v) fabs(v)
#define RINT_V(v) rint(v)
#define TO_VL(v) LANES_PASTE(convert_long, LANES)(v)
#endif
#else
#error "LANES is 1, 8 or 16"
#endif

/* A condition the same in every lane, as a mask. */
#define UNIFORM(c) ((VI)(-(int)(c)))

/* OpenCL's select(a, b, m) for masks (b where m is set), as a conditional: PoCL's select is a
 * call, the conditional one instruction. */
#define SEL(a, b, m) ((m) ? (b) : (a))

/* The lanes of a work item render a block of BLOCK_W x BLOCK_H neighbouring pixels: they
 * share a noise target's cell (8 px, farm.defaults.NOISE_CELL) and so their samples, and
 * their rays meet the same parts of the scene. The host sizes launches by them
 * (farm/worker/render.py, BLOCKS). */
#define BLOCK_W (LANES == 1 ? 1 : 4)
#define BLOCK_H (LANES / BLOCK_W)

/* Every lane's own loop: l runs over the lanes of mask m that are set. */
#define FOR_LANES(l, m) for (int l = 0; l < LANES; ++l) if (LI(m, l))  /* m: a variable */

inline bool any_lane(VI m) {
#if LANES == 1
    return m != 0;
#else
#if LANES == 16
    int8 a = m.lo | m.hi;
#else
    int8 a = m;
#endif
    int4 b = a.lo | a.hi;
    int2 c = b.lo | b.hi;
    return (c.x | c.y) != 0;
#endif
}

/* The lowest lane set in m (m has one). */
inline int first_set(VI m) {
    int l = 0;
    while (!LI(m, l)) ++l;
    return l;
}

typedef struct {
    VF x, y, z;
} VF3;

inline VF3 vf3(VF x, VF y, VF z) { VF3 v = {x, y, z}; return v; }
inline VF3 splat3(float3 a) { return vf3((VF)(a.x), (VF)(a.y), (VF)(a.z)); }
inline float3 lane3(VF3 v, int l) { return (float3)(LF(v.x, l), LF(v.y, l), LF(v.z, l)); }
inline void set_lane3(VF3 *v, int l, float3 a) { LF(v->x, l) = a.x; LF(v->y, l) = a.y; LF(v->z, l) = a.z; }

/* float3's operators, lane by lane: the same operations in the same order. */
inline VF3 add3(VF3 a, VF3 b) { return vf3(a.x + b.x, a.y + b.y, a.z + b.z); }
inline VF3 sub3(VF3 a, VF3 b) { return vf3(a.x - b.x, a.y - b.y, a.z - b.z); }
inline VF3 mul3(VF3 a, VF3 b) { return vf3(a.x * b.x, a.y * b.y, a.z * b.z); }
inline VF3 scale3(VF3 a, VF s) { return vf3(a.x * s, a.y * s, a.z * s); }
inline VF3 div3(VF3 a, VF s) { return vf3(a.x / s, a.y / s, a.z / s); }
inline VF3 neg3(VF3 a) { return vf3(-a.x, -a.y, -a.z); }
inline VF dot3v(VF3 a, VF3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline VF3 unit3v(VF3 v) { return div3(v, SQRT_V(dot3v(v, v))); }
inline VF max_v(VF a, VF b) { return SEL(b, a, MASK(a > b)); }  /* max_f: a NaN in a gives b */
inline VF min_v(VF a, VF b) { return SEL(b, a, MASK(a < b)); }  /* min_f */
inline VF max3v(VF3 v) { return max_v(v.x, max_v(v.y, v.z)); }
/* v where m is set, else w */
inline VF3 select3(VF3 w, VF3 v, VI m) { return vf3(SEL(w.x, v.x, m), SEL(w.y, v.y, m), SEL(w.z, v.z, m)); }

/* unit_circle (sampling.h) in lanes: (cos, sin) of 2 pi u. */
inline void unit_circle_v(VF u, VF *c_out, VF *s_out) {
    VF quarter = FLOOR_V(u * 4.0f);
    VF r = (u * 4.0f - quarter) * (0.5f * PI_F);
    VF r2 = r * r;
    VF s = QUARTER_SIN(r, r2), c = QUARTER_COS(r2);
    VI q = TO_VI(quarter);
    VF cos_q = SEL(SEL(SEL(s, -c, MASK(q == 2)), -s, MASK(q == 1)), c, MASK(q == 0));
    VF sin_q = SEL(SEL(SEL(-c, -s, MASK(q == 2)), c, MASK(q == 1)), s, MASK(q == 0));
    *c_out = cos_q;
    *s_out = sin_q;
}

/* basis (sampling.h) in lanes. */
inline void basis_v(VF3 n, VF3 *t, VF3 *b) {
    VF sign = SEL((VF)(-1.0f), (VF)(1.0f), MASK(n.z >= 0.0f));
    VF a = -1.0f / (sign + n.z);
    VF c = n.x * n.y * a;
    *t = vf3(1.0f + sign * n.x * n.x * a, sign * c, -sign * n.x);
    *b = vf3(c, sign + n.y * n.y * a, -n.y);
}

#endif
