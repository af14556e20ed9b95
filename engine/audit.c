/*
 * engine/audit.c: the hash-chained audit log and its writer thread (see audit.h).
 *
 * Ownership: queued entries (event copy + detail object) belong to the
 * queue until the writer takes the whole list under the mutex; from then
 * on only the writer touches them. The chain state (seq, head hash) is the
 * writer's alone after audit_open().
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "log.h"


struct audit_item {
	char event[32];
	int64_t ts_ms;
	json_t *detail;
	struct audit_item *next;
};

struct audit {
	int fd;
	char path[512];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct audit_item *head, **tail; /* guarded by lock */
	size_t queued, dropped;          /* guarded by lock */
	bool stop;                       /* guarded by lock */
	uint64_t seq;                    /* writer only */
	char prev[AUDIT_HEX_LEN + 1];    /* writer only */
};

static const char zero_hash[AUDIT_HEX_LEN + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sha256_hex(const void *data, size_t len, char out[AUDIT_HEX_LEN + 1])
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	SHA256(data, len, d);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

int audit_line_make(uint64_t seq, int64_t ts_ms, const char *event, const json_t *detail,
		    const char *prev_hex, char **line, char hash_hex[AUDIT_HEX_LEN + 1])
{
	json_t *o = json_object();
	json_object_set_new(o, "seq", json_integer((json_int_t)seq));
	json_object_set_new(o, "ts", json_integer(ts_ms));
	json_object_set_new(o, "event", json_string(event));
	json_object_set(o, "detail", detail ? (json_t *)detail : json_object());
	if (!detail)
		json_decref(json_object_get(o, "detail"));
	json_object_set_new(o, "prev", json_string(prev_hex));
	char *body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(o);
	if (!body)
		return -1;
	size_t n = strlen(body);
	sha256_hex(body, n, hash_hex);
	*line = malloc(n + AUDIT_HEX_LEN + 16);
	if (!*line) {
		free(body);
		return -1;
	}
	body[n - 1] = 0; /* drop the closing brace */
	sprintf(*line, "%s,\"hash\":\"%s\"}\n", body, hash_hex);
	free(body);
	return 0;
}

/* --- verification --- */

#define HASH_SUFFIX_LEN (sizeof(",\"hash\":\"") - 1 + AUDIT_HEX_LEN + 2)

/* Check one line (without '\n') against the expected seq and prev. */
static int verify_line(char *line, size_t len, uint64_t want_seq, const char *prev,
		       char hash_out[AUDIT_HEX_LEN + 1], char *why, size_t whylen)
{
	if (len < HASH_SUFFIX_LEN + 2 || strncmp(line + len - HASH_SUFFIX_LEN, ",\"hash\":\"", 9) ||
	    strcmp(line + len - 2, "\"}")) {
		snprintf(why, whylen, "not an audit entry (no trailing hash)");
		return -1;
	}
	memcpy(hash_out, line + len - AUDIT_HEX_LEN - 2, AUDIT_HEX_LEN);
	hash_out[AUDIT_HEX_LEN] = 0;
	size_t body_len = len - HASH_SUFFIX_LEN;
	char saved = line[body_len];
	line[body_len] = '}';
	char calc[AUDIT_HEX_LEN + 1];
	sha256_hex(line, body_len + 1, calc);
	json_t *o = json_loadb(line, body_len + 1, 0, NULL);
	line[body_len] = saved;
	int ret = -1;
	if (strcmp(calc, hash_out))
		snprintf(why, whylen, "hash mismatch: the line was altered");
	else if (!o || !json_is_integer(json_object_get(o, "seq")))
		snprintf(why, whylen, "malformed entry");
	else if ((uint64_t)json_integer_value(json_object_get(o, "seq")) != want_seq)
		snprintf(why, whylen, "seq %lld, expected %llu: a line was removed, added or moved",
			 (long long)json_integer_value(json_object_get(o, "seq")),
			 (unsigned long long)want_seq);
	else if (!json_is_string(json_object_get(o, "prev")) ||
		 strcmp(json_string_value(json_object_get(o, "prev")), prev))
		snprintf(why, whylen, "prev does not match the previous line's hash");
	else
		ret = 0;
	json_decref(o);
	return ret;
}

int audit_verify_file(const char *path, struct audit_verify_result *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->last_hash, sizeof(r->last_hash), "%s", zero_hash);
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(r->reason, sizeof(r->reason), "%s", strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		size_t len = (size_t)n;
		char hash[AUDIT_HEX_LEN + 1];
		bool nl = line[len - 1] == '\n';
		if (nl)
			line[--len] = 0;
		if (!nl || verify_line(line, len, r->count + 1, r->last_hash, hash, r->reason,
				       sizeof(r->reason)) < 0) {
			if (!nl)
				snprintf(r->reason, sizeof(r->reason), "truncated line");
			r->bad_line = (size_t)r->count + 1;
			ret = 1;
			break;
		}
		r->count++;
		memcpy(r->last_hash, hash, sizeof(hash));
	}
	free(line);
	fclose(f);
	return ret;
}

/* --- the chain head at start-up --- */

/* Read the file's last line into the chain state; -1 + err when it is not an entry. */
static int read_head(struct audit *a, char *err, size_t errlen)
{
	struct audit_verify_result r;
	struct stat st;
	a->seq = 0;
	snprintf(a->prev, sizeof(a->prev), "%s", zero_hash);
	if (fstat(a->fd, &st) < 0 || st.st_size == 0)
		return 0;
	/*
	 * Verifying the whole file at start is O(size) once; it also proves
	 * the head we continue from is part of an intact chain.
	 */
	int ret = audit_verify_file(a->path, &r);
	if (ret != 0) {
		snprintf(err, errlen, "[audit] file: %s: line %zu: %s (fix or move the file; "
			 "`tocsin audit verify` shows the same)", a->path, r.bad_line, r.reason);
		return -1;
	}
	a->seq = r.count;
	memcpy(a->prev, r.last_hash, sizeof(a->prev));
	return 0;
}

/* --- writer --- */

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Chain one entry onto the batch buffer. */
static void append_entry(struct audit *a, FILE *batch, const char *event, int64_t ts,
			 const json_t *detail)
{
	char *line, hash[AUDIT_HEX_LEN + 1];
	if (audit_line_make(a->seq + 1, ts, event, detail, a->prev, &line, hash) < 0) {
		log_error("msg=\"audit entry lost: out of memory\" event=%s", event);
		return;
	}
	a->seq++;
	memcpy(a->prev, hash, sizeof(hash));
	fputs(line, batch);
	free(line);
}

static void write_batch(struct audit *a, struct audit_item *items, size_t dropped)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *batch = open_memstream(&buf, &len);
	if (!batch)
		return;
	if (dropped) {
		json_t *d = json_pack("{s:I}", "dropped", (json_int_t)dropped);
		append_entry(a, batch, "audit_overflow", wall_ms(), d);
		json_decref(d);
	}
	for (struct audit_item *it = items, *next; it; it = next) {
		next = it->next;
		append_entry(a, batch, it->event, it->ts_ms, it->detail);
		json_decref(it->detail);
		free(it);
	}
	fclose(batch);
	int ret = write_all(a->fd, buf, len);
	if (ret < 0 || fsync(a->fd) < 0)
		log_error("msg=\"audit log write failed\" file=%s err=\"%s\"", a->path,
			  strerror(ret < 0 ? -ret : errno));
	free(buf);
}

static void *writer_main(void *arg)
{
	struct audit *a = arg;
	for (;;) {
		pthread_mutex_lock(&a->lock);
		while (!a->head && !a->dropped && !a->stop)
			pthread_cond_wait(&a->cond, &a->lock);
		struct audit_item *items = a->head;
		size_t dropped = a->dropped;
		bool stop = a->stop;
		a->head = NULL;
		a->tail = &a->head;
		a->queued = a->dropped = 0;
		pthread_mutex_unlock(&a->lock);
		if (items || dropped)
			write_batch(a, items, dropped);
		else if (stop)
			break;
		if (!stop) { /* fsync at most every AUDIT_SYNC_MS: let entries gather */
			struct timespec ts = {0, AUDIT_SYNC_MS * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

struct audit *audit_open(const char *path, char *err, size_t errlen)
{
	struct audit *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "[audit] out of memory");
		return NULL;
	}
	snprintf(a->path, sizeof(a->path), "%s", path);
	a->tail = &a->head;
	a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (a->fd < 0) {
		snprintf(err, errlen, "[audit] file: %s: %s", path, strerror(errno));
		goto out_free;
	}
	if (read_head(a, err, errlen) < 0)
		goto out_close;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
		snprintf(err, errlen, "[audit] cannot start the writer thread");
		goto out_destroy;
	}
	return a;

out_destroy:
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
out_close:
	close(a->fd);
out_free:
	free(a);
	return NULL;
}

void audit_close(struct audit *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	close(a->fd);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

void audit_log(struct audit *a, const char *event, json_t *detail)
{
	struct audit_item *it = a ? malloc(sizeof(*it)) : NULL;
	if (!it) {
		json_decref(detail);
		if (a) {
			pthread_mutex_lock(&a->lock);
			a->dropped++;
			pthread_mutex_unlock(&a->lock);
		}
		return;
	}
	snprintf(it->event, sizeof(it->event), "%s", event);
	it->ts_ms = wall_ms();
	it->detail = detail;
	it->next = NULL;
	pthread_mutex_lock(&a->lock);
	if (a->queued >= AUDIT_QUEUE_MAX || a->stop) {
		a->dropped++;
		pthread_mutex_unlock(&a->lock);
		json_decref(detail);
		free(it);
		return;
	}
	*a->tail = it;
	a->tail = &it->next;
	a->queued++;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
}
