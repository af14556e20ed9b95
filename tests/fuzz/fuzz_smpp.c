/*
 * tests/fuzz/fuzz_smpp.c: libFuzzer target for proto/smpp.c's PDU decoder.
 *
 * Decodes the input as a stream of PDUs the way the adapter does, copying
 * it to an exact-size heap buffer so ASan sees any read past the end.
 * Checks that a decoded PDU stays inside the input, that every string it
 * returns is NUL-terminated inside the PDU, and that a shorter prefix
 * never decodes to more. Receipt bodies also go through the text parser
 * and id normalization.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smpp.h"

/* Checks that survive NDEBUG (RelWithDebInfo builds define it). */
#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond))                                                               \
			abort();                                                           \
	} while (0)

static void check_str(const char *s, const uint8_t *pdu, size_t len)
{
	if (!s)
		return;
	CHECK((const uint8_t *)s >= pdu && (const uint8_t *)s < pdu + len);
	CHECK(memchr(s, 0, (size_t)(pdu + len - (const uint8_t *)s)));
}

static void check_pdu(const struct smpp_pdu *p, const uint8_t *pdu)
{
	if (p->body_err != SMPP_OK)
		return;
	if (p->id == SMPP_SUBMIT_SM || p->id == SMPP_DELIVER_SM) {
		const struct smpp_sm *sm = &p->u.sm;
		check_str(sm->source_addr, pdu, p->length);
		check_str(sm->dest_addr, pdu, p->length);
		check_str(sm->validity_period, pdu, p->length);
		check_str(sm->receipted_message_id, pdu, p->length);
		CHECK(sm->short_message + sm->sm_length <= pdu + p->length);
		CHECK(sm->tlvs + sm->tlv_len == pdu + p->length);
		struct smpp_dlr r;
		if (smpp_dlr_parse(sm->short_message, sm->sm_length, &r) == 0) {
			char k[SMPP_ID_MAX + 4];
			smpp_id_canon(r.id, true, k, sizeof(k));
			smpp_id_canon(r.id, false, k, sizeof(k));
		}
	} else if (p->id == (SMPP_SUBMIT_SM | SMPP_RESP)) {
		check_str(p->u.message_id, pdu, p->length);
	} else if (p->id == SMPP_BIND_TRANSCEIVER) {
		check_str(p->u.bind.system_id, pdu, p->length);
		check_str(p->u.bind.address_range, pdu, p->length);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	size_t off = 0;
	while (off < size) {
		struct smpp_pdu p;
		ssize_t n = smpp_decode(buf + off, size - off, &p);
		if (n <= 0)
			break;
		CHECK((size_t)n >= SMPP_HEADER_LEN && (size_t)n <= size - off);
		CHECK(n == (ssize_t)p.length && p.length <= SMPP_MAX_PDU);
		check_pdu(&p, buf + off);
		if (n > SMPP_HEADER_LEN)
			CHECK(smpp_decode(buf + off, (size_t)n - 1, &p) == 0);
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
