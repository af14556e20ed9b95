/*
 * proto/warning_codec.h: decode and validate SignedWarning / Warning bytes.
 *
 * Pure functions over caller-owned bytes: no I/O, no globals, no clock
 * (the caller passes `now`). Decoding uses a per-message arena so that a
 * hostile message can never make protobuf-c allocate without bound: when
 * the arena's cap is reached, unpack fails cleanly and the message is
 * rejected as malformed.
 *
 * Lifetimes: every pointer a decode returns lives in the arena and stays
 * valid until warning_arena_release(). The input bytes may be freed right
 * after decode returns (protobuf-c copies bytes and strings).
 */
#ifndef TOCSIN_WARNING_CODEC_H
#define TOCSIN_WARNING_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warning.pb-c.h"

/* Largest SignedWarning body accepted, in bytes (checked before decoding). */
#define WARNING_MAX_ENVELOPE (64 * 1024)
/* Arena cap per message: protobuf-c's in-memory form is larger than the wire form. */
#define WARNING_ARENA_CAP (4 * 1024 * 1024)
#define WARNING_MAX_TARGETS 1024
#define WARNING_MAX_INFOS 16
#define WARNING_MAX_ID_LEN 128

struct warning_arena {
	ProtobufCAllocator allocator; /* handed to protobuf-c; .allocator_data = this */
	struct arena_chunk *chunks;
	size_t used;                  /* bytes handed out, across chunks */
	size_t cap;
};

void warning_arena_init(struct warning_arena *a, size_t cap);
void warning_arena_release(struct warning_arena *a);

/*
 * Decode an envelope. Returns NULL and sets *why (a static string) when the
 * bytes are not a SignedWarning or a required envelope field is missing.
 */
Tocsin__SignedWarning *signed_warning_decode(struct warning_arena *a, const uint8_t *buf,
					     size_t len, const char **why);

/* Decode a payload (only after its signature verified). NULL + *why on error. */
Tocsin__Warning *warning_decode(struct warning_arena *a, const uint8_t *buf, size_t len,
				const char **why);

/* What validation found wrong: the offending field (CAP-style path) and why. */
struct warning_problem {
	char field[64];   /* e.g. "info[0].expires" */
	char reason[128]; /* e.g. "is in the past" */
};

/*
 * Validate a decoded Warning: required fields, enum values, lengths and
 * counts, `expires` of every info in the future, `sent` within
 * [now - sent_window, now + sent_window]. Returns true when valid; otherwise
 * false with *p naming the first problem.
 */
bool warning_validate(const Tocsin__Warning *w, int64_t now, int64_t sent_window,
		      struct warning_problem *p);

/* True when `id` is 1..WARNING_MAX_ID_LEN chars of [A-Za-z0-9._:@-]. */
bool warning_id_valid(const char *id, size_t len);

/* The latest expiry over all infos (0 when none). */
int64_t warning_expires(const Tocsin__Warning *w);

/* CAP names of the enums ("Actual", "Alert", "Extreme", "red", ...); "?" when unknown. */
const char *warning_status_name(Tocsin__Status s);
const char *warning_msg_type_name(Tocsin__MsgType t);
const char *warning_scope_name(Tocsin__Scope s);
const char *warning_urgency_name(Tocsin__Urgency u);
const char *warning_severity_name(Tocsin__Severity s);
const char *warning_certainty_name(Tocsin__Certainty c);
const char *warning_colour_name(Tocsin__Colour c);
const char *warning_category_name(Tocsin__Category c);

#endif
