/* Ownership of fc_packed (packed.h); the packers live with their kernels
 * (conv/direct.inc, gemm/packed.inc). */
#include <stdlib.h>
#include "packed.h"

fc_packed *fc_packed_new(int64_t bytes)
{
    fc_packed *p = fc_alloc(sizeof *p);
    if (!p)
        return NULL;
    *p = (fc_packed){ 0 };
    p->bytes = bytes;
    p->data = fc_alloc((size_t)(bytes > 0 ? bytes : 1));
    if (!p->data) {
        fc_free(p);
        return NULL;
    }
    return p;
}

int64_t fc_packed_bytes(const fc_packed *w) { return w ? w->bytes : 0; }

void fc_packed_free(fc_packed *w)
{
    if (!w)
        return;
    const int64_t subs = w->kind == FC_PACKED_IM2COL ? w->groups
                       : w->kind == FC_PACKED_WINOGRAD ? FC_WINOGRAD_PACKS : 0;
    for (int64_t g = 0; g < subs; g++)
        fc_packed_free(((fc_packed **)w->data)[g]);
    fc_free(w->data);
    fc_free(w);
}
