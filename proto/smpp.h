/*
 * proto/smpp.h: SMPP 3.4 PDU codec and delivery-receipt text parser.
 *
 * Pure functions over caller-owned bytes: no I/O, no allocation, no
 * globals. The decoder has three outcomes (picohttpparser's shape):
 *
 *   smpp_decode() > 0   one PDU of that many bytes was decoded
 *   smpp_decode() == 0  need more bytes (nothing consumed)
 *   smpp_decode() < 0   -enum smpp_err: the stream cannot be framed; close it
 *
 * A PDU whose header frames correctly but whose body does not parse is
 * still consumed (> 0) with pdu->body_err set, so the caller can answer it
 * with an error status and keep the session.
 *
 * Pointer lifetimes: every pointer in a decoded struct smpp_pdu points into
 * the buffer passed to smpp_decode() and is valid as long as those bytes
 * are. C-octet strings are checked to be NUL-terminated within their field
 * maximum, so they may be used as C strings directly.
 *
 * Encoders write one whole PDU into out[0..cap) and return its length, or 0
 * when it does not fit or a field exceeds its SMPP maximum.
 */
#ifndef TOCSIN_SMPP_H
#define TOCSIN_SMPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SMPP_HEADER_LEN 16
#define SMPP_MAX_PDU 65536          /* command_length above this is a framing error */
#define SMPP_INTERFACE_VERSION 0x34

/* command_id values (SMPP 3.4 §5.1.2.1); responses are 0x80000000 | request. */
#define SMPP_GENERIC_NACK 0x80000000u
#define SMPP_BIND_RECEIVER 0x00000001u
#define SMPP_BIND_TRANSMITTER 0x00000002u
#define SMPP_SUBMIT_SM 0x00000004u
#define SMPP_DELIVER_SM 0x00000005u
#define SMPP_UNBIND 0x00000006u
#define SMPP_BIND_TRANSCEIVER 0x00000009u
#define SMPP_ENQUIRE_LINK 0x00000015u
#define SMPP_RESP 0x80000000u

/* command_status values we act on (§5.1.3). */
#define ESME_ROK 0x00000000u
#define ESME_RINVCMDLEN 0x00000002u
#define ESME_RINVCMDID 0x00000003u
#define ESME_RSYSERR 0x00000008u
#define ESME_RINVDSTADR 0x0000000Bu
#define ESME_RINVPASWD 0x0000000Eu
#define ESME_RMSGQFUL 0x00000014u
#define ESME_RTHROTTLED 0x00000058u

/* esm_class bits */
#define SMPP_ESM_RECEIPT 0x04       /* deliver_sm: SMSC delivery receipt */
#define SMPP_ESM_UDHI 0x40          /* short_message starts with a UDH */

/* TLV tags (§5.3.2) */
#define SMPP_TLV_RECEIPTED_MESSAGE_ID 0x001E
#define SMPP_TLV_MESSAGE_STATE 0x0427

/* message_state values (§5.2.28); also what receipt `stat:` words map to. */
enum smpp_msg_state {
	SMPP_STATE_NONE = 0,
	SMPP_STATE_ENROUTE = 1,
	SMPP_STATE_DELIVERED = 2,
	SMPP_STATE_EXPIRED = 3,
	SMPP_STATE_DELETED = 4,
	SMPP_STATE_UNDELIVERABLE = 5,
	SMPP_STATE_ACCEPTED = 6,
	SMPP_STATE_UNKNOWN = 7,
	SMPP_STATE_REJECTED = 8,
};

enum smpp_err {
	SMPP_OK = 0,
	SMPP_ERR_LENGTH,      /* command_length < 16 or > SMPP_MAX_PDU */
	SMPP_ERR_BODY,        /* body fields overrun the PDU or a C-octet string its maximum */
	SMPP_ERR_TLV,         /* a TLV's length overruns the PDU */
	SMPP_ERR_FIELD,       /* encoding: a field is too long for SMPP */
};
const char *smpp_strerror(enum smpp_err e);

/* The name of a command_status ("ESME_RINVDSTADR"), or "ESME_UNKNOWN". */
const char *smpp_status_name(uint32_t status);
/* Static text naming a status for reports: "ESME_RINVDSTADR (0x0000000B)". */
const char *smpp_status_reason(uint32_t status);
/* Whether a non-zero command_status on submit_sm_resp is worth retrying. */
bool smpp_status_transient(uint32_t status);
/* The name of a command_id ("submit_sm_resp"), or "unknown". */
const char *smpp_command_name(uint32_t id);

struct smpp_bind {
	const char *system_id;      /* <= 15 chars */
	const char *password;       /* <= 8 */
	const char *system_type;    /* <= 12 */
	uint8_t interface_version;
	uint8_t addr_ton, addr_npi;
	const char *address_range;  /* <= 40 */
};

/* submit_sm and deliver_sm share one layout (§4.4.1, §4.6.1). */
struct smpp_sm {
	const char *service_type;   /* <= 5 */
	uint8_t source_ton, source_npi;
	const char *source_addr;    /* <= 20 */
	uint8_t dest_ton, dest_npi;
	const char *dest_addr;      /* <= 20 */
	uint8_t esm_class, protocol_id, priority_flag;
	const char *schedule_delivery_time; /* "" or 16 chars */
	const char *validity_period;        /* "" or 16 chars */
	uint8_t registered_delivery, replace_if_present, data_coding, sm_default_msg_id;
	const uint8_t *short_message;
	uint8_t sm_length;
	const uint8_t *tlvs;        /* raw TLV bytes after the mandatory fields */
	size_t tlv_len;
	/* decoded from tlvs (decode only) */
	const char *receipted_message_id; /* NULL when absent */
	uint8_t message_state;            /* 0 when absent */
};

struct smpp_pdu {
	uint32_t length, id, status, seq;
	enum smpp_err body_err;     /* SMPP_OK, or why the body did not parse */
	const uint8_t *body;        /* length - 16 bytes */
	union {
		struct smpp_bind bind;      /* bind_* requests */
		struct smpp_sm sm;          /* submit_sm, deliver_sm */
		const char *message_id;     /* submit_sm_resp, deliver_sm_resp; NULL if no body */
		const char *system_id;      /* bind_*_resp; NULL if no body */
	} u;
};

ssize_t smpp_decode(const uint8_t *buf, size_t len, struct smpp_pdu *pdu);

/* Header only: enquire_link(_resp), unbind(_resp), generic_nack. */
size_t smpp_encode_header(uint8_t *out, size_t cap, uint32_t id, uint32_t status, uint32_t seq);
/* A response whose body is one C-octet string (message_id, system_id; NULL = empty string). */
size_t smpp_encode_resp(uint8_t *out, size_t cap, uint32_t id, uint32_t status, uint32_t seq,
			const char *cstr);
size_t smpp_encode_bind(uint8_t *out, size_t cap, uint32_t id, uint32_t seq,
			const struct smpp_bind *b);
/* id is SMPP_SUBMIT_SM or SMPP_DELIVER_SM; sm->tlvs are appended as given. */
size_t smpp_encode_sm(uint8_t *out, size_t cap, uint32_t id, uint32_t seq, const struct smpp_sm *sm);
/* Append one TLV at out (cap bytes free); returns bytes written or 0. */
size_t smpp_tlv_put(uint8_t *out, size_t cap, uint16_t tag, const void *val, uint16_t len);

/* Absolute SMPP time "YYMMDDhhmmss000+" (UTC) for a Unix time; out has >= 17 bytes. */
void smpp_time_abs(int64_t unix_s, char out[17]);

/* --- delivery receipts (Appendix B text) --- */

#define SMPP_ID_MAX 65  /* message_id is a C-octet string of at most 65 octets */

struct smpp_dlr {
	char id[SMPP_ID_MAX];
	char stat[8];               /* "DELIVRD", ... (uppercased, may be cut) */
	char err[8];
	char sub[8], dlvrd[8];
	char submit_date[16], done_date[16];
	enum smpp_msg_state state;  /* from stat; SMPP_STATE_NONE when unknown */
};

/*
 * Parse "id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…".
 * Lenient: keys in any case and order, '_' for ' ' in "submit date",
 * missing fields left empty. 0 when at least id and stat were found, else -1.
 */
int smpp_dlr_parse(const uint8_t *text, size_t len, struct smpp_dlr *r);
/* "DELIVRD" -> SMPP_STATE_DELIVERED, ...; SMPP_STATE_NONE when unknown. */
enum smpp_msg_state smpp_stat_parse(const char *stat);

/*
 * Canonical form of a message id so that the submit_sm_resp id and the
 * receipt id compare equal whatever the SMSC did to them (hex or decimal,
 * case, leading zeros). as_hex reads the digits as hexadecimal, otherwise
 * decimal; the result is the decimal value ("n:12345"). Ids that are not
 * numbers (or exceed 64 bits) become "s:" + lowercase without leading
 * zeros. false when the id cannot be read that way (as_hex on a
 * non-hex id, or decimal on an id with letters) or is empty.
 */
bool smpp_id_canon(const char *id, bool as_hex, char *out, size_t cap);
/* Whether an id contains a hex letter a-f / A-F (so "it is hex"). */
bool smpp_id_has_hex_letter(const char *id);

#endif
