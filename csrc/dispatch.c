/* CPU feature detection and the one kernel table, chosen at first use. */
#include <string.h>
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static int detect_features(void)
{
    unsigned int a, b, c, d;
    int f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx)
        return 0;
    unsigned long long xcr0 = read_xcr0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;             /* SSE and AVX state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    if (!ymm_ok)
        return 0;
    if (fma)
        f |= FC_CPU_FMA;
    if (__get_cpuid_max(0, 0) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if ((b >> 5) & 1)
            f |= FC_CPU_AVX2;
        if (((b >> 16) & 1) && zmm_ok)
            f |= FC_CPU_AVX512F;
    }
    return f;
}
#else
static int detect_features(void) { return 0; }
#endif

/* One row per ISA: the GEMM micro-kernel of each type with its tile, cache
 * blocking and short twin (gemm/ukernels.h), and the GEMV kernels. */
#define GEMM_KERNEL(x, isa)                                                            \
    { fc_##x##gemm_##isa, fc_##x##gemm_##isa##_mr, fc_##x##gemm_##isa##_nr,            \
      fc_##x##gemm_##isa##_mc, fc_##x##gemm_##isa##_kc, fc_##x##gemm_##isa##_nc,       \
      fc_##x##gemm_##isa##_nc_small, fc_##x##gemm_##isa##_short,                       \
      fc_##x##gemm_##isa##_mr_short, fc_##x##dot_##isa, fc_##x##axpy_##isa }
static const fc_kernel_table table_generic = {
    "generic",
    GEMM_KERNEL(s, generic),
    GEMM_KERNEL(d, generic),
    /* ---- conv entries ---- */
    .sconv = &fc_sconv_generic, .dconv = &fc_dconv_generic,
    .swino = &fc_swino_generic, .dwino = &fc_dwino_generic,
    .spool = &fc_spool_generic, .dpool = &fc_dpool_generic,
};
static const fc_kernel_table table_avx2 = {
    "avx2",
    GEMM_KERNEL(s, avx2),
    GEMM_KERNEL(d, avx2),
    /* ---- conv entries ---- */
    .sconv = &fc_sconv_avx2, .dconv = &fc_dconv_avx2,
    .swino = &fc_swino_avx2, .dwino = &fc_dwino_avx2,
    .spool = &fc_spool_avx2, .dpool = &fc_dpool_avx2,
};
static const fc_kernel_table table_avx512 = {
    "avx512",
    GEMM_KERNEL(s, avx512),
    GEMM_KERNEL(d, avx512),
    /* ---- conv entries ---- */
    .sconv = &fc_sconv_avx512, .dconv = &fc_dconv_avx512,
    .swino = &fc_swino_avx512, .dwino = &fc_dwino_avx512,
    .spool = &fc_spool_avx512, .dpool = &fc_dpool_avx512,
};

#undef GEMM_KERNEL

static int features = -1;
static const fc_kernel_table *active;

static void init_once(void)
{
    if (active)
        return;
    features = detect_features();
    int avx2 = (features & (FC_CPU_AVX2 | FC_CPU_FMA)) == (FC_CPU_AVX2 | FC_CPU_FMA);
    if (avx2 && (features & FC_CPU_AVX512F))
        active = &table_avx512;
    else if (avx2)
        active = &table_avx2;
    else
        active = &table_generic;
}

/* The Python layer calls fc_cpu_features() at import, before any thread can
 * race here, so the lazy fill below runs once in practice. */
const fc_kernel_table *fc_kernels(void)
{
    init_once();
    return active;
}

int fc_cpu_features(void)
{
    init_once();
    return features;
}

const char *fc_isa_name(void) { return fc_kernels()->isa; }

int fc_set_isa(const char *name)
{
    init_once();
    int avx2 = (features & (FC_CPU_AVX2 | FC_CPU_FMA)) == (FC_CPU_AVX2 | FC_CPU_FMA);
    if (strcmp(name, "generic") == 0)
        active = &table_generic;
    else if (strcmp(name, "avx2") == 0 && avx2)
        active = &table_avx2;
    else if (strcmp(name, "avx512") == 0 && avx2 && (features & FC_CPU_AVX512F))
        active = &table_avx512;
    else
        return -1;
    return 0;
}

int fc_gemm_get_blocking(int elsize, fc_gemm_blocking *out)
{
    const fc_kernel_table *t = fc_kernels();
#define COPY(kern) (*out = (fc_gemm_blocking){ kern.mr, kern.nr, kern.mr_short, kern.mc, \
                                               kern.kc, kern.nc, kern.nc_small })
    if (elsize == 4)
        COPY(t->sgemm);
    else if (elsize == 8)
        COPY(t->dgemm);
    else
        return FC_EINVAL;
#undef COPY
    return FC_OK;
}
