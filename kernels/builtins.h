/* The few library functions the path tracer calls in its inner loops, as compiler
 * builtins when the host asks for them (-D FARM_CLANG_BUILTINS, on PoCL).
 *
 * PoCL links its library after optimising the kernel, so sqrt, floor, rint, fabs, copysign
 * and clz stay out-of-line calls (the path tracer has 55 calls of sqrt alone) and each call
 * makes the compiler spill every live float register around it. Clang's builtins are the
 * same IEEE operations (sqrt correctly rounded, the others exact), so they change no bit,
 * only become single instructions. Other compilers get the OpenCL functions. */
#ifndef FARM_BUILTINS_H
#define FARM_BUILTINS_H

#ifdef FARM_CLANG_BUILTINS
inline float sqrt_f(float x) { return __builtin_sqrtf(x); }
inline float floor_f(float x) { return __builtin_floorf(x); }
inline float rint_f(float x) { return __builtin_rintf(x); }
inline float fabs_f(float x) { return __builtin_fabsf(x); }
inline float copysign_f(float x, float y) { return __builtin_copysignf(x, y); }
inline int clz_i(int x) { return x == 0 ? 32 : __builtin_clz((uint)x); }
#else
inline float sqrt_f(float x) { return sqrt(x); }
inline float floor_f(float x) { return floor(x); }
inline float rint_f(float x) { return rint(x); }
inline float fabs_f(float x) { return fabs(x); }
inline float copysign_f(float x, float y) { return copysign(x, y); }
inline int clz_i(int x) { return clz(x); }
#endif

/* Inlined by force on PoCL (pathtrace.cl, surface_at says why), elsewhere as the compiler
 * sees fit: where Oclgrind's clang inlines these by force it leaves a call of
 * llvm.experimental.noalias.scope.decl, which its interpreter refuses. */
#ifdef FARM_CLANG_BUILTINS
#define FORCED_INLINE __attribute__((always_inline)) inline
#else
#define FORCED_INLINE inline
#endif

/* Integer min, max and clamp as compares (PoCL's are calls too). */
inline int min_i(int a, int b) { return a < b ? a : b; }
inline int max_i(int a, int b) { return a > b ? a : b; }
inline int clamp_i(int x, int lo, int hi) { return min_i(max_i(x, lo), hi); }

#endif
