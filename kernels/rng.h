/* Counter-based random numbers: a value is a pure function of
 * (seed, pixel, sample index, dimension), so a pixel gets the same samples whatever
 * bucket it is in, whichever worker renders it, however often it is retried. */
#ifndef FARM_RNG_H
#define FARM_RNG_H

/* lowbias32 by Chris Wellons: a full-avalanche 32-bit integer hash. Written once as a
 * macro for any unsigned type, so the lanes' (hash32_v in sampler.h) run exactly the scalar
 * operations and give the same bits. */
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

#endif
