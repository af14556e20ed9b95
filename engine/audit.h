/*
 * engine/audit.h: the append-only, hash-chained audit log.
 *
 * Every admission, rejection, cancel, update, keyring reload and operator
 * login becomes one JSON line:
 *
 *   {"seq":N,"ts":MS,"event":"admit","detail":{...},"prev":"<hex>","hash":"<hex>"}
 *
 * where `hash` is the SHA-256 of the line's exact bytes up to `,"prev":"..."`
 * closed with "}" (the line without its hash member), and `prev` is the
 * previous line's hash (64 zeros for the first line). seq counts from 1
 * without gaps. Editing, deleting, inserting or reordering a line breaks
 * the chain at that line; audit_verify_file() names the first bad one.
 *
 * Threads: audit_log() may be called from any thread, including the loop
 * threads: it only takes a mutex to push onto a bounded queue (never
 * blocks on I/O). One writer thread appends (O_APPEND, one write per
 * batch) and fsyncs at most every AUDIT_SYNC_MS. When the queue is full
 * the entry is counted and dropped; the writer then records an
 * "audit_overflow" entry with the count, so a loss is itself on record.
 * The chain head survives restarts: audit_open() reads the last line;
 * a file whose last line is not a valid entry is refused (start-up error)
 * rather than silently forked.
 */
#ifndef TOCSIN_AUDIT_H
#define TOCSIN_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define AUDIT_QUEUE_MAX 4096
#define AUDIT_SYNC_MS 100
#define AUDIT_HEX_LEN 64

struct audit;

/* Open (create) PATH and start the writer. NULL + err on failure. */
struct audit *audit_open(const char *path, char *err, size_t errlen);
/* Write what is queued, fsync, stop the writer, free. NULL is a no-op. */
void audit_close(struct audit *a);

/*
 * Queue one entry; takes ownership of detail (an object, or NULL). With
 * a == NULL (auditing off) the detail is just released.
 */
void audit_log(struct audit *a, const char *event, json_t *detail);

/*
 * Make one line (with '\n') chained after prev_hex; *line is malloc'd and
 * hash_hex receives the new hash. 0, or -1 when out of memory.
 */
int audit_line_make(uint64_t seq, int64_t ts_ms, const char *event, const json_t *detail,
		    const char *prev_hex, char **line, char hash_hex[AUDIT_HEX_LEN + 1]);

struct audit_verify_result {
	uint64_t count;                     /* valid lines */
	char last_hash[AUDIT_HEX_LEN + 1];  /* of the last valid line */
	size_t bad_line;                    /* 1-based; 0 when the chain is intact */
	char reason[128];
};

/* Check the chain of FILE. 0 intact, 1 broken (see r->bad_line), -1 unreadable (r->reason). */
int audit_verify_file(const char *path, struct audit_verify_result *r);

#endif
