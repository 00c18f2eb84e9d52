/* Samples of one (pixel, sample index), for the paths in lanes (kernels/lanes.h): every
 * lane's sample at once, the lanes asking for the same kind of dimension together.
 *
 * Independent: every dimension hashed from (seed, pixel, sample, dimension).
 * Sobol: the first two Sobol dimensions, Owen-scrambled and shuffled by hashes of
 * (pixel, dimension pair) (Burley 2020, "Practical Hash-based Owen Scrambling"), so each
 * pair of dimensions is stratified over the pixel's samples. Both are pure functions of
 * (seed, pixel, sample index): buckets stay independent and retries give the same bits,
 * and each lane's numbers are those of the one-lane code (its integer operations the same
 * in every lane). */
#ifndef FARM_SAMPLER_H
#define FARM_SAMPLER_H

#include "rng.h"
#include "lanes.h"

DEFINE_HASH32(hash32_v, VU)

inline VU reverse_bits_v(VU x) {
    x = ((x >> 1) & 0x55555555U) | ((x & 0x55555555U) << 1);
    x = ((x >> 2) & 0x33333333U) | ((x & 0x33333333U) << 2);
    x = ((x >> 4) & 0x0F0F0F0FU) | ((x & 0x0F0F0F0FU) << 4);
    x = ((x >> 8) & 0x00FF00FFU) | ((x & 0x00FF00FFU) << 8);
    return (x >> 16) | (x << 16);
}

/* Laine and Karras's permutation; between two reverse_bits_v, an Owen scramble of x read as
 * a binary fraction, high bit first (nested uniform scrambling). */
inline VU laine_karras_permutation_v(VU x, VU seed) {
    x += seed;
    x ^= x * 0x6c50b47cU;
    x ^= x * 0xb82f1e52U;
    x ^= x * 0xc7afe638U;
    x ^= x * 0x8d22f6e6U;
    return x;
}

/* The second Sobol dimension with its bits reversed: direction numbers v_0 = 1,
 * v_k = v_{k-1} ^ (v_{k-1} << 1) (the usual ones, mirrored), so bit j of v_k is
 * binomial(k, j) mod 2, which by Lucas' theorem is 1 exactly when j's bits are a subset of
 * k's. Bit j of the result is then the parity of the index bits k that contain j: five
 * shift-and-xor steps, one per bit of j, instead of a loop over the 32 bits of a scrambled
 * index (a fifth of a sample's time on PoCL). */
inline VU sobol_dimension1_reversed_v(VU x) {
    x ^= (x >> 1) & 0x55555555U;
    x ^= (x >> 2) & 0x33333333U;
    x ^= (x >> 4) & 0x0F0F0F0FU;
    x ^= (x >> 8) & 0x00FF00FFU;
    x ^= (x >> 16) & 0x0000FFFFU;
    return x;
}

typedef struct {
    VU pixel_key, index, key;
    int kind;
} Samplers;

inline Samplers make_samplers(int kind, uint seed, VU pixel, VU index) {
    Samplers s;
    s.pixel_key = hash32_v(pixel + hash32(seed));
    s.index = index;
    s.key = hash32_v(index + s.pixel_key);
    s.kind = kind;
    return s;
}

inline VF to_unit_v(VU x) { return TO_VF(x >> 8) * (1.0f / 16777216.0f); }

inline void sample2_v(const Samplers *s, uint pair, VF *x, VF *y) {
    if (s->kind == SAMPLER_INDEPENDENT) {
        *x = to_unit_v(hash32_v(s->key ^ hash32(2U * pair + 0x9e3779b9U)));
        *y = to_unit_v(hash32_v(s->key ^ hash32(2U * pair + 1U + 0x9e3779b9U)));
        return;
    }
    VU seed = hash32_v(s->pixel_key ^ hash32(pair + 0x9e3779b9U));
    VU index = reverse_bits_v(laine_karras_permutation_v(reverse_bits_v(s->index), seed));
    *x = to_unit_v(reverse_bits_v(laine_karras_permutation_v(index, hash32_v(seed ^ 0xa511e9b3U))));
    *y = to_unit_v(reverse_bits_v(laine_karras_permutation_v(sobol_dimension1_reversed_v(index),
                                                             hash32_v(seed ^ 0x63d83595U))));
}

inline VF sample1_v(const Samplers *s, uint dimension) {
    return to_unit_v(hash32_v(s->key ^ hash32(0x80000000U + dimension + 0x9e3779b9U)));
}

/* Dimension pairs: the pixel, the lens, then PAIRS_PER_BOUNCE per path vertex; and
 * CHOICES_PER_BOUNCE single numbers per vertex. */
#define PAIR_PIXEL 0U
#define PAIR_LENS 1U
#define PAIRS_PER_BOUNCE 2U
#define PAIR_LIGHT_POINT 0U   /* point on the chosen light */
#define PAIR_BSDF 1U          /* direction */
#define CHOICES_PER_BOUNCE 3U
#define CHOICE_LIGHT 0U       /* which light */
#define CHOICE_LOBE 1U        /* which BSDF lobe */
#define CHOICE_ROULETTE 2U    /* Russian roulette */

/* The sample's time in an open shutter (FARM_MOTION): a single number past every bounce's. */
#define CHOICE_TIME 0x7ffff000U

inline uint bounce_pair(int depth, uint which) { return 2U + (uint)(depth - 1) * PAIRS_PER_BOUNCE + which; }
inline uint bounce_choice(int depth, uint which) { return (uint)(depth - 1) * CHOICES_PER_BOUNCE + which; }

#endif
