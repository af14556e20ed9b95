/*
 * engine/receipts.h: POST /v1/receipts, the acknowledgement endpoint for apps.
 *
 * Push providers only say they *accepted* a notification. An app confirms
 * that it showed the warning by posting
 *
 *   {"warning_id": "...", "token": "apns:9f86d08..."}
 *
 * (the token with its platform prefix, as registered in the population
 * data). The worker checks the shape and appends it to the Redis stream
 * {prefix}receipts; the dispatcher reads that stream and turns the matching
 * accepted app delivery into delivered. Answers: 204 recorded, 400 bad JSON
 * or fields (named), 413 too large, 415 not JSON, 503 Redis down.
 */
#ifndef TOCSIN_RECEIPTS_H
#define TOCSIN_RECEIPTS_H

#include "http.h"

struct worker;

void receipts_post(struct worker *w, struct http_request *req);

#endif
