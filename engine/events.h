/*
 * engine/events.h: GET /v1/events, the server-sent event stream that
 * feeds the operator dashboard.
 *
 * Each worker keeps its own subscribers (at most [events]
 * max_subscribers; 503 beyond) and one timer, armed only while someone
 * listens. Every interval_ms each subscriber gets
 *
 *   id: <ms since the epoch>
 *   event: status
 *   data: <dispatch_status() JSON, one line>
 *
 * and a ": heartbeat" comment every heartbeat_ms. A subscriber whose
 * unsent bytes exceed max_pending is dropped (its connection closed or
 * its HTTP/2 stream reset): a slow reader costs at most that much memory.
 *
 * Loop-thread only, like everything of a worker.
 */
#ifndef TOCSIN_EVENTS_H
#define TOCSIN_EVENTS_H

#include <stddef.h>

#include "http.h"

struct worker;
struct events;

struct events *events_new(struct worker *w);
/* Free; every stream must have ended (events_drain) before. */
void events_free(struct events *ev);

/* Answer GET /v1/events: start streaming, or 503 when full. */
void events_subscribe(struct events *ev, struct http_request *req);
/* End every stream cleanly (the worker is stopping). */
void events_drain(struct events *ev);
size_t events_count(const struct events *ev);

#endif
