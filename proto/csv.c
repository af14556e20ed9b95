/*
 * proto/csv.c: RFC 4180 CSV record codec (see csv.h for the contract).
 *
 * One pass over the record, copying unquoted bytes into scratch. The parse
 * is restartable rather than incremental: on "need more" nothing is kept,
 * and the caller calls again from the record start with more bytes. Records
 * are short (capped at CSV_MAX_RECORD), so the rescan costs little and the
 * codec needs no state between calls.
 *
 * Invariants: every write into scratch is bounds-checked against
 * scratch_cap; every read of buf is below len; the cursor never moves
 * past CSV_MAX_RECORD bytes without an error.
 */
#include "csv.h"

#include <string.h>

enum { NEED_MORE = 1 << 20 };  /* internal: > every -CSV_E* */

struct cursor {
	const char *buf;
	size_t len, pos;
	bool eof;
	char *out;
	size_t out_len, out_cap;
	struct csv_record *rec;
};

const char *csv_strerror(enum csv_err e)
{
	switch (e) {
	case CSV_OK: return "ok";
	case CSV_EQUOTE: return "bad quoting";
	case CSV_EFIELDS: return "too many fields";
	case CSV_ETOOLONG: return "record too long";
	case CSV_ENUL: return "NUL byte";
	}
	return "unknown error";
}

static int put(struct cursor *c, char ch)
{
	if (c->out_len >= c->out_cap)
		return -CSV_ETOOLONG;
	c->out[c->out_len++] = ch;
	return 0;
}

/* At c->pos: 0 = not a line end, else its length (1 or 2). NEED_MORE if
 * a CR is the last byte and more input may follow. */
static int line_end(const struct cursor *c)
{
	char ch = c->buf[c->pos];

	if (ch == '\n')
		return 1;
	if (ch != '\r')
		return 0;
	if (c->pos + 1 < c->len)
		return c->buf[c->pos + 1] == '\n' ? 2 : 0;
	return c->eof ? 1 : NEED_MORE;
}

/* Quoted field body, cursor just past the opening quote. Ends past the
 * closing quote. */
static int quoted(struct cursor *c)
{
	for (;;) {
		if (c->pos >= c->len)
			return c->eof ? -CSV_EQUOTE : NEED_MORE;
		char ch = c->buf[c->pos];
		if (ch == '\0')
			return -CSV_ENUL;
		if (ch == '"') {
			if (c->pos + 1 >= c->len && !c->eof)
				return NEED_MORE;
			if (c->pos + 1 < c->len && c->buf[c->pos + 1] == '"') {
				c->pos += 2;
				if (put(c, '"'))
					return -CSV_ETOOLONG;
				continue;
			}
			c->pos++;
			return 0;
		}
		if (ch == '\n')
			c->rec->lines++;
		c->pos++;
		if (put(c, ch))
			return -CSV_ETOOLONG;
	}
}

/* Unquoted field body: up to a comma, a line end or the end of input. */
static int unquoted(struct cursor *c)
{
	while (c->pos < c->len) {
		char ch = c->buf[c->pos];
		if (ch == ',')
			return 0;
		int le = line_end(c);
		if (le == NEED_MORE)
			return NEED_MORE;
		if (le)
			return 0;
		if (ch == '"')
			return -CSV_EQUOTE;
		if (ch == '\0')
			return -CSV_ENUL;
		if (put(c, ch))
			return -CSV_ETOOLONG;
		c->pos++;
	}
	return c->eof ? 0 : NEED_MORE;
}

/* After a field: 1 = another field follows, 0 = record ended. */
static int separator(struct cursor *c)
{
	if (c->pos >= c->len)
		return c->eof ? 0 : NEED_MORE;
	if (c->buf[c->pos] == ',') {
		c->pos++;
		return 1;
	}
	int le = line_end(c);
	if (le == NEED_MORE)
		return NEED_MORE;
	if (!le)
		return -CSV_EQUOTE;   /* junk after a closing quote */
	c->pos += (size_t)le;
	return 0;
}

static int field(struct cursor *c)
{
	struct csv_record *r = c->rec;

	if (r->nfields >= CSV_MAX_FIELDS)
		return -CSV_EFIELDS;
	size_t start = c->out_len;
	int rc;
	if (c->pos < c->len && c->buf[c->pos] == '"') {
		c->pos++;
		r->blank = false;
		rc = quoted(c);
	} else {
		rc = unquoted(c);
	}
	if (rc)
		return rc;
	r->field[r->nfields] = c->out + start;
	r->len[r->nfields] = c->out_len - start;
	r->nfields++;
	if (c->out_len > start)
		r->blank = false;
	return put(c, '\0');
}

ssize_t csv_parse(const char *buf, size_t len, bool eof,
		  struct csv_record *rec, char *scratch, size_t scratch_cap)
{
	struct cursor c = {
		.buf = buf, .len = len, .eof = eof, .out = scratch,
		.out_cap = scratch_cap, .rec = rec,
	};
	rec->nfields = 0;
	rec->lines = 1;
	rec->blank = true;
	if (len == 0)
		return 0;
	for (;;) {
		int rc = field(&c);
		if (rc == 0)
			rc = separator(&c);
		if (rc == NEED_MORE)
			return len > CSV_MAX_RECORD ? -CSV_ETOOLONG : 0;
		if (rc < 0)
			return rc;
		if (c.pos > CSV_MAX_RECORD)
			return -CSV_ETOOLONG;
		if (rc == 0)
			break;
		rec->blank = false;   /* a comma makes it a record */
	}
	return (ssize_t)c.pos;
}

/* Length of the UTF-8 sequence starting with byte b, 0 if b cannot start one. */
static int utf8_seq_len(unsigned char b)
{
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		return 2;
	if (b >= 0xe0 && b <= 0xef)
		return 3;
	if (b >= 0xf0 && b <= 0xf4)
		return 4;
	return 0;
}

bool csv_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		int k = utf8_seq_len(p[i]);
		if (k == 0 || i + (size_t)k > n)
			return false;
		for (int j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
		if (k == 3 && p[i] == 0xe0 && p[i + 1] < 0xa0)
			return false;   /* overlong */
		if (k == 3 && p[i] == 0xed && p[i + 1] >= 0xa0)
			return false;   /* surrogate */
		if (k == 4 && p[i] == 0xf0 && p[i + 1] < 0x90)
			return false;   /* overlong */
		if (k == 4 && p[i] == 0xf4 && p[i + 1] >= 0x90)
			return false;   /* > U+10FFFF */
		i += (size_t)k;
	}
	return true;
}
