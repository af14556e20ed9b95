/*
 * tests/fuzz/fuzz_csv.c: libFuzzer target for proto/csv.c.
 *
 * Parses the input as a stream of records the way the loader does (restart
 * from the record start on "need more", eof at the end), checking that every
 * record consumes bytes, stays inside the input, and that its fields are
 * NUL-terminated inside scratch. Also runs the UTF-8 validator.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char scratch[CSV_SCRATCH];
	const char *in = (const char *)data;
	size_t off = 0;
	struct csv_record r;

	(void)csv_utf8_valid(in, size);
	while (off < size) {
		ssize_t n = csv_parse(in + off, size - off, true, &r, scratch,
				      sizeof(scratch));
		if (n <= 0)
			break;
		assert((size_t)n <= size - off);
		assert(r.nfields >= 1 && r.nfields <= CSV_MAX_FIELDS);
		for (size_t i = 0; i < r.nfields; i++) {
			assert(r.field[i] >= scratch &&
			       r.field[i] + r.len[i] < scratch + sizeof(scratch));
			assert(r.field[i][r.len[i]] == '\0');
		}
		off += (size_t)n;
	}
	/* The same bytes without eof must never report a record past them. */
	ssize_t n = csv_parse(in, size, false, &r, scratch, sizeof(scratch));
	assert(n < 0 || (size_t)n <= size);
	return 0;
}
