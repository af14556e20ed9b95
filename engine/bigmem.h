/*
 * engine/bigmem.h: zeroed tables that are large and short-lived enough for
 * their page faults to matter (the dispatcher's maps and lane rings, the
 * SMPP receipt maps, sized up front for a whole warning).
 *
 * A table of 2 MiB or more is its own anonymous mapping, 2 MiB aligned and
 * advised MADV_HUGEPAGE: one fault (and one page clear) per 2 MiB touched
 * instead of one per 4 KiB, which on this kind of VM is several
 * microseconds each. Smaller tables come from calloc. Either way the
 * memory is zero and is given back whole by bigmem_free().
 *
 * Invariant: the pointer returned is 16-byte aligned and preceded by a
 * 64-byte header that says how it was obtained; only bigmem_free() frees it.
 */
#ifndef TOCSIN_BIGMEM_H
#define TOCSIN_BIGMEM_H

#include <stddef.h>

/* n * size zeroed bytes; NULL when out of memory (or on overflow). */
void *bigmem_calloc(size_t n, size_t size);
void bigmem_free(void *p);
/* Write one byte per 4 KiB page of p[0..bytes) (its own value): every page faulted in now. */
void bigmem_touch(void *p, size_t bytes);
/*
 * Fault in `bytes` of the calling thread's malloc heap and keep them there
 * (malloc then gives no free memory back to the kernel below that much), so
 * that small allocations in a burst (an adapter's per-delivery state) find
 * pages that are already in.
 */
void bigmem_heap_warm(size_t bytes);

#endif
