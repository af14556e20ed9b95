/*
 * engine/bigmem.c: zeroed tables in transparent huge pages when large (see
 * bigmem.h). The header sits in the 64 bytes before the table; a mapped
 * table keeps its mapping's start and length there for munmap.
 */
#include "bigmem.h"

#include <stdint.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)
#define HEADER 64

struct bigmem_header {
	void *map;      /* NULL: from calloc, the header is the allocation's start */
	size_t map_len;
};

void *bigmem_calloc(size_t n, size_t size)
{
	if (size && n > (SIZE_MAX - HUGE_PAGE * 2) / size)
		return NULL;
	size_t bytes = n * size + HEADER;
	struct bigmem_header *h;
	if (bytes < HUGE_PAGE) {
		if (!(h = calloc(1, bytes)))
			return NULL;
		h->map = NULL;
		return (char *)h + HEADER;
	}
	size_t huge = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	size_t len = huge + HUGE_PAGE; /* room to align the start */
	void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	uintptr_t a = ((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	(void)madvise((void *)a, huge, MADV_HUGEPAGE); /* a hint: fine without THP */
	h = (struct bigmem_header *)a;
	h->map = map;
	h->map_len = len;
	return (char *)h + HEADER; /* zero-filled by the kernel */
}

void bigmem_touch(void *p, size_t bytes)
{
	volatile char *c = p; /* each byte written back as it is: tables in use stay intact */
	for (size_t o = 0; o < bytes; o += 4096)
		c[o] = c[o];
	if (bytes)
		c[bytes - 1] = c[bytes - 1];
}

void bigmem_heap_warm(size_t bytes)
{
	enum { BLOCK = 64 * 1024 }; /* under malloc's mmap threshold: from the heap */
	size_t n = bytes / BLOCK;
	void **blocks = n ? malloc(n * sizeof(*blocks)) : NULL;
	if (!blocks)
		return;
	(void)mallopt(M_TRIM_THRESHOLD, (int)(bytes < INT32_MAX / 2 ? 2 * bytes : INT32_MAX));
	/* setting the trim threshold freezes the mmap threshold at 128 KB; set it where
	   glibc's own adaptation ends up (32 MiB), so large transient buffers (status
	   JSON, Redis replies) keep coming from the heap instead of fresh mappings */
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
	size_t got = 0;
	for (; got < n && (blocks[got] = malloc(BLOCK)); got++)
		memset(blocks[got], 0, BLOCK);
	while (got)
		free(blocks[--got]);
	free(blocks);
}

void bigmem_free(void *p)
{
	if (!p)
		return;
	struct bigmem_header *h = (struct bigmem_header *)((char *)p - HEADER);
	if (h->map)
		munmap(h->map, h->map_len);
	else
		free(h);
}
