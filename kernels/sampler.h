/* Samples of one (pixel, sample index), two dimensions at a time.
 *
 * Independent: every dimension hashed from (seed, pixel, sample, dimension).
 * Sobol: the first two Sobol dimensions, Owen-scrambled and shuffled by hashes of
 * (pixel, dimension pair) (Burley 2020, "Practical Hash-based Owen Scrambling"), so each
 * pair of dimensions is stratified over the pixel's samples. Both are pure functions of
 * (seed, pixel, sample index): buckets stay independent and retries give the same bits. */
#ifndef FARM_SAMPLER_H
#define FARM_SAMPLER_H

#include "rng.h"

typedef struct {
    uint pixel_key;  /* hash of (seed, pixel) */
    uint index;      /* sample index within the pixel */
    uint key;        /* hash of (seed, pixel, index), for the independent sampler */
    int kind;        /* SAMPLER_* */
#ifdef FARM_SAMPLE_BATCHES
    uint8 xs, ys;      /* Sobol points (before to_unit) of pairs 8 * pair_batch + lane */
    uint8 choices;     /* hashed bits of single dimensions 8 * choice_batch + lane */
    int pair_batch, choice_batch;  /* -1: none computed yet */
#endif
} Sampler;

/* The integer steps below are macros over the type (uint, and uint8 for the batches of
 * FARM_SAMPLE_BATCHES) for the reason DEFINE_HASH32 is: one text, the same bits. */
#define DEFINE_REVERSE_BITS(name, T)                                       \
    inline T name(T x) {                                                   \
        x = ((x >> 1) & 0x55555555U) | ((x & 0x55555555U) << 1);           \
        x = ((x >> 2) & 0x33333333U) | ((x & 0x33333333U) << 2);           \
        x = ((x >> 4) & 0x0F0F0F0FU) | ((x & 0x0F0F0F0FU) << 4);           \
        x = ((x >> 8) & 0x00FF00FFU) | ((x & 0x00FF00FFU) << 8);           \
        return (x >> 16) | (x << 16);                                      \
    }
DEFINE_REVERSE_BITS(reverse_bits, uint)

#define DEFINE_LAINE_KARRAS_PERMUTATION(name, T) \
    inline T name(T x, T seed) {                 \
        x += seed;                               \
        x ^= x * 0x6c50b47cU;                    \
        x ^= x * 0xb82f1e52U;                    \
        x ^= x * 0xc7afe638U;                    \
        x ^= x * 0x8d22f6e6U;                    \
        return x;                                \
    }
DEFINE_LAINE_KARRAS_PERMUTATION(laine_karras_permutation, uint)

/* An Owen scramble of x read as a binary fraction (high bit first). */
inline uint nested_uniform_scramble(uint x, uint seed) {
    return reverse_bits(laine_karras_permutation(reverse_bits(x), seed));
}

/* The second Sobol dimension with its bits reversed: direction numbers v_0 = 1,
 * v_k = v_{k-1} ^ (v_{k-1} << 1) (the usual ones, mirrored), so bit j of v_k is
 * binomial(k, j) mod 2, which by Lucas' theorem is 1 exactly when j's bits are a subset of
 * k's. Bit j of the result is then the parity of the index bits k that contain j: five
 * shift-and-xor steps, one per bit of j, instead of a loop over the 32 bits of a scrambled
 * index (a fifth of a sample's time on PoCL). */
#define DEFINE_SOBOL_DIMENSION1_REVERSED(name, T) \
    inline T name(T x) {                          \
        x ^= (x >> 1) & 0x55555555U;              \
        x ^= (x >> 2) & 0x33333333U;              \
        x ^= (x >> 4) & 0x0F0F0F0FU;              \
        x ^= (x >> 8) & 0x00FF00FFU;              \
        x ^= (x >> 16) & 0x0000FFFFU;             \
        return x;                                 \
    }
DEFINE_SOBOL_DIMENSION1_REVERSED(sobol_dimension1_reversed, uint)

inline float to_unit(uint x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

inline Sampler make_sampler(int kind, uint seed, uint pixel, uint index) {
    Sampler s;
    s.pixel_key = hash32(pixel + hash32(seed));
    s.index = index;
    s.key = hash32(index + s.pixel_key);
    s.kind = kind;
#ifdef FARM_SAMPLE_BATCHES
    s.pair_batch = s.choice_batch = -1;
#endif
    return s;
}

#ifdef FARM_SAMPLE_BATCHES
/* Batches (-D FARM_SAMPLE_BATCHES, on CPUs): the numbers of eight dimensions at once, in
 * uint8 lanes, when the first of them is asked for. The integer hashing of a Sobol pair
 * was a sixth of a sample's time; eight lanes cost about what one did, and a path of a few
 * bounces asks for one or two batches. Each lane runs exactly the scalar code's operations,
 * so the numbers are the same bits as without batches (the GPU build). */
DEFINE_HASH32(hash32_8, uint8)
DEFINE_REVERSE_BITS(reverse_bits8, uint8)
DEFINE_LAINE_KARRAS_PERMUTATION(laine_karras_permutation8, uint8)
DEFINE_SOBOL_DIMENSION1_REVERSED(sobol_dimension1_reversed8, uint8)

#define LANES8 ((uint8)(0U, 1U, 2U, 3U, 4U, 5U, 6U, 7U))

/* sample2's Sobol points for pairs 8 * batch .. 8 * batch + 7, as its scalar code. */
inline void sobol_batch(Sampler *s, int batch) {
    uint8 pair = (uint8)((uint)batch * 8U) + LANES8;
    uint8 seed = hash32_8((uint8)(s->pixel_key) ^ hash32_8(pair + 0x9e3779b9U));
    uint8 index = reverse_bits8(laine_karras_permutation8((uint8)(reverse_bits(s->index)), seed));
    s->xs = reverse_bits8(laine_karras_permutation8(index, hash32_8(seed ^ 0xa511e9b3U)));
    s->ys = reverse_bits8(laine_karras_permutation8(sobol_dimension1_reversed8(index), hash32_8(seed ^ 0x63d83595U)));
    s->pair_batch = batch;
}
#endif

/* Dimensions 2 * pair and 2 * pair + 1 of this sample, in [0, 1)^2. Inlined by force at its
 * eight calls: 3-5% faster on PoCL than the call LLVM chose. */
__attribute__((always_inline)) inline float2 sample2(Sampler *s, uint pair) {
    if (s->kind == SAMPLER_INDEPENDENT)
        return (float2)(rand01(s->key, 2U * pair), rand01(s->key, 2U * pair + 1U));
#ifdef FARM_SAMPLE_BATCHES
    if ((int)(pair >> 3) != s->pair_batch) sobol_batch(s, (int)(pair >> 3));
    return (float2)(to_unit(((const uint *)&s->xs)[pair & 7U]), to_unit(((const uint *)&s->ys)[pair & 7U]));
#endif
    uint seed = hash32(s->pixel_key ^ hash32(pair + 0x9e3779b9U));
    uint index = nested_uniform_scramble(s->index, seed);
    /* Owen-scrambled Sobol points, nested_uniform_scramble(sobol(index)) for each
     * dimension, with the reversals that cancel left out: the first dimension is
     * reverse_bits(index), the second sobol_dimension1_reversed reversed. */
    uint x = reverse_bits(laine_karras_permutation(index, hash32(seed ^ 0xa511e9b3U)));
    uint y = reverse_bits(laine_karras_permutation(sobol_dimension1_reversed(index), hash32(seed ^ 0x63d83595U)));
    return (float2)(to_unit(x), to_unit(y));
}

/* One more uniform number, independent of everything else, for choices that gain little
 * from stratification (which light, which lobe, Russian roulette): cheaper than a pair. */
inline float sample1(Sampler *s, uint dimension) {
#ifdef FARM_SAMPLE_BATCHES
    int batch = (int)(dimension >> 3);
    if (batch != s->choice_batch) {  /* rand01's hash, eight dimensions at once */
        uint8 dimensions = (uint8)(0x80000000U + (uint)batch * 8U) + LANES8;
        s->choices = hash32_8((uint8)(s->key) ^ hash32_8(dimensions + 0x9e3779b9U));
        s->choice_batch = batch;
    }
    return to_unit(((const uint *)&s->choices)[dimension & 7U]);  /* as rand01 */
#else
    return rand01(s->key, 0x80000000U + dimension);
#endif
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
