/*
 * tests/unit/test_publish.c: the delivery-state chunks the dispatcher
 * appends to {prefix}d:{id} (publish_chunk_len): whole records, none over
 * PUBLISH_CHUNK_BYTES unless a single record is, nothing lost or doubled
 * whatever the record lengths; and the key a record carries for an address
 * (state_chunk_key): short addresses as they are, long ones (app tokens) and
 * any starting with '#' as '#' and 16 hex digits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch_internal.h"
#include "state_chunk.h"

/* n records of lengths drawn from seed, as the dispatcher writes them: "S" address NUL. */
static uint8_t *records(size_t n, unsigned seed, size_t max_addr, size_t *len)
{
	uint8_t *buf = malloc(n * (max_addr + 2)), *w = buf;
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		size_t al = 1 + (seed >> 16) % max_addr;
		*w++ = "adfec"[i % 5];
		for (size_t k = 0; k < al; k++)
			*w++ = (uint8_t)('0' + (i + k) % 10);
		*w++ = 0;
	}
	*len = (size_t)(w - buf);
	return buf;
}

static void check_chunks(const uint8_t *buf, size_t len, size_t longest_record)
{
	size_t off = 0, chunks = 0;
	while (off < len) {
		size_t c = publish_chunk_len(buf + off, len - off);
		assert_true(c > 0);
		assert_true(c <= PUBLISH_CHUNK_BYTES || c <= longest_record);
		assert_int_equal(buf[off + c - 1], 0);                /* ends a record */
		assert_non_null(strchr("adfec", buf[off]));            /* starts one */
		if (off + c < len) /* filled: the next record would not have fit */
			assert_true(c + strlen((const char *)buf + off + c) + 1 > PUBLISH_CHUNK_BYTES ||
				    c > PUBLISH_CHUNK_BYTES);
		off += c;
		chunks++;
	}
	assert_int_equal(off, len);
	assert_true(chunks >= (len + PUBLISH_CHUNK_BYTES - 1) / PUBLISH_CHUNK_BYTES);
}

static void test_chunks_are_whole_records(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 20; seed++) {
		size_t len;
		/* phones (~14 B), FCM tokens (~170 B), up to 1 KB addresses: 1 to ~60 chunks */
		size_t max_addr = seed % 3 == 0 ? 16 : seed % 3 == 1 ? 180 : 1024;
		uint8_t *buf = records(1 + seed * 1777, seed, max_addr, &len);
		check_chunks(buf, len, max_addr + 2);
		free(buf);
	}
}

static void test_small_run_is_one_chunk(void **state)
{
	(void)state;
	const uint8_t rec[] = "a+8613800000000\0d+8613800000001";
	assert_int_equal(publish_chunk_len(rec, sizeof(rec)), sizeof(rec));
}

static void test_record_longer_than_a_chunk_goes_alone(void **state)
{
	(void)state;
	size_t big = PUBLISH_CHUNK_BYTES + 100;
	uint8_t *buf = malloc(big + 20);
	assert_non_null(buf);
	buf[0] = 'd';
	memset(buf + 1, 'x', big - 2);
	buf[big - 1] = 0;
	memcpy(buf + big, "a+8613800000000", 16); /* and a small record after it */
	assert_int_equal(publish_chunk_len(buf, big + 16), big);
	assert_int_equal(publish_chunk_len(buf + big, 16), 16);
	free(buf);
}

static void test_record_keys(void **state)
{
	(void)state;
	char buf[STATE_KEY_HASHED + 1], buf2[STATE_KEY_HASHED + 1];
	size_t kl;
	const char *phone = "+8613800000001", *term = "350102001001:spk1";
	assert_ptr_equal(state_chunk_key(phone, strlen(phone), buf, &kl), phone);
	assert_int_equal(kl, strlen(phone));
	assert_ptr_equal(state_chunk_key(term, strlen(term), buf, &kl), term);
	char tok[200];
	memcpy(tok, "fcm:", 4);
	memset(tok + 4, 'A', 163);
	tok[167] = 0;
	const char *k = state_chunk_key(tok, strlen(tok), buf, &kl);
	assert_ptr_equal(k, buf);
	assert_int_equal(kl, STATE_KEY_HASHED);
	assert_int_equal(strlen(k), STATE_KEY_HASHED);
	assert_int_equal(k[0], '#');
	for (int i = 1; i < STATE_KEY_HASHED; i++)
		assert_non_null(strchr("0123456789abcdef", k[i]));
	/* the same address, the same key; one byte apart, another key */
	assert_string_equal(state_chunk_key(tok, strlen(tok), buf2, &kl), buf);
	tok[100] = 'B';
	assert_string_not_equal(state_chunk_key(tok, strlen(tok), buf2, &kl), buf);
	/* exactly STATE_KEY_PLAIN_MAX bytes stays plain; one more is hashed */
	char edge[STATE_KEY_PLAIN_MAX + 2];
	memset(edge, 'x', sizeof(edge) - 1);
	edge[sizeof(edge) - 1] = 0;
	assert_ptr_equal(state_chunk_key(edge, STATE_KEY_PLAIN_MAX, buf, &kl), edge);
	assert_ptr_equal(state_chunk_key(edge, STATE_KEY_PLAIN_MAX + 1, buf, &kl), buf);
	/* a short address starting with '#' is hashed: no record key is ambiguous */
	assert_ptr_equal(state_chunk_key("#abc", 4, buf, &kl), buf);
	assert_int_equal(kl, STATE_KEY_HASHED);
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, STATE_KEY_HASHED);
}

/* 100,000 distinct FCM-like tokens, each differing from the next in a character or
 * two (what the hash must spread): no two keys alike (a chance of ~3e-10 by luck). */
static void test_record_keys_spread(void **state)
{
	(void)state;
	enum { N = 100000 };
	char (*keys)[STATE_KEY_HASHED + 1] = calloc(N, sizeof(*keys));
	assert_non_null(keys);
	char tok[170];
	memcpy(tok, "fcm:", 4);
	memset(tok + 4, 'q', 163);
	tok[167] = 0;
	for (int i = 0; i < N; i++) {
		for (int d = 0, v = i; d < 4; d++, v /= 26) /* i in base 26, at 4 places */
			tok[4 + 40 * d + 7] = (char)('A' + v % 26);
		size_t kl;
		memcpy(keys[i], state_chunk_key(tok, 167, keys[i], &kl), kl + 1);
	}
	qsort(keys, N, sizeof(*keys), cmp_key);
	for (int i = 1; i < N; i++)
		assert_memory_not_equal(keys[i - 1], keys[i], STATE_KEY_HASHED);
	free(keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunks_are_whole_records),
		cmocka_unit_test(test_small_run_is_one_chunk),
		cmocka_unit_test(test_record_longer_than_a_chunk_goes_alone),
		cmocka_unit_test(test_record_keys),
		cmocka_unit_test(test_record_keys_spread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
