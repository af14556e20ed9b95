/*
 * tests/unit/test_terminal_frame.c: proto/terminal_frame.c, the terminal
 * protocol's frame codec and checked message decode, and the handshake
 * HMAC (adapters/terminal_auth.c, compiled in: unit tests link the engine
 * only).
 *
 * Checks the three outcomes of the frame parser (frame, need more, error)
 * on every prefix, the length cap, round trips of every message kind, the
 * field limits of the decoder, and HMAC-SHA256 against RFC 4231.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../adapters/terminal_auth.c"
#include "terminal_frame.h"

static uint8_t arena_mem[TERMINAL_ARENA_CAP];

static size_t encode_ack(uint8_t *out, size_t cap, uint64_t seq, const char *reason)
{
	Tocsin__Terminal__Ack a = TOCSIN__TERMINAL__ACK__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	a.has_seq = a.has_state = true;
	a.seq = seq;
	a.state = TOCSIN__TERMINAL__ACK_STATE__FAILED;
	a.reason = (char *)reason;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_ACK;
	f.ack = &a;
	ssize_t n = terminal_frame_encode(&f, out, cap);
	assert_true(n > 0);
	assert_int_equal((size_t)n, terminal_frame_size(&f));
	return (size_t)n;
}

static void test_need_more_on_every_prefix(void **state)
{
	uint8_t buf[256];
	const uint8_t *payload;
	size_t plen, n = encode_ack(buf, sizeof(buf), 42, "speaker fault");
	for (size_t i = 0; i < n; i++)
		assert_int_equal(terminal_frame_parse(buf, i, &payload, &plen),
				 TERMINAL_FRAME_NEED_MORE);
	assert_int_equal(terminal_frame_parse(buf, n, &payload, &plen), (ssize_t)n);
	assert_ptr_equal(payload, buf + TERMINAL_FRAME_HDR);
	assert_int_equal(plen, n - TERMINAL_FRAME_HDR);
}

static void test_two_frames_back_to_back(void **state)
{
	uint8_t buf[512];
	const uint8_t *payload;
	size_t plen, a = encode_ack(buf, sizeof(buf), 1, NULL);
	size_t b = encode_ack(buf + a, sizeof(buf) - a, 2, "x");
	assert_int_equal(terminal_frame_parse(buf, a + b, &payload, &plen), (ssize_t)a);
	assert_int_equal(terminal_frame_parse(buf + a, b, &payload, &plen), (ssize_t)b);
}

static void test_length_limits(void **state)
{
	uint8_t hdr[TERMINAL_FRAME_HDR + 1] = {0};
	const uint8_t *payload;
	size_t plen;
	assert_int_equal(terminal_frame_parse(hdr, 4, &payload, &plen), TERMINAL_FRAME_ERROR);
	terminal_frame_header(hdr, TERMINAL_FRAME_MAX + 1);
	assert_int_equal(terminal_frame_parse(hdr, 4, &payload, &plen), TERMINAL_FRAME_ERROR);
	memset(hdr, 0xff, 4);
	assert_int_equal(terminal_frame_parse(hdr, 4, &payload, &plen), TERMINAL_FRAME_ERROR);
	terminal_frame_header(hdr, TERMINAL_FRAME_MAX); /* the largest is fine: wait for it */
	assert_int_equal(terminal_frame_parse(hdr, 5, &payload, &plen), TERMINAL_FRAME_NEED_MORE);
}

static void test_encode_refuses_small_buffer(void **state)
{
	uint8_t buf[8];
	Tocsin__Terminal__Heartbeat hb = TOCSIN__TERMINAL__HEARTBEAT__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	hb.has_time_ms = true;
	hb.time_ms = UINT64_MAX;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT;
	f.heartbeat = &hb;
	assert_int_equal(terminal_frame_encode(&f, buf, sizeof(buf)), -1);
}

static Tocsin__Terminal__Frame *roundtrip(const Tocsin__Terminal__Frame *f,
					  struct terminal_arena *a, enum terminal_decode_err *err)
{
	static uint8_t buf[4096];
	const uint8_t *payload;
	size_t plen;
	ssize_t n = terminal_frame_encode(f, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(terminal_frame_parse(buf, (size_t)n, &payload, &plen), n);
	terminal_arena_reset(a);
	return terminal_frame_decode(a, payload, plen, err);
}

static void test_alert_roundtrip(void **state)
{
	struct terminal_arena a;
	enum terminal_decode_err err;
	char *refs[] = {"W0", "W-1"};
	Tocsin__Terminal__Alert al = TOCSIN__TERMINAL__ALERT__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	terminal_arena_init(&a, arena_mem, sizeof(arena_mem));
	al.has_seq = al.has_stop = al.has_drill = al.has_expires = true;
	al.seq = 7;
	al.warning_id = "W1";
	al.text = "【演练】台风 请留在室内";
	al.stop = true;
	al.expires = 1700000000;
	al.n_references = 2;
	al.references = refs;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_ALERT;
	f.alert = &al;
	Tocsin__Terminal__Frame *g = roundtrip(&f, &a, &err);
	assert_non_null(g);
	assert_int_equal(g->body_case, TOCSIN__TERMINAL__FRAME__BODY_ALERT);
	assert_int_equal(g->alert->seq, 7);
	assert_string_equal(g->alert->text, al.text);
	assert_true(g->alert->stop);
	assert_int_equal(g->alert->n_references, 2);
	assert_string_equal(g->alert->references[1], "W-1");
}

static void test_hello_limits(void **state)
{
	struct terminal_arena a;
	enum terminal_decode_err err;
	uint8_t mac[32] = {1};
	Tocsin__Terminal__Hello h = TOCSIN__TERMINAL__HELLO__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	terminal_arena_init(&a, arena_mem, sizeof(arena_mem));
	h.terminal_id = "spk-1";
	h.has_version = h.has_mac = true;
	h.version = 1;
	h.mac.data = mac;
	h.mac.len = 32;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_HELLO;
	f.hello = &h;
	assert_non_null(roundtrip(&f, &a, &err));
	h.mac.len = 31;
	assert_null(roundtrip(&f, &a, &err));
	assert_int_equal(err, TERMINAL_DECODE_FIELD);
	h.mac.len = 32;
	h.terminal_id = "bad id";
	assert_null(roundtrip(&f, &a, &err));
	assert_int_equal(err, TERMINAL_DECODE_FIELD);
}

static void test_malformed_and_empty(void **state)
{
	struct terminal_arena a;
	enum terminal_decode_err err;
	uint8_t junk[] = {0x0a, 0x7f, 0x01}, empty[] = {0x48, 0x01}; /* unknown field 9 */
	terminal_arena_init(&a, arena_mem, sizeof(arena_mem));
	assert_null(terminal_frame_decode(&a, junk, sizeof(junk), &err));
	assert_int_equal(err, TERMINAL_DECODE_MALFORMED);
	terminal_arena_reset(&a);
	assert_null(terminal_frame_decode(&a, empty, sizeof(empty), &err));
	assert_int_equal(err, TERMINAL_DECODE_EMPTY);
	assert_string_equal(terminal_decode_strerror(TERMINAL_DECODE_EMPTY), "frame without body");
}

static void test_arena_exhaustion(void **state)
{
	struct terminal_arena a;
	enum terminal_decode_err err;
	uint8_t small[64], buf[256];
	const uint8_t *payload;
	size_t plen, n = encode_ack(buf, sizeof(buf), 9, "a long enough reason to need memory");
	terminal_arena_init(&a, small, sizeof(small));
	assert_int_equal(terminal_frame_parse(buf, n, &payload, &plen), (ssize_t)n);
	assert_null(terminal_frame_decode(&a, payload, plen, &err));
	assert_int_equal(err, TERMINAL_DECODE_MALFORMED);
}

static void test_hmac_rfc4231(void **state)
{
	/* RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?" */
	static const uint8_t want[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
		0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
		0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
	const uint8_t *nonce = (const uint8_t *)"what do ya want "; /* 16 bytes */
	uint8_t mac[32];
	assert_int_equal(terminal_auth_mac("Jefe", 4, nonce, 16, "for nothing?", mac), 0);
	assert_memory_equal(mac, want, 32);
	assert_true(terminal_auth_check("Jefe", 4, nonce, 16, "for nothing?", want, 32));
	mac[31] ^= 1;
	assert_false(terminal_auth_check("Jefe", 4, nonce, 16, "for nothing?", mac, 32));
	assert_false(terminal_auth_check("Jeff", 4, nonce, 16, "for nothing?", want, 32));
	assert_false(terminal_auth_check("Jefe", 4, nonce, 16, "for nothing!", want, 32));
	assert_false(terminal_auth_check("Jefe", 4, nonce, 16, "for nothing?", want, 31));
}

static void test_id_rule(void **state)
{
	char long_id[TERMINAL_ID_MAX + 2];
	assert_true(terminal_id_valid("spk-350102001001-01"));
	assert_true(terminal_id_valid("a.b:c@d_e-f"));
	assert_false(terminal_id_valid(""));
	assert_false(terminal_id_valid("a,b"));
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[TERMINAL_ID_MAX] = 0;
	assert_true(terminal_id_valid(long_id));
	long_id[TERMINAL_ID_MAX] = 'a';
	long_id[TERMINAL_ID_MAX + 1] = 0;
	assert_false(terminal_id_valid(long_id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_need_more_on_every_prefix),
		cmocka_unit_test(test_two_frames_back_to_back),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_encode_refuses_small_buffer),
		cmocka_unit_test(test_alert_roundtrip),
		cmocka_unit_test(test_hello_limits),
		cmocka_unit_test(test_malformed_and_empty),
		cmocka_unit_test(test_arena_exhaustion),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_id_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
