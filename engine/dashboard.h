/*
 * engine/dashboard.h: the operator side of the HTTP API: the credential
 * guard and the dashboard's static files (ops/dashboard/, compiled in).
 *
 * Operator views (/, the dashboard files, /v1/events, /v1/status,
 * GET /v1/warnings/{id}, /metrics) need an operator credential when
 * [operators] is configured: "Authorization: Bearer TOKEN", the
 * tocsin_op cookie (set by opening /?token=TOKEN once), or a TLS client
 * certificate verified against [operators] client_ca. Without [operators]
 * they stay open, as before (tocsind warns at start).
 *
 * Separation of duties: an operator credential never submits a warning.
 * POST /v1/warnings needs a bureau's signature, and a request that also
 * carries an operator credential is refused with 403 operator_credential,
 * so a leaked dashboard token (or a browser holding the cookie, tricked
 * into a cross-site POST) cannot be turned into a way to send warnings,
 * and the audit trail never mixes the two roles.
 */
#ifndef TOCSIN_DASHBOARD_H
#define TOCSIN_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

struct worker;

/* One compiled-in file (generated dashboard_assets.c). */
struct dashboard_asset {
	const char *path;         /* "/" for index.html, else "/NAME" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
};
extern const struct dashboard_asset dashboard_assets[];
extern const size_t dashboard_n_assets;

/* Is operator access restricted at all? */
bool dashboard_guarded(const struct worker *w);
/*
 * true: req may use the operator views (the first use of each token per
 * connection is audited as a login). false: 401 was answered.
 */
bool dashboard_authorize(struct worker *w, struct http_request *req);
/* Does req carry a valid operator token (bearer or cookie)? */
bool dashboard_operator_credential(struct worker *w, const struct http_request *req);
/* The asset served at path, or NULL. */
const struct dashboard_asset *dashboard_find(const char *path);
/*
 * GET of a dashboard file: serves it (after the guard), or exchanges
 * /?token=T for the cookie (303 to /). false when path is not ours.
 */
bool dashboard_serve(struct worker *w, struct http_request *req, const char *path);

#endif
