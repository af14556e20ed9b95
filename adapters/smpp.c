/*
 * adapters/smpp.c: the SMS adapter, SMPP 3.4 over TCP or TLS on the engine's loop.
 *
 * One lane = one bind_transceiver. Each delivery becomes sms_text_parts()
 * submit_sm PDUs (UCS-2 or GSM 7-bit, UDH-concatenated when long); it is
 * reported ACCEPTED once every part got submit_sm_resp ESME_ROK, or with
 * the worst failure (PERMANENT > THROTTLED > TRANSIENT) otherwise. Once
 * reported, every accepted part's message id goes into the *account's*
 * pending map, shared by all lanes with the same `account` key, since an
 * SMSC may send a receipt on any bind of the account; each receipt reports
 * one part. A receipt whose id is not there yet (it overtook its
 * submit_sm_resp, or its message is not complete) waits in the account's
 * early cache, bounded in size and age, and is reported as soon as the id
 * is remembered; what overflows or ages out is counted as dropped.
 *
 * TLS (tls = on): OpenSSL over a memory-BIO pair (engine/tls.h); the recv
 * op reads ciphertext into cbuf, SSL_read fills rbuf; flush() seals `out`
 * with one SSL_write and sends what the write BIO holds.
 *
 * Bind state table:
 *
 *   DOWN --open / retry timer--> CONNECTING
 *   CONNECTING --connected--> BINDING (bind_transceiver sent) | HANDSHAKE (TLS)
 *   HANDSHAKE --verified--> BINDING;  --failed (reason logged) / timeout--> FAILING
 *   BINDING --bind_resp ROK--> BOUND (host->up true)
 *   BINDING --bind_resp error / timeout--> FAILING
 *   BOUND --EOF, error, enquire_link timeout, unbind from SMSC--> FAILING (host->up false)
 *   BOUND --close()--> UNBINDING (unbind sent) --unbind_resp or 1 s--> FAILING
 *   FAILING --last op back--> DOWN (retry timer, backoff 200 ms .. 30 s) | STOPPED (freed)
 *
 * Invariants:
 *   - every SQE's user_data is one of the three ops embedded in struct smpp;
 *     the struct is freed only in settle(), once no op is armed (two-phase
 *     close: shutdown() completes the armed recv/send, then free);
 *   - one report per submit, never from inside submit(): early verdicts go
 *     through the `deferred` list and a 0 ms timer;
 *   - a receipt is reported only after its delivery's ACCEPTED report;
 *   - an in-flight part lives in slots[seq & mask] until its response, its
 *     response timeout (TRANSIENT) or the bind's loss (TRANSIENT);
 *   - the SSL object lives from connect to settle(); the SSL_CTX with the lane;
 *   - after close() nothing is reported; the socket says unbind and closes
 *     on its own once the loop has run its ops back.
 *
 * Caveats: account sharing finds sibling lanes through the dispatcher's
 * lane list (lane->next); lanes not linked there keep their own maps. A
 * multi-part message with some parts accepted and some failed is retried
 * whole (the SMSC may then deliver the accepted parts twice). The hostname
 * is resolved once, at open(). No TLS session resumption (one handshake
 * per bind, rare). Closing does not send close_notify (the unbind has
 * already said goodbye).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "adapters.h"
#include "bigmem.h"
#include "buf.h"
#include "campaign.h"
#include "log.h"
#include "smpp.h"
#include "sms_text.h"
#include "tls.h"

#define RECV_BUF (SMPP_MAX_PDU + 16384)
#define CIPHER_BUF 65536 /* TLS: ciphertext read per recv */
#define OUT_MAX (8u << 20)
#define TICK_MS 100
#define UNBIND_WAIT_MS 1000
#define SWEEP_EVERY_MS 60000
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 30000
#define TEXT_CACHE 4

/*
 * A text's SMS plan and part bytes, computed once per distinct text: every
 * delivery of a campaign (language) carries the same text, and planning and
 * encoding it walks the GSM table per character (it used to be a third of
 * the loop's time at 15,000 submits/s). The UDH reference byte is patched
 * per message. Keyed by the text's bytes, not its pointer.
 */
struct text_enc {
	char *text;
	size_t text_len;
	uint64_t used;
	struct sms_plan plan;
	uint8_t *body; /* plan.parts * SMS_PART_MAX */
	uint8_t *len;  /* plan.parts */
};

enum bind_state { B_DOWN, B_CONNECTING, B_HANDSHAKE, B_BINDING, B_BOUND, B_UNBINDING, B_FAILING, B_STOPPED };

/* One submitted delivery, until its report. */
struct smpp_msg {
	struct delivery *d;
	uint64_t delivery_id;
	uint64_t receipt_expires_ms;
	uint16_t parts, answered;
	bool failed;
	enum outcome verdict;
	const char *reason;
	uint32_t retry_after_ms;
	char (*ids)[SMPP_ID_MAX + 1]; /* multi-part: each accepted part's id until the report */
	struct smpp_msg *next;        /* deferred list, or the lane's free list */
};

/* One submit_sm waiting for its response. */
struct slot {
	struct smpp_msg *m;   /* NULL: free */
	uint32_t seq;
	uint16_t part;
	uint64_t deadline_ms;
};

/*
 * One id in a receipt map. In the account's `pending` map: an accepted
 * part waiting for its receipt (delivery_id, part). In its `early` map: a
 * receipt that came before the submit_sm_resp that names its id (state;
 * `pos` is its place in the early ring). An id has one or two readings
 * (smpp_id_canon: a numeric id reads as decimal and as hex): k[0] the
 * reading the id looks like (the "primary" one), k[1] the other one when
 * RC_TWO. A reading that is a number is kept as that number; one that is
 * text (not a number, or past 64 bits) as its hash, the canonical text in
 * `text` (malloc'd; at most one reading of an id can be text). So an entry
 * is 40 bytes with its keys inline, and comparing two ids compares numbers.
 */
enum { RC_USED = 1, RC_TWO = 2, RC_TEXT0 = 4, RC_TEXT1 = 8 };

struct rcpt {
	uint64_t k[2];
	char *text;
	uint64_t expires_ms;
	union {
		uint64_t delivery_id; /* pending */
		uint64_t pos;         /* early */
		uint32_t next_free;   /* not in use */
	} u;
	uint16_t part;
	uint8_t state; /* early: SMPP_STATE_* */
	uint8_t flags;
};

#define RCPT_NONE UINT32_MAX

/* One reading of an id, to look up or to store: a number, or text (v its hash). */
struct idkey {
	uint64_t v;
	const char *text;
};

/*
 * A receipt map: entries in one array (an entry's index is stable while it
 * lives, so the early ring refers to entries by index), and an open-
 * addressing index over their readings (linear probing, at most half full,
 * backward-shift deletion). An index slot is 8 bytes: a 32-bit tag of the
 * reading's hash (which also gives its home slot, so the index grows without
 * touching an entry) and ref = entry index + 1, bit 31 set for k[1]; ref 0
 * is an empty slot. Lookups compare tags first and read an entry only on a
 * tag match. The entry array is sized up front from the dispatcher's hint
 * (smpp_reserve), so that no entry moves during a dispatch. The index
 * starts small and grows only once the ids waiting outgrow it, then
 * straight to the size for the hint (`hint`): while receipts keep pace
 * with the submits (a window's worth of ids waiting) it stays in cache and
 * its pages are never touched, and when they lag it grows once, not by
 * doubling. Growing it never touches an entry.
 */
struct islot {
	uint32_t tag, ref;
};

struct rmap {
	struct rcpt *e;
	uint32_t n_e, cap_e;  /* n_e: entries ever used (high-water mark) */
	uint32_t free_head;   /* free entries below n_e, chained by u.next_free */
	uint32_t n;           /* live entries */
	struct islot *slot;
	size_t mask, used;    /* index capacity - 1 (a power of two, minus one); slots in use */
	size_t hint;          /* entries the dispatcher said are coming (smpp_reserve) */
};

static uint64_t key_hash(const char *k)
{
	uint64_t h = 1469598103934665603ull;
	while (*k)
		h = (h ^ (uint8_t)*k++) * 1099511628211ull;
	return h;
}

/*
 * A reading's tag. SMSCs tend to hand out ids in sequence (and the readings
 * of sequential ids are nearly sequential too): 128 consecutive numbers
 * share a home page (512 8-byte slots, 4 KiB), every fourth slot from one
 * of four offsets, so that remembering and matching a campaign's parts
 * walks a page line by line (one TLB entry, lines the hardware prefetches)
 * rather than a line and a page per eight ids. A page has room for four
 * groups without a probe: an id's two readings and the readings of other
 * ranges land on pages independently of each other, and with every other
 * slot (two groups per page) a page that drew a third group sent its ids
 * probing through the page (40 probes per insert at half load in a model
 * of smsc_sim's ids, 25-55 % more CPU per SMS while receipts lagged; eight
 * per line: 3-13 probes; this: 2). The groups are scattered by a
 * multiplicative hash.
 */
static uint32_t idkey_tag(uint64_t v, bool text)
{
	uint64_t h = ((v >> 7) ^ (text ? 0x9E3779B97F4A7C15ull : 0)) * 0xFF51AFD7ED558CCDull;
	return (uint32_t)(((h >> 32) & ~(uint64_t)511) | (v & 127) << 2 | ((h >> 30) & 3));
}

/* A hex digit's value plus one, 0 for any other byte (a table: two ids per SMS go through it). */
static const uint8_t hex_plus1[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
	['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static int hexdig(char c)
{
	return (int)hex_plus1[(uint8_t)c] - 1;
}

/* An id's readings: k[0] as it looks (hex if it has a-f, else decimal), k[1] as hex when different. */
struct id_keys {
	struct idkey k[2];
	bool two;
	char text[SMPP_ID_MAX + 4]; /* the reading that is text, if one is */
};

/* A text reading, canonicalized into k->text by smpp_id_canon(). */
static bool text_reading(const char *id, bool as_hex, struct id_keys *k, struct idkey *out)
{
	if (!smpp_id_canon(id, as_hex, k->text, sizeof(k->text)))
		return false;
	out->v = key_hash(k->text);
	out->text = k->text;
	return true;
}

/*
 * The readings smpp_id_canon() gives (false where it fails), in one pass
 * over the id, a number staying a number: no digits to print, no text to
 * hash or compare. Text (not all hex digits, or past 64 bits) reads the same
 * either way, and a decimal past 64 bits is past them as hex too.
 */
static bool id_keys(const char *id, struct id_keys *k)
{
	uint64_t dec = 0, hex = 0;
	bool all_hex = id[0] != 0, letter = false, dec_ok = true, hex_ok = true;
	/* up to 15 digits neither reading can pass 64 bits (16^15 = 2^60): no
	 * overflow checks on the way (most ids are that short) */
	const char *p = id;
	for (; *p && p - id < 15; p++) {
		int d = hexdig(*p);
		if (d < 0) {
			all_hex = false;
			break;
		}
		letter = letter || d >= 10;
		hex = hex * 16 + (unsigned)d;
		dec = dec * 10 + (unsigned)d;
	}
	for (; all_hex && *p; p++) {
		int d = hexdig(*p);
		if (d < 0) {
			all_hex = false;
			break;
		}
		letter = letter || d >= 10;
		if (hex_ok && hex > (UINT64_MAX - (unsigned)d) / 16)
			hex_ok = false;
		hex = hex * 16 + (unsigned)d;
		if (!letter && dec_ok && dec > (UINT64_MAX - (unsigned)d) / 10)
			dec_ok = false;
		dec = dec * 10 + (unsigned)d;
	}
	k->two = false;
	if (!all_hex || (letter ? !hex_ok : !dec_ok))
		return text_reading(id, letter, k, &k->k[0]);
	k->k[0].v = letter ? hex : dec;
	k->k[0].text = NULL;
	if (letter)
		return true; /* as hex it reads the same */
	if (hex_ok) {
		k->two = hex != dec;
		k->k[1].v = hex;
		k->k[1].text = NULL;
	} else {
		k->two = text_reading(id, true, k, &k->k[1]);
	}
	return true;
}

static bool reading_eq(const struct rcpt *r, int i, const struct idkey *key)
{
	if (r->k[i] != key->v)
		return false;
	bool text = r->flags & (i ? RC_TEXT1 : RC_TEXT0);
	return text ? key->text && !strcmp(r->text, key->text) : !key->text;
}

static int rmap_init(struct rmap *m, size_t slots)
{
	memset(m, 0, sizeof(*m));
	m->free_head = RCPT_NONE;
	m->slot = bigmem_calloc(slots, sizeof(*m->slot));
	m->mask = slots - 1;
	return m->slot ? 0 : -1;
}

static void rmap_release(struct rmap *m)
{
	for (uint32_t i = 0; i < m->n_e; i++)
		if (m->e[i].flags & RC_USED)
			free(m->e[i].text);
	bigmem_free(m->e);
	bigmem_free(m->slot);
	memset(m, 0, sizeof(*m));
}

static void islot_put(struct islot *slot, size_t mask, uint32_t tag, uint32_t ref)
{
	size_t i = tag & mask;
	while (slot[i].ref)
		i = (i + 1) & mask;
	slot[i].tag = tag;
	slot[i].ref = ref;
}

/* An index of at least `slots` slots; -1 (nothing changed) when out of memory. */
static int rmap_index_reserve(struct rmap *m, size_t slots)
{
	size_t want = m->mask + 1;
	while (want < slots)
		want *= 2;
	if (want == m->mask + 1)
		return 0;
	struct islot *slot = bigmem_calloc(want, sizeof(*slot));
	if (!slot)
		return -1;
	for (size_t i = 0; i <= m->mask; i++)
		if (m->slot[i].ref)
			islot_put(slot, want - 1, m->slot[i].tag, m->slot[i].ref);
	bigmem_free(m->slot);
	m->slot = slot;
	m->mask = want - 1;
	return 0;
}

/* Room for `cap` entries in the array; -1 (nothing changed) when out of memory. */
static int rmap_entries_reserve(struct rmap *m, size_t cap)
{
	if (cap <= m->cap_e)
		return 0;
	struct rcpt *e = cap <= UINT32_MAX / 8 ? bigmem_calloc(cap, sizeof(*e)) : NULL;
	if (!e)
		return -1;
	if (m->n_e)
		memcpy(e, m->e, (size_t)m->n_e * sizeof(*e));
	bigmem_free(m->e);
	m->e = e;
	m->cap_e = (uint32_t)cap;
	return 0;
}

/* Room for `entries` entries with two readings each; -1 when out of memory. */
static int rmap_reserve(struct rmap *m, size_t entries)
{
	if (entries > UINT32_MAX / 8 || rmap_entries_reserve(m, entries) < 0)
		return -1;
	return rmap_index_reserve(m, 4 * entries);
}

/* A free entry (flags cleared) with its index; RCPT_NONE when out of memory. */
static uint32_t rmap_alloc(struct rmap *m)
{
	if ((m->used + 2) * 2 > m->mask + 1) {
		size_t twice = 2 * (m->mask + 1);
		/* receipts lag: straight to the size announced (doubling if that fails) */
		if ((twice >= 4 * m->hint || rmap_index_reserve(m, 4 * m->hint) < 0) &&
		    rmap_index_reserve(m, twice) < 0)
			return RCPT_NONE;
	}
	uint32_t i = m->free_head;
	if (i != RCPT_NONE) {
		m->free_head = m->e[i].u.next_free;
	} else {
		if (m->n_e == m->cap_e &&
		    rmap_entries_reserve(m, m->cap_e ? (size_t)m->cap_e * 2 : 256) < 0)
			return RCPT_NONE;
		i = m->n_e++;
	}
	m->e[i].flags = 0;
	m->e[i].text = NULL;
	return i;
}

/* Index entry i under its readings (flags and keys set; RC_USED is set here). */
static void rmap_link(struct rmap *m, uint32_t i)
{
	struct rcpt *r = &m->e[i];
	r->flags |= RC_USED;
	islot_put(m->slot, m->mask, idkey_tag(r->k[0], r->flags & RC_TEXT0), i + 1);
	m->used++;
	if (r->flags & RC_TWO) {
		islot_put(m->slot, m->mask, idkey_tag(r->k[1], r->flags & RC_TEXT1),
			  (i + 1) | 0x80000000u);
		m->used++;
	}
	m->n++;
}

static void islot_del(struct rmap *m, uint32_t tag, uint32_t ref)
{
	size_t mask = m->mask, i = tag & mask;
	while (m->slot[i].ref != ref)
		i = (i + 1) & mask;
	m->slot[i].ref = 0;
	m->used--;
	/* Backward-shift the cluster after the hole (linear probing deletion). */
	for (size_t j = (i + 1) & mask; m->slot[j].ref; j = (j + 1) & mask) {
		size_t home = m->slot[j].tag & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slot[i] = m->slot[j];
			m->slot[j].ref = 0;
			i = j;
		}
	}
}

/* Unindex entry i and free it (its text too). */
static void rmap_remove(struct rmap *m, uint32_t i)
{
	struct rcpt *r = &m->e[i];
	islot_del(m, idkey_tag(r->k[0], r->flags & RC_TEXT0), i + 1);
	if (r->flags & RC_TWO)
		islot_del(m, idkey_tag(r->k[1], r->flags & RC_TEXT1), (i + 1) | 0x80000000u);
	free(r->text);
	r->text = NULL;
	r->flags = 0;
	r->u.next_free = m->free_head;
	m->free_head = i;
	m->n--;
}

/* The first entry (in probe order) with a reading equal to key: want 0 the primary
 * readings only, 1 the other ones only, -1 either. RCPT_NONE if none. */
static uint32_t rmap_get(const struct rmap *m, const struct idkey *key, int want)
{
	uint32_t tag = idkey_tag(key->v, key->text != NULL);
	for (size_t i = tag & m->mask; m->slot[i].ref; i = (i + 1) & m->mask) {
		if (m->slot[i].tag != tag)
			continue;
		uint32_t ref = m->slot[i].ref, e = (ref & 0x7FFFFFFFu) - 1;
		int reading = ref >> 31;
		if ((want < 0 || reading == want) && reading_eq(&m->e[e], reading, key))
			return e;
	}
	return RCPT_NONE;
}

/* A new entry under the readings of k; its index, RCPT_NONE when out of memory. */
static uint32_t rmap_add(struct rmap *m, const struct id_keys *k, uint64_t expires_ms)
{
	char *text = NULL;
	const char *t = k->k[0].text ? k->k[0].text : k->two ? k->k[1].text : NULL;
	if (t && !(text = strdup(t)))
		return RCPT_NONE;
	uint32_t i = rmap_alloc(m);
	if (i == RCPT_NONE) {
		free(text);
		return RCPT_NONE;
	}
	struct rcpt *r = &m->e[i];
	r->k[0] = k->k[0].v;
	r->k[1] = k->two ? k->k[1].v : 0;
	r->text = text;
	r->flags = (uint8_t)((k->two ? RC_TWO : 0) | (k->k[0].text ? RC_TEXT0 : 0) |
			     (k->two && k->k[1].text ? RC_TEXT1 : 0));
	r->expires_ms = expires_ms;
	rmap_link(m, i);
	return i;
}

/* Move entry i of `from` into `to` (its text goes with it); its new index, RCPT_NONE when out of memory. */
static uint32_t rmap_move(struct rmap *to, struct rmap *from, uint32_t i)
{
	uint32_t j = rmap_alloc(to);
	if (j == RCPT_NONE)
		return RCPT_NONE;
	to->e[j] = from->e[i];
	to->e[j].flags &= (uint8_t)~RC_USED;
	rmap_link(to, j);
	from->e[i].text = NULL;
	rmap_remove(from, i);
	return j;
}

/* An entry's primary reading as text, for logs. */
static const char *rcpt_key_str(const struct rcpt *r, char *buf, size_t cap)
{
	if (r->flags & RC_TEXT0)
		return r->text;
	snprintf(buf, cap, "n:%llu", (unsigned long long)r->k[0]);
	return buf;
}

/*
 * The early ring: early receipts in arrival order (so in expiry order, the
 * age limit being constant), by entry index. A slot is RCPT_NONE once its
 * receipt was matched; when the ring is full the oldest receipt still
 * waiting is dropped.
 */
struct early {
	struct rmap map;
	uint32_t *ring;
	size_t cap, head, len; /* len counts slots, empty ones too */
	uint64_t next_pos, ttl_ms;
	uint64_t waiting, matched, dropped;
};

struct smpp_account {
	char name[320];
	unsigned refs;
	struct rmap pending;
	struct early early;
	uint64_t next_sweep_ms;
	struct smpp *members;
};

struct smpp {
	struct lane_host host;
	struct lane *lane;
	struct smpp_account *acct;
	struct smpp *acct_next;
	char addr[300], system_id[16], password[9], system_type[13], source_addr[21];
	uint8_t source_ton, source_npi;
	unsigned enquire_ms, resp_timeout_ms, bind_timeout_ms, throttle_ms, receipt_grace_ms;
	struct sockaddr_storage sa;
	socklen_t salen;
	char server_name[256]; /* TLS: SNI and the name the certificate must carry */
	SSL_CTX *ssl_ctx;      /* TLS lanes only */
	SSL *ssl;              /* per connection, from connect to settle() */
	BIO *rbio, *wbio;      /* owned by ssl */
	uint8_t *cbuf;         /* TLS: the recv op's ciphertext buffer */
	char why[320];         /* a composed failure reason (handshake), alive with the struct */
	char last_error[320];  /* the last reason the bind failed, for the status page */
	size_t early_max;      /* early receipt cache of an account this lane creates */
	uint64_t early_ms;

	enum bind_state state;
	bool stopping, reported_up, dispatching;
	int fd;
	struct op connect_op, recv_op, send_op;
	bool connect_armed, recv_armed, send_armed;
	uint8_t *rbuf;
	size_t rlen;
	struct buf out, sending;
	size_t sending_off;
	uint32_t seq, bind_seq, enq_seq, unbind_seq;
	uint64_t bind_deadline_ms, enq_deadline_ms, next_enq_ms, unbind_deadline_ms;
	unsigned backoff_ms;
	uint8_t ref;
	struct timer tick, retry, deferred_timer, flush_timer;
	struct text_enc texts[TEXT_CACHE];
	uint64_t text_clock;
	int64_t validity_exp; /* validity_str is smpp_time_abs(validity_exp) */
	char validity_str[17];
	struct slot *slots;
	size_t nslots, inflight;
	struct smpp_msg *deferred_head, *deferred_tail;
	struct smpp_msg *msg_free; /* reported messages, for the next submits (chained by next) */
	/* how PDUs travel (status page): send ops, recv completions with data, submit_sm queued */
	uint64_t n_sends, n_recvs, n_submits;
};

#define OWNER(ptr, field) ((struct smpp *)((char *)(ptr) - offsetof(struct smpp, field)))

static void fail(struct smpp *s, const char *why);
static void flush(struct smpp *s);
static void flush_soon(struct smpp *s);
static void on_connect(struct op *op, int res, uint32_t flags);
static void on_recv(struct op *op, int res, uint32_t flags);
static void on_send(struct op *op, int res, uint32_t flags);

/* ------------------------------------------------------------------ */
/* the account's receipt maps                                           */

/*
 * The pending entry a receipt id refers to: the primary readings first,
 * then the submit id's other reading against the receipt's primary one,
 * then the receipt's other reading against the submit id's primary one
 * (a decimal "4660" answered, "1234" in the receipt: hex without a letter),
 * then both other readings.
 */
static uint32_t pending_find(struct smpp_account *a, const struct id_keys *k)
{
	uint32_t r = rmap_get(&a->pending, &k->k[0], 0);
	if (r == RCPT_NONE)
		r = rmap_get(&a->pending, &k->k[0], 1);
	if (r == RCPT_NONE && k->two)
		r = rmap_get(&a->pending, &k->k[1], 0);
	if (r == RCPT_NONE && k->two)
		r = rmap_get(&a->pending, &k->k[1], 1);
	return r;
}

/* The early receipt for a submit_sm_resp id: the same relation as pending_find, seen from the other side. */
static uint32_t early_find(struct smpp_account *a, const struct id_keys *k)
{
	uint32_t r = rmap_get(&a->early.map, &k->k[0], 0);
	if (r == RCPT_NONE && k->two)
		r = rmap_get(&a->early.map, &k->k[1], 0);
	if (r == RCPT_NONE)
		r = rmap_get(&a->early.map, &k->k[0], 1);
	if (r == RCPT_NONE && k->two)
		r = rmap_get(&a->early.map, &k->k[1], 1);
	return r;
}

static void early_forget(struct smpp_account *a, uint32_t r)
{
	struct early *e = &a->early;
	e->ring[e->map.e[r].u.pos % e->cap] = RCPT_NONE;
	e->waiting--;
	rmap_remove(&e->map, r);
}

/* Free ring slots from the oldest end: matched ones, expired ones (dropped), or one live one if full. */
static void early_trim(struct smpp_account *a, uint64_t now, bool make_room)
{
	struct early *e = &a->early;
	while (e->len) {
		uint32_t r = e->ring[e->head];
		bool full = make_room && e->len == e->cap;
		if (r != RCPT_NONE && e->map.e[r].expires_ms > now && !full)
			return;
		if (r != RCPT_NONE) {
			char kb[32];
			log_debug("msg=\"smpp early receipt dropped\" account=%s key=%s why=%s", a->name,
				  rcpt_key_str(&e->map.e[r], kb, sizeof(kb)),
				  e->map.e[r].expires_ms <= now ? "aged" : "full");
			e->dropped++;
			early_forget(a, r);
		}
		e->head = (e->head + 1) % e->cap;
		e->len--;
	}
}

/* Put entry r of the early map into the ring, at the newest end (room was made). */
static void early_ring_push(struct early *e, uint32_t r)
{
	e->map.e[r].u.pos = e->next_pos++; /* invariant: next_pos % cap == (head + len) % cap */
	e->ring[e->map.e[r].u.pos % e->cap] = r;
	e->len++;
	e->waiting++;
}

/* Keep a receipt whose id no submit_sm_resp has named yet. */
static void early_add(struct smpp_account *a, const struct id_keys *k, uint8_t state, uint64_t now)
{
	struct early *e = &a->early;
	early_trim(a, now, true);
	uint32_t r = e->cap ? rmap_add(&e->map, k, now + e->ttl_ms) : RCPT_NONE;
	if (r == RCPT_NONE) {
		e->dropped++;
		return;
	}
	e->map.e[r].state = state;
	early_ring_push(e, r);
}

/* Move from's early receipts into a's ring, oldest first (two lanes of one account met). */
static void early_merge(struct smpp_account *a, struct early *from)
{
	struct early *e = &a->early;
	for (size_t i = 0; i < from->len; i++) {
		uint32_t r = from->ring[(from->head + i) % from->cap];
		if (r == RCPT_NONE)
			continue;
		if (e->cap)
			early_trim(a, 0, true);
		uint32_t to = e->cap ? rmap_move(&e->map, &from->map, r) : RCPT_NONE;
		if (to == RCPT_NONE) { /* this account keeps none, or out of memory */
			from->dropped++;
			continue;
		}
		early_ring_push(e, to);
	}
	e->matched += from->matched;
	e->dropped += from->dropped;
}

static void acct_sweep(struct smpp_account *a, uint64_t now)
{
	early_trim(a, now, false);
	if (now < a->next_sweep_ms)
		return;
	a->next_sweep_ms = now + SWEEP_EVERY_MS;
	struct rmap *m = &a->pending;
	for (uint32_t i = 0; i < m->n_e; i++)
		if ((m->e[i].flags & RC_USED) && m->e[i].expires_ms <= now)
			rmap_remove(m, i);
}

static void acct_free(struct smpp_account *a)
{
	rmap_release(&a->pending);
	rmap_release(&a->early.map);
	free(a->early.ring);
	free(a);
}

static struct smpp_account *acct_new(const char *name, size_t early_cap, uint64_t early_ttl_ms)
{
	struct smpp_account *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->early.cap = early_cap;
	a->early.ttl_ms = early_ttl_ms;
	a->early.ring = calloc(early_cap ? early_cap : 1, sizeof(*a->early.ring));
	if (!a->early.ring || rmap_init(&a->pending, 4096) < 0 || rmap_init(&a->early.map, 256) < 0) {
		acct_free(a);
		return NULL;
	}
	snprintf(a->name, sizeof(a->name), "%s", name);
	return a;
}

/* Move everything of `from` into `into` (two lanes of one account met). */
static void acct_merge(struct smpp_account *into, struct smpp_account *from)
{
	(void)rmap_reserve(&into->pending, (size_t)into->pending.n + from->pending.n);
	for (uint32_t i = 0; i < from->pending.n_e; i++)
		if (from->pending.e[i].flags & RC_USED)
			(void)rmap_move(&into->pending, &from->pending, i); /* out of memory: its receipt is lost */
	early_merge(into, &from->early);
	while (from->members) {
		struct smpp *m = from->members;
		from->members = m->acct_next;
		m->acct = into;
		m->acct_next = into->members;
		into->members = m;
		into->refs++;
	}
	acct_free(from);
}

static struct smpp *lane_smpp(struct lane *l)
{
	return l->adapter == &adapter_smpp ? l->adapter_state : NULL;
}

/* Join the accounts of reachable sibling lanes with the same account name. */
static void acct_join_siblings(struct smpp *s)
{
	unsigned steps = 0;
	for (struct lane *o = s->lane->next; o && o != s->lane && steps < 65536; o = o->next, steps++) {
		struct smpp *os = lane_smpp(o);
		if (os && os->acct && os->acct != s->acct && !strcmp(os->acct->name, s->acct->name))
			acct_merge(s->acct, os->acct);
	}
}

static void acct_leave(struct smpp *s)
{
	struct smpp_account *a = s->acct;
	if (!a)
		return;
	for (struct smpp **pp = &a->members; *pp; pp = &(*pp)->acct_next) {
		if (*pp == s) {
			*pp = s->acct_next;
			break;
		}
	}
	s->acct = NULL;
	if (--a->refs == 0)
		acct_free(a);
}

/* ------------------------------------------------------------------ */
/* reports                                                              */

static enum outcome state_outcome(uint8_t st, const char **reason)
{
	switch (st) {
	case SMPP_STATE_DELIVERED: *reason = NULL; return OUTCOME_DELIVERED;
	case SMPP_STATE_EXPIRED: *reason = "SMSC receipt: EXPIRED"; return OUTCOME_EXPIRED;
	case SMPP_STATE_DELETED: *reason = "SMSC receipt: DELETED"; return OUTCOME_PERMANENT;
	case SMPP_STATE_UNDELIVERABLE: *reason = "SMSC receipt: UNDELIV"; return OUTCOME_PERMANENT;
	case SMPP_STATE_REJECTED: *reason = "SMSC receipt: REJECTD"; return OUTCOME_PERMANENT;
	case SMPP_STATE_UNKNOWN: *reason = "SMSC receipt: UNKNOWN"; return OUTCOME_PERMANENT;
	}
	*reason = NULL;
	return OUTCOME_ACCEPTED; /* ENROUTE, ACCEPTD: not final */
}

static void report_receipt(struct smpp *s, uint64_t delivery_id, uint8_t state)
{
	const char *reason;
	enum outcome o = state_outcome(state, &reason);
	if (o != OUTCOME_ACCEPTED && !s->stopping)
		s->host.receipt(s->host.ctx, delivery_id, o, reason);
}

/*
 * An accepted part's id, once its delivery has been reported: a receipt
 * that came before is reported now; otherwise the part waits for its
 * receipt in the account's pending map.
 */
static void part_settle(struct smpp *s, const char *id, uint64_t delivery_id, uint16_t part,
			uint64_t expires_ms)
{
	struct smpp_account *a = s->acct;
	struct id_keys k;
	if (!a || !id_keys(id, &k))
		return;
	uint32_t e = a->early.waiting ? early_find(a, &k) : RCPT_NONE;
	if (e != RCPT_NONE && a->early.map.e[e].expires_ms <= loop_now_ms(s->host.loop))
		e = RCPT_NONE; /* aged out: dropped at the next trim, as if already gone */
	if (e != RCPT_NONE) {
		uint8_t state = a->early.map.e[e].state;
		early_forget(a, e);
		a->early.matched++;
		report_receipt(s, delivery_id, state);
		return;
	}
	uint32_t r = rmap_add(&a->pending, &k, expires_ms);
	if (r == RCPT_NONE)
		return;
	a->pending.e[r].u.delivery_id = delivery_id;
	a->pending.e[r].part = part;
}

/* A zeroed message: a reported one again, or a new one (a malloc per submit was a cost). */
static struct smpp_msg *msg_new(struct smpp *s)
{
	struct smpp_msg *m = s->msg_free;
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			abort(); /* out-of-memory policy: as the loop's timer heap */
		return m;
	}
	s->msg_free = m->next;
	memset(m, 0, sizeof(*m));
	return m;
}

static void msg_release(struct smpp *s, struct smpp_msg *m)
{
	free(m->ids);
	m->next = s->msg_free;
	s->msg_free = m;
}

/*
 * The delivery's one report, then its parts' ids (the dispatcher takes
 * receipts only for deliveries it knows as accepted). `id`: the message id
 * of a single-part message, if accepted.
 */
static void report_msg(struct smpp *s, struct smpp_msg *m, const char *id)
{
	if (!s->stopping) {
		if (m->failed)
			s->host.report(s->host.ctx, m->d, m->verdict, m->reason, m->retry_after_ms);
		else
			s->host.report(s->host.ctx, m->d, OUTCOME_ACCEPTED, NULL, 0);
	}
	if (!s->stopping && id)
		part_settle(s, id, m->delivery_id, 0, m->receipt_expires_ms);
	for (unsigned i = 0; m->ids && !s->stopping && i < m->parts; i++)
		if (m->ids[i][0])
			part_settle(s, m->ids[i], m->delivery_id, (uint16_t)i, m->receipt_expires_ms);
	msg_release(s, m);
}

static int outcome_rank(enum outcome o)
{
	return o == OUTCOME_PERMANENT ? 3 : o == OUTCOME_THROTTLED ? 2 : 1;
}

static void msg_fail(struct smpp_msg *m, enum outcome o, const char *reason, uint32_t retry_ms)
{
	if (m->failed && outcome_rank(m->verdict) >= outcome_rank(o))
		return;
	m->failed = true;
	m->verdict = o;
	m->reason = reason;
	m->retry_after_ms = retry_ms;
}

/* One part was answered (id: accepted with that message id) or given up; the last answer reports the delivery. */
static void part_done(struct smpp *s, struct slot *sl, const char *id)
{
	struct smpp_msg *m = sl->m;
	sl->m = NULL;
	s->inflight--;
	if (id && m->ids)
		snprintf(m->ids[sl->part], sizeof(m->ids[0]), "%s", id);
	if (++m->answered == m->parts)
		report_msg(s, m, m->ids ? NULL : id);
}

static void on_deferred(struct timer *t)
{
	struct smpp *s = OWNER(t, deferred_timer);
	struct smpp_msg *m = s->deferred_head;
	s->deferred_head = s->deferred_tail = NULL;
	while (m) {
		struct smpp_msg *next = m->next;
		report_msg(s, m, NULL);
		m = next;
	}
}

/* A verdict reached inside submit(): reported from the loop, never from submit(). */
static void defer(struct smpp *s, struct smpp_msg *m, enum outcome o, const char *reason)
{
	msg_fail(m, o, reason, 0);
	m->next = NULL;
	if (s->deferred_tail)
		s->deferred_tail->next = m;
	else
		s->deferred_head = m;
	s->deferred_tail = m;
	if (!loop_timer_armed(&s->deferred_timer))
		loop_timer_set(s->host.loop, &s->deferred_timer, 0, on_deferred);
}

static void set_up(struct smpp *s, bool up, const char *why)
{
	if (s->stopping || s->reported_up == up)
		return;
	s->reported_up = up;
	s->host.up(s->host.ctx, s->lane, up, why);
}

/* ------------------------------------------------------------------ */
/* connection                                                           */

static uint32_t next_seq(struct smpp *s)
{
	s->seq = s->seq >= 0x7FFFFFFF ? 1 : s->seq + 1;
	return s->seq;
}

static int emit_header(struct smpp *s, uint32_t id, uint32_t status, uint32_t seq)
{
	uint8_t pdu[SMPP_HEADER_LEN];
	size_t n = smpp_encode_header(pdu, sizeof(pdu), id, status, seq);
	int ret = buf_append(&s->out, pdu, n, OUT_MAX);
	flush_soon(s);
	return ret;
}

static void on_retry(struct timer *t)
{
	struct smpp *s = OWNER(t, retry);
	if (s->state != B_DOWN || s->stopping)
		return;
	s->fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		loop_timer_set(s->host.loop, &s->retry, s->backoff_ms, on_retry);
		return;
	}
	/* PDUs are small and answered one by one: without this, Nagle holds a
	 * deliver_sm_resp or a submit_sm behind the SMSC's delayed ACK (40 ms) */
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->state = B_CONNECTING;
	s->bind_deadline_ms = loop_now_ms(s->host.loop) + s->bind_timeout_ms;
	struct io_uring_sqe *sqe = loop_sqe(s->host.loop, &s->connect_op);
	io_uring_prep_connect(sqe, s->fd, (struct sockaddr *)&s->sa, s->salen);
	s->connect_armed = true;
}

static void arm_recv(struct smpp *s)
{
	struct io_uring_sqe *sqe = loop_sqe(s->host.loop, &s->recv_op);
	if (s->ssl)
		io_uring_prep_recv(sqe, s->fd, s->cbuf, CIPHER_BUF, 0);
	else
		io_uring_prep_recv(sqe, s->fd, s->rbuf + s->rlen, RECV_BUF - s->rlen, 0);
	s->recv_armed = true;
}

static void send_pending(struct smpp *s)
{
	struct io_uring_sqe *sqe = loop_sqe(s->host.loop, &s->send_op);
	io_uring_prep_send(sqe, s->fd, s->sending.data + s->sending_off,
			   s->sending.len - s->sending_off, MSG_NOSIGNAL);
	s->send_armed = true;
	s->n_sends++;
}

/*
 * TLS: encrypt the queued PDUs (none before the handshake is over) and move
 * every ciphertext byte the session has produced (handshake, alerts, key
 * updates, records) into `sending`. The memory BIO takes all of it: an
 * SSL_write either queues everything or fails.
 */
static int tls_seal(struct smpp *s)
{
	if (s->out.len && s->state != B_HANDSHAKE) {
		if (SSL_write(s->ssl, s->out.data, (int)s->out.len) <= 0)
			return -EIO;
		s->out.len = 0;
	}
	size_t pending = BIO_ctrl_pending(s->wbio);
	s->sending.len = 0;
	if (!pending)
		return 0;
	int ret = buf_reserve(&s->sending, pending, 2 * OUT_MAX);
	if (ret)
		return ret;
	int n = BIO_read(s->wbio, s->sending.data, (int)pending);
	s->sending.len = n > 0 ? (size_t)n : 0;
	return 0;
}

static bool has_output(const struct smpp *s)
{
	return s->out.len || (s->ssl && BIO_ctrl_pending(s->wbio));
}

static void flush(struct smpp *s)
{
	bool open = s->state == B_HANDSHAKE || s->state == B_BINDING || s->state == B_BOUND ||
		    s->state == B_UNBINDING;
	if (s->send_armed || !has_output(s) || !open)
		return;
	if (s->ssl) {
		if (tls_seal(s) < 0) {
			fail(s, "SMPP TLS write failed");
			return;
		}
		if (!s->sending.len)
			return;
	} else {
		buf_swap(&s->out, &s->sending);
		s->out.len = 0;
	}
	s->sending_off = 0;
	send_pending(s);
}

static void on_flush_timer(struct timer *t)
{
	flush(OWNER(t, flush_timer));
}

/*
 * Send what is queued once the current batch of callbacks is over: the
 * submits of one scheduling pass, the deliver_sm_resp of one recv, go out in
 * one send instead of the first PDU alone and the rest after its completion.
 * A 0 ms timer runs in this very loop iteration, before the SQEs go in.
 */
static void flush_soon(struct smpp *s)
{
	if (!s->send_armed && has_output(s) && !loop_timer_armed(&s->flush_timer))
		loop_timer_set(s->host.loop, &s->flush_timer, 0, on_flush_timer);
}

static void start_bind(struct smpp *s)
{
	s->state = B_BINDING;
	struct smpp_bind b = {.system_id = s->system_id, .password = s->password,
			      .system_type = s->system_type};
	uint8_t pdu[128];
	s->bind_seq = next_seq(s);
	size_t n = smpp_encode_bind(pdu, sizeof(pdu), SMPP_BIND_TRANSCEIVER, s->bind_seq, &b);
	if (buf_append(&s->out, pdu, n, OUT_MAX) < 0)
		fail(s, "out of memory");
	else
		flush(s);
}

/* Drive the handshake with what came in; false once the bind has failed. */
static bool tls_handshake(struct smpp *s)
{
	int r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		log_info("msg=\"smpp TLS established\" lane=%s addr=%s server_name=%s version=%s "
			 "cipher=%s verified=%s", s->lane->name, s->addr, s->server_name,
			 SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl),
			 SSL_get_verify_mode(s->ssl) & SSL_VERIFY_PEER ? "yes" : "no");
		start_bind(s);
		return s->state != B_FAILING;
	}
	if (SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ) {
		flush(s);
		return s->state != B_FAILING;
	}
	char reason[256];
	tls_failure(s->ssl, reason, sizeof(reason));
	log_warn("msg=\"smpp TLS handshake failed\" lane=%s addr=%s server_name=%s reason=\"%s\"",
		 s->lane->name, s->addr, s->server_name, reason);
	snprintf(s->why, sizeof(s->why), "SMPP TLS handshake failed: %s", reason);
	fail(s, s->why);
	return false;
}

static void on_connect(struct op *op, int res, uint32_t flags)
{
	struct smpp *s = OWNER(op, connect_op);
	s->connect_armed = false;
	if (res < 0 || s->state != B_CONNECTING) {
		fail(s, "SMPP connect failed");
		return;
	}
	if (!s->ssl_ctx) {
		arm_recv(s);
		start_bind(s);
		return;
	}
	s->ssl = tls_new_client_ssl(s->ssl_ctx, s->server_name, &s->rbio, &s->wbio);
	if (!s->ssl) {
		fail(s, "SMPP TLS session setup failed");
		return;
	}
	s->state = B_HANDSHAKE;
	arm_recv(s);
	tls_handshake(s);
}

static void on_send(struct op *op, int res, uint32_t flags)
{
	struct smpp *s = OWNER(op, send_op);
	s->send_armed = false;
	if (res <= 0 || s->state == B_FAILING) {
		fail(s, "SMPP send failed");
		return;
	}
	s->sending_off += (size_t)res;
	if (s->sending_off < s->sending.len) {
		send_pending(s); /* short send: the rest, from where the kernel stopped */
		return;
	}
	s->sending.len = 0;
	flush(s);
}

static void fail_inflight(struct smpp *s, const char *why)
{
	for (size_t i = 0; i < s->nslots && s->inflight; i++) {
		struct slot *sl = &s->slots[i];
		if (!sl->m)
			continue;
		msg_fail(sl->m, OUTCOME_TRANSIENT, why, 0);
		part_done(s, sl, NULL);
	}
}

static void free_state(struct smpp *s);

/* Finish a close once every op is back: then retry later, or free. */
static void settle(struct smpp *s)
{
	if (s->state != B_FAILING || s->connect_armed || s->recv_armed || s->send_armed ||
	    s->dispatching)
		return;
	close(s->fd);
	s->fd = -1;
	SSL_free(s->ssl); /* and its BIOs */
	s->ssl = NULL;
	s->rlen = 0;
	s->out.len = s->sending.len = 0;
	if (s->stopping) {
		s->state = B_STOPPED;
		free_state(s);
		return;
	}
	s->state = B_DOWN;
	loop_timer_set(s->host.loop, &s->retry, s->backoff_ms, on_retry);
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static void fail(struct smpp *s, const char *why)
{
	if (s->state == B_FAILING || s->state == B_DOWN || s->state == B_STOPPED) {
		settle(s);
		return;
	}
	if (!s->stopping)
		log_warn("msg=\"smpp bind lost\" lane=%s addr=%s why=\"%s\"", s->lane->name, s->addr,
			 why);
	if (why != s->last_error)
		snprintf(s->last_error, sizeof(s->last_error), "%s", why);
	s->state = B_FAILING;
	shutdown(s->fd, SHUT_RDWR); /* completes the armed recv and send */
	if (s->connect_armed) {
		struct io_uring_sqe *sqe = loop_sqe(s->host.loop, NULL);
		io_uring_prep_cancel(sqe, &s->connect_op, 0);
	}
	fail_inflight(s, why);
	set_up(s, false, why);
	settle(s);
}

/* ------------------------------------------------------------------ */
/* incoming PDUs                                                        */

static void on_bind_resp(struct smpp *s, const struct smpp_pdu *p)
{
	if (s->state != B_BINDING || p->seq != s->bind_seq) {
		fail(s, "unexpected bind_transceiver_resp");
		return;
	}
	if (p->status != ESME_ROK) {
		log_warn("msg=\"smpp bind refused\" lane=%s status=%s", s->lane->name,
			 smpp_status_name(p->status));
		fail(s, "SMPP bind refused");
		return;
	}
	s->state = B_BOUND;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->next_enq_ms = loop_now_ms(s->host.loop) + s->enquire_ms;
	s->enq_seq = 0;
	log_info("msg=\"smpp bound\" lane=%s addr=%s system_id=%s", s->lane->name, s->addr,
		 s->system_id);
	acct_join_siblings(s);
	set_up(s, true, "SMPP bound");
}

static void on_submit_resp(struct smpp *s, const struct smpp_pdu *p)
{
	struct slot *sl = &s->slots[p->seq & (s->nslots - 1)];
	if (!sl->m || sl->seq != p->seq)
		return; /* timed out already, or not ours */
	struct smpp_msg *m = sl->m;
	const char *id = NULL;
	if (p->status == ESME_ROK && p->body_err == SMPP_OK && p->u.message_id && p->u.message_id[0]) {
		id = p->u.message_id;
	} else if (p->status == ESME_ROK) {
		log_warn("msg=\"submit_sm_resp without message_id\" lane=%s", s->lane->name);
	} else if (p->status == ESME_RTHROTTLED || p->status == ESME_RMSGQFUL) {
		msg_fail(m, OUTCOME_THROTTLED, smpp_status_reason(p->status), s->throttle_ms);
	} else {
		bool tr = smpp_status_transient(p->status);
		msg_fail(m, tr ? OUTCOME_TRANSIENT : OUTCOME_PERMANENT, smpp_status_reason(p->status), 0);
	}
	part_done(s, sl, id);
}

static void on_receipt(struct smpp *s, const struct smpp_sm *sm)
{
	struct smpp_dlr dlr;
	/* the text is read only when a TLV is missing (the TLVs are preferred) */
	bool text_ok = (!sm->receipted_message_id || !sm->message_state) &&
		       smpp_dlr_parse(sm->short_message, sm->sm_length, &dlr) == 0;
	const char *id = sm->receipted_message_id ? sm->receipted_message_id : text_ok ? dlr.id : NULL;
	uint8_t st = sm->message_state ? sm->message_state : text_ok ? (uint8_t)dlr.state : 0;
	if (!id || !st) {
		log_warn("msg=\"smpp receipt not understood\" lane=%s", s->lane->name);
		return;
	}
	const char *reason;
	struct id_keys k;
	if (state_outcome(st, &reason) == OUTCOME_ACCEPTED || !id_keys(id, &k))
		return;
	uint32_t r = pending_find(s->acct, &k);
	if (r == RCPT_NONE) {
		/* before its submit_sm_resp (or its message's last one), or an id never ours */
		log_debug("msg=\"smpp receipt kept until its id is known\" lane=%s id=%s",
			  s->lane->name, id);
		early_add(s->acct, &k, st, loop_now_ms(s->host.loop));
		return;
	}
	uint64_t delivery_id = s->acct->pending.e[r].u.delivery_id;
	rmap_remove(&s->acct->pending, r);
	report_receipt(s, delivery_id, st);
}

static void on_request(struct smpp *s, const struct smpp_pdu *p)
{
	switch (p->id) {
	case SMPP_ENQUIRE_LINK:
		emit_header(s, SMPP_ENQUIRE_LINK | SMPP_RESP, ESME_ROK, p->seq);
		return;
	case SMPP_DELIVER_SM: {
		uint8_t pdu[32];
		bool ok = p->body_err == SMPP_OK;
		size_t n = smpp_encode_resp(pdu, sizeof(pdu), SMPP_DELIVER_SM | SMPP_RESP,
					    ok ? ESME_ROK : ESME_RINVCMDLEN, p->seq, NULL);
		buf_append(&s->out, pdu, n, OUT_MAX);
		flush_soon(s);
		if (ok && (p->u.sm.esm_class & SMPP_ESM_RECEIPT) && s->acct)
			on_receipt(s, &p->u.sm);
		return;
	}
	case SMPP_UNBIND:
		emit_header(s, SMPP_UNBIND | SMPP_RESP, ESME_ROK, p->seq);
		fail(s, "SMSC unbound");
		return;
	}
	emit_header(s, SMPP_GENERIC_NACK, ESME_RINVCMDID, p->seq);
}

static void on_pdu(struct smpp *s, const struct smpp_pdu *p)
{
	switch (p->id) {
	case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
		on_bind_resp(s, p);
		return;
	case SMPP_SUBMIT_SM | SMPP_RESP:
		on_submit_resp(s, p);
		return;
	case SMPP_ENQUIRE_LINK | SMPP_RESP:
		if (p->seq == s->enq_seq)
			s->enq_seq = 0;
		return;
	case SMPP_UNBIND | SMPP_RESP:
		fail(s, "unbound");
		return;
	case SMPP_GENERIC_NACK:
		if (p->seq == s->bind_seq && s->state == B_BINDING)
			fail(s, "bind answered with generic_nack");
		else
			on_submit_resp(s, p); /* a nacked submit_sm fails its part */
		return;
	}
	if (!(p->id & SMPP_RESP))
		on_request(s, p);
}

/* Decode and handle every whole PDU in rbuf; false when the stream is broken. */
static bool drain(struct smpp *s)
{
	size_t off = 0;
	while (s->state != B_FAILING) {
		struct smpp_pdu p;
		ssize_t n = smpp_decode(s->rbuf + off, s->rlen - off, &p);
		if (n < 0) {
			fail(s, "SMPP framing error");
			return false;
		}
		if (n == 0)
			break;
		off += (size_t)n;
		on_pdu(s, &p);
	}
	memmove(s->rbuf, s->rbuf + off, s->rlen - off);
	s->rlen -= off;
	return s->state != B_FAILING;
}

/* Ciphertext came in: the handshake, then plaintext into rbuf, PDUs handled as they complete. */
static bool tls_in(struct smpp *s, size_t n)
{
	if (BIO_write(s->rbio, s->cbuf, (int)n) != (int)n) {
		fail(s, "SMPP TLS: out of memory");
		return false;
	}
	if (s->state == B_HANDSHAKE && !tls_handshake(s))
		return false;
	while (s->state != B_HANDSHAKE && s->state != B_FAILING) {
		/* drain() leaves less than one PDU, so there is always room */
		int r = SSL_read(s->ssl, s->rbuf + s->rlen, (int)(RECV_BUF - s->rlen));
		if (r <= 0) {
			int e = SSL_get_error(s->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				break;
			char reason[256];
			tls_failure(s->ssl, reason, sizeof(reason));
			log_warn("msg=\"smpp TLS session ended\" lane=%s addr=%s reason=\"%s\"",
				 s->lane->name, s->addr,
				 e == SSL_ERROR_ZERO_RETURN ? "close_notify from the SMSC" : reason);
			fail(s, e == SSL_ERROR_ZERO_RETURN ? "SMSC closed the TLS session" : "SMPP TLS error");
			return false;
		}
		s->rlen += (size_t)r;
		if (!drain(s))
			return false;
	}
	flush_soon(s); /* what SSL_read itself had to answer */
	return s->state != B_FAILING;
}

static void on_recv(struct op *op, int res, uint32_t flags)
{
	struct smpp *s = OWNER(op, recv_op);
	s->recv_armed = false;
	if (res <= 0 || s->state == B_FAILING) {
		fail(s, res == 0 ? "SMSC closed the connection" : "SMPP recv failed");
		return;
	}
	s->n_recvs++;
	s->dispatching = true; /* reports may re-enter submit(); nothing frees s meanwhile */
	bool alive;
	if (s->ssl) {
		alive = tls_in(s, (size_t)res);
	} else {
		s->rlen += (size_t)res;
		alive = drain(s);
	}
	s->dispatching = false;
	if (alive)
		arm_recv(s);
	else
		settle(s);
}

/* ------------------------------------------------------------------ */
/* timers                                                               */

static void check_deadlines(struct smpp *s, uint64_t now)
{
	if ((s->state == B_CONNECTING || s->state == B_HANDSHAKE || s->state == B_BINDING) &&
	    now >= s->bind_deadline_ms) {
		fail(s, "SMPP bind timeout");
		return;
	}
	if (s->state == B_UNBINDING && now >= s->unbind_deadline_ms) {
		fail(s, "unbind timeout");
		return;
	}
	if (s->state != B_BOUND)
		return;
	if (s->enq_seq && now >= s->enq_deadline_ms) {
		fail(s, "enquire_link timeout");
		return;
	}
	if (!s->enq_seq && now >= s->next_enq_ms) {
		s->enq_seq = next_seq(s);
		s->enq_deadline_ms = now + s->resp_timeout_ms;
		s->next_enq_ms = now + s->enquire_ms;
		emit_header(s, SMPP_ENQUIRE_LINK, ESME_ROK, s->enq_seq);
	}
}

static void on_tick(struct timer *t)
{
	struct smpp *s = OWNER(t, tick);
	uint64_t now = loop_now_ms(s->host.loop);
	for (size_t i = 0; i < s->nslots && s->inflight; i++) {
		struct slot *sl = &s->slots[i];
		if (sl->m && sl->deadline_ms <= now) {
			msg_fail(sl->m, OUTCOME_TRANSIENT, "SMPP submit_sm_resp timeout", 0);
			part_done(s, sl, NULL);
		}
	}
	if (s->acct)
		acct_sweep(s->acct, now);
	loop_timer_set(s->host.loop, &s->tick, TICK_MS, on_tick);
	check_deadlines(s, now);
}

/* ------------------------------------------------------------------ */
/* submit                                                               */

static struct slot *slot_take(struct smpp *s)
{
	for (size_t tries = 0; tries < s->nslots; tries++) {
		uint32_t seq = next_seq(s);
		struct slot *sl = &s->slots[seq & (s->nslots - 1)];
		if (!sl->m) {
			sl->seq = seq;
			return sl;
		}
	}
	return NULL;
}

static void fill_sm(struct smpp *s, struct smpp_sm *sm, const char *dest, const char *validity)
{
	memset(sm, 0, sizeof(*sm));
	sm->service_type = "";
	sm->source_ton = s->source_ton;
	sm->source_npi = s->source_npi;
	sm->source_addr = s->source_addr;
	sm->dest_ton = dest[0] == '+' ? 1 : 0;
	sm->dest_npi = 1;
	sm->dest_addr = dest[0] == '+' ? dest + 1 : dest;
	sm->schedule_delivery_time = "";
	sm->validity_period = validity;
	sm->registered_delivery = 1;
}

/* The plan and part bytes of `text`, from the cache or computed into its oldest entry. */
static const struct text_enc *text_encoding(struct smpp *s, const char *text)
{
	size_t len = strlen(text);
	struct text_enc *old = &s->texts[0];
	for (unsigned k = 0; k < TEXT_CACHE; k++) {
		struct text_enc *e = &s->texts[k];
		if (e->text && e->text_len == len && !memcmp(e->text, text, len)) {
			e->used = ++s->text_clock;
			return e;
		}
		if (e->used < old->used)
			old = e;
	}
	free(old->text);
	free(old->body);
	free(old->len);
	old->text = malloc(len + 1);
	sms_text_plan(text, &old->plan);
	old->body = malloc((size_t)old->plan.parts * SMS_PART_MAX);
	old->len = malloc(old->plan.parts);
	if (!old->text || !old->body || !old->len)
		abort(); /* out-of-memory policy: as the loop's timer heap */
	memcpy(old->text, text, len + 1);
	old->text_len = len;
	for (unsigned i = 0; i < old->plan.parts; i++)
		old->len[i] = (uint8_t)sms_text_part(text, &old->plan, i, 0,
						     old->body + (size_t)i * SMS_PART_MAX);
	old->used = ++s->text_clock;
	return old;
}

static void text_cache_free(struct smpp *s)
{
	for (unsigned k = 0; k < TEXT_CACHE; k++) {
		free(s->texts[k].text);
		free(s->texts[k].body);
		free(s->texts[k].len);
	}
}

/* Encode part i straight into the output buffer; its slot waits for the response. */
static int queue_part(struct smpp *s, struct smpp_msg *m, struct smpp_sm *sm,
		      const struct text_enc *te, unsigned i)
{
	uint8_t body[SMS_PART_MAX];
	sm->sm_length = te->len[i];
	memcpy(body, te->body + (size_t)i * SMS_PART_MAX, te->len[i]);
	if (te->plan.parts > 1)
		body[3] = s->ref; /* UDH 05 00 03 ref total seq */
	sm->short_message = body;
	struct slot *sl = slot_take(s);
	if (!sl)
		return -EBUSY;
	int ret = buf_reserve(&s->out, SMPP_HEADER_LEN + 128 + SMS_PART_MAX, OUT_MAX);
	if (ret)
		return ret;
	size_t n = smpp_encode_sm(s->out.data + s->out.len, s->out.alloc - s->out.len,
				  SMPP_SUBMIT_SM, sl->seq, sm);
	if (!n)
		return -EINVAL;
	s->out.len += n;
	sl->m = m;
	sl->part = (uint16_t)i;
	sl->deadline_ms = loop_now_ms(s->host.loop) + s->resp_timeout_ms;
	s->inflight++;
	s->n_submits++;
	return 0;
}

static uint64_t receipt_expiry(struct smpp *s, struct delivery *d, char validity[17])
{
	int64_t exp = d->campaign ? campaign_expires(d->campaign) : 0, wall = loop_wall_s();
	uint64_t now = loop_now_ms(s->host.loop);
	validity[0] = 0;
	if (exp <= wall)
		return now + s->receipt_grace_ms;
	if (exp != s->validity_exp) { /* gmtime + snprintf once per expiry, not per delivery */
		smpp_time_abs(exp, s->validity_str);
		s->validity_exp = exp;
	}
	memcpy(validity, s->validity_str, sizeof(s->validity_str));
	return now + (uint64_t)(exp - wall) * 1000 + s->receipt_grace_ms;
}

static void smpp_submit(struct lane *l, struct delivery *d)
{
	struct smpp *s = l->adapter_state;
	struct smpp_msg *m = msg_new(s);
	m->d = d;
	m->delivery_id = d->id;
	if (s->state != B_BOUND) {
		defer(s, m, OUTCOME_TRANSIENT, "SMPP not bound");
		return;
	}
	const char *dest = d->address ? d->address : "";
	if (strlen(dest[0] == '+' ? dest + 1 : dest) > 20 || !dest[0]) {
		defer(s, m, OUTCOME_PERMANENT, "SMPP: destination address too long or empty");
		return;
	}
	char validity[17];
	m->receipt_expires_ms = receipt_expiry(s, d, validity);
	const char *text = d->campaign ? campaign_text(d->campaign, d->lang) : "";
	const struct text_enc *te = text_encoding(s, text);
	struct smpp_sm sm;
	fill_sm(s, &sm, dest, validity);
	sm.data_coding = te->plan.coding;
	sm.esm_class = te->plan.parts > 1 ? SMPP_ESM_UDHI : 0;
	s->ref++;
	size_t mark = s->out.len;
	for (unsigned i = 0; i < te->plan.parts; i++) {
		if (queue_part(s, m, &sm, te, i) < 0) {
			for (size_t k = 0; k < s->nslots; k++) /* undo the parts queued so far */
				if (s->slots[k].m == m) {
					s->slots[k].m = NULL;
					s->inflight--;
				}
			s->out.len = mark;
			defer(s, m, OUTCOME_TRANSIENT, "SMPP: too many outstanding parts");
			return;
		}
	}
	m->parts = (uint16_t)te->plan.parts;
	if (m->parts > 1 && !(m->ids = calloc(m->parts, sizeof(m->ids[0]))))
		abort(); /* out-of-memory policy: as the loop's timer heap */
	flush_soon(s);
}

/* ------------------------------------------------------------------ */
/* open / close                                                         */

static int resolve(struct smpp *s, const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		snprintf(err, errlen, "cannot resolve SMPP host %s:%s", host, port);
		return -1;
	}
	memcpy(&s->sa, ai->ai_addr, ai->ai_addrlen);
	s->salen = ai->ai_addrlen;
	freeaddrinfo(ai);
	snprintf(s->addr, sizeof(s->addr), "%s:%s", host, port);
	return 0;
}

static int copy_key(const struct config_lane *cfg, const char *key, const char *def, char *dst,
		    size_t cap, char *err, size_t errlen)
{
	const char *v = config_lane_get(cfg, key, def);
	if (!v || strlen(v) >= cap) {
		snprintf(err, errlen, "[lane %s] %s: %s (at most %zu characters)", cfg->name, key,
			 v ? "too long" : "required", cap - 1);
		return -1;
	}
	snprintf(dst, cap, "%s", v);
	return 0;
}

static void source_type(struct smpp *s, const struct config_lane *cfg)
{
	const char *a = s->source_addr;
	bool digits = a[0] != 0;
	for (const char *p = a[0] == '+' ? a + 1 : a; *p; p++)
		digits = digits && *p >= '0' && *p <= '9';
	unsigned ton = a[0] == '+' ? 1 : digits ? 0 : 5, npi = digits ? 1 : 0;
	if (a[0] == '+')
		memmove(s->source_addr, a + 1, strlen(a));
	s->source_ton = (uint8_t)atoi(config_lane_get(cfg, "source_ton", ton == 1 ? "1" : ton ? "5" : "0"));
	s->source_npi = (uint8_t)atoi(config_lane_get(cfg, "source_npi", npi ? "1" : "0"));
}

static int parse_bool(const struct config_lane *cfg, const char *key, const char *def, bool *out,
		      char *err, size_t errlen)
{
	const char *v = config_lane_get(cfg, key, def);
	static const char *const yes[] = {"on", "yes", "true", "1"}, *const no[] = {"off", "no", "false", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]) || !strcasecmp(v, no[i])) {
			*out = !strcasecmp(v, yes[i]);
			return 0;
		}
	}
	snprintf(err, errlen, "[lane %s] %s: on or off, not '%s'", cfg->name, key, v);
	return -1;
}

/* tls = on: the client context (CA bundle, verification) and the name to check. */
static int parse_tls(struct smpp *s, const struct config_lane *cfg, const char *host, char *err,
		     size_t errlen)
{
	bool tls, insecure;
	if (parse_bool(cfg, "tls", "off", &tls, err, errlen) < 0 ||
	    parse_bool(cfg, "insecure", "no", &insecure, err, errlen) < 0)
		return -1;
	if (!tls)
		return 0;
	if (copy_key(cfg, "server_name", host, s->server_name, sizeof(s->server_name), err, errlen))
		return -1;
	char why[256];
	s->ssl_ctx = tls_client_ctx(config_lane_get(cfg, "ca_file", NULL), !insecure, NULL, 0, why,
				    sizeof(why));
	if (!s->ssl_ctx) {
		snprintf(err, errlen, "[lane %s] ca_file: %s", cfg->name, why);
		return -1;
	}
	s->cbuf = malloc(CIPHER_BUF);
	if (!s->cbuf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (insecure)
		log_warn("msg=\"smpp TLS without certificate verification (insecure = yes)\" lane=%s",
			 cfg->name);
	return 0;
}

static int parse_config(struct smpp *s, const struct config_lane *cfg, char *err, size_t errlen)
{
	if (copy_key(cfg, "system_id", NULL, s->system_id, sizeof(s->system_id), err, errlen) ||
	    copy_key(cfg, "password", "", s->password, sizeof(s->password), err, errlen) ||
	    copy_key(cfg, "system_type", "", s->system_type, sizeof(s->system_type), err, errlen) ||
	    copy_key(cfg, "source_addr", "", s->source_addr, sizeof(s->source_addr), err, errlen))
		return -1;
	source_type(s, cfg);
	s->enquire_ms = (unsigned)atoi(config_lane_get(cfg, "enquire_link_s", "30")) * 1000;
	s->resp_timeout_ms = (unsigned)atoi(config_lane_get(cfg, "response_timeout_ms", "10000"));
	s->bind_timeout_ms = (unsigned)atoi(config_lane_get(cfg, "bind_timeout_ms", "10000"));
	s->throttle_ms = (unsigned)atoi(config_lane_get(cfg, "throttle_ms", "1000"));
	s->receipt_grace_ms = (unsigned)atoi(config_lane_get(cfg, "receipt_grace_s", "3600")) * 1000;
	if (!s->enquire_ms || !s->resp_timeout_ms || !s->bind_timeout_ms) {
		snprintf(err, errlen, "[lane %s] enquire_link_s, response_timeout_ms and "
			 "bind_timeout_ms must be positive", cfg->name);
		return -1;
	}
	long early_max = atol(config_lane_get(cfg, "early_receipts", "4096"));
	long early_ms = atol(config_lane_get(cfg, "early_receipt_ms", "0"));
	if (early_max < 0 || early_max > 1000000 || early_ms < 0) {
		snprintf(err, errlen, "[lane %s] early_receipts: 0..1000000; early_receipt_ms >= 0",
			 cfg->name);
		return -1;
	}
	s->early_max = (size_t)early_max;
	s->early_ms = early_ms ? (uint64_t)early_ms : 2 * (uint64_t)s->resp_timeout_ms;
	const char *host = config_lane_get(cfg, "host", NULL), *port = config_lane_get(cfg, "port", "2775");
	if (!host) {
		snprintf(err, errlen, "[lane %s] host: required", cfg->name);
		return -1;
	}
	if (parse_tls(s, cfg, host, err, errlen) < 0)
		return -1;
	return resolve(s, host, port, err, errlen);
}

static int join_account(struct smpp *s, const struct config_lane *cfg)
{
	char def[sizeof(s->system_id) + sizeof(s->addr) + 2];
	snprintf(def, sizeof(def), "%s@%s", s->system_id, s->addr);
	s->acct = acct_new(config_lane_get(cfg, "account", def), s->early_max, s->early_ms);
	if (!s->acct)
		return -1;
	s->acct->refs = 1;
	s->acct->members = s;
	acct_join_siblings(s);
	return 0;
}

static int alloc_bufs(struct smpp *s, unsigned window)
{
	s->nslots = 1024;
	while (s->nslots < (size_t)window * 8)
		s->nslots *= 2;
	s->slots = calloc(s->nslots, sizeof(*s->slots));
	s->rbuf = malloc(RECV_BUF);
	return s->slots && s->rbuf ? 0 : -1;
}

static int smpp_open(struct lane *l, const struct lane_host *host, const struct config_lane *cfg,
		     char *err, size_t errlen)
{
	struct smpp *s = calloc(1, sizeof(*s));
	if (!s)
		goto out_nomem;
	s->host = *host;
	s->lane = l;
	s->fd = -1;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->connect_op.cb = on_connect;
	s->recv_op.cb = on_recv;
	s->send_op.cb = on_send;
	if (parse_config(s, cfg, err, errlen) < 0)
		goto out_free_tls;
	if (alloc_bufs(s, l->window ? l->window : 64) < 0 || join_account(s, cfg) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out_free_bufs;
	}
	l->adapter_state = s;
	s->reported_up = true; /* so that the first report (false) goes out */
	set_up(s, false, "SMPP connecting");
	loop_timer_set(s->host.loop, &s->tick, TICK_MS, on_tick);
	loop_timer_set(s->host.loop, &s->retry, 0, on_retry);
	return 0;

out_free_bufs:
	free(s->slots);
	free(s->rbuf);
out_free_tls:
	SSL_CTX_free(s->ssl_ctx);
	free(s->cbuf);
	free(s);
	return -1;
out_nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void free_state(struct smpp *s)
{
	loop_timer_cancel(s->host.loop, &s->tick);
	loop_timer_cancel(s->host.loop, &s->retry);
	loop_timer_cancel(s->host.loop, &s->deferred_timer);
	loop_timer_cancel(s->host.loop, &s->flush_timer);
	text_cache_free(s);
	while (s->msg_free) {
		struct smpp_msg *m = s->msg_free;
		s->msg_free = m->next;
		free(m);
	}
	buf_release(&s->out);
	buf_release(&s->sending);
	SSL_free(s->ssl);
	SSL_CTX_free(s->ssl_ctx);
	free(s->cbuf);
	free(s->slots);
	free(s->rbuf);
	free(s);
}

static void smpp_close(struct lane *l)
{
	struct smpp *s = l->adapter_state;
	if (!s)
		return;
	l->adapter_state = NULL;
	s->stopping = true;
	struct loop *loop = s->host.loop;
	loop_timer_cancel(loop, &s->retry);
	loop_timer_cancel(loop, &s->deferred_timer);
	on_deferred(&s->deferred_timer); /* frees them, reporting nothing */
	fail_inflight(s, "closing");
	acct_leave(s);
	if (s->state == B_BOUND) {
		s->state = B_UNBINDING;
		s->unbind_seq = next_seq(s);
		s->unbind_deadline_ms = loop_now_ms(loop) + UNBIND_WAIT_MS;
		emit_header(s, SMPP_UNBIND, ESME_ROK, s->unbind_seq);
		return; /* the tick timer finishes the close */
	}
	loop_timer_cancel(loop, &s->tick);
	if (s->state == B_DOWN) {
		free_state(s);
		return;
	}
	fail(s, "closing");
}

/* Integer members become gauges tocsin_adapter_smpp_*{lane=...}; early_* are the account's. */
static void smpp_describe(struct lane *l, struct json_t *o)
{
	const struct smpp *s = l->adapter_state;
	if (!s)
		return;
	const struct smpp_account *a = s->acct;
	json_object_set_new(o, "smpp_bound", json_integer(s->state == B_BOUND));
	json_object_set_new(o, "smpp_tls", json_integer(s->ssl_ctx != NULL));
	json_object_set_new(o, "smpp_parts_in_flight", json_integer((json_int_t)s->inflight));
	json_object_set_new(o, "smpp_last_error", json_string(s->last_error));
	json_object_set_new(o, "smpp_sends", json_integer((json_int_t)s->n_sends));
	json_object_set_new(o, "smpp_recvs", json_integer((json_int_t)s->n_recvs));
	json_object_set_new(o, "smpp_submits", json_integer((json_int_t)s->n_submits));
	if (!a)
		return;
	json_object_set_new(o, "smpp_account", json_string(a->name));
	json_object_set_new(o, "smpp_early_receipts_waiting", json_integer((json_int_t)a->early.waiting));
	json_object_set_new(o, "smpp_early_receipts_matched", json_integer((json_int_t)a->early.matched));
	json_object_set_new(o, "smpp_early_receipts_dropped", json_integer((json_int_t)a->early.dropped));
}

/*
 * About n more parts are coming to the channel: the account's pending
 * entries are sized for all of them (each lane of the account passes the
 * same n: the reservation is not additive), so that the array never moves
 * while they are sent. The index grows to that size only once receipts lag
 * behind the submits (see struct rmap).
 */
static void smpp_reserve(struct lane *l, size_t n)
{
	struct smpp *s = l->adapter_state;
	if (s && s->acct) {
		struct rmap *m = &s->acct->pending;
		(void)rmap_entries_reserve(m, (size_t)m->n + n);
		m->hint = (size_t)m->n + n;
	}
}

const struct adapter_ops adapter_smpp = {
	.name = "smpp",
	.open = smpp_open,
	.submit = smpp_submit,
	.close = smpp_close,
	.describe = smpp_describe,
	.reserve = smpp_reserve,
};
