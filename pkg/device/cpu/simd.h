// The 8-lane vectors of the C kernels (winograd.c, batchnorm_blocked.c).

#ifndef MOCHI_SIMD_H
#define MOCHI_SIMD_H

#include <string.h>

// The hot loops are compiled twice, for AVX2 and for the base x86-64 ISA;
// the loader picks the first the CPU runs (GCC's ifunc dispatch).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MOCHI_HOT __attribute__((target_clones("avx2", "default")))
#else
#define MOCHI_HOT
#endif

// v8 is 8 lanes (8 tiles or filters of a channel, 8 channels of a pixel).
// The helpers taking and returning v8 are always inlined into the cloned
// loops, so no v8 crosses a call and GCC's ABI notes (silenced by
// -Wno-psabi in the cgo flags) do not apply.
typedef float v8 __attribute__((vector_size(32)));
#define static_inline static inline __attribute__((always_inline))

static_inline v8 ld8(const float *p) {
	v8 v;
	memcpy(&v, p, sizeof v);
	return v;
}

static_inline void st8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

#endif
