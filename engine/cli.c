/*
 * engine/cli.c: `tocsin`, the command-line tool bureaus and operators use.
 *
 *   tocsin keygen   make a signing key and its keyring entry
 *   tocsin sign     warning INI -> signed SignedWarning bytes
 *   tocsin submit   sign (or take --body) and POST to /v1/warnings
 *   tocsin status   GET /v1/warnings/ID (--watch: live view, cli_watch.c)
 *   tocsin cancel, tocsin update   sign and submit a Cancel / Update of ID
 *   tocsin receipts per-segment results as CSV (cli_watch.c)
 *   tocsin audit    verify the audit log's hash chain (cli_watch.c)
 *   tocsin load     import population CSVs into Redis (cli_load.c)
 *   tocsin plan     preview a warning's recipients (cli_plan.c)
 *   tocsin verify, tocsin sign-raw   hidden diagnostics for interop tests
 *
 * Exit codes, for every subcommand: 0 success; 1 the server answered but
 * refused (HTTP status other than the expected one) or a signature did
 * not verify; 2 usage, local or network errors. Every error message names
 * the file or flag it is about.
 *
 * Invariants: no globals except the constant dispatch table; each
 * subcommand parses its own flags with getopt_long and frees what it
 * allocates before returning.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/pem.h>

#include "cli_load.h"
#include "keyring.h"
#include "sig.h"
#include "warnfile.h"
#include "warning.pb-c.h"
#include "warning_codec.h"

#define CLI_OK 0
#define CLI_REFUSED 1
#define CLI_ERROR 2
#define CLI_MAX_BODY (1024 * 1024)
#define CLI_MAX_INPUT (1024 * 1024)

struct cli_command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary; /* NULL: hidden */
	const char *usage;   /* printed by `tocsin CMD --help`; NULL: summary */
};

/* ---- small helpers ---- */

static void cli_buf_free(uint8_t **buf)
{
	free(*buf);
	*buf = NULL;
}

/* Read a whole file (at most `cap` bytes). Returns 0, or -1 after printing why. */
static int cli_read_file(const char *path, uint8_t **out, size_t *len, size_t cap)
{
	FILE *f = fopen(path, "rb");
	int rc = -1;

	if (f == NULL) {
		fprintf(stderr, "tocsin: %s: %s\n", path, strerror(errno));
		return -1;
	}
	*out = malloc(cap + 1);
	if (*out == NULL) {
		fprintf(stderr, "tocsin: %s: out of memory\n", path);
		goto out_close;
	}
	*len = fread(*out, 1, cap + 1, f);
	if (ferror(f) || *len > cap) {
		fprintf(stderr, "tocsin: %s: %s\n", path,
			ferror(f) ? "read error" : "file too large");
		cli_buf_free(out);
		goto out_close;
	}
	rc = 0;
out_close:
	fclose(f);
	return rc;
}

/* Write bytes to `path`, or to stdout when path is NULL or "-" (never a tty). */
static int cli_write_out(const char *path, const uint8_t *buf, size_t len)
{
	bool to_stdout = path == NULL || !strcmp(path, "-");
	FILE *f = to_stdout ? stdout : fopen(path, "wb");

	if (to_stdout && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "tocsin: refusing to write binary to a terminal (use --out FILE "
				"or a redirection)\n");
		return -1;
	}
	if (f == NULL) {
		fprintf(stderr, "tocsin: %s: %s\n", path, strerror(errno));
		return -1;
	}
	bool ok = fwrite(buf, 1, len, f) == len;
	ok = (to_stdout ? fflush(f) : fclose(f)) == 0 && ok;
	if (!ok)
		fprintf(stderr, "tocsin: %s: write error\n", to_stdout ? "stdout" : path);
	return ok ? 0 : -1;
}

/* ---- keygen ---- */

struct keygen_opts {
	enum sig_alg alg;
	const char *id, *sender, *segments, *statuses, *out;
};

static const char keygen_usage[] =
	"usage: tocsin keygen --alg ed25519|sm2-sm3 --id KEYID --sender SENDER\n"
	"                     --segments 350102[,...] [--statuses Actual,Exercise,Test]\n"
	"                     --out PREFIX\n"
	"Writes PREFIX.key (PKCS#8 PEM, mode 0600, never overwritten) and\n"
	"PREFIX.keyring.ini, and prints the keyring section to stdout.\n";

static int keygen_parse(int argc, char **argv, struct keygen_opts *o)
{
	static const struct option opts[] = {
		{ "alg", required_argument, NULL, 'a' },      { "id", required_argument, NULL, 'i' },
		{ "sender", required_argument, NULL, 's' },   { "segments", required_argument, NULL, 'g' },
		{ "statuses", required_argument, NULL, 't' }, { "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },	      { 0 }
	};
	int c;

	*o = (struct keygen_opts){ .statuses = "Actual, Exercise, Test" };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			o->alg = sig_alg_parse(optarg);
			if (o->alg == SIG_NONE) {
				fprintf(stderr, "tocsin keygen: --alg: unknown '%s' (ed25519, sm2-sm3)\n",
					optarg);
				return -1;
			}
			break;
		case 'i': o->id = optarg; break;
		case 's': o->sender = optarg; break;
		case 'g': o->segments = optarg; break;
		case 't': o->statuses = optarg; break;
		case 'o': o->out = optarg; break;
		default: fputs(keygen_usage, stderr); return -1;
		}
	}
	if (o->alg == SIG_NONE || !o->id || !o->sender || !o->segments || !o->out ||
	    optind != argc) {
		fputs(keygen_usage, stderr);
		return -1;
	}
	if (!*o->id || strpbrk(o->id, "[]\n;#") || strpbrk(o->sender, "\n;") ||
	    strpbrk(o->segments, "\n;") || strpbrk(o->statuses, "\n;")) {
		fprintf(stderr, "tocsin keygen: --id/--sender/--segments/--statuses contain a "
				"character an INI value cannot hold\n");
		return -1;
	}
	return 0;
}

static int keygen_write_key(const char *path, EVP_PKEY *key)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		fprintf(stderr, "tocsin keygen: %s: %s%s\n", path, strerror(errno),
			errno == EEXIST ? " (refusing to overwrite a key)" : "");
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return -1;
	}
	bool ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
	ok = fclose(f) == 0 && ok;
	if (!ok) {
		fprintf(stderr, "tocsin keygen: %s: write error\n", path);
		unlink(path);
	}
	return ok ? 0 : -1;
}

static char *keygen_section(const struct keygen_opts *o, EVP_PKEY *key)
{
	char *pub = sig_pubkey_to_b64(key);
	char *text = NULL;

	if (pub == NULL)
		return NULL;
	if (asprintf(&text,
		     "[%s]\nsender     = %s\nalgorithm  = %s\npublic_key = %s\nrevoked    = false\n"
		     "segments   = %s\nstatuses   = %s\n",
		     o->id, o->sender, sig_alg_name(o->alg), pub, o->segments, o->statuses) < 0)
		text = NULL;
	free(pub);
	return text;
}

static int cli_keygen(int argc, char **argv)
{
	struct keygen_opts o;
	char *keypath = NULL, *inipath = NULL, *text = NULL, err[512];
	int rc = CLI_ERROR;

	if (keygen_parse(argc, argv, &o) != 0)
		return CLI_ERROR;
	EVP_PKEY *key = sig_keygen(o.alg);
	if (key == NULL || asprintf(&keypath, "%s.key", o.out) < 0 ||
	    asprintf(&inipath, "%s.keyring.ini", o.out) < 0 || !(text = keygen_section(&o, key))) {
		fprintf(stderr, "tocsin keygen: key generation failed\n");
		goto out_free;
	}
	if (keygen_write_key(keypath, key) != 0)
		goto out_free;
	if (cli_write_out(inipath, (const uint8_t *)text, strlen(text)) != 0)
		goto out_unlink_key;
	/* The entry must load exactly as the server will load it. */
	struct keyring *kr = keyring_load(inipath, err, sizeof(err));
	if (kr == NULL) {
		fprintf(stderr, "tocsin keygen: %s\n", err);
		unlink(inipath);
		goto out_unlink_key;
	}
	keyring_unref(kr);
	fputs(text, stdout);
	fprintf(stderr, "tocsin keygen: wrote %s and %s\n", keypath, inipath);
	rc = CLI_OK;
	goto out_free;
out_unlink_key:
	unlink(keypath);
out_free:
	free(text);
	free(keypath);
	free(inipath);
	EVP_PKEY_free(key);
	return rc;
}

/* ---- sign ---- */

struct sign_opts {
	const char *key, *key_id, *out, *warning, *body, *url, *cacert;
	bool http2, insecure;
	struct warnfile_overrides ov;
};

static const char sign_usage[] =
	"usage: tocsin sign --key PREFIX.key --key-id ID [--out FILE] WARNING.ini\n"
	"                   [--identifier X] [--status S] [--msg-type T]\n"
	"                   [--references \"a b\"] [--expires +1h]\n"
	"Writes SignedWarning bytes (protobuf) to FILE or to stdout (not a terminal).\n";

static const char submit_usage[] =
	"usage: tocsin submit --url http://127.0.0.1:8080 --key PREFIX.key --key-id ID\n"
	"                     WARNING.ini [--identifier X] [--status S] [--msg-type T]\n"
	"                     [--references \"a b\"] [--expires +1h]\n"
	"                     [--http2] [--cacert FILE] [--insecure]\n"
	"       tocsin submit --url URL --body SIGNED.bin [--http2] [--cacert FILE] [--insecure]\n"
	"POSTs to URL/v1/warnings. Exit 0 on 202, 1 when the server refuses,\n"
	"2 on usage, local or network errors.\n";

/* Options shared by sign and submit; `submit` enables the network ones. */
static int sign_parse(int argc, char **argv, struct sign_opts *o, bool submit)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },	{ "key-id", required_argument, NULL, 'K' },
		{ "out", required_argument, NULL, 'o' },	{ "identifier", required_argument, NULL, 'I' },
		{ "status", required_argument, NULL, 'S' },	{ "msg-type", required_argument, NULL, 'T' },
		{ "references", required_argument, NULL, 'R' }, { "expires", required_argument, NULL, 'E' },
		{ "url", required_argument, NULL, 'u' },	{ "body", required_argument, NULL, 'b' },
		{ "cacert", required_argument, NULL, 'c' },	{ "http2", no_argument, NULL, '2' },
		{ "insecure", no_argument, NULL, 'n' },		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *usage = submit ? submit_usage : sign_usage;
	int c;

	*o = (struct sign_opts){ 0 };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k': o->key = optarg; break;
		case 'K': o->key_id = optarg; break;
		case 'o': o->out = optarg; break;
		case 'I': o->ov.identifier = optarg; break;
		case 'S': o->ov.status = optarg; break;
		case 'T': o->ov.msg_type = optarg; break;
		case 'R': o->ov.references = optarg; break;
		case 'E': o->ov.expires = optarg; break;
		case 'u': o->url = optarg; break;
		case 'b': o->body = optarg; break;
		case 'c': o->cacert = optarg; break;
		case '2': o->http2 = true; break;
		case 'n': o->insecure = true; break;
		default: fputs(usage, stderr); return -1;
		}
	}
	if (optind + 1 == argc)
		o->warning = argv[optind];
	bool net_flags = o->url || o->body || o->cacert || o->http2 || o->insecure;
	bool signing_ok = o->warning && o->key && o->key_id && !o->body;
	bool body_ok = o->body && !o->warning && !o->key && !o->key_id;
	if (optind + 1 < argc || (!submit && (net_flags || !signing_ok)) ||
	    (submit && (!o->url || o->out || !(signing_ok || body_ok)))) {
		fputs(usage, stderr);
		return -1;
	}
	return 0;
}

/* Pack a SignedWarning around payload. */
static int sign_envelope(EVP_PKEY *key, enum sig_alg alg, const char *key_id,
			 const uint8_t *payload, size_t len, uint8_t **out, size_t *outlen)
{
	Tocsin__SignedWarning env = TOCSIN__SIGNED_WARNING__INIT;
	uint8_t *sig;
	size_t siglen;

	if (sig_sign(key, alg, payload, len, &sig, &siglen) != 0)
		return -1;
	env.has_payload = env.has_signature = 1;
	env.payload = (ProtobufCBinaryData){ .len = len, .data = (uint8_t *)payload };
	env.signature = (ProtobufCBinaryData){ .len = siglen, .data = sig };
	env.key_id = (char *)key_id;
	*outlen = tocsin__signed_warning__get_packed_size(&env);
	*out = malloc(*outlen);
	if (*out != NULL)
		tocsin__signed_warning__pack(&env, *out);
	free(sig);
	return *out ? 0 : -1;
}

/* Build and sign the warning named in o. Returns 0, or -1 after printing why. */
static int sign_build(const struct sign_opts *o, uint8_t **out, size_t *outlen)
{
	char err[512];
	enum sig_alg alg;
	uint8_t *payload;
	size_t len;
	int rc = -1;

	EVP_PKEY *key = sig_privkey_load(o->key, &alg, err, sizeof(err));
	if (key == NULL) {
		fprintf(stderr, "tocsin: --key: %s\n", err);
		return -1;
	}
	if (warnfile_load(o->warning, time(NULL), &o->ov, &payload, &len, err, sizeof(err))) {
		fprintf(stderr, "tocsin: %s\n", err);
		goto out_free_key;
	}
	rc = sign_envelope(key, alg, o->key_id, payload, len, out, outlen);
	if (rc != 0)
		fprintf(stderr, "tocsin: signing with %s failed\n", o->key);
	free(payload);
out_free_key:
	EVP_PKEY_free(key);
	return rc;
}

static int cli_sign(int argc, char **argv)
{
	struct sign_opts o;
	uint8_t *buf;
	size_t len;

	if (sign_parse(argc, argv, &o, false) != 0)
		return CLI_ERROR;
	if (o.out == NULL && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "tocsin sign: refusing to write binary to a terminal (use --out)\n");
		return CLI_ERROR;
	}
	if (sign_build(&o, &buf, &len) != 0)
		return CLI_ERROR;
	int rc = cli_write_out(o.out, buf, len) == 0 ? CLI_OK : CLI_ERROR;
	free(buf);
	return rc;
}

/* ---- HTTP (submit, status) ---- */

struct http_body {
	char *data;
	size_t len;
	bool truncated;
};

static size_t http_collect(char *ptr, size_t size, size_t n, void *user)
{
	struct http_body *b = user;
	size_t len = size * n;

	if (b->len + len > CLI_MAX_BODY) {
		b->truncated = true;
		return len;
	}
	char *grown = realloc(b->data, b->len + len + 1);
	if (grown == NULL)
		return 0;
	memcpy(grown + b->len, ptr, len);
	b->data = grown;
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

struct http_req {
	const char *url;
	const char *token;   /* operator token: "Authorization: Bearer" */
	const uint8_t *body; /* NULL: GET */
	size_t body_len;
	bool http2, insecure;
	const char *cacert;
};

/*
 * Perform one request; prints nothing on success. Returns the HTTP
 * status, or -1 after printing the transport error.
 */
static long http_perform(const struct http_req *r, struct http_body *resp)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = -1;

	if (c == NULL)
		return -1;
	curl_easy_setopt(c, CURLOPT_URL, r->url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
			 !r->http2 ? CURL_HTTP_VERSION_1_1
			 : strncmp(r->url, "https:", 6) ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
							: CURL_HTTP_VERSION_2TLS);
	if (r->cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, r->cacert);
	if (r->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	char auth[600];
	if (r->token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", r->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (r->body != NULL)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/x-protobuf");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (r->body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)r->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	}
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		fprintf(stderr, "tocsin: %s: %s\n", r->url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return status;
}

/* "BASE" + "/v1/warnings" + optional "/ID" (escaped), without a doubled slash. */
static char *http_url(const char *base, const char *id)
{
	size_t n = strlen(base);
	char *esc = NULL, *url = NULL;

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (id != NULL && (esc = curl_easy_escape(NULL, id, 0)) == NULL)
		return NULL;
	if (asprintf(&url, "%.*s/v1/warnings%s%s", (int)n, base, esc ? "/" : "", esc ? esc : "") < 0)
		url = NULL;
	curl_free(esc);
	return url;
}

/* Print status and answer; map the status to an exit code. */
static int http_report(long status, long want, const struct http_body *resp)
{
	if (status < 0)
		return CLI_ERROR;
	printf("HTTP %ld\n", status);
	if (resp->len > 0)
		printf("%s%s", resp->data, resp->data[resp->len - 1] == '\n' ? "" : "\n");
	if (resp->truncated)
		printf("(answer truncated at %d bytes)\n", CLI_MAX_BODY);
	if (status != want)
		fprintf(stderr, "tocsin: the server answered %ld, not %ld\n", status, want);
	return status == want ? CLI_OK : CLI_REFUSED;
}

/* Sign the warning o names (or take --body) and POST it; the exit code. */
static int submit_opts(const struct sign_opts *o_)
{
	const struct sign_opts o = *o_;
	struct http_body resp = { 0 };
	uint8_t *body;
	size_t len;
	int rc = CLI_ERROR;

	if (o.body ? cli_read_file(o.body, &body, &len, CLI_MAX_INPUT) : sign_build(&o, &body, &len))
		return CLI_ERROR;
	struct http_req r = { .url = http_url(o.url, NULL), .body = body, .body_len = len,
			      .http2 = o.http2, .insecure = o.insecure, .cacert = o.cacert };
	if (r.url != NULL)
		rc = http_report(http_perform(&r, &resp), 202, &resp);
	free((char *)r.url);
	free(resp.data);
	free(body);
	return rc;
}

static int cli_submit(int argc, char **argv)
{
	struct sign_opts o;

	if (sign_parse(argc, argv, &o, true) != 0)
		return CLI_ERROR;
	return submit_opts(&o);
}

static const char update_usage[] =
	"usage: tocsin update ID WARNING.ini --url URL --key PREFIX.key --key-id KEYID\n"
	"                     [--identifier X] [--expires +1h] [--http2] [--cacert FILE] [--insecure]\n"
	"Signs WARNING.ini as an Update of ID (msg_type Update, references ID) and submits it.\n"
	"WARNING.ini needs its own new identifier (or --identifier).\n";

static int cli_update(int argc, char **argv)
{
	struct sign_opts o;

	if (argc < 3 || argv[1][0] == '-') {
		fputs(update_usage, stderr);
		return CLI_ERROR;
	}
	if (sign_parse(argc - 1, argv + 1, &o, true) != 0 || o.body != NULL)
		return CLI_ERROR;
	o.ov.msg_type = "Update";
	o.ov.references = argv[1];
	return submit_opts(&o);
}

static const char cancel_usage[] =
	"usage: tocsin cancel ID --url URL --key PREFIX.key --key-id KEYID --sender SENDER\n"
	"                     [--identifier X] [--status Actual|Exercise|Test] [--http2] [--cacert FILE]\n"
	"                     [--insecure]\n"
	"Builds, signs and submits a Cancel referencing ID (its identifier defaults to\n"
	"ID-cancel-UNIXTIME). Exit 0 on 202.\n";

/* The Cancel's warning file; 0 and the path of a temporary file, or -1. */
static int cancel_file(const char *id, const char *sender, char *path, size_t cap)
{
	char ident[WARNING_MAX_ID_LEN + 1];
	snprintf(path, cap, "%s/tocsin-cancel-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "tocsin cancel: %s: %s\n", path, strerror(errno));
		return -1;
	}
	snprintf(ident, sizeof(ident), "%.100s-cancel-%lld", id, (long long)time(NULL));
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(path);
		return -1;
	}
	fprintf(f, "[alert]\nidentifier = %s\nsender = %s\nstatus = Actual\nmsg_type = Cancel\n"
		   "references = %s\n"
		   "[info zh-CN]\ncategory = Safety\nevent = 撤销预警\nurgency = Immediate\n"
		   "severity = Minor\ncertainty = Observed\nexpires = +1h\nheadline = 撤销预警 %.80s\n"
		   "[info en-US]\ncategory = Safety\nevent = Cancellation\nurgency = Immediate\n"
		   "severity = Minor\ncertainty = Observed\nexpires = +1h\n"
		   "headline = Warning %.80s cancelled\n",
		ident, sender, id, id, id);
	return fclose(f) == 0 ? 0 : -1;
}

static int cli_cancel(int argc, char **argv)
{
	char path[256], **args = calloc((size_t)argc + 2, sizeof(*args));
	const char *sender = NULL;
	struct sign_opts o;
	int n = 0, rc = CLI_ERROR;

	if (args == NULL || argc < 2 || argv[1][0] == '-')
		goto out_usage;
	args[n++] = argv[0];
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--sender") && i + 1 < argc)
			sender = argv[++i];
		else if (!strncmp(argv[i], "--sender=", 9))
			sender = argv[i] + 9;
		else
			args[n++] = argv[i];
	}
	if (sender == NULL || strchr(sender, '\n') || !warning_id_valid(argv[1], strlen(argv[1])))
		goto out_usage;
	if (cancel_file(argv[1], sender, path, sizeof(path)) < 0)
		goto out_free;
	args[n++] = path;
	if (sign_parse(n, args, &o, true) == 0 && o.body == NULL) {
		o.ov.msg_type = "Cancel";
		o.ov.references = argv[1];
		rc = submit_opts(&o);
	}
	unlink(path);
	goto out_free;
out_usage:
	fputs(cancel_usage, stderr);
out_free:
	free(args);
	return rc;
}

int cli_watch_main(int argc, char **argv);
int cli_receipts_main(int argc, char **argv);
int cli_audit_main(int argc, char **argv);

static const char status_usage[] =
	"usage: tocsin status ID --url http://127.0.0.1:8080 [--token T] [--http2] [--cacert FILE]\n"
	"                     [--insecure]\n"
	"       tocsin status ID --watch --url URL [--token T]   (a live view; see --watch --help)\n"
	"GETs URL/v1/warnings/ID and prints the JSON. Exit 0 on 200. The operator token\n"
	"may also come from $TOCSIN_TOKEN.\n";

static int cli_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' }, { "cacert", required_argument, NULL, 'c' },
		{ "http2", no_argument, NULL, '2' },	 { "insecure", no_argument, NULL, 'n' },
		{ "token", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct http_req r = { .token = getenv("TOCSIN_TOKEN") };
	struct http_body resp = { 0 };
	const char *base = NULL;
	int c, rc = CLI_ERROR;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--watch"))
			return cli_watch_main(argc, argv);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': base = optarg; break;
		case 'c': r.cacert = optarg; break;
		case '2': r.http2 = true; break;
		case 'n': r.insecure = true; break;
		case 't': r.token = optarg; break;
		default: fputs(status_usage, stderr); return CLI_ERROR;
		}
	}
	if (base == NULL || optind + 1 != argc) {
		fputs(status_usage, stderr);
		return CLI_ERROR;
	}
	r.url = http_url(base, argv[optind]);
	if (r.url != NULL)
		rc = http_report(http_perform(&r, &resp), 200, &resp);
	free((char *)r.url);
	free(resp.data);
	return rc;
}

/* ---- hidden diagnostics: raw signatures for interop tests ---- */

static const char verify_usage[] =
	"usage: tocsin verify --alg ed25519|sm2-sm3 --pub-b64 B64 --sig FILE --msg FILE\n"
	"       tocsin sign-raw --key PREFIX.key --msg FILE --out SIGFILE\n"
	"Diagnostics: check or make a raw signature over a file's exact bytes\n"
	"(formats as in engine/sig.h). verify exits 0 when valid, 1 when not.\n";

struct raw_opts {
	const char *alg, *pub, *sig, *msg, *key, *out;
};

static int raw_parse(int argc, char **argv, struct raw_opts *o)
{
	static const struct option opts[] = {
		{ "alg", required_argument, NULL, 'a' }, { "pub-b64", required_argument, NULL, 'p' },
		{ "sig", required_argument, NULL, 's' }, { "msg", required_argument, NULL, 'm' },
		{ "key", required_argument, NULL, 'k' }, { "out", required_argument, NULL, 'o' },
		{ 0 }
	};
	int c;

	*o = (struct raw_opts){ 0 };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': o->alg = optarg; break;
		case 'p': o->pub = optarg; break;
		case 's': o->sig = optarg; break;
		case 'm': o->msg = optarg; break;
		case 'k': o->key = optarg; break;
		case 'o': o->out = optarg; break;
		default: fputs(verify_usage, stderr); return -1;
		}
	}
	if (optind != argc || o->msg == NULL) {
		fputs(verify_usage, stderr);
		return -1;
	}
	return 0;
}

static int cli_verify(int argc, char **argv)
{
	struct raw_opts o;
	uint8_t *msg = NULL, *sig = NULL;
	size_t mlen, slen;
	char err[256];
	int rc = CLI_ERROR;

	if (raw_parse(argc, argv, &o) != 0 || !o.alg || !o.pub || !o.sig) {
		fputs(verify_usage, stderr);
		return CLI_ERROR;
	}
	enum sig_alg alg = sig_alg_parse(o.alg);
	EVP_PKEY *key = sig_pubkey_from_b64(alg, o.pub, err, sizeof(err));
	if (key == NULL) {
		fprintf(stderr, "tocsin verify: --pub-b64: %s\n", err);
		return CLI_ERROR;
	}
	if (cli_read_file(o.msg, &msg, &mlen, CLI_MAX_INPUT) == 0 &&
	    cli_read_file(o.sig, &sig, &slen, 4096) == 0) {
		bool ok = sig_verify(key, alg, msg, mlen, sig, slen);
		puts(ok ? "signature valid" : "signature INVALID");
		rc = ok ? CLI_OK : CLI_REFUSED;
	}
	free(msg);
	free(sig);
	EVP_PKEY_free(key);
	return rc;
}

static int cli_sign_raw(int argc, char **argv)
{
	struct raw_opts o;
	uint8_t *msg = NULL, *sig = NULL;
	size_t mlen, slen;
	char err[256];
	enum sig_alg alg;
	int rc = CLI_ERROR;

	if (raw_parse(argc, argv, &o) != 0 || !o.key || !o.out) {
		fputs(verify_usage, stderr);
		return CLI_ERROR;
	}
	EVP_PKEY *key = sig_privkey_load(o.key, &alg, err, sizeof(err));
	if (key == NULL) {
		fprintf(stderr, "tocsin sign-raw: --key: %s\n", err);
		return CLI_ERROR;
	}
	if (cli_read_file(o.msg, &msg, &mlen, CLI_MAX_INPUT) == 0 &&
	    sig_sign(key, alg, msg, mlen, &sig, &slen) == 0 &&
	    cli_write_out(o.out, sig, slen) == 0)
		rc = CLI_OK;
	free(msg);
	free(sig);
	EVP_PKEY_free(key);
	return rc;
}

/* ---- dispatch ---- */

int cli_plan_main(int argc, char **argv);

static int cli_help(int argc, char **argv);

/*
 * To add a subcommand implemented elsewhere (e.g. engine/cli_load.c),
 * declare it here and point its entry at it:
 *   int cli_load_main(int argc, char **argv);
 *   { "load", cli_load_main, "..." },
 * Each main gets argv[0] = the subcommand name.
 */
static const struct cli_command cli_commands[] = {
	{ "keygen", cli_keygen, "make a signing key and its keyring entry", keygen_usage },
	{ "sign", cli_sign, "sign a warning file into SignedWarning bytes", sign_usage },
	{ "submit", cli_submit, "sign and POST a warning to a tocsin server", submit_usage },
	{ "status", cli_status, "show a warning's delivery status (--watch: live)", status_usage },
	{ "cancel", cli_cancel, "sign and submit a Cancel of a warning", cancel_usage },
	{ "update", cli_update, "sign and submit an Update of a warning", update_usage },
	{ "receipts", cli_receipts_main, "export a warning's per-segment results as CSV", NULL },
	{ "audit", cli_audit_main, "verify the audit log (`tocsin audit verify FILE`)", NULL },
	{ "load", cli_load_main, "import segments, households and terminals (CSV) into Redis", NULL },
	{ "plan", cli_plan_main, "preview a warning's recipients from the population data", NULL },
	{ "help", cli_help, "this message; `tocsin CMD --help` for a command", NULL },
	{ "verify", cli_verify, NULL, verify_usage },
	{ "sign-raw", cli_sign_raw, NULL, verify_usage },
};

static int cli_help(int argc, char **argv)
{
	printf("usage: tocsin COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++)
		if (cli_commands[i].summary != NULL)
			printf("  %-8s %s\n", cli_commands[i].name, cli_commands[i].summary);
	printf("\nexit status: 0 success, 1 refused by the server (or a bad signature),\n"
	       "2 usage, local or network error.\n");
	return CLI_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_help(0, NULL);
		return CLI_ERROR;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
		cmd = "help";
	for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++) {
		const struct cli_command *c = &cli_commands[i];
		if (strcmp(cmd, c->name) != 0)
			continue;
		if (argc == 3 && c->usage && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
			fputs(c->usage, stdout);
			return CLI_OK;
		}
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			fprintf(stderr, "tocsin: libcurl initialisation failed\n");
			return CLI_ERROR;
		}
		int rc = c->main(argc - 1, argv + 1);
		curl_global_cleanup();
		return rc;
	}
	fprintf(stderr, "tocsin: unknown command '%s' (try `tocsin help`)\n", argv[1]);
	return CLI_ERROR;
}
