/*
 * tests/unit/test_smpp.c: proto/smpp.c, the SMPP 3.4 PDU codec, the
 * receipt text parser and message id normalization.
 *
 * Every PDU the adapter and the simulator use goes through an encode /
 * decode round trip, need-more on every strict prefix, and framing errors
 * on bad command_length values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smpp.h"
#include <ctype.h>
#include <strings.h>

/*
 * The receipt text parser as it was before it compared bytes as ASCII (a
 * strncasecmp per known key), kept as the model the current one must agree
 * with on any input.
 */
static enum smpp_msg_state ref_stat_parse(const char *stat)
{
	static const struct {
		const char *word;
		enum smpp_msg_state state;
	} words[] = {
		{"DELIVRD", SMPP_STATE_DELIVERED}, {"DELIVERED", SMPP_STATE_DELIVERED},
		{"EXPIRED", SMPP_STATE_EXPIRED},   {"DELETED", SMPP_STATE_DELETED},
		{"UNDELIV", SMPP_STATE_UNDELIVERABLE}, {"UNDELIVERABLE", SMPP_STATE_UNDELIVERABLE},
		{"ACCEPTD", SMPP_STATE_ACCEPTED},  {"ACCEPTED", SMPP_STATE_ACCEPTED},
		{"UNKNOWN", SMPP_STATE_UNKNOWN},   {"REJECTD", SMPP_STATE_REJECTED},
		{"REJECTED", SMPP_STATE_REJECTED}, {"ENROUTE", SMPP_STATE_ENROUTE},
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcasecmp(stat, words[i].word))
			return words[i].state;
	return SMPP_STATE_NONE;
}

/* reference: Which field a key names; "submit date" and "submit_date" both work. */
static char *ref_dlr_field(struct smpp_dlr *r, const char *key, size_t klen, size_t *cap)
{
	static const struct {
		const char *key;
		size_t off, cap;
	} keys[] = {
		{"id", offsetof(struct smpp_dlr, id), SMPP_ID_MAX},
		{"sub", offsetof(struct smpp_dlr, sub), 8},
		{"dlvrd", offsetof(struct smpp_dlr, dlvrd), 8},
		{"submit date", offsetof(struct smpp_dlr, submit_date), 16},
		{"submit_date", offsetof(struct smpp_dlr, submit_date), 16},
		{"done date", offsetof(struct smpp_dlr, done_date), 16},
		{"done_date", offsetof(struct smpp_dlr, done_date), 16},
		{"stat", offsetof(struct smpp_dlr, stat), 8},
		{"err", offsetof(struct smpp_dlr, err), 8},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strlen(keys[i].key) == klen && !strncasecmp(keys[i].key, key, klen)) {
			*cap = keys[i].cap;
			return (char *)r + keys[i].off;
		}
	}
	return NULL;
}

/* The key ending just before text[colon]: one word, or "submit date" / "done date". */
static size_t ref_dlr_key_start(const uint8_t *text, size_t colon)
{
	size_t k = colon;
	while (k > 0 && (isalnum(text[k - 1]) || text[k - 1] == '_'))
		k--;
	if (k >= 5 && text[k - 1] == ' ') {
		if (k >= 7 && !strncasecmp((const char *)text + k - 7, "submit ", 7))
			return k - 7;
		if (!strncasecmp((const char *)text + k - 5, "done ", 5))
			return k - 5;
	}
	return k;
}

static int ref_dlr_parse(const uint8_t *text, size_t len, struct smpp_dlr *r)
{
	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < len; i++) {
		if (text[i] != ':')
			continue;
		size_t k = ref_dlr_key_start(text, i), cap;
		char *f = ref_dlr_field(r, (const char *)text + k, i - k, &cap);
		if (k + 4 == i && !strncasecmp((const char *)text + k, "text", 4))
			break; /* the rest is message text: keys in it are not ours */
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
		*s = (char)toupper((unsigned char)*s);
	r->state = ref_stat_parse(r->stat);
	return r->id[0] && r->stat[0] ? 0 : -1;
}

/* Decoding every strict prefix needs more; the whole decodes to n. */
static void check_prefixes(const uint8_t *buf, size_t n)
{
	struct smpp_pdu p;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(smpp_decode(buf, i, &p), 0);
	assert_int_equal(smpp_decode(buf, n, &p), (ssize_t)n);
}

static void test_header_only(void **state)
{
	static const uint32_t ids[] = {SMPP_ENQUIRE_LINK, SMPP_ENQUIRE_LINK | SMPP_RESP, SMPP_UNBIND,
				       SMPP_UNBIND | SMPP_RESP, SMPP_GENERIC_NACK};
	for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
		uint8_t buf[16];
		size_t n = smpp_encode_header(buf, sizeof(buf), ids[k], 3, 0x12345678);
		assert_int_equal(n, 16);
		check_prefixes(buf, n);
		struct smpp_pdu p;
		smpp_decode(buf, n, &p);
		assert_int_equal(p.id, ids[k]);
		assert_int_equal(p.status, 3);
		assert_int_equal(p.seq, 0x12345678);
		assert_int_equal(p.body_err, SMPP_OK);
	}
	uint8_t small[15];
	assert_int_equal(smpp_encode_header(small, sizeof(small), SMPP_UNBIND, 0, 1), 0);
}

static void test_bind_round_trip(void **state)
{
	struct smpp_bind b = {.system_id = "tocsin", .password = "secret", .system_type = "WARN",
			      .addr_ton = 1, .addr_npi = 1, .address_range = ""};
	uint8_t buf[128];
	size_t n = smpp_encode_bind(buf, sizeof(buf), SMPP_BIND_TRANSCEIVER, 7, &b);
	assert_int_equal(n, 16 + 7 + 7 + 5 + 3 + 1);
	check_prefixes(buf, n);
	struct smpp_pdu p;
	smpp_decode(buf, n, &p);
	assert_int_equal(p.id, SMPP_BIND_TRANSCEIVER);
	assert_int_equal(p.body_err, SMPP_OK);
	assert_string_equal(p.u.bind.system_id, "tocsin");
	assert_string_equal(p.u.bind.password, "secret");
	assert_string_equal(p.u.bind.system_type, "WARN");
	assert_int_equal(p.u.bind.interface_version, 0x34);
	/* fields longer than SMPP allows are refused at encoding */
	b.system_id = "sixteen-chars-xx";
	assert_int_equal(smpp_encode_bind(buf, sizeof(buf), SMPP_BIND_TRANSCEIVER, 7, &b), 0);
	b.system_id = "ok";
	b.password = "123456789";
	assert_int_equal(smpp_encode_bind(buf, sizeof(buf), SMPP_BIND_TRANSCEIVER, 7, &b), 0);
}

static void test_resp_round_trip(void **state)
{
	uint8_t buf[128];
	size_t n = smpp_encode_resp(buf, sizeof(buf), SMPP_SUBMIT_SM | SMPP_RESP, 0, 9, "0A1b2C");
	check_prefixes(buf, n);
	struct smpp_pdu p;
	smpp_decode(buf, n, &p);
	assert_string_equal(p.u.message_id, "0A1b2C");
	n = smpp_encode_resp(buf, sizeof(buf), SMPP_BIND_TRANSCEIVER | SMPP_RESP, 0, 1, "SMSC");
	smpp_decode(buf, n, &p);
	assert_string_equal(p.u.system_id, "SMSC");
	/* an error response without a body */
	n = smpp_encode_header(buf, sizeof(buf), SMPP_SUBMIT_SM | SMPP_RESP, ESME_RTHROTTLED, 4);
	smpp_decode(buf, n, &p);
	assert_int_equal(p.status, ESME_RTHROTTLED);
	assert_null(p.u.message_id);
	assert_int_equal(p.body_err, SMPP_OK);
	/* deliver_sm_resp carries an empty message_id */
	n = smpp_encode_resp(buf, sizeof(buf), SMPP_DELIVER_SM | SMPP_RESP, 0, 5, NULL);
	assert_int_equal(n, 17);
	/* a message_id without its NUL is a body error, but the PDU is consumed */
	buf[16] = 'x';
	assert_int_equal(smpp_decode(buf, n, &p), 17);
	assert_int_equal(p.body_err, SMPP_ERR_BODY);
}

static size_t encode_receipt_sm(uint8_t *buf, size_t cap, const char *text, bool tlvs)
{
	uint8_t tlv[64];
	size_t tn = smpp_tlv_put(tlv, sizeof(tlv), SMPP_TLV_RECEIPTED_MESSAGE_ID, "1F", 3);
	uint8_t st = SMPP_STATE_DELIVERED;
	tn += smpp_tlv_put(tlv + tn, sizeof(tlv) - tn, SMPP_TLV_MESSAGE_STATE, &st, 1);
	struct smpp_sm sm = {.source_ton = 1, .source_npi = 1, .source_addr = "8613800000000",
			     .dest_addr = "10690000", .esm_class = SMPP_ESM_RECEIPT,
			     .short_message = (const uint8_t *)text, .sm_length = (uint8_t)strlen(text),
			     .tlvs = tlvs ? tlv : NULL, .tlv_len = tlvs ? tn : 0};
	return smpp_encode_sm(buf, cap, SMPP_DELIVER_SM, 77, &sm);
}

static void test_sm_round_trip(void **state)
{
	uint8_t msg[140];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	struct smpp_sm sm = {.service_type = "", .source_ton = 5, .source_addr = "TOCSIN",
			     .dest_ton = 1, .dest_npi = 1, .dest_addr = "8613800138000",
			     .esm_class = SMPP_ESM_UDHI, .schedule_delivery_time = "",
			     .validity_period = "240101120000000+", .registered_delivery = 1,
			     .data_coding = 8, .short_message = msg, .sm_length = sizeof(msg)};
	uint8_t buf[512];
	size_t n = smpp_encode_sm(buf, sizeof(buf), SMPP_SUBMIT_SM, 42, &sm);
	assert_true(n > 16 + 140);
	check_prefixes(buf, n);
	struct smpp_pdu p;
	smpp_decode(buf, n, &p);
	assert_int_equal(p.body_err, SMPP_OK);
	assert_string_equal(p.u.sm.dest_addr, "8613800138000");
	assert_string_equal(p.u.sm.validity_period, "240101120000000+");
	assert_int_equal(p.u.sm.data_coding, 8);
	assert_int_equal(p.u.sm.esm_class, SMPP_ESM_UDHI);
	assert_int_equal(p.u.sm.registered_delivery, 1);
	assert_int_equal(p.u.sm.sm_length, 140);
	assert_memory_equal(p.u.sm.short_message, msg, 140);
	assert_int_equal(p.u.sm.tlv_len, 0);
	/* a buffer one byte short refuses to encode */
	assert_int_equal(smpp_encode_sm(buf, n - 1, SMPP_SUBMIT_SM, 42, &sm), 0);
	/* deliver_sm receipt with TLVs */
	n = encode_receipt_sm(buf, sizeof(buf), "id:31 stat:DELIVRD", true);
	check_prefixes(buf, n);
	smpp_decode(buf, n, &p);
	assert_int_equal(p.id, SMPP_DELIVER_SM);
	assert_string_equal(p.u.sm.receipted_message_id, "1F");
	assert_int_equal(p.u.sm.message_state, SMPP_STATE_DELIVERED);
}

static void test_bad_lengths(void **state)
{
	uint8_t buf[64];
	struct smpp_pdu p;
	size_t n = smpp_encode_header(buf, sizeof(buf), SMPP_ENQUIRE_LINK, 0, 1);
	buf[3] = 15; /* below the header */
	assert_int_equal(smpp_decode(buf, n, &p), -SMPP_ERR_LENGTH);
	buf[3] = 0;
	assert_int_equal(smpp_decode(buf, n, &p), -SMPP_ERR_LENGTH);
	/* above 64 KiB: an error as soon as the length is read, not a wait for the bytes */
	buf[0] = 0, buf[1] = 1, buf[2] = 0, buf[3] = 1;
	assert_int_equal(smpp_decode(buf, 4, &p), -SMPP_ERR_LENGTH);
	buf[0] = 0xFF;
	assert_int_equal(smpp_decode(buf, 16, &p), -SMPP_ERR_LENGTH);
	/* exactly 64 KiB frames (and waits for the bytes) */
	buf[0] = 0, buf[1] = 1, buf[2] = 0, buf[3] = 0;
	assert_int_equal(smpp_decode(buf, 16, &p), 0);
}

static void test_body_errors(void **state)
{
	uint8_t buf[512];
	struct smpp_pdu p;
	size_t n = encode_receipt_sm(buf, sizeof(buf), "id:1 stat:DELIVRD", true);
	/* sm_length running past the PDU */
	uint8_t bad[512];
	memcpy(bad, buf, n);
	size_t sm_len_at = n - (4 + 3) - (4 + 1) - strlen("id:1 stat:DELIVRD") - 1;
	bad[sm_len_at] = 200;
	assert_int_equal(smpp_decode(bad, n, &p), (ssize_t)n);
	assert_int_equal(p.body_err, SMPP_ERR_BODY);
	/* a TLV length running past the PDU */
	memcpy(bad, buf, n);
	bad[n - 5 + 3] = 9;
	assert_int_equal(smpp_decode(bad, n, &p), (ssize_t)n);
	assert_int_equal(p.body_err, SMPP_ERR_TLV);
	/* a truncated TLV header */
	memcpy(bad, buf, n);
	bad[3] = (uint8_t)(n - 3);
	assert_int_equal(smpp_decode(bad, n - 3, &p), (ssize_t)(n - 3));
	assert_int_equal(p.body_err, SMPP_ERR_TLV);
	/* a body cut inside the mandatory fields */
	memcpy(bad, buf, n);
	bad[3] = 20;
	assert_int_equal(smpp_decode(bad, 20, &p), 20);
	assert_int_equal(p.body_err, SMPP_ERR_BODY);
	/* two PDUs back to back decode one at a time */
	memcpy(bad, buf, n);
	memcpy(bad + n, buf, n);
	assert_int_equal(smpp_decode(bad, 2 * n, &p), (ssize_t)n);
	assert_int_equal(smpp_decode(bad + n, n, &p), (ssize_t)n);
}

static void test_status_names(void **state)
{
	assert_string_equal(smpp_status_reason(ESME_RINVDSTADR), "ESME_RINVDSTADR (0x0000000B)");
	assert_string_equal(smpp_status_name(ESME_RTHROTTLED), "ESME_RTHROTTLED");
	assert_true(smpp_status_transient(ESME_RTHROTTLED));
	assert_true(smpp_status_transient(ESME_RMSGQFUL));
	assert_true(smpp_status_transient(ESME_RSYSERR));
	assert_false(smpp_status_transient(ESME_RINVDSTADR));
	assert_string_equal(smpp_status_name(0x1234), "ESME_UNKNOWN");
	assert_string_equal(smpp_command_name(SMPP_SUBMIT_SM | SMPP_RESP), "submit_sm_resp");
	char t[17];
	smpp_time_abs(1700000000, t); /* 2023-11-14 22:13:20 UTC */
	assert_string_equal(t, "231114221320000+");
}

static void test_dlr_formats(void **state)
{
	struct smpp_dlr r;
	const char *std = "id:0123456789 sub:001 dlvrd:001 submit date:2401011200 done "
			  "date:2401011201 stat:DELIVRD err:000 text:Hello id:999 stat:UNDELIV";
	assert_int_equal(smpp_dlr_parse((const uint8_t *)std, strlen(std), &r), 0);
	assert_string_equal(r.id, "0123456789");
	assert_string_equal(r.stat, "DELIVRD");
	assert_int_equal(r.state, SMPP_STATE_DELIVERED);
	assert_string_equal(r.submit_date, "2401011200");
	assert_string_equal(r.done_date, "2401011201");
	assert_string_equal(r.err, "000");
	/* lowercase keys and values, underscores, other order, hex id */
	const char *odd = "stat:undeliv ID:7f3A2b submit_date:2401011200 done_date:2401011201 err:005";
	assert_int_equal(smpp_dlr_parse((const uint8_t *)odd, strlen(odd), &r), 0);
	assert_string_equal(r.id, "7f3A2b");
	assert_int_equal(r.state, SMPP_STATE_UNDELIVERABLE);
	assert_string_equal(r.err, "005");
	/* expired, missing fields */
	const char *min = "id:42 stat:EXPIRED";
	assert_int_equal(smpp_dlr_parse((const uint8_t *)min, strlen(min), &r), 0);
	assert_int_equal(r.state, SMPP_STATE_EXPIRED);
	assert_string_equal(r.sub, "");
	const char *rej = "id:1 sub:1 dlvrd:0 stat:REJECTD err:0B";
	smpp_dlr_parse((const uint8_t *)rej, strlen(rej), &r);
	assert_int_equal(r.state, SMPP_STATE_REJECTED);
	/* no id, no stat, garbage, an unknown stat word */
	const char *noid = "sub:001 stat:DELIVRD";
	assert_int_equal(smpp_dlr_parse((const uint8_t *)noid, strlen(noid), &r), -1);
	assert_int_equal(smpp_dlr_parse((const uint8_t *)"::::", 4, &r), -1);
	assert_int_equal(smpp_dlr_parse((const uint8_t *)"", 0, &r), -1);
	const char *weird = "id:5 stat:FOOBAR";
	assert_int_equal(smpp_dlr_parse((const uint8_t *)weird, strlen(weird), &r), 0);
	assert_int_equal(r.state, SMPP_STATE_NONE);
	/* not NUL-terminated: the parser stops at len */
	const char *cut = "id:12345 stat:DELIVRD";
	assert_int_equal(smpp_dlr_parse((const uint8_t *)cut, 7, &r), -1);
	assert_string_equal(r.id, "1234");
	/* an over-long id is cut to SMPP_ID_MAX - 1 */
	char big[200] = "id:";
	memset(big + 3, '7', 150);
	strcpy(big + 153, " stat:DELIVRD");
	assert_int_equal(smpp_dlr_parse((const uint8_t *)big, strlen(big), &r), 0);
	assert_int_equal(strlen(r.id), SMPP_ID_MAX - 1);
}

static uint32_t rng = 88172645u;

static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Random receipt-like texts from key and value fragments (any case, NULs, high bytes): same result as the model. */
static void test_dlr_parse_matches_model(void **state)
{
	static const char *const frag[] = {
		"id:", "ID:", "Id:", "sub:", "SUB:", "dlvrd:", "submit date:", "Submit_Date:",
		"submit  date:", "done date:", "DONE_date:", "done:", "date:", "stat:", "STAT:",
		"err:", "text:", "Text:", "xid:", "_id:", " ", "  ", ":", "0123456789", "7f3A2b",
		"DELIVRD", "delivrd", "UNDELIV", "Expired", "rejected", "ENROUTE", "acceptd",
		"undeliverable", "FOOBAR", "\x00", "\xe9", "\xff", "a", "Z", "_", "-", "5"};
	for (int it = 0; it < 200000; it++) {
		uint8_t text[300];
		size_t len = 0, nfrag = next_rand() % 24;
		for (size_t f = 0; f < nfrag; f++) {
			const char *t = frag[next_rand() % (sizeof(frag) / sizeof(frag[0]))];
			uint8_t one;
			size_t n = strlen(t);
			if (t[0] == '\\') { /* one raw byte */
				one = (uint8_t)strtoul(t + 2, NULL, 16);
				t = (const char *)&one;
				n = 1;
			}
			if (len + n > sizeof(text))
				break;
			memcpy(text + len, t, n);
			len += n;
		}
		if (next_rand() % 8 == 0) /* a long value */
			for (size_t k = next_rand() % 150; k && len < sizeof(text); k--)
				text[len++] = '7';
		struct smpp_dlr a, b;
		int ra = smpp_dlr_parse(text, len, &a), rb = ref_dlr_parse(text, len, &b);
		assert_int_equal(ra, rb);
		assert_memory_equal(&a, &b, sizeof(a));
	}
	static const char *const stats[] = {"DELIVRD", "delivered", "Undeliverable", "accepted",
					    "REJECTD", "enroute", "unknown", "deleted", "EXPIRED",
					    "", "DELIVRDX", "DELIV", "\xc9XPIRED"};
	for (size_t i = 0; i < sizeof(stats) / sizeof(stats[0]); i++)
		assert_int_equal(smpp_stat_parse(stats[i]), ref_stat_parse(stats[i]));
}

static void test_id_canon(void **state)
{
	char a[80], b[80];
	/* decimal with leading zeros equals decimal */
	assert_true(smpp_id_canon("0001234", false, a, sizeof(a)));
	assert_true(smpp_id_canon("1234", false, b, sizeof(b)));
	assert_string_equal(a, b);
	/* hex in either case equals the decimal value */
	assert_true(smpp_id_canon("4d2", true, a, sizeof(a)));
	assert_string_equal(a, b);
	assert_true(smpp_id_canon("0004D2", true, a, sizeof(a)));
	assert_string_equal(a, b);
	/* decimal reading of a hex id is refused */
	assert_false(smpp_id_canon("4d2", false, a, sizeof(a)));
	assert_true(smpp_id_has_hex_letter("4d2"));
	assert_false(smpp_id_has_hex_letter("42"));
	/* non-numeric ids compare as lowercase text without leading zeros */
	assert_true(smpp_id_canon("00ab-CD", false, a, sizeof(a)));
	assert_true(smpp_id_canon("AB-cd", true, b, sizeof(b)));
	assert_string_equal(a, b);
	/* beyond 64 bits: text */
	assert_true(smpp_id_canon("123456789012345678901234567890", false, a, sizeof(a)));
	assert_string_equal(a, "s:123456789012345678901234567890");
	assert_false(smpp_id_canon("", false, a, sizeof(a)));
	assert_false(smpp_id_canon("1", false, a, 3)); /* "n:1" needs 4 bytes */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_only),
		cmocka_unit_test(test_bind_round_trip),
		cmocka_unit_test(test_resp_round_trip),
		cmocka_unit_test(test_sm_round_trip),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_body_errors),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_dlr_formats),
		cmocka_unit_test(test_dlr_parse_matches_model),
		cmocka_unit_test(test_id_canon),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
