/*
 * engine/events.c: the server-sent event stream (see events.h).
 *
 * Subscribers live on a list owned by the worker's events object. A
 * stream can end under us while we walk the list (a write that fails
 * closes a connection, and an HTTP/2 connection carries several
 * streams), so while walking, ended subscribers are only marked (req =
 * NULL) and swept afterwards.
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "log.h"
#include "server.h"

struct subscriber {
	struct http_request *req;  /* NULL once ended */
	uint64_t last_heartbeat_ms;
	struct subscriber *next;
};

struct events {
	struct worker *w;
	struct subscriber *subs;
	size_t n;
	bool walking;
	struct timer tick;
};

static const char no_dispatcher[] =
	"{\"lanes\":[],\"warnings\":[],\"readiness\":null,\"dispatch\":\"off\"}";

struct events *events_new(struct worker *w)
{
	struct events *ev = calloc(1, sizeof(*ev));
	if (ev)
		ev->w = w;
	return ev;
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	loop_timer_cancel(&ev->w->loop, &ev->tick);
	while (ev->subs) {
		struct subscriber *s = ev->subs;
		ev->subs = s->next;
		free(s);
	}
	free(ev);
}

size_t events_count(const struct events *ev)
{
	return ev ? ev->n : 0;
}

static void sweep(struct events *ev)
{
	for (struct subscriber **pp = &ev->subs; *pp;) {
		struct subscriber *s = *pp;
		if (s->req) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		free(s);
		ev->n--;
	}
	ev->w->stats.sse_subscribers = ev->n;
	if (!ev->n)
		loop_timer_cancel(&ev->w->loop, &ev->tick);
}

/* The session says the peer went away. */
static void on_gone(struct http_request *req, void *arg)
{
	struct subscriber *s = arg;
	(void)req;
	struct events *ev = s->req ? s->req->conn->w->events : NULL;
	s->req = NULL;
	if (ev && !ev->walking)
		sweep(ev);
}

/* Write or drop: a subscriber over its output cap is cut off. */
static void send_to(struct events *ev, struct subscriber *s, const char *data, size_t len)
{
	struct http_request *req = s->req;
	if (!req)
		return;
	if (http_stream_pending(req) > ev->w->e->cfg.events_max_pending ||
	    http_stream_write(req, data, len) < 0) {
		log_info("msg=\"event stream subscriber dropped: not reading\" conn=%lu",
			 (unsigned long)req->conn->id);
		ev->w->stats.sse_dropped++;
		s->req = NULL;
		http_stream_end(req, true);
	}
}

/* "id/event/data" for the current status; malloc'd. */
static char *status_event(struct worker *w, size_t *len)
{
	char *st = w->e->dispatcher ? dispatch_status(w->e->dispatcher) : NULL;
	char *out = NULL;
	int n = asprintf(&out, "id: %lld\nevent: status\ndata: %s\n\n",
			 (long long)loop_wall_s() * 1000, st ? st : no_dispatcher);
	free(st);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return out;
}

static void on_tick(struct timer *t)
{
	struct events *ev = (struct events *)((char *)t - offsetof(struct events, tick));
	struct worker *w = ev->w;
	uint64_t now = loop_now_ms(&w->loop);
	size_t len = 0;
	char *msg = status_event(w, &len);
	ev->walking = true;
	for (struct subscriber *s = ev->subs; s; s = s->next) {
		if (msg)
			send_to(ev, s, msg, len);
		if (s->req && now - s->last_heartbeat_ms >= (uint64_t)w->e->cfg.events_heartbeat_ms) {
			s->last_heartbeat_ms = now;
			send_to(ev, s, ": heartbeat\n\n", 13);
		}
	}
	ev->walking = false;
	free(msg);
	sweep(ev);
	if (ev->n)
		loop_timer_set(&w->loop, &ev->tick, (uint64_t)w->e->cfg.events_interval_ms, on_tick);
}

void events_subscribe(struct events *ev, struct http_request *req)
{
	struct worker *w = ev->w;
	if (w->draining)
		return http_respond_error(req, 503, "shutting_down", NULL, "server is stopping");
	if (ev->n >= (size_t)w->e->cfg.events_max_subscribers)
		return http_respond_error(req, 503, "too_many_subscribers", NULL,
					  "this server thread has its maximum of event streams");
	struct subscriber *s = calloc(1, sizeof(*s));
	if (!s)
		return http_respond_error(req, 503, "overloaded", NULL, "out of memory");
	if (http_stream_start(req, "text/event-stream; charset=utf-8", on_gone, s) < 0) {
		free(s);
		return http_respond_error(req, 500, "internal", NULL, "cannot start the stream");
	}
	s->req = req;
	s->last_heartbeat_ms = loop_now_ms(&w->loop);
	s->next = ev->subs;
	ev->subs = s;
	ev->n++;
	w->stats.sse_subscribers = ev->n;
	size_t len = 0;
	char *msg = status_event(w, &len);
	send_to(ev, s, "retry: 2000\n\n", 13);
	if (msg)
		send_to(ev, s, msg, len);
	free(msg);
	sweep(ev);
	if (ev->n && !loop_timer_armed(&ev->tick))
		loop_timer_set(&w->loop, &ev->tick, (uint64_t)w->e->cfg.events_interval_ms, on_tick);
}

void events_drain(struct events *ev)
{
	if (!ev)
		return;
	ev->walking = true;
	for (struct subscriber *s = ev->subs; s; s = s->next) {
		struct http_request *req = s->req;
		s->req = NULL;
		if (req)
			http_stream_end(req, false);
	}
	ev->walking = false;
	sweep(ev);
}
