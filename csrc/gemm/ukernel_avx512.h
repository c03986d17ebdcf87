/* AVX-512F vector operations of the SIMD micro-kernel (ukernel_simd.inc),
 * for T with FC_T_IS_DOUBLE set to match.  32 zmm registers; masked loads
 * and stores take a bit mask. */
#include <immintrin.h>

#if FC_T_IS_DOUBLE
#define VEC __m512d
#define MASK __mmask8
#define OP(name) _mm512_##name##_pd
#else
#define VEC __m512
#define MASK __mmask16
#define OP(name) _mm512_##name##_ps
#endif
#define VL (64 / (int)sizeof(T))
#define BCAST(p) OP(set1)(*(p))
/* Bits set for the lanes below `left` (any int64_t). */
#define MASK_FIRST(left) \
    ((left) >= VL ? (MASK)-1 : (left) <= 0 ? (MASK)0 : (MASK)((1u << (left)) - 1))
#define MLOADU(mk, p) OP(maskz_loadu)(mk, p)
#define MSTOREU(p, mk, v) OP(mask_storeu)(p, mk, v)
/* x < 0 ? x * s : x per lane (NaN passes through). */
#if FC_T_IS_DOUBLE
#define NEG_SCALE(x, s) OP(mask_mul)(x, _mm512_cmp_pd_mask(x, OP(setzero)(), _CMP_LT_OQ), x, s)
#else
#define NEG_SCALE(x, s) OP(mask_mul)(x, _mm512_cmp_ps_mask(x, OP(setzero)(), _CMP_LT_OQ), x, s)
#endif
