/*
 * proto/sms_text.c: SMS encoding choice, part boundaries and part bytes
 * (see sms_text.h). Every function walks the UTF-8 text one character at a
 * time; a character is the unit of splitting, so neither a surrogate pair
 * nor a GSM escape pair can straddle two parts.
 */
#include "sms_text.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* GSM 03.38 default alphabet: code point of each septet value. */
static const uint16_t gsm_basic[128] = {
	'@',    0xA3,   '$',    0xA5,   0xE8,   0xE9,   0xF9,   0xEC,
	0xF2,   0xC7,   '\n',   0xD8,   0xF8,   '\r',   0xC5,   0xE5,
	0x394,  '_',    0x3A6,  0x393,  0x39B,  0x3A9,  0x3A0,  0x3A8,
	0x3A3,  0x398,  0x39E,  0xFFFF, 0xC6,   0xE6,   0xDF,   0xC9,
	' ',    '!',    '"',    '#',    0xA4,   '%',    '&',    '\'',
	'(',    ')',    '*',    '+',    ',',    '-',    '.',    '/',
	'0',    '1',    '2',    '3',    '4',    '5',    '6',    '7',
	'8',    '9',    ':',    ';',    '<',    '=',    '>',    '?',
	0xA1,   'A',    'B',    'C',    'D',    'E',    'F',    'G',
	'H',    'I',    'J',    'K',    'L',    'M',    'N',    'O',
	'P',    'Q',    'R',    'S',    'T',    'U',    'V',    'W',
	'X',    'Y',    'Z',    0xC4,   0xD6,   0xD1,   0xDC,   0xA7,
	0xBF,   'a',    'b',    'c',    'd',    'e',    'f',    'g',
	'h',    'i',    'j',    'k',    'l',    'm',    'n',    'o',
	'p',    'q',    'r',    's',    't',    'u',    'v',    'w',
	'x',    'y',    'z',    0xE4,   0xF6,   0xF1,   0xFC,   0xE0,
};

/* The extension table (after ESC 0x1B). */
static const struct {
	uint16_t cp;
	uint8_t code;
} gsm_ext[] = {
	{0x0C, 0x0A}, {'^', 0x14}, {'{', 0x28}, {'}', 0x29}, {'\\', 0x2F},
	{'[', 0x3C},  {'~', 0x3D}, {']', 0x3E}, {'|', 0x40}, {0x20AC, 0x65},
};

/* Septets for cp in out[0..2): 1 or 2, or 0 when cp is not in GSM 03.38. */
static unsigned gsm_encode(uint32_t cp, uint8_t out[2])
{
	for (unsigned i = 0; i < 128; i++) {
		if (gsm_basic[i] == cp) {
			out[0] = (uint8_t)i;
			return 1;
		}
	}
	for (size_t i = 0; i < sizeof(gsm_ext) / sizeof(gsm_ext[0]); i++) {
		if (gsm_ext[i].cp == cp) {
			out[0] = 0x1B;
			out[1] = gsm_ext[i].code;
			return 2;
		}
	}
	return 0;
}

/* Decode one character; invalid sequences yield U+FFFD and consume one byte. */
static uint32_t utf8_next(const unsigned char **s)
{
	const unsigned char *p = *s;
	uint32_t cp;
	unsigned n;
	if (p[0] < 0x80) {
		*s = p + 1;
		return p[0];
	} else if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		cp = p[0] & 0x1F, n = 1;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		cp = p[0] & 0x0F, n = 2;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		cp = p[0] & 0x07, n = 3;
	} else {
		goto invalid;
	}
	for (unsigned i = 1; i <= n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			goto invalid; /* also stops at the NUL */
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		goto invalid;
	*s = p + n + 1;
	return cp;
invalid:
	*s = p + 1;
	return 0xFFFD;
}

/* Bytes of one character in the chosen coding; returns units (septets or UTF-16 units). */
static unsigned char_bytes(uint32_t cp, uint8_t coding, uint8_t out[4], size_t *nbytes)
{
	if (coding == SMS_CODING_GSM7) {
		unsigned n = gsm_encode(cp, out);
		*nbytes = n;
		return n;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(cp >> 8);
		out[1] = (uint8_t)cp;
		*nbytes = 2;
		return 1;
	}
	uint32_t v = cp - 0x10000, hi = 0xD800 + (v >> 10), lo = 0xDC00 + (v & 0x3FF);
	out[0] = (uint8_t)(hi >> 8);
	out[1] = (uint8_t)hi;
	out[2] = (uint8_t)(lo >> 8);
	out[3] = (uint8_t)lo;
	*nbytes = 4;
	return 2;
}

static bool gsm_able(const char *utf8)
{
	const unsigned char *s = (const unsigned char *)utf8;
	uint8_t tmp[2];
	while (*s)
		if (!gsm_encode(utf8_next(&s), tmp))
			return false;
	return true;
}

int sms_text_plan(const char *utf8, struct sms_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->coding = gsm_able(utf8) ? SMS_CODING_GSM7 : SMS_CODING_UCS2;
	size_t single = p->coding == SMS_CODING_GSM7 ? 160 : 70;
	size_t multi = p->coding == SMS_CODING_GSM7 ? 153 : 67;
	const unsigned char *s = (const unsigned char *)utf8;
	size_t total = 0, in_part = 0;
	unsigned parts = 1;
	uint8_t tmp[4];
	size_t nb;
	bool cut_short = false;
	while (*s) {
		unsigned u = char_bytes(utf8_next(&s), p->coding, tmp, &nb);
		if (in_part + u > multi) {
			if (parts == SMS_MAX_PARTS) {
				cut_short = true;
				break;
			}
			p->cut[parts++] = (uint32_t)total;
			in_part = 0;
		}
		in_part += u;
		total += u;
	}
	p->units = total;
	if (total <= single && !cut_short)
		parts = 1;
	p->parts = parts;
	p->cut[parts] = (uint32_t)total;
	return cut_short ? -E2BIG : 0;
}

unsigned sms_text_parts(const char *utf8)
{
	struct sms_plan p;
	sms_text_plan(utf8, &p);
	return p.parts;
}

size_t sms_text_part(const char *utf8, const struct sms_plan *p, unsigned i, uint8_t ref,
		     uint8_t out[SMS_PART_MAX])
{
	if (i >= p->parts)
		return 0;
	size_t n = 0;
	if (p->parts > 1) {
		const uint8_t udh[6] = {0x05, 0x00, 0x03, ref, (uint8_t)p->parts, (uint8_t)(i + 1)};
		memcpy(out, udh, sizeof(udh));
		n = sizeof(udh);
	}
	const unsigned char *s = (const unsigned char *)utf8;
	size_t at = 0, nb;
	uint8_t tmp[4];
	while (*s && at < p->cut[i + 1]) {
		unsigned u = char_bytes(utf8_next(&s), p->coding, tmp, &nb);
		if (at >= p->cut[i] && n + nb <= SMS_PART_MAX) {
			memcpy(out + n, tmp, nb);
			n += nb;
		}
		at += u;
	}
	return n;
}
