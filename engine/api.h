/*
 * engine/api.h: the HTTP API of tocsind.
 *
 *   POST /v1/warnings        SignedWarning (application/x-protobuf) -> 202 | 4xx | 503
 *   GET  /v1/warnings/{id}   the warning's state as JSON            -> 200 | 404
 *   GET  /healthz            liveness and Redis reachability         -> 200 | 503
 *
 * Every error answer is JSON: {"error": code, "field": ..., "reason": ...}.
 * The full table of codes is in engine/README.md.
 */
#ifndef TOCSIN_API_H
#define TOCSIN_API_H

#include "http.h"

struct worker;

/* Answer req now or later, exactly once (see http.h). */
void api_handle(struct worker *w, struct http_request *req);

#endif
