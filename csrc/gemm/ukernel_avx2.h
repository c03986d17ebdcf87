/* AVX2+FMA vector operations of the SIMD micro-kernel (ukernel_simd.inc),
 * for T with FC_T_IS_DOUBLE set to match.  16 ymm registers; masked loads and
 * stores take a vector of lane masks. */
#include <immintrin.h>

#if FC_T_IS_DOUBLE
#define VEC __m256d
#define OP(name) _mm256_##name##_pd
#define BCAST(p) _mm256_broadcast_sd(p)
#define LANES() _mm256_setr_epi64x(0, 1, 2, 3)
#define SPLAT(x) _mm256_set1_epi64x(x)
#define GT(a, b) _mm256_cmpgt_epi64(a, b)
#else
#define VEC __m256
#define OP(name) _mm256_##name##_ps
#define BCAST(p) _mm256_broadcast_ss(p)
#define LANES() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define SPLAT(x) _mm256_set1_epi32(x)
#define GT(a, b) _mm256_cmpgt_epi32(a, b)
#endif
#define VL (32 / (int)sizeof(T))
/* All-ones lanes where the lane index is below `left` (any int64_t). */
#define MASK __m256i
#define MASK_FIRST(left) GT(SPLAT((left) < 0 ? 0 : (left) > VL ? VL : (left)), LANES())
#define MLOADU(mk, p) OP(maskload)(p, mk)
#define MSTOREU(p, mk, v) OP(maskstore)(p, mk, v)
/* x < 0 ? x * s : x per lane (NaN passes through). */
#define NEG_SCALE(x, s) OP(blendv)(x, OP(mul)(x, s), OP(cmp)(x, OP(setzero)(), _CMP_LT_OQ))
