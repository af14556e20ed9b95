/*
 * proto/warning_codec.c: SignedWarning / Warning decoding and validation.
 *
 * Invariants: nothing here allocates outside the caller's arena; nothing
 * reads the clock; every count and length taken from the wire is capped
 * before use. Validation reports the *first* problem so that a bureau's
 * engineer can fix messages one field at a time.
 */
#include "warning_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	max_align_t data[];
};

#define CHUNK_MIN (16 * 1024)

static void *arena_alloc(void *data, size_t size)
{
	struct warning_arena *a = data;
	size = (size + 15) & ~(size_t)15;
	if (size > a->cap || a->used + size > a->cap)
		return NULL;
	struct arena_chunk *c = a->chunks;
	if (!c || c->size - c->used < size) {
		size_t want = size > CHUNK_MIN ? size : CHUNK_MIN;
		c = malloc(sizeof(*c) + want);
		if (!c)
			return NULL;
		c->size = want;
		c->used = 0;
		c->next = a->chunks;
		a->chunks = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += size;
	a->used += size;
	return p;
}

static void arena_free(void *data, void *ptr)
{
	/* Freed all at once by warning_arena_release(). */
}

void warning_arena_init(struct warning_arena *a, size_t cap)
{
	a->allocator.alloc = arena_alloc;
	a->allocator.free = arena_free;
	a->allocator.allocator_data = a;
	a->chunks = NULL;
	a->used = 0;
	a->cap = cap;
}

void warning_arena_release(struct warning_arena *a)
{
	struct arena_chunk *c = a->chunks;
	while (c) {
		struct arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->chunks = NULL;
	a->used = 0;
}

Tocsin__SignedWarning *signed_warning_decode(struct warning_arena *a, const uint8_t *buf,
					     size_t len, const char **why)
{
	if (len > WARNING_MAX_ENVELOPE) {
		*why = "envelope too large";
		return NULL;
	}
	Tocsin__SignedWarning *sw = tocsin__signed_warning__unpack(&a->allocator, len, buf);
	if (!sw) {
		*why = "body is not a SignedWarning protobuf";
		return NULL;
	}
	if (!sw->has_payload || sw->payload.len == 0) {
		*why = "SignedWarning.payload is missing";
		return NULL;
	}
	if (!sw->has_signature || sw->signature.len == 0) {
		*why = "SignedWarning.signature is missing";
		return NULL;
	}
	if (!sw->key_id || !sw->key_id[0]) {
		*why = "SignedWarning.key_id is missing";
		return NULL;
	}
	return sw;
}

Tocsin__Warning *warning_decode(struct warning_arena *a, const uint8_t *buf, size_t len,
				const char **why)
{
	Tocsin__Warning *w = tocsin__warning__unpack(&a->allocator, len, buf);
	if (!w)
		*why = "payload is not a Warning protobuf";
	return w;
}

bool warning_id_valid(const char *id, size_t len)
{
	if (len == 0 || len > WARNING_MAX_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

int64_t warning_expires(const Tocsin__Warning *w)
{
	int64_t latest = 0;
	for (size_t i = 0; i < w->n_info; i++)
		if (w->info[i]->has_expires && w->info[i]->expires > latest)
			latest = w->info[i]->expires;
	return latest;
}

static bool problem(struct warning_problem *p, const char *field, const char *reason)
{
	snprintf(p->field, sizeof(p->field), "%s", field);
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	return false;
}

static bool info_problem(struct warning_problem *p, size_t i, const char *field,
			 const char *reason)
{
	char f[64];
	snprintf(f, sizeof(f), "info[%zu].%s", i, field);
	return problem(p, f, reason);
}

static bool nonempty(const char *s)
{
	return s && s[0];
}

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF); NULL is fine. */
static bool utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	while (s && *s) {
		unsigned c = *s, n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
				 : (c & 0xF8) == 0xF0 ? 3 : 9;
		if (n == 9 || (n == 1 && c < 0xC2) || (n == 3 && c > 0xF4))
			return false;
		uint32_t cp = n ? c & (0x3F >> n) : c;
		for (unsigned i = 1; i <= n; i++) {
			if ((s[i] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return false;
		s += n + 1;
	}
	return true;
}

/* Every text a person will read must be valid UTF-8 (SMS, push, terminals, JSON). */
static bool texts_valid(const Tocsin__Warning *w, struct warning_problem *p)
{
	if (!utf8_valid(w->sender))
		return problem(p, "sender", "is not valid UTF-8");
	if (!utf8_valid(w->note) || !utf8_valid(w->source))
		return problem(p, w->note && !utf8_valid(w->note) ? "note" : "source",
			       "is not valid UTF-8");
	for (size_t i = 0; i < w->n_info; i++) {
		const Tocsin__Info *in = w->info[i];
		const char *t[] = {in->language, in->event, in->headline, in->description,
				   in->instruction, in->sender_name, in->web, in->contact, in->audience};
		static const char *names[] = {"language", "event", "headline", "description",
					      "instruction", "sender_name", "web", "contact",
					      "audience"};
		for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++)
			if (!utf8_valid(t[k]))
				return info_problem(p, i, names[k], "is not valid UTF-8");
		for (size_t a = 0; a < in->n_area; a++)
			if (!utf8_valid(in->area[a]->area_desc))
				return info_problem(p, i, "area.area_desc", "is not valid UTF-8");
	}
	return true;
}

/* Enum range checks: protobuf-c accepts any varint for a proto2 enum. */
#define IN_RANGE(v, lo, hi) ((int)(v) >= (lo) && (int)(v) <= (hi))

static bool validate_info(const Tocsin__Info *in, size_t i, const Tocsin__Warning *w,
			  int64_t now, struct warning_problem *p)
{
	if (!nonempty(in->language))
		return info_problem(p, i, "language", "is required");
	if (strlen(in->language) > 35)
		return info_problem(p, i, "language", "is longer than 35 characters");
	if (in->n_category == 0)
		return info_problem(p, i, "category", "needs at least one value");
	for (size_t c = 0; c < in->n_category; c++)
		if (!IN_RANGE(in->category[c], 1, 12))
			return info_problem(p, i, "category", "has an unknown value");
	for (size_t c = 0; c < in->n_response_type; c++)
		if (!IN_RANGE(in->response_type[c], 1, 9))
			return info_problem(p, i, "response_type", "has an unknown value");
	if (!nonempty(in->event))
		return info_problem(p, i, "event", "is required");
	if (!in->has_urgency || !IN_RANGE(in->urgency, 1, 5))
		return info_problem(p, i, "urgency", "is required (Immediate, Expected, Future, Past, Unknown)");
	if (!in->has_severity || !IN_RANGE(in->severity, 1, 5))
		return info_problem(p, i, "severity", "is required (Extreme, Severe, Moderate, Minor, Unknown)");
	if (!in->has_certainty || !IN_RANGE(in->certainty, 1, 5))
		return info_problem(p, i, "certainty", "is required (Observed, Likely, Possible, Unlikely, Unknown)");
	if (!nonempty(in->headline))
		return info_problem(p, i, "headline", "is required");
	if (strlen(in->headline) > 1024)
		return info_problem(p, i, "headline", "is longer than 1024 bytes");
	if (!in->has_expires)
		return info_problem(p, i, "expires", "is required");
	if (in->expires <= now)
		return info_problem(p, i, "expires", "is not in the future");
	if (in->has_effective && in->effective >= in->expires)
		return info_problem(p, i, "effective", "is not before expires");
	for (size_t a = 0; a < in->n_area; a++)
		if (!nonempty(in->area[a]->area_desc))
			return info_problem(p, i, "area.area_desc", "is required in every area");
	for (size_t r = 0; r < in->n_resource; r++)
		if (!nonempty(in->resource[r]->resource_desc) || !nonempty(in->resource[r]->mime_type))
			return info_problem(p, i, "resource", "needs resource_desc and mime_type");
	(void)w;
	return true;
}

static bool validate_targets(const Tocsin__Warning *w, struct warning_problem *p)
{
	bool cancel = w->msg_type == TOCSIN__MSG_TYPE__CANCEL;
	if (w->n_targets == 0 && !cancel)
		return problem(p, "targets", "needs at least one segment id");
	if (w->n_targets > WARNING_MAX_TARGETS)
		return problem(p, "targets", "has more than 1024 segment ids");
	for (size_t t = 0; t < w->n_targets; t++)
		if (!warning_id_valid(w->targets[t], strlen(w->targets[t])))
			return problem(p, "targets", "contains an id that is not 1-128 of [A-Za-z0-9._:@-]");
	return true;
}

bool warning_validate(const Tocsin__Warning *w, int64_t now, int64_t sent_window,
		      struct warning_problem *p)
{
	if (!w->identifier)
		return problem(p, "identifier", "is required");
	if (!warning_id_valid(w->identifier, strlen(w->identifier)))
		return problem(p, "identifier", "must be 1-128 of [A-Za-z0-9._:@-]");
	if (!nonempty(w->sender))
		return problem(p, "sender", "is required");
	if (strlen(w->sender) > 256)
		return problem(p, "sender", "is longer than 256 bytes");
	if (!w->has_sent)
		return problem(p, "sent", "is required");
	if (w->sent < now - sent_window || w->sent > now + sent_window)
		return problem(p, "sent", "is outside the accepted window around the server's clock");
	if (!w->has_status || !IN_RANGE(w->status, 1, 5))
		return problem(p, "status", "is required (Actual, Exercise, System, Test, Draft)");
	if (!w->has_msg_type || !IN_RANGE(w->msg_type, 1, 5))
		return problem(p, "msg_type", "is required (Alert, Update, Cancel, Ack, Error)");
	if (!w->has_scope || !IN_RANGE(w->scope, 1, 3))
		return problem(p, "scope", "is required (Public, Restricted, Private)");
	if (w->scope == TOCSIN__SCOPE__RESTRICTED && !nonempty(w->restriction))
		return problem(p, "restriction", "is required when scope is Restricted");
	if (w->scope == TOCSIN__SCOPE__PRIVATE && w->n_addresses == 0)
		return problem(p, "addresses", "is required when scope is Private");
	if (w->msg_type != TOCSIN__MSG_TYPE__ALERT && w->n_references == 0)
		return problem(p, "references", "is required for Update, Cancel, Ack and Error");
	for (size_t r = 0; r < w->n_references; r++)
		if (!warning_id_valid(w->references[r], strlen(w->references[r])))
			return problem(p, "references", "contains an invalid identifier");
	if (w->has_colour && !IN_RANGE(w->colour, 0, 5))
		return problem(p, "colour", "has an unknown value");
	if (w->national_id && w->national_id[0] && strlen(w->national_id) != 31)
		return problem(p, "national_id", "must be 31 characters (ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N)");
	if (w->n_info == 0)
		return problem(p, "info", "needs at least one block");
	if (w->n_info > WARNING_MAX_INFOS)
		return problem(p, "info", "has more than 16 blocks");
	for (size_t i = 0; i < w->n_info; i++)
		if (!validate_info(w->info[i], i, w, now, p))
			return false;
	if (!texts_valid(w, p))
		return false;
	return validate_targets(w, p);
}

#define NAME(arr, v) (((int)(v) >= 0 && (size_t)(v) < sizeof(arr) / sizeof(arr[0])) ? arr[v] : "?")

const char *warning_status_name(Tocsin__Status s)
{
	static const char *n[] = {"?", "Actual", "Exercise", "System", "Test", "Draft"};
	return NAME(n, s);
}
const char *warning_msg_type_name(Tocsin__MsgType t)
{
	static const char *n[] = {"?", "Alert", "Update", "Cancel", "Ack", "Error"};
	return NAME(n, t);
}
const char *warning_scope_name(Tocsin__Scope s)
{
	static const char *n[] = {"?", "Public", "Restricted", "Private"};
	return NAME(n, s);
}
const char *warning_urgency_name(Tocsin__Urgency u)
{
	static const char *n[] = {"?", "Immediate", "Expected", "Future", "Past", "Unknown"};
	return NAME(n, u);
}
const char *warning_severity_name(Tocsin__Severity s)
{
	static const char *n[] = {"?", "Extreme", "Severe", "Moderate", "Minor", "Unknown"};
	return NAME(n, s);
}
const char *warning_certainty_name(Tocsin__Certainty c)
{
	static const char *n[] = {"?", "Observed", "Likely", "Possible", "Unlikely", "Unknown"};
	return NAME(n, c);
}
const char *warning_colour_name(Tocsin__Colour c)
{
	static const char *n[] = {"none", "red", "orange", "yellow", "blue", "white"};
	return NAME(n, c);
}
const char *warning_category_name(Tocsin__Category c)
{
	static const char *n[] = {"?",	  "Geo",   "Met",	"Safety", "Security", "Rescue", "Fire",
				  "Health", "Env", "Transport", "Infra",  "CBRNE",    "Other"};
	return NAME(n, c);
}
