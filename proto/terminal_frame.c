/*
 * proto/terminal_frame.c: framing and checked decode of terminal messages
 * (see terminal_frame.h). The length prefix is checked before anything is
 * buffered, so a peer can never make us hold more than one frame.
 */
#include "terminal_frame.h"

#include <string.h>

ssize_t terminal_frame_parse(const uint8_t *buf, size_t len, const uint8_t **payload,
			     size_t *plen)
{
	if (len < TERMINAL_FRAME_HDR)
		return TERMINAL_FRAME_NEED_MORE;
	uint32_t n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 |
		     buf[3];
	if (n == 0 || n > TERMINAL_FRAME_MAX)
		return TERMINAL_FRAME_ERROR;
	if (len - TERMINAL_FRAME_HDR < n)
		return TERMINAL_FRAME_NEED_MORE;
	*payload = buf + TERMINAL_FRAME_HDR;
	*plen = n;
	return (ssize_t)(TERMINAL_FRAME_HDR + n);
}

void terminal_frame_header(uint8_t hdr[TERMINAL_FRAME_HDR], size_t plen)
{
	hdr[0] = (uint8_t)(plen >> 24);
	hdr[1] = (uint8_t)(plen >> 16);
	hdr[2] = (uint8_t)(plen >> 8);
	hdr[3] = (uint8_t)plen;
}

size_t terminal_frame_size(const Tocsin__Terminal__Frame *f)
{
	return TERMINAL_FRAME_HDR + protobuf_c_message_get_packed_size(&f->base);
}

ssize_t terminal_frame_encode(const Tocsin__Terminal__Frame *f, uint8_t *out, size_t cap)
{
	size_t n = protobuf_c_message_get_packed_size(&f->base);
	if (n == 0 || n > TERMINAL_FRAME_MAX || TERMINAL_FRAME_HDR + n > cap)
		return -1;
	terminal_frame_header(out, n);
	protobuf_c_message_pack(&f->base, out + TERMINAL_FRAME_HDR);
	return (ssize_t)(TERMINAL_FRAME_HDR + n);
}

static void *arena_alloc(void *data, size_t size)
{
	struct terminal_arena *a = data;
	size = (size + 15) & ~(size_t)15;
	if (size > a->cap - a->used)
		return NULL;
	void *p = a->base + a->used;
	a->used += size;
	return p;
}

static void arena_free(void *data, void *ptr)
{
	(void)data; /* released all at once by terminal_arena_reset */
	(void)ptr;
}

void terminal_arena_init(struct terminal_arena *a, void *mem, size_t cap)
{
	a->allocator.alloc = arena_alloc;
	a->allocator.free = arena_free;
	a->allocator.allocator_data = a;
	a->base = mem;
	a->cap = cap;
	a->used = 0;
}

const char *terminal_decode_strerror(enum terminal_decode_err e)
{
	switch (e) {
	case TERMINAL_DECODE_OK:
		return "ok";
	case TERMINAL_DECODE_MALFORMED:
		return "malformed frame";
	case TERMINAL_DECODE_EMPTY:
		return "frame without body";
	case TERMINAL_DECODE_FIELD:
		return "field out of limits";
	}
	return "?";
}

bool terminal_id_valid(const char *id)
{
	size_t n = 0;
	for (; id[n]; n++) {
		char ch = id[n];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			  (ch >= '0' && ch <= '9') || strchr("._:@-", ch);
		if (!ok || n >= TERMINAL_ID_MAX)
			return false;
	}
	return n > 0;
}

static bool short_str(const char *s, size_t max)
{
	return !s || strnlen(s, max + 1) <= max;
}

static bool hello_ok(const Tocsin__Terminal__Hello *h)
{
	return h->terminal_id && terminal_id_valid(h->terminal_id) && h->has_mac &&
	       h->mac.len == TERMINAL_MAC_LEN && short_str(h->firmware, 64);
}

static bool status_ok(const Tocsin__Terminal__Status *s)
{
	if (s->n_faults > TERMINAL_MAX_FAULTS)
		return false;
	for (size_t i = 0; i < s->n_faults; i++)
		if (!short_str(s->faults[i], 64))
			return false;
	return true;
}

static bool alert_ok(const Tocsin__Terminal__Alert *a)
{
	return a->warning_id && a->n_references <= 1024;
}

static bool body_ok(const Tocsin__Terminal__Frame *f)
{
	switch (f->body_case) {
	case TOCSIN__TERMINAL__FRAME__BODY_CHALLENGE:
		return f->challenge->has_nonce && f->challenge->nonce.len == TERMINAL_NONCE_LEN;
	case TOCSIN__TERMINAL__FRAME__BODY_HELLO:
		return hello_ok(f->hello);
	case TOCSIN__TERMINAL__FRAME__BODY_REJECT:
		return short_str(f->reject->detail, TERMINAL_REASON_MAX);
	case TOCSIN__TERMINAL__FRAME__BODY_ALERT:
		return alert_ok(f->alert);
	case TOCSIN__TERMINAL__FRAME__BODY_ACK:
		return f->ack->has_seq && f->ack->has_state &&
		       short_str(f->ack->reason, TERMINAL_REASON_MAX);
	case TOCSIN__TERMINAL__FRAME__BODY_STATUS:
		return status_ok(f->status);
	default:
		return true;
	}
}

Tocsin__Terminal__Frame *terminal_frame_decode(struct terminal_arena *a, const uint8_t *payload,
					       size_t len, enum terminal_decode_err *err)
{
	*err = TERMINAL_DECODE_MALFORMED;
	if (len > TERMINAL_FRAME_MAX)
		return NULL;
	Tocsin__Terminal__Frame *f = tocsin__terminal__frame__unpack(&a->allocator, len, payload);
	if (!f)
		return NULL;
	if (f->body_case == TOCSIN__TERMINAL__FRAME__BODY__NOT_SET) {
		*err = TERMINAL_DECODE_EMPTY;
		return NULL;
	}
	if (!body_ok(f)) {
		*err = TERMINAL_DECODE_FIELD;
		return NULL;
	}
	*err = TERMINAL_DECODE_OK;
	return f;
}
