/* Private declarations shared by the C core's translation units. */
#ifndef FASTCONV_INTERNAL_H
#define FASTCONV_INTERNAL_H

#include <assert.h>
#include "fastconv.h"

/* The run-time kernel table, filled once from CPUID (dispatch.c). */
typedef struct {
    const char *isa;        /* "generic", "avx2", "avx512" */
} fc_kernel_table;

const fc_kernel_table *fc_kernels(void);

/* Thread count for the next parallel region (dispatch.c). */
int fc_threads(void);

/* 64-byte aligned allocation; NULL on failure (or when a test injects one). */
void *fc_alloc(size_t bytes);
void fc_free(void *p);

#endif
