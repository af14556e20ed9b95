/*
 * tests/unit/test_sms_text.c: proto/sms_text.c, SMS encoding and parts.
 *
 * GSM 7-bit vs UCS-2 choice, the 160/153 and 70/67 limits, surrogate and
 * escape pairs never split, the UDH bytes, and invalid UTF-8.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sms_text.h"

static const char HAN[] = "\xe9\x9b\xa8"; /* 雨 U+96E8 */
static const char EMOJI[] = "\xf0\x9f\x8c\x80"; /* U+1F300, a surrogate pair */

static char *repeat(const char *unit, size_t n)
{
	size_t u = strlen(unit);
	char *s = malloc(u * n + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * u, unit, u);
	s[u * n] = 0;
	return s;
}

static void test_ascii_gsm(void **state)
{
	struct sms_plan p;
	assert_int_equal(sms_text_plan("Typhoon warning: stay indoors.", &p), 0);
	assert_int_equal(p.coding, SMS_CODING_GSM7);
	assert_int_equal(p.parts, 1);
	assert_int_equal(sms_text_parts("Typhoon warning: stay indoors."), 1);
	uint8_t out[SMS_PART_MAX];
	sms_text_plan("A@b", &p);
	size_t n = sms_text_part("A@b", &p, 0, 0, out);
	assert_int_equal(n, 3);
	assert_int_equal(out[0], 'A');
	assert_int_equal(out[1], 0x00); /* '@' is GSM 0x00 */
	assert_int_equal(out[2], 'b');
	assert_int_equal(sms_text_parts(""), 1);
}

static void test_gsm_limits(void **state)
{
	char *s160 = repeat("a", 160), *s161 = repeat("a", 161);
	assert_int_equal(sms_text_parts(s160), 1);
	assert_int_equal(sms_text_parts(s161), 2);
	struct sms_plan p;
	sms_text_plan(s161, &p);
	uint8_t out[SMS_PART_MAX];
	assert_int_equal(sms_text_part(s161, &p, 0, 9, out), 6 + 153);
	assert_int_equal(sms_text_part(s161, &p, 1, 9, out), 6 + 8);
	/* the euro sign costs an escape pair; 80 of them fill one SMS exactly */
	char *euro = repeat("\xe2\x82\xac", 80);
	sms_text_plan(euro, &p);
	assert_int_equal(p.coding, SMS_CODING_GSM7);
	assert_int_equal(p.units, 160);
	assert_int_equal(p.parts, 1);
	free(euro);
	/* 'a' + 80 euros = 161 septets: 2 parts, and no escape pair split at 153 */
	char *mixed = malloc(3 + 240);
	strcpy(mixed, "a");
	for (int i = 0; i < 80; i++)
		strcat(mixed, "\xe2\x82\xac");
	sms_text_plan(mixed, &p);
	assert_int_equal(p.parts, 2);
	assert_int_equal(p.cut[1], 153); /* 1 + 76 * 2 = 153 */
	size_t n = sms_text_part(mixed, &p, 0, 1, out);
	assert_int_equal(out[n - 2], 0x1B);
	assert_int_equal(out[n - 1], 0x65);
	free(mixed);
	char *odd = malloc(3 + 240);
	strcpy(odd, "ab");
	for (int i = 0; i < 80; i++)
		strcat(odd, "\xe2\x82\xac");
	sms_text_plan(odd, &p);
	assert_int_equal(p.cut[1], 152); /* 2 + 75 * 2, the 76th euro would straddle */
	free(odd);
	free(s160);
	free(s161);
}

static void test_cjk_limits(void **state)
{
	char *s70 = repeat(HAN, 70), *s71 = repeat(HAN, 71);
	struct sms_plan p;
	sms_text_plan(s70, &p);
	assert_int_equal(p.coding, SMS_CODING_UCS2);
	assert_int_equal(p.parts, 1);
	uint8_t out[SMS_PART_MAX];
	assert_int_equal(sms_text_part(s70, &p, 0, 0, out), 140);
	assert_int_equal(out[0], 0x96);
	assert_int_equal(out[1], 0xE8);
	sms_text_plan(s71, &p);
	assert_int_equal(p.parts, 2);
	assert_int_equal(sms_text_parts(s71), 2);
	assert_int_equal(sms_text_part(s71, &p, 0, 0x2A, out), 6 + 67 * 2);
	const uint8_t udh1[6] = {0x05, 0x00, 0x03, 0x2A, 0x02, 0x01};
	assert_memory_equal(out, udh1, 6);
	assert_int_equal(sms_text_part(s71, &p, 1, 0x2A, out), 6 + 4 * 2);
	const uint8_t udh2[6] = {0x05, 0x00, 0x03, 0x2A, 0x02, 0x02};
	assert_memory_equal(out, udh2, 6);
	assert_int_equal(sms_text_part(s71, &p, 2, 0x2A, out), 0);
	/* one Han character among ASCII forces UCS-2 */
	char mix[64];
	snprintf(mix, sizeof(mix), "Typhoon %s", HAN);
	sms_text_plan(mix, &p);
	assert_int_equal(p.coding, SMS_CODING_UCS2);
	free(s70);
	free(s71);
}

static void test_surrogates_not_split(void **state)
{
	/* 66 Han + 1 emoji: the emoji's pair would take units 67 and 68 */
	char *head = repeat(HAN, 66);
	char *s = malloc(strlen(head) + 5 + 1);
	strcpy(s, head);
	strcat(s, EMOJI);
	struct sms_plan p;
	sms_text_plan(s, &p);
	assert_int_equal(p.units, 68);
	assert_int_equal(p.parts, 1); /* 68 <= 70 */
	free(s);
	/* 66 Han + 1 emoji + 5 Han = 73 units: parts cut at 66, not 67 */
	s = malloc(strlen(head) + 4 + 15 + 1);
	strcpy(s, head);
	strcat(s, EMOJI);
	for (int i = 0; i < 5; i++)
		strcat(s, HAN);
	sms_text_plan(s, &p);
	assert_int_equal(p.parts, 2);
	assert_int_equal(p.cut[1], 66);
	uint8_t out[SMS_PART_MAX];
	assert_int_equal(sms_text_part(s, &p, 0, 1, out), 6 + 66 * 2);
	size_t n = sms_text_part(s, &p, 1, 1, out);
	assert_int_equal(n, 6 + 7 * 2);
	assert_int_equal(out[6], 0xD8); /* high surrogate opens part 2 */
	assert_int_equal(out[7], 0x3C);
	assert_int_equal(out[8], 0xDF); /* low surrogate of U+1F300 */
	assert_int_equal(out[9], 0x00);
	free(s);
	free(head);
	/* every part of a long emoji text starts on a high surrogate */
	char *emo = repeat(EMOJI, 100);
	sms_text_plan(emo, &p);
	assert_int_equal(p.parts, 4); /* 33 emoji (66 units) per part */
	for (unsigned i = 0; i < p.parts; i++) {
		n = sms_text_part(emo, &p, i, 1, out);
		assert_int_equal(out[6] & 0xFC, 0xD8);
		assert_int_equal(out[n - 2] & 0xFC, 0xDC);
	}
	free(emo);
}

static void test_invalid_utf8(void **state)
{
	struct sms_plan p;
	const char bad[] = "ab\xff\xc0\x80\xed\xa0\x80z";
	sms_text_plan(bad, &p);
	assert_int_equal(p.coding, SMS_CODING_UCS2);
	uint8_t out[SMS_PART_MAX];
	size_t n = sms_text_part(bad, &p, 0, 0, out);
	assert_int_equal(n % 2, 0);
	assert_int_equal(out[4], 0xFF); /* U+FFFD */
	assert_int_equal(out[5], 0xFD);
	/* a truncated sequence at the end does not read past the NUL */
	const char trunc[] = "a\xe9\x9b";
	sms_text_plan(trunc, &p);
	assert_int_equal(p.units, 3);
}

static void test_max_parts(void **state)
{
	char *huge = repeat(HAN, 67 * 300);
	struct sms_plan p;
	assert_int_equal(sms_text_plan(huge, &p), -E2BIG);
	assert_int_equal(p.parts, SMS_MAX_PARTS);
	assert_int_equal(sms_text_parts(huge), SMS_MAX_PARTS);
	uint8_t out[SMS_PART_MAX];
	assert_int_equal(sms_text_part(huge, &p, 254, 3, out), 6 + 134);
	assert_int_equal(out[4], 255);
	assert_int_equal(out[5], 255);
	free(huge);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ascii_gsm),
		cmocka_unit_test(test_gsm_limits),
		cmocka_unit_test(test_cjk_limits),
		cmocka_unit_test(test_surrogates_not_split),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_max_parts),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
