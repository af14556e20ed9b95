/*
 * proto/sms_text.h: how a text travels as SMS: encoding, parts, bytes.
 *
 * Pure functions over a NUL-terminated UTF-8 string; no allocation.
 *
 *   GSM 7-bit (data_coding 0x00) when every character is in the GSM 03.38
 *   default alphabet or its extension table (extension characters cost two
 *   septets: ESC + code): 160 septets in one SMS, else parts of 153.
 *   Septets are written unpacked, one per octet, as SMPP carries them.
 *
 *   UCS-2 (data_coding 0x08, UTF-16 big-endian) otherwise: 70 code units in
 *   one SMS, else parts of 67. Characters above U+FFFF (emoji) take a
 *   surrogate pair, which is never split across parts; a GSM escape pair
 *   is never split either.
 *
 *   Parts carry the UDH 05 00 03 ref total seq (esm_class UDHI 0x40).
 *   Invalid UTF-8 becomes U+FFFD. Texts needing more than SMS_MAX_PARTS
 *   parts are cut after SMS_MAX_PARTS parts (a UDH counts to 255).
 *
 * sms_text_parts() is what the dispatcher charges the lane's token bucket
 * with; the adapter sends exactly that many parts.
 */
#ifndef TOCSIN_SMS_TEXT_H
#define TOCSIN_SMS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define SMS_MAX_PARTS 255
#define SMS_PART_MAX 160        /* octets of short_message a part can need */
#define SMS_CODING_GSM7 0x00
#define SMS_CODING_UCS2 0x08

struct sms_plan {
	uint8_t coding;             /* SMS_CODING_GSM7 or SMS_CODING_UCS2 */
	unsigned parts;             /* >= 1 (an empty text is one empty SMS) */
	size_t units;               /* septets (GSM) or UTF-16 code units (UCS-2), after any cut */
	uint32_t cut[SMS_MAX_PARTS + 1]; /* part i is units [cut[i], cut[i + 1]) */
};

/* Number of SMS parts the text needs (1..SMS_MAX_PARTS). */
unsigned sms_text_parts(const char *utf8);

/* Choose the encoding and the part boundaries. 0, or -E2BIG when the text was cut. */
int sms_text_plan(const char *utf8, struct sms_plan *p);

/*
 * Write part i (0-based) as short_message bytes, with the UDH when
 * p->parts > 1, into out; returns the length (<= SMS_PART_MAX).
 */
size_t sms_text_part(const char *utf8, const struct sms_plan *p, unsigned i, uint8_t ref,
		     uint8_t out[SMS_PART_MAX]);

#endif
