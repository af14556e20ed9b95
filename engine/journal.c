/*
 * engine/journal.c: the admission script and record lookups (see journal.h).
 */
#include "journal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/*
 * KEYS: record, journal stream, active set.
 * ARGV: digest, envelope, expires, id.
 * Returns {0, admitted_at} new, {1, admitted_at} same, {2, ""} conflict.
 */
static const char admit_lua[] =
	"local d = redis.call('HGET', KEYS[1], 'digest')\n"
	"if d then\n"
	"  if d == ARGV[1] then return {1, redis.call('HGET', KEYS[1], 'admitted_at')} end\n"
	"  return {2, ''}\n"
	"end\n"
	"local t = redis.call('TIME')\n"
	"local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))\n"
	"redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'envelope', ARGV[2],\n"
	"           'state', 'admitted', 'admitted_at', now, 'expires', ARGV[3])\n"
	"redis.call('XADD', KEYS[2], '*', 'id', ARGV[4], 'event', 'admitted')\n"
	"redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])\n"
	"return {0, now}\n";

struct admit_call {
	journal_cb cb;
	void *arg;
	struct redis_client *rc;
	const char *prefix;
	struct journal_entry e;  /* the caller keeps its strings until cb */
	bool retried;            /* sent again with EVAL after a NOSCRIPT */
};

static int send_admit(struct admit_call *call, bool eval);

/* The script's SHA-1, computed once: EVALSHA spares Redis re-hashing it per admission. */
static char admit_sha[41];
static pthread_once_t admit_sha_once = PTHREAD_ONCE_INIT;

static void compute_sha(void)
{
	unsigned char md[20];
	unsigned int n = 0;
	EVP_MD *sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	EVP_Digest(admit_lua, sizeof(admit_lua) - 1, md, &n, sha1, NULL);
	EVP_MD_free(sha1);
	for (unsigned i = 0; i < 20; i++)
		snprintf(admit_sha + 2 * i, 3, "%02x", md[i]);
}

void journal_prepare(struct redis_client *rc)
{
	const char *argv[] = {"SCRIPT", "LOAD", admit_lua};
	size_t lens[] = {6, 4, sizeof(admit_lua) - 1};
	pthread_once(&admit_sha_once, compute_sha);
	redis_command(rc, NULL, NULL, 3, argv, lens);
}

static void on_admit_reply(void *arg, redisReply *r)
{
	struct admit_call *c = arg;
	if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8)) {
		/* the script cache is empty (a restarted Redis, or a SCRIPT LOAD refused while it
		   was loading its data): load it for the next ones, and send this one whole */
		journal_prepare(c->rc);
		if (!c->retried) {
			c->retried = true;
			if (send_admit(c, true) == 0)
				return;
		}
	}
	struct admit_call call = *c;
	free(c);
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		call.cb(call.arg, JOURNAL_UNAVAILABLE, 0);
		return;
	}
	long long code = r->element[0]->integer;
	int64_t at = 0;
	if (r->element[1]->type == REDIS_REPLY_STRING)
		at = strtoll(r->element[1]->str, NULL, 10);
	call.cb(call.arg, code == 0 ? JOURNAL_NEW : code == 1 ? JOURNAL_SAME : JOURNAL_CONFLICT, at);
}

/* EVALSHA, or EVAL with the script itself; 0 when queued. */
static int send_admit(struct admit_call *call, bool eval)
{
	const struct journal_entry *e = &call->e;
	char key[256], stream[128], active[128], expires[24];
	snprintf(key, sizeof(key), "%sw:%s", call->prefix, e->id);
	snprintf(stream, sizeof(stream), "%sjournal", call->prefix);
	snprintf(active, sizeof(active), "%sactive", call->prefix);
	snprintf(expires, sizeof(expires), "%lld", (long long)e->expires);
	const char *argv[] = {eval ? "EVAL" : "EVALSHA", eval ? admit_lua : admit_sha, "3", key,
			      stream, active, e->digest_hex, (const char *)e->envelope, expires, e->id};
	size_t lens[] = {eval ? 4u : 7u, eval ? sizeof(admit_lua) - 1 : 40, 1, strlen(key),
			 strlen(stream), strlen(active), strlen(e->digest_hex), e->envelope_len,
			 strlen(expires), strlen(e->id)};
	return redis_command(call->rc, on_admit_reply, call, 10, argv, lens);
}

int journal_admit(struct redis_client *rc, const char *prefix, const struct journal_entry *e,
		  journal_cb cb, void *arg)
{
	pthread_once(&admit_sha_once, compute_sha);
	struct admit_call *call = malloc(sizeof(*call));
	if (!call)
		return -12; /* -ENOMEM */
	*call = (struct admit_call){.cb = cb, .arg = arg, .rc = rc, .prefix = prefix, .e = *e};
	int ret = send_admit(call, false);
	if (ret < 0)
		free(call);
	return ret;
}

int journal_get(struct redis_client *rc, const char *prefix, const char *id, redis_reply_cb cb,
		void *arg)
{
	char key[256];
	snprintf(key, sizeof(key), "%sw:%s", prefix, id);
	const char *argv[] = {"HMGET", key, "envelope", "state", "admitted_at", "coverage"};
	size_t lens[] = {5, strlen(key), 8, 5, 11, 8};
	return redis_command(rc, cb, arg, 6, argv, lens);
}
