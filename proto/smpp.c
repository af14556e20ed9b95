/*
 * proto/smpp.c: SMPP 3.4 PDU codec and receipt text parser (see smpp.h).
 *
 * Invariants: every read is bounds-checked against command_length (never
 * against the caller's len beyond the PDU), every C-octet string is checked
 * for its NUL within its SMPP maximum, nothing is allocated.
 */
#include "smpp.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *smpp_strerror(enum smpp_err e)
{
	switch (e) {
	case SMPP_OK: return "ok";
	case SMPP_ERR_LENGTH: return "bad command_length";
	case SMPP_ERR_BODY: return "malformed PDU body";
	case SMPP_ERR_TLV: return "malformed TLV";
	case SMPP_ERR_FIELD: return "field too long";
	}
	return "unknown error";
}

#define S(hex, name, transient) {0x##hex, "ESME_" #name, "ESME_" #name " (0x" #hex ")", transient}
static const struct {
	uint32_t status;
	const char *name, *reason;
	bool transient;
} statuses[] = {
	S(00000000, ROK, false),
	S(00000001, RINVMSGLEN, false),
	S(00000002, RINVCMDLEN, false),
	S(00000003, RINVCMDID, false),
	S(00000004, RINVBNDSTS, true),
	S(00000005, RALYBND, true),
	S(00000006, RINVPRTFLG, false),
	S(00000007, RINVREGDLVFLG, false),
	S(00000008, RSYSERR, true),
	S(0000000A, RINVSRCADR, false),
	S(0000000B, RINVDSTADR, false),
	S(0000000C, RINVMSGID, false),
	S(0000000D, RBINDFAIL, true),
	S(0000000E, RINVPASWD, false),
	S(0000000F, RINVSYSID, false),
	S(00000011, RCANCELFAIL, false),
	S(00000013, RREPLACEFAIL, false),
	S(00000014, RMSGQFUL, true),
	S(00000015, RINVSERTYP, false),
	S(00000033, RINVNUMDESTS, false),
	S(00000034, RINVDLNAME, false),
	S(00000040, RINVDESTFLAG, false),
	S(00000042, RINVSUBREP, false),
	S(00000043, RINVESMCLASS, false),
	S(00000044, RCNTSUBDL, false),
	S(00000045, RSUBMITFAIL, true),
	S(00000048, RINVSRCTON, false),
	S(00000049, RINVSRCNPI, false),
	S(00000050, RINVDSTTON, false),
	S(00000051, RINVDSTNPI, false),
	S(00000053, RINVSYSTYP, false),
	S(00000054, RINVREPFLAG, false),
	S(00000055, RINVNUMMSGS, false),
	S(00000058, RTHROTTLED, true),
	S(00000061, RINVSCHED, false),
	S(00000062, RINVEXPIRY, false),
	S(00000063, RINVDFTMSGID, false),
	S(00000064, RX_T_APPN, true),
	S(00000065, RX_P_APPN, false),
	S(00000066, RX_R_APPN, false),
	S(00000067, RQUERYFAIL, true),
	S(000000C0, RINVOPTPARSTREAM, false),
	S(000000C1, ROPTPARNOTALLWD, false),
	S(000000C2, RINVPARLEN, false),
	S(000000C3, RMISSINGOPTPARAM, false),
	S(000000C4, RINVOPTPARAMVAL, false),
	S(000000FE, RDELIVERYFAILURE, true),
	S(000000FF, RUNKNOWNERR, true),
};
#undef S

const char *smpp_status_name(uint32_t status)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (statuses[i].status == status)
			return statuses[i].name;
	return "ESME_UNKNOWN";
}

const char *smpp_status_reason(uint32_t status)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (statuses[i].status == status)
			return statuses[i].reason;
	return "SMPP error status not in SMPP 3.4 (vendor-specific)";
}

bool smpp_status_transient(uint32_t status)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (statuses[i].status == status)
			return statuses[i].transient;
	/* 0x400-0x4FF are SMSC vendor-specific: assume they may clear up. */
	return status >= 0x400 && status <= 0x4FF;
}

const char *smpp_command_name(uint32_t id)
{
	switch (id & ~SMPP_RESP) {
	case SMPP_BIND_RECEIVER: return id & SMPP_RESP ? "bind_receiver_resp" : "bind_receiver";
	case SMPP_BIND_TRANSMITTER: return id & SMPP_RESP ? "bind_transmitter_resp" : "bind_transmitter";
	case SMPP_BIND_TRANSCEIVER: return id & SMPP_RESP ? "bind_transceiver_resp" : "bind_transceiver";
	case SMPP_SUBMIT_SM: return id & SMPP_RESP ? "submit_sm_resp" : "submit_sm";
	case SMPP_DELIVER_SM: return id & SMPP_RESP ? "deliver_sm_resp" : "deliver_sm";
	case SMPP_UNBIND: return id & SMPP_RESP ? "unbind_resp" : "unbind";
	case SMPP_ENQUIRE_LINK: return id & SMPP_RESP ? "enquire_link_resp" : "enquire_link";
	case 0: return id == SMPP_GENERIC_NACK ? "generic_nack" : "unknown";
	}
	return "unknown";
}

/* --- decoding --- */

struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint8_t rd_u8(struct rd *r)
{
	if (r->p >= r->end) {
		r->bad = true;
		return 0;
	}
	return *r->p++;
}

/* A C-octet string of at most max octets including its NUL. */
static const char *rd_cstr(struct rd *r, size_t max)
{
	if (r->bad)
		return "";
	size_t avail = (size_t)(r->end - r->p);
	size_t lim = avail < max ? avail : max;
	/* a loop, not memchr: these strings are a few octets (often empty), and
	 * a receipt has five of them */
	for (size_t i = 0; i < lim; i++) {
		if (!r->p[i]) {
			const char *s = (const char *)r->p;
			r->p += i + 1;
			return s;
		}
	}
	r->bad = true;
	return "";
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static enum smpp_err decode_tlvs(struct smpp_sm *sm)
{
	const uint8_t *p = sm->tlvs, *end = sm->tlvs + sm->tlv_len;
	while (p < end) {
		if (end - p < 4)
			return SMPP_ERR_TLV;
		uint16_t tag = (uint16_t)(p[0] << 8 | p[1]), len = (uint16_t)(p[2] << 8 | p[3]);
		p += 4;
		if ((size_t)(end - p) < len)
			return SMPP_ERR_TLV;
		if (tag == SMPP_TLV_RECEIPTED_MESSAGE_ID && len > 0 && len <= SMPP_ID_MAX &&
		    memchr(p, 0, len) == p + len - 1)
			sm->receipted_message_id = (const char *)p;
		else if (tag == SMPP_TLV_MESSAGE_STATE && len == 1)
			sm->message_state = p[0];
		p += len;
	}
	return SMPP_OK;
}

static enum smpp_err decode_sm(struct rd *r, struct smpp_sm *sm)
{
	sm->service_type = rd_cstr(r, 6);
	sm->source_ton = rd_u8(r);
	sm->source_npi = rd_u8(r);
	sm->source_addr = rd_cstr(r, 21);
	sm->dest_ton = rd_u8(r);
	sm->dest_npi = rd_u8(r);
	sm->dest_addr = rd_cstr(r, 21);
	sm->esm_class = rd_u8(r);
	sm->protocol_id = rd_u8(r);
	sm->priority_flag = rd_u8(r);
	sm->schedule_delivery_time = rd_cstr(r, 17);
	sm->validity_period = rd_cstr(r, 17);
	sm->registered_delivery = rd_u8(r);
	sm->replace_if_present = rd_u8(r);
	sm->data_coding = rd_u8(r);
	sm->sm_default_msg_id = rd_u8(r);
	sm->sm_length = rd_u8(r);
	if (r->bad || (size_t)(r->end - r->p) < sm->sm_length)
		return SMPP_ERR_BODY;
	sm->short_message = r->p;
	r->p += sm->sm_length;
	sm->tlvs = r->p;
	sm->tlv_len = (size_t)(r->end - r->p);
	return decode_tlvs(sm);
}

static enum smpp_err decode_bind(struct rd *r, struct smpp_bind *b)
{
	b->system_id = rd_cstr(r, 16);
	b->password = rd_cstr(r, 9);
	b->system_type = rd_cstr(r, 13);
	b->interface_version = rd_u8(r);
	b->addr_ton = rd_u8(r);
	b->addr_npi = rd_u8(r);
	b->address_range = rd_cstr(r, 41);
	return r->bad ? SMPP_ERR_BODY : SMPP_OK;
}

/* Responses whose body is one C-octet string; an error response may have no body. */
static enum smpp_err decode_cstr_resp(struct rd *r, const char **s, size_t max)
{
	*s = NULL;
	if (r->p == r->end)
		return SMPP_OK;
	*s = rd_cstr(r, max);
	return r->bad ? SMPP_ERR_BODY : SMPP_OK; /* trailing TLVs (sc_interface_version) ignored */
}

static enum smpp_err decode_body(struct smpp_pdu *pdu, struct rd *r)
{
	switch (pdu->id) {
	case SMPP_BIND_RECEIVER:
	case SMPP_BIND_TRANSMITTER:
	case SMPP_BIND_TRANSCEIVER:
		return decode_bind(r, &pdu->u.bind);
	case SMPP_SUBMIT_SM:
	case SMPP_DELIVER_SM:
		return decode_sm(r, &pdu->u.sm);
	case SMPP_SUBMIT_SM | SMPP_RESP:
	case SMPP_DELIVER_SM | SMPP_RESP:
		return decode_cstr_resp(r, &pdu->u.message_id, SMPP_ID_MAX);
	case SMPP_BIND_RECEIVER | SMPP_RESP:
	case SMPP_BIND_TRANSMITTER | SMPP_RESP:
	case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
		return decode_cstr_resp(r, &pdu->u.system_id, 16);
	}
	return SMPP_OK; /* header-only or unknown: the caller looks at id */
}

ssize_t smpp_decode(const uint8_t *buf, size_t len, struct smpp_pdu *pdu)
{
	if (len < 4)
		return 0;
	uint32_t n = be32(buf);
	if (n < SMPP_HEADER_LEN || n > SMPP_MAX_PDU)
		return -SMPP_ERR_LENGTH;
	if (len < n)
		return 0;
	memset(pdu, 0, sizeof(*pdu));
	pdu->length = n;
	pdu->id = be32(buf + 4);
	pdu->status = be32(buf + 8);
	pdu->seq = be32(buf + 12);
	pdu->body = buf + SMPP_HEADER_LEN;
	struct rd r = {.p = pdu->body, .end = buf + n};
	pdu->body_err = decode_body(pdu, &r);
	return (ssize_t)n;
}

/* --- encoding --- */

struct wr {
	uint8_t *p, *end;
	bool bad;
};

static void wr_u8(struct wr *w, uint8_t v)
{
	if (w->p >= w->end) {
		w->bad = true;
		return;
	}
	*w->p++ = v;
}

static void wr_u32(struct wr *w, uint32_t v)
{
	wr_u8(w, (uint8_t)(v >> 24));
	wr_u8(w, (uint8_t)(v >> 16));
	wr_u8(w, (uint8_t)(v >> 8));
	wr_u8(w, (uint8_t)v);
}

static void wr_bytes(struct wr *w, const void *p, size_t n)
{
	if (w->bad || (size_t)(w->end - w->p) < n) {
		w->bad = true;
		return;
	}
	if (n)
		memcpy(w->p, p, n);
	w->p += n;
}

static void wr_cstr(struct wr *w, const char *s, size_t max)
{
	s = s ? s : "";
	size_t n = strlen(s);
	if (n + 1 > max) {
		w->bad = true;
		return;
	}
	wr_bytes(w, s, n + 1);
}

static void wr_header(struct wr *w, uint32_t id, uint32_t status, uint32_t seq)
{
	wr_u32(w, 0); /* length, patched by wr_finish */
	wr_u32(w, id);
	wr_u32(w, status);
	wr_u32(w, seq);
}

static size_t wr_finish(struct wr *w, uint8_t *start)
{
	size_t n = (size_t)(w->p - start);
	if (w->bad || n > SMPP_MAX_PDU)
		return 0;
	start[0] = (uint8_t)(n >> 24);
	start[1] = (uint8_t)(n >> 16);
	start[2] = (uint8_t)(n >> 8);
	start[3] = (uint8_t)n;
	return n;
}

size_t smpp_encode_header(uint8_t *out, size_t cap, uint32_t id, uint32_t status, uint32_t seq)
{
	struct wr w = {out, out + cap, false};
	wr_header(&w, id, status, seq);
	return wr_finish(&w, out);
}

size_t smpp_encode_resp(uint8_t *out, size_t cap, uint32_t id, uint32_t status, uint32_t seq,
			const char *cstr)
{
	struct wr w = {out, out + cap, false};
	wr_header(&w, id, status, seq);
	wr_cstr(&w, cstr, SMPP_ID_MAX);
	return wr_finish(&w, out);
}

size_t smpp_encode_bind(uint8_t *out, size_t cap, uint32_t id, uint32_t seq,
			const struct smpp_bind *b)
{
	struct wr w = {out, out + cap, false};
	wr_header(&w, id, 0, seq);
	wr_cstr(&w, b->system_id, 16);
	wr_cstr(&w, b->password, 9);
	wr_cstr(&w, b->system_type, 13);
	wr_u8(&w, b->interface_version ? b->interface_version : SMPP_INTERFACE_VERSION);
	wr_u8(&w, b->addr_ton);
	wr_u8(&w, b->addr_npi);
	wr_cstr(&w, b->address_range, 41);
	return wr_finish(&w, out);
}

size_t smpp_encode_sm(uint8_t *out, size_t cap, uint32_t id, uint32_t seq, const struct smpp_sm *sm)
{
	struct wr w = {out, out + cap, false};
	wr_header(&w, id, 0, seq);
	wr_cstr(&w, sm->service_type, 6);
	wr_u8(&w, sm->source_ton);
	wr_u8(&w, sm->source_npi);
	wr_cstr(&w, sm->source_addr, 21);
	wr_u8(&w, sm->dest_ton);
	wr_u8(&w, sm->dest_npi);
	wr_cstr(&w, sm->dest_addr, 21);
	wr_u8(&w, sm->esm_class);
	wr_u8(&w, sm->protocol_id);
	wr_u8(&w, sm->priority_flag);
	wr_cstr(&w, sm->schedule_delivery_time, 17);
	wr_cstr(&w, sm->validity_period, 17);
	wr_u8(&w, sm->registered_delivery);
	wr_u8(&w, sm->replace_if_present);
	wr_u8(&w, sm->data_coding);
	wr_u8(&w, sm->sm_default_msg_id);
	wr_u8(&w, sm->sm_length);
	wr_bytes(&w, sm->short_message, sm->sm_length);
	wr_bytes(&w, sm->tlvs, sm->tlv_len);
	return wr_finish(&w, out);
}

size_t smpp_tlv_put(uint8_t *out, size_t cap, uint16_t tag, const void *val, uint16_t len)
{
	struct wr w = {out, out + cap, false};
	wr_u8(&w, (uint8_t)(tag >> 8));
	wr_u8(&w, (uint8_t)tag);
	wr_u8(&w, (uint8_t)(len >> 8));
	wr_u8(&w, (uint8_t)len);
	wr_bytes(&w, val, len);
	return w.bad ? 0 : (size_t)(w.p - out);
}

void smpp_time_abs(int64_t unix_s, char out[17])
{
	time_t t = (time_t)unix_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 17, "%02u%02u%02u%02u%02u%02u000+", (unsigned)tm.tm_year % 100u, (unsigned)tm.tm_mon % 12u + 1,
		 (unsigned)tm.tm_mday % 32u, (unsigned)tm.tm_hour % 24u, (unsigned)tm.tm_min % 60u, (unsigned)tm.tm_sec % 61u);
}

/* --- receipts --- */

/*
 * The receipt text is parsed for every receipt whose TLVs are missing (most
 * SMSCs send only the text): the helpers below compare bytes as ASCII,
 * without the locale tables or a strncasecmp per known key.
 */
static inline uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c | 0x20) : c;
}

/* n bytes of p equal the lowercase ASCII word w, whatever their case. */
static bool eq_nocase(const uint8_t *p, const char *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(p[i]) != (uint8_t)w[i])
			return false;
	return true;
}

static inline bool key_char(uint8_t c)
{
	return (lower(c) >= 'a' && lower(c) <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

enum smpp_msg_state smpp_stat_parse(const char *stat)
{
	static const struct {
		const char *word; /* lowercase */
		size_t len;
		enum smpp_msg_state state;
	} words[] = {
		{"delivrd", 7, SMPP_STATE_DELIVERED}, {"delivered", 9, SMPP_STATE_DELIVERED},
		{"expired", 7, SMPP_STATE_EXPIRED},   {"deleted", 7, SMPP_STATE_DELETED},
		{"undeliv", 7, SMPP_STATE_UNDELIVERABLE}, {"undeliverable", 13, SMPP_STATE_UNDELIVERABLE},
		{"acceptd", 7, SMPP_STATE_ACCEPTED},  {"accepted", 8, SMPP_STATE_ACCEPTED},
		{"unknown", 7, SMPP_STATE_UNKNOWN},   {"rejectd", 7, SMPP_STATE_REJECTED},
		{"rejected", 8, SMPP_STATE_REJECTED}, {"enroute", 7, SMPP_STATE_ENROUTE},
	};
	size_t len = strlen(stat);
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (words[i].len == len && eq_nocase((const uint8_t *)stat, words[i].word, len))
			return words[i].state;
	return SMPP_STATE_NONE;
}

/* "done date" / "done_date" (sep at 4), "submit date" / "submit_date" (sep at 6). */
static bool two_word_key(const uint8_t *key, const char *first, size_t flen)
{
	return eq_nocase(key, first, flen) && (key[flen] == ' ' || key[flen] == '_') &&
	       eq_nocase(key + flen + 1, "date", 4);
}

/* Which field a key names (any case); "submit date" and "submit_date" both work. */
static char *dlr_field(struct smpp_dlr *r, const uint8_t *key, size_t klen, size_t *cap)
{
	*cap = 8;
	switch (klen) {
	case 2:
		if (eq_nocase(key, "id", 2)) {
			*cap = SMPP_ID_MAX;
			return r->id;
		}
		return NULL;
	case 3:
		return eq_nocase(key, "sub", 3) ? r->sub : eq_nocase(key, "err", 3) ? r->err : NULL;
	case 4:
		return eq_nocase(key, "stat", 4) ? r->stat : NULL;
	case 5:
		return eq_nocase(key, "dlvrd", 5) ? r->dlvrd : NULL;
	case 9:
		*cap = 16;
		return two_word_key(key, "done", 4) ? r->done_date : NULL;
	case 11:
		*cap = 16;
		return two_word_key(key, "submit", 6) ? r->submit_date : NULL;
	}
	return NULL;
}

/* The key ending just before text[colon]: one word, or "submit date" / "done date". */
static size_t dlr_key_start(const uint8_t *text, size_t colon)
{
	size_t k = colon;
	while (k > 0 && key_char(text[k - 1]))
		k--;
	if (k >= 5 && text[k - 1] == ' ') {
		if (k >= 7 && eq_nocase(text + k - 7, "submit ", 7))
			return k - 7;
		if (eq_nocase(text + k - 5, "done ", 5))
			return k - 5;
	}
	return k;
}

int smpp_dlr_parse(const uint8_t *text, size_t len, struct smpp_dlr *r)
{
	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < len; i++) {
		const uint8_t *colon = memchr(text + i, ':', len - i);
		if (!colon)
			break;
		i = (size_t)(colon - text);
		size_t k = dlr_key_start(text, i), cap;
		if (k + 4 == i && eq_nocase(text + k, "text", 4))
			break; /* the rest is message text: keys in it are not ours */
		char *f = dlr_field(r, text + k, i - k, &cap);
		if (!f || f[0])
			continue; /* unknown key, or a repeated one: first wins */
		size_t v = i + 1, n = 0;
		while (v < len && text[v] == ' ')
			v++;
		while (v + n < len && text[v + n] != ' ' && text[v + n] != 0 && n + 1 < cap)
			n++;
		memcpy(f, text + v, n);
		f[n] = 0;
	}
	for (char *s = r->stat; *s; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
	r->state = smpp_stat_parse(r->stat);
	return r->id[0] && r->stat[0] ? 0 : -1;
}

bool smpp_id_has_hex_letter(const char *id)
{
	for (; *id; id++)
		if ((*id >= 'a' && *id <= 'f') || (*id >= 'A' && *id <= 'F'))
			return true;
	return false;
}

static bool canon_string(const char *id, char *out, size_t cap)
{
	while (*id == '0' && id[1])
		id++;
	size_t n = strlen(id);
	if (n + 3 > cap)
		return false;
	out[0] = 's';
	out[1] = ':';
	for (size_t i = 0; i <= n; i++)
		out[2 + i] = (char)tolower((unsigned char)id[i]);
	return true;
}

bool smpp_id_canon(const char *id, bool as_hex, char *out, size_t cap)
{
	if (!id || !id[0])
		return false;
	bool all_hex = true;
	for (const char *p = id; *p; p++)
		all_hex = all_hex && isxdigit((unsigned char)*p);
	if (!all_hex)
		return canon_string(id, out, cap);
	if (!as_hex && smpp_id_has_hex_letter(id))
		return false;
	uint64_t v = 0, base = as_hex ? 16 : 10;
	for (const char *p = id; *p; p++) {
		unsigned d = isdigit((unsigned char)*p) ? (unsigned)(*p - '0')
							 : (unsigned)(tolower((unsigned char)*p) - 'a' + 10);
		if (v > (UINT64_MAX - d) / base)
			return canon_string(id, out, cap); /* too big for a number: compare as text */
		v = v * base + d;
	}
	/* "n:" and the decimal digits; written by hand: snprintf costs more than
	 * everything else in matching a receipt */
	char digits[20];
	size_t n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (n + 3 > cap)
		return false;
	out[0] = 'n';
	out[1] = ':';
	for (size_t i = 0; i < n; i++)
		out[2 + i] = digits[n - 1 - i];
	out[2 + n] = 0;
	return true;
}
