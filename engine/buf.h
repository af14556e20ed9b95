/*
 * engine/buf.h: a growable byte buffer with a hard cap.
 *
 * Invariant: len <= cap_limit always; buf_append fails (-ENOBUFS) rather
 * than grow past the limit, so a slow or hostile peer can never make a
 * connection's output grow without bound.
 */
#ifndef TOCSIN_BUF_H
#define TOCSIN_BUF_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	uint8_t *data;
	size_t len, alloc;
};

static inline int buf_reserve(struct buf *b, size_t extra, size_t limit)
{
	if (b->len + extra > limit)
		return -ENOBUFS;
	if (b->len + extra <= b->alloc)
		return 0;
	size_t want = b->alloc ? b->alloc : 1024;
	while (want < b->len + extra)
		want *= 2;
	uint8_t *d = realloc(b->data, want);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->alloc = want;
	return 0;
}

static inline int buf_append(struct buf *b, const void *p, size_t n, size_t limit)
{
	int ret = buf_reserve(b, n, limit);
	if (ret)
		return ret;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static inline void buf_release(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

/* Exchange contents (used to hand the pending output to a send op). */
static inline void buf_swap(struct buf *a, struct buf *b)
{
	struct buf t = *a;
	*a = *b;
	*b = t;
}

#endif
