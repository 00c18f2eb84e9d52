/* Counter-based random numbers: a value is a pure function of
 * (seed, pixel, sample index, dimension), so a pixel gets the same samples whatever
 * bucket it is in, whichever worker renders it, however often it is retried. */
#ifndef FARM_RNG_H
#define FARM_RNG_H

/* lowbias32 by Chris Wellons: a full-avalanche 32-bit integer hash. Written once as a
 * macro for any unsigned type, so the sampler's eight-lane batches (hash32_8 in sampler.h)
 * run exactly the scalar operations and give the same bits. */
#define DEFINE_HASH32(name, T) \
    inline T name(T x) {       \
        x ^= x >> 16;          \
        x *= 0x7feb352dU;      \
        x ^= x >> 15;          \
        x *= 0x846ca68bU;      \
        x ^= x >> 16;          \
        return x;              \
    }
DEFINE_HASH32(hash32, uint)

/* The key of one (seed, pixel, sample): hashing is nested so no two tuples collide trivially. */
inline uint sample_key(uint seed, uint pixel, uint sample_index) {
    return hash32(sample_index + hash32(pixel + hash32(seed)));
}

/* A uniform float in [0, 1) for one dimension of a sample; 24 bits, exactly representable. */
inline float rand01(uint key, uint dimension) {
    return (float)(hash32(key ^ hash32(dimension + 0x9e3779b9U)) >> 8) * (1.0f / 16777216.0f);
}

#endif
