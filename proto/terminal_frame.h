/*
 * proto/terminal_frame.h: the terminal protocol's framing and message codec
 * (proto/terminal.proto, proto/README-terminal.md).
 *
 * Wire form of one frame: a 4-byte big-endian length N (0 < N <=
 * TERMINAL_FRAME_MAX), then N bytes: one serialized tocsin.terminal.Frame.
 *
 * Pure functions over caller-owned bytes, picohttpparser style: no I/O, no
 * globals, no allocation outside the caller's arena.
 *
 * Lifetimes: terminal_frame_parse() returns a pointer into the caller's
 * buffer, valid as long as that buffer. terminal_frame_decode() returns a
 * message living in the arena, valid until the arena is reset; strings and
 * bytes are copied by protobuf-c, so the input may go right after.
 */
#ifndef TOCSIN_TERMINAL_FRAME_H
#define TOCSIN_TERMINAL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "terminal.pb-c.h"

#define TERMINAL_FRAME_HDR 4
#define TERMINAL_FRAME_MAX (64 * 1024)       /* payload bytes */
#define TERMINAL_ARENA_CAP (256 * 1024)       /* decoded form of one frame */
#define TERMINAL_NONCE_LEN 16
#define TERMINAL_MAC_LEN 32
#define TERMINAL_ID_MAX 128
#define TERMINAL_REASON_MAX 128
#define TERMINAL_MAX_FAULTS 16
#define TERMINAL_PROTO_VERSION 1
#define TERMINAL_PROTO_MIN_VERSION 1

enum terminal_frame_err {
	TERMINAL_FRAME_ERROR = -1,     /* oversize or zero length */
	TERMINAL_FRAME_NEED_MORE = -2, /* not a whole frame yet */
};

/*
 * Look for one frame at the start of buf. Returns the bytes consumed
 * (header + payload) and sets *payload / *plen, or TERMINAL_FRAME_NEED_MORE,
 * or TERMINAL_FRAME_ERROR (the length is 0 or above TERMINAL_FRAME_MAX: the
 * stream cannot be resynchronised, close it).
 */
ssize_t terminal_frame_parse(const uint8_t *buf, size_t len, const uint8_t **payload,
			     size_t *plen);

/* Write the 4-byte header for a payload of plen bytes. */
void terminal_frame_header(uint8_t hdr[TERMINAL_FRAME_HDR], size_t plen);

/* Bytes terminal_frame_encode() will write for f (header included). */
size_t terminal_frame_size(const Tocsin__Terminal__Frame *f);
/* Header + serialized f into out. Bytes written, or -1 (too big for cap or for a frame). */
ssize_t terminal_frame_encode(const Tocsin__Terminal__Frame *f, uint8_t *out, size_t cap);

/* A bump allocator over caller memory for one decode; reset between frames. */
struct terminal_arena {
	ProtobufCAllocator allocator; /* .allocator_data = this */
	uint8_t *base;
	size_t cap, used;
};

void terminal_arena_init(struct terminal_arena *a, void *mem, size_t cap);
static inline void terminal_arena_reset(struct terminal_arena *a)
{
	a->used = 0;
}

enum terminal_decode_err {
	TERMINAL_DECODE_OK = 0,
	TERMINAL_DECODE_MALFORMED,  /* not a Frame, or the arena ran out */
	TERMINAL_DECODE_EMPTY,      /* no body set */
	TERMINAL_DECODE_FIELD,      /* a field outside its documented limits */
};

const char *terminal_decode_strerror(enum terminal_decode_err e);

/*
 * Unpack and check one frame payload: each message's documented limits
 * (id syntax and length, nonce and mac sizes, reason/fault caps). NULL and
 * *err on failure.
 */
Tocsin__Terminal__Frame *terminal_frame_decode(struct terminal_arena *a, const uint8_t *payload,
					       size_t len, enum terminal_decode_err *err);

/* 1-128 of [A-Za-z0-9._:@-] (the population loader's id rule). */
bool terminal_id_valid(const char *id);

#endif
