/*
 * proto/csv.h: RFC 4180 CSV record codec.
 *
 * Pure: bytes in, one record out, no I/O, no allocation, no globals.
 * Quoted fields may hold commas, doubled quotes ("") and line breaks;
 * records end with CRLF or LF (a CR not followed by LF is data, except as
 * the last byte of the input at end of file). A quote inside an unquoted
 * field, or anything but a comma or a line end after a closing quote, is
 * an error (strict, so that a broken export is reported, not guessed at).
 *
 * Contract:
 *   n = csv_parse(buf, len, eof, &rec, scratch, scratch_cap);
 *   n > 0:  one record was parsed from the first n bytes of buf. Its fields
 *           are copied (unquoted, NUL-terminated) into scratch; rec.field[]
 *           points there and stays valid until scratch is reused.
 *   n == 0: need more input (the record is not complete and !eof), or
 *           eof && len == 0: no more records. Call again with the same
 *           record start and more bytes appended.
 *   n < 0:  -CSV_E*; the input is unusable from this record on.
 *
 * Caps: a record longer than CSV_MAX_RECORD bytes (or with more than
 * CSV_MAX_FIELDS fields) is an error, whether or not it is complete, so a
 * caller's buffer of CSV_MAX_RECORD + 1 bytes always suffices. scratch must
 * hold CSV_SCRATCH bytes.
 */
#ifndef TOCSIN_CSV_H
#define TOCSIN_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CSV_MAX_FIELDS 32
#define CSV_MAX_RECORD (64 * 1024)
#define CSV_SCRATCH (CSV_MAX_RECORD + CSV_MAX_FIELDS)

enum csv_err {
	CSV_OK = 0,
	CSV_EQUOTE = 1,    /* stray quote, or a quoted field left open at EOF */
	CSV_EFIELDS = 2,   /* more than CSV_MAX_FIELDS fields */
	CSV_ETOOLONG = 3,  /* record longer than CSV_MAX_RECORD bytes */
	CSV_ENUL = 4,      /* NUL byte in the input */
};

struct csv_record {
	size_t nfields;                       /* >= 1 */
	const char *field[CSV_MAX_FIELDS];    /* into scratch, NUL-terminated */
	size_t len[CSV_MAX_FIELDS];
	unsigned lines;      /* physical lines the record spans (>= 1) */
	bool blank;          /* the record was an empty line */
};

ssize_t csv_parse(const char *buf, size_t len, bool eof,
		  struct csv_record *rec, char *scratch, size_t scratch_cap);

const char *csv_strerror(enum csv_err e);

/* s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool csv_utf8_valid(const char *s, size_t n);

#endif
