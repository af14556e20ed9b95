/*
 * engine/dashboard.c: operator credentials and the compiled-in dashboard
 * (see dashboard.h for the rules).
 *
 * Login audit: conn->operators_seen has one bit per token (bit 63 for a
 * client certificate), so a login is recorded once per connection, not
 * once per request.
 */
#include "dashboard.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "audit.h"
#include "log.h"
#include "operators.h"
#include "server.h"

#define CERT_BIT 63

bool dashboard_guarded(const struct worker *w)
{
	return w->e->operators || w->e->cfg.operator_client_ca[0];
}

const struct dashboard_asset *dashboard_find(const char *path)
{
	if (!strcmp(path, "/index.html"))
		path = "/";
	for (size_t i = 0; i < dashboard_n_assets; i++)
		if (!strcmp(dashboard_assets[i].path, path))
			return &dashboard_assets[i];
	return NULL;
}

static void audit_login(struct worker *w, struct conn *c, int bit, const char *name,
			const char *via)
{
	uint64_t mask = 1ull << bit;
	if (c->operators_seen & mask)
		return;
	c->operators_seen |= mask;
	log_info("msg=\"operator login\" operator=%s via=%s conn=%lu", name, via,
		 (unsigned long)c->id);
	audit_log(w->e->audit, "operator_login",
		  json_pack("{s:s,s:s,s:I}", "operator", name, "via", via, "conn", (json_int_t)c->id));
}

/* Index of the operator whose token req carries (bearer, then cookie), or -1. */
static int token_index(struct worker *w, const struct http_request *req, const char **via)
{
	const char *t;
	size_t n;
	if (operators_bearer(req->authorization, &t, &n)) {
		*via = "bearer";
		return operators_match(w->e->operators, t, n);
	}
	if (operators_cookie(req->cookie, OPERATORS_COOKIE, &t, &n)) {
		*via = "cookie";
		return operators_match(w->e->operators, t, n);
	}
	return -1;
}

bool dashboard_operator_credential(struct worker *w, const struct http_request *req)
{
	const char *via;
	return w->e->operators && token_index(w, req, &via) >= 0;
}

/* A TLS client certificate verified against client_ca: its subject CN, or NULL. */
static bool client_cert_ok(struct worker *w, struct conn *c, char *cn, size_t cap)
{
	if (!w->e->cfg.operator_client_ca[0] || !c->ssl)
		return false;
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK)
		return false;
	snprintf(cn, cap, "?");
	X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)cap);
	return true;
}

bool dashboard_authorize(struct worker *w, struct http_request *req)
{
	if (!dashboard_guarded(w))
		return true;
	char cn[128];
	const char *via = "";
	if (client_cert_ok(w, req->conn, cn, sizeof(cn))) {
		audit_login(w, req->conn, CERT_BIT, cn, "client_certificate");
		return true;
	}
	int i = w->e->operators ? token_index(w, req, &via) : -1;
	if (i >= 0) {
		audit_login(w, req->conn, i, operators_name(w->e->operators, i), via);
		return true;
	}
	http_respond_error(req, 401, "unauthorized", via[0] ? via : NULL,
			   via[0] ? "the operator credential is not valid"
				  : "an operator credential is required (Authorization: Bearer "
				    "TOKEN, or open /?token=TOKEN once, or a client certificate)");
	return false;
}

/* /?token=T: a valid token becomes an HttpOnly, SameSite=Strict cookie; 303 to /. */
static void issue_cookie(struct worker *w, struct http_request *req, const char *token)
{
	int i = operators_match(w->e->operators, token, strlen(token));
	if (i < 0) {
		http_respond_error(req, 401, "unauthorized", "token", "the operator token is not valid");
		return;
	}
	snprintf(req->set_cookie_buf, sizeof(req->set_cookie_buf),
		 "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200%s", OPERATORS_COOKIE,
		 token, req->conn->ssl ? "; Secure" : "");
	req->set_cookie = req->set_cookie_buf;
	audit_login(w, req->conn, i, operators_name(w->e->operators, i), "cookie_issued");
	static const char body[] = "{\"login\":\"ok\",\"next\":\"/\"}";
	http_respond(req, 303, "application/json", "/", body, sizeof(body) - 1);
}

bool dashboard_serve(struct worker *w, struct http_request *req, const char *path)
{
	const struct dashboard_asset *a = dashboard_find(path);
	if (!a)
		return false;
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
		http_respond_error(req, 405, "method_not_allowed", NULL, "use GET");
		return true;
	}
	char token[256];
	if (!strcmp(a->path, "/") && w->e->operators &&
	    operators_query(req->path, "token", token, sizeof(token)) && token[0]) {
		issue_cookie(w, req, token);
		OPENSSL_cleanse(token, sizeof(token));
		return true;
	}
	if (dashboard_authorize(w, req))
		http_respond(req, 200, a->content_type, NULL, (const char *)a->data, a->len);
	return true;
}
