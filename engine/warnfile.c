/*
 * engine/warnfile.c: warning description INI -> serialized tocsin.Warning.
 *
 * The INI keys are the proto field names, so most fields are set
 * generically through the protobuf-c descriptors (string, repeated string,
 * enum, repeated enum, int64 time). Only the language (from the section
 * name), areas and name:value pairs are special-cased.
 *
 * Invariants:
 *  - Every string, array and sub-message hanging off the Warning is
 *    malloc'd, so protobuf_c_message_free_unpacked (default allocator)
 *    frees the whole tree, on success and on every error path.
 *  - The first error wins and stops the parse; nothing is returned then.
 *  - No clock: the caller passes `now`.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "keyring.h"
#include "warnfile.h"
#include "warning.pb-c.h"

#define WF_MAX_FILE (1024 * 1024)
#define WF_MAX_TARGETS 1024
#define WF_MAX_INFOS 16

struct wf_parse {
	const char *name;
	const char *pos, *end; /* unread input */
	int line;
	int header_line;
	bool header_used;
	bool new_section;
	char header_name[128];
	const char *flag;      /* when applying an override: "--status" etc. */
	int64_t now;
	Tocsin__Warning *w;
	int alert_line;        /* 0: no [alert] yet */
	ProtobufCMessage *cur; /* the message the current section fills */
	Tocsin__Area *area;    /* last area of the current info */
	int *info_lines;       /* header line per info */
	bool failed;
	char *err;
	size_t errlen;
};

/* Text fields that may repeat or continue: parts are joined with "\n". */
static const char *const wf_text_fields[] = { "note", "description", "instruction", "contact",
					      "audience" };

/* Record the first error; returns -1 for the caller to return. */
static int wf_fail(struct wf_parse *p, int line, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (p->failed)
		return -1;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->flag != NULL)
		snprintf(p->err, p->errlen, "%s: %s", p->flag, msg);
	else if (field != NULL)
		snprintf(p->err, p->errlen, "%s:%d: %s: %s", p->name, line, field, msg);
	else
		snprintf(p->err, p->errlen, "%s:%d: %s", p->name, line, msg);
	return -1;
}

static void *wf_oom(struct wf_parse *p)
{
	wf_fail(p, p->line, NULL, "out of memory");
	return NULL;
}

int warnfile_parse_time(const char *s, int64_t now, int64_t *out)
{
	if (!strcasecmp(s, "now")) {
		*out = now;
		return 0;
	}
	if (*s != '+')
		return keyring_parse_time(s, out);
	char *end;
	errno = 0;
	long long n = strtoll(s + 1, &end, 10);
	if (errno || end == s + 1 || !isdigit((unsigned char)s[1]) || n > 100LL * 365 * 86400)
		return -1;
	static const char units[] = "smhd";
	static const int64_t secs[] = { 1, 60, 3600, 86400 };
	const char *u = *end ? strchr(units, *end) : NULL;
	if (u == NULL || end[1] != '\0')
		return -1;
	*out = now + n * secs[u - units];
	return 0;
}

/* ---- enums: CAP names from the descriptor ("URGENCY_UNKNOWN" -> "Unknown") ---- */

/* Upper-case alphanumerics of s into buf (drops '_', '-', spaces). */
static void wf_norm(const char *s, char *buf, size_t cap)
{
	size_t n = 0;

	for (; *s && n + 1 < cap; s++)
		if (isalnum((unsigned char)*s))
			buf[n++] = (char)toupper((unsigned char)*s);
	buf[n] = '\0';
}

/* The CAP spelling of enum value v: prefix dropped, CamelCase. */
static void wf_enum_display(const ProtobufCEnumDescriptor *ed, const char *v, char *buf,
			    size_t cap)
{
	char pre[64];
	size_t n = 0;
	bool up = true;

	wf_norm(ed->short_name, pre, sizeof(pre));
	size_t pl = strlen(pre);
	if (!strncmp(v, pre, pl) && v[pl] == '_')
		v += pl + 1;
	for (; *v && n + 1 < cap; v++) {
		if (*v == '_') {
			up = true;
			continue;
		}
		buf[n++] = up ? *v : (char)tolower((unsigned char)*v);
		up = false;
	}
	buf[n] = '\0';
}

/* Value of CAP name `s` in ed (UNSPECIFIED excluded), or -1. */
static int wf_enum_parse(const ProtobufCEnumDescriptor *ed, const char *s)
{
	char want[64], have[64], disp[64];

	wf_norm(s, want, sizeof(want));
	for (unsigned i = 0; i < ed->n_values; i++) {
		if (ed->values[i].value == 0)
			continue;
		wf_enum_display(ed, ed->values[i].name, disp, sizeof(disp));
		wf_norm(disp, have, sizeof(have));
		if (want[0] && !strcmp(want, have))
			return ed->values[i].value;
	}
	return -1;
}

static void wf_enum_choices(const ProtobufCEnumDescriptor *ed, char *buf, size_t cap)
{
	char disp[64];
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < ed->n_values && n < cap; i++) {
		if (ed->values[i].value == 0)
			continue;
		wf_enum_display(ed, ed->values[i].name, disp, sizeof(disp));
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", disp);
	}
}

static int wf_enum_value(struct wf_parse *p, const ProtobufCFieldDescriptor *f, const char *v)
{
	char choices[256];
	int e = wf_enum_parse(f->descriptor, v);

	if (e < 0) {
		wf_enum_choices(f->descriptor, choices, sizeof(choices));
		wf_fail(p, p->line, f->name, "unknown value '%s' (%s)", v, choices);
	}
	return e;
}

/* ---- generic setters ---- */

/* Next comma/space separated token: returns its length, 0 at the end. */
static size_t wf_token(const char **s)
{
	while (**s == ',' || isspace((unsigned char)**s))
		(*s)++;
	size_t n = 0;
	while ((*s)[n] && (*s)[n] != ',' && !isspace((unsigned char)(*s)[n]))
		n++;
	return n;
}

/* Append one element of `elt` bytes to the repeated field at (n, arr). */
static void *wf_push(struct wf_parse *p, size_t *n, void **arr, size_t elt)
{
	void *grown = realloc(*arr, (*n + 1) * elt);

	if (grown == NULL)
		return wf_oom(p);
	*arr = grown;
	return (char *)grown + (*n)++ * elt;
}

static int wf_push_string(struct wf_parse *p, size_t *n, char ***arr, const char *s, size_t len)
{
	char *copy = strndup(s, len);
	char **slot;

	if (copy == NULL || (slot = wf_push(p, n, (void **)arr, sizeof(char *))) == NULL) {
		free(copy);
		wf_oom(p);
		return -1;
	}
	*slot = copy;
	return 0;
}

static int wf_set_list(struct wf_parse *p, const ProtobufCFieldDescriptor *f, void *m,
		       const char *v)
{
	size_t *n = (size_t *)((char *)m + f->quantifier_offset);
	void **arr = (void **)((char *)m + f->offset);
	size_t len;
	char tok[64];

	while ((len = wf_token(&v)) > 0) {
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			if (wf_push_string(p, n, (char ***)arr, v, len) != 0)
				return -1;
		} else {
			snprintf(tok, sizeof(tok), "%.*s", (int)len, v);
			int e = wf_enum_value(p, f, tok);
			int *slot = e < 0 ? NULL : wf_push(p, n, arr, sizeof(int));
			if (slot == NULL)
				return -1;
			*slot = e;
		}
		v += len;
	}
	return 0;
}

static bool wf_is_text(const char *name)
{
	for (size_t i = 0; i < sizeof(wf_text_fields) / sizeof(wf_text_fields[0]); i++)
		if (!strcmp(name, wf_text_fields[i]))
			return true;
	return false;
}

static int wf_set_string(struct wf_parse *p, const ProtobufCFieldDescriptor *f, void *m,
			 const char *v)
{
	char **dst = (char **)((char *)m + f->offset);
	char *s;

	if (*dst != NULL && !wf_is_text(f->name)) {
		wf_fail(p, p->line, f->name, "given twice");
		return -1;
	}
	if (*dst != NULL) {
		if (asprintf(&s, "%s\n%s", *dst, v) < 0)
			s = NULL;
	} else {
		s = strdup(v);
	}
	if (s == NULL) {
		wf_oom(p);
		return -1;
	}
	free(*dst);
	*dst = s;
	return 0;
}

/* Singular enum or time: has_ + value. */
static int wf_set_scalar(struct wf_parse *p, const ProtobufCFieldDescriptor *f, void *m,
			 const char *v)
{
	protobuf_c_boolean *has = (protobuf_c_boolean *)((char *)m + f->quantifier_offset);

	if (*has) {
		wf_fail(p, p->line, f->name, "given twice");
		return -1;
	}
	if (f->type == PROTOBUF_C_TYPE_ENUM) {
		int e = wf_enum_value(p, f, v);
		if (e < 0)
			return -1;
		*(int *)((char *)m + f->offset) = e;
	} else {
		int64_t t;
		if (warnfile_parse_time(v, p->now, &t) != 0) {
			wf_fail(p, p->line, f->name,
				"bad time '%s' (now, +30m, +6h, +2d, or RFC 3339)", v);
			return -1;
		}
		*(int64_t *)((char *)m + f->offset) = t;
	}
	*has = 1;
	return 0;
}

/* Set field `name` of message m from the INI value v. */
static int wf_set_field(struct wf_parse *p, ProtobufCMessage *m, const char *name, const char *v)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);

	if (f == NULL || f->type == PROTOBUF_C_TYPE_MESSAGE || !strcmp(name, "language")) {
		wf_fail(p, p->line, name, "unknown field in [%s]", p->header_name);
		return -1;
	}
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return wf_set_list(p, f, m, v);
	if (f->type == PROTOBUF_C_TYPE_STRING)
		return wf_set_string(p, f, m, v);
	if (f->type == PROTOBUF_C_TYPE_ENUM || f->type == PROTOBUF_C_TYPE_INT64)
		return wf_set_scalar(p, f, m, v);
	wf_fail(p, p->line, name, "cannot be set from a warning file");
	return -1;
}

/* ---- special info fields ---- */

static Tocsin__NamedValue *wf_named_value(struct wf_parse *p, const char *field, const char *v)
{
	const char *colon = strchr(v, ':');

	if (colon == NULL || colon == v || colon[1] == '\0') {
		wf_fail(p, p->line, field, "expected NAME:VALUE, got '%s'", v);
		return NULL;
	}
	Tocsin__NamedValue *nv = malloc(sizeof(*nv));
	if (nv == NULL)
		return wf_oom(p);
	tocsin__named_value__init(nv);
	nv->value_name = strndup(v, (size_t)(colon - v));
	nv->value = strdup(colon + 1);
	if (nv->value_name == NULL || nv->value == NULL) {
		protobuf_c_message_free_unpacked(&nv->base, NULL);
		return wf_oom(p);
	}
	return nv;
}

static int wf_push_nv(struct wf_parse *p, size_t *n, Tocsin__NamedValue ***arr,
		      const char *field, const char *v)
{
	Tocsin__NamedValue *nv = wf_named_value(p, field, v);
	Tocsin__NamedValue **slot = nv ? wf_push(p, n, (void **)arr, sizeof(*slot)) : NULL;

	if (slot == NULL) {
		if (nv != NULL)
			protobuf_c_message_free_unpacked(&nv->base, NULL);
		return -1;
	}
	*slot = nv;
	return 0;
}

static int wf_new_area(struct wf_parse *p, Tocsin__Info *info, const char *v)
{
	Tocsin__Area *a = malloc(sizeof(*a));
	Tocsin__Area **slot;

	if (a == NULL) {
		wf_oom(p);
		return -1;
	}
	tocsin__area__init(a);
	a->area_desc = strdup(v);
	slot = a->area_desc ? wf_push(p, &info->n_area, (void **)&info->area, sizeof(*slot)) : NULL;
	if (slot == NULL) {
		protobuf_c_message_free_unpacked(&a->base, NULL);
		wf_oom(p);
		return -1;
	}
	*slot = a;
	p->area = a;
	return 0;
}

/* Returns 1 when `name` was an info special field (0: not special, -1: error). */
static int wf_info_special(struct wf_parse *p, Tocsin__Info *info, const char *name,
			   const char *v)
{
	if (!strcmp(name, "area"))
		return wf_new_area(p, info, v) == 0 ? 1 : -1;
	if (!strcmp(name, "event_code"))
		return wf_push_nv(p, &info->n_event_code, &info->event_code, name, v) ? -1 : 1;
	if (!strcmp(name, "parameter"))
		return wf_push_nv(p, &info->n_parameter, &info->parameter, name, v) ? -1 : 1;
	if (strcmp(name, "geocode") && strcmp(name, "polygon") && strcmp(name, "circle"))
		return 0;
	if (p->area == NULL) {
		wf_fail(p, p->line, name, "comes before any 'area ='");
		return -1;
	}
	if (!strcmp(name, "geocode"))
		return wf_push_nv(p, &p->area->n_geocode, &p->area->geocode, name, v) ? -1 : 1;
	if (!strcmp(name, "polygon"))
		return wf_push_string(p, &p->area->n_polygon, &p->area->polygon, v, strlen(v)) ? -1
											     : 1;
	return wf_push_string(p, &p->area->n_circle, &p->area->circle, v, strlen(v)) ? -1 : 1;
}

/* ---- sections ---- */

static int wf_open_info(struct wf_parse *p, const char *lang)
{
	Tocsin__Warning *w = p->w;
	Tocsin__Info *info;
	Tocsin__Info **slot;
	int *lines;

	while (isspace((unsigned char)*lang))
		lang++;
	if (*lang == '\0' || strpbrk(lang, " \t") != NULL)
		return wf_fail(p, p->header_line, NULL,
			       "[%s]: expected [info LANGUAGE], e.g. [info zh-CN]", p->header_name);
	if (w->n_info >= WF_MAX_INFOS)
		return wf_fail(p, p->header_line, NULL, "more than %d [info] sections",
			       WF_MAX_INFOS);
	lines = realloc(p->info_lines, (w->n_info + 1) * sizeof(int));
	if (lines == NULL)
		goto out_oom;
	p->info_lines = lines;
	info = malloc(sizeof(*info));
	if (info == NULL)
		goto out_oom;
	tocsin__info__init(info);
	info->language = strdup(lang);
	slot = info->language ? wf_push(p, &w->n_info, (void **)&w->info, sizeof(*slot)) : NULL;
	if (slot == NULL) {
		protobuf_c_message_free_unpacked(&info->base, NULL);
		goto out_oom;
	}
	*slot = info;
	p->info_lines[w->n_info - 1] = p->header_line;
	p->cur = &info->base;
	p->area = NULL;
	return 0;
out_oom:
	wf_oom(p);
	return -1;
}

static int wf_open_section(struct wf_parse *p, const char *section)
{
	p->new_section = false;
	if (!strcmp(section, "alert")) {
		if (p->alert_line) {
			wf_fail(p, p->header_line, NULL, "second [alert] section (first at line %d)",
				p->alert_line);
			return -1;
		}
		p->alert_line = p->header_line;
		p->cur = &p->w->base;
		return 0;
	}
	if (!strncmp(section, "info", 4) && (section[4] == ' ' || section[4] == '\t' || !section[4]))
		return wf_open_info(p, section + 4);
	if (*section == '\0')
		wf_fail(p, p->line, NULL, "field outside any section (start with [alert])");
	else
		wf_fail(p, p->header_line, NULL,
			"unknown section [%s] (expected [alert] or [info LANGUAGE])", section);
	return -1;
}

static int wf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct wf_parse *p = user;

	if (p->failed)
		return 0;
	p->header_used = true;
	if ((p->new_section || p->cur == NULL) && wf_open_section(p, section) != 0)
		return 0;
	if (p->cur != &p->w->base) {
		int r = wf_info_special(p, (Tocsin__Info *)p->cur, name, value);
		if (r != 0)
			return r > 0;
	}
	return wf_set_field(p, p->cur, name, value) == 0;
}

static void wf_check_empty_header(struct wf_parse *p)
{
	if (p->header_line > 0 && !p->header_used)
		wf_fail(p, p->header_line, NULL, "[%s]: section has no fields", p->header_name);
}

/* inih reader over memory: one physical line per call, counting lines. */
static char *wf_reader(char *buf, int cap, void *stream)
{
	struct wf_parse *p = stream;

	if (p->failed || p->pos >= p->end) {
		if (!p->failed)
			wf_check_empty_header(p);
		return NULL;
	}
	const char *nl = memchr(p->pos, '\n', (size_t)(p->end - p->pos));
	size_t len = nl ? (size_t)(nl - p->pos) + 1 : (size_t)(p->end - p->pos);
	p->line++;
	if (len > (size_t)cap - 1 || memchr(p->pos, '\0', len) != NULL) {
		wf_fail(p, p->line, NULL,
			len > (size_t)cap - 1 ? "line longer than %d bytes (continue text on "
						"indented lines)"
					      : "NUL byte in line",
			cap - 2);
		return NULL;
	}
	memcpy(buf, p->pos, len);
	buf[len] = '\0';
	p->pos += len;
	const char *s = buf + strspn(buf, " \t");
	if (*s == '[') {
		wf_check_empty_header(p);
		p->header_line = p->line;
		p->header_used = false;
		p->new_section = true;
		snprintf(p->header_name, sizeof(p->header_name), "%.*s", (int)strcspn(s + 1, "]"),
			 s + 1);
	} else if (*s != '\0' && !strchr(";#\r\n", *s)) {
		p->header_used = true; /* a field, or a syntax error inih reports */
	}
	return buf;
}

/* ---- overrides and final checks ---- */

/* True when field `name` of m is set (non-NULL, non-empty list, or has_). */
static bool wf_has(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	const char *base = (const char *)m;

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)(base + f->quantifier_offset) > 0;
	if (f->type == PROTOBUF_C_TYPE_STRING)
		return *(char *const *)(base + f->offset) != NULL;
	return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
}

/* Forget field `name` of m so that an override can set it afresh. */
static void wf_clear(ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	char *base = (char *)m;

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t *n = (size_t *)(base + f->quantifier_offset);
		void **arr = (void **)(base + f->offset);
		for (size_t i = 0; f->type == PROTOBUF_C_TYPE_STRING && i < *n; i++)
			free(((char **)*arr)[i]);
		free(*arr);
		*arr = NULL;
		*n = 0;
	} else if (f->type == PROTOBUF_C_TYPE_STRING) {
		free(*(char **)(base + f->offset));
		*(char **)(base + f->offset) = NULL;
	} else {
		*(protobuf_c_boolean *)(base + f->quantifier_offset) = 0;
	}
}

static int wf_override(struct wf_parse *p, ProtobufCMessage *m, const char *field,
		       const char *flag, const char *v)
{
	p->flag = flag;
	wf_clear(m, field);
	int rc = wf_set_field(p, m, field, v);
	p->flag = NULL;
	return rc;
}

static int wf_apply_overrides(struct wf_parse *p, const struct warnfile_overrides *ov)
{
	Tocsin__Warning *w = p->w;

	if (ov == NULL)
		return 0;
	if (ov->identifier && wf_override(p, &w->base, "identifier", "--identifier", ov->identifier))
		return -1;
	if (ov->status && wf_override(p, &w->base, "status", "--status", ov->status))
		return -1;
	if (ov->msg_type && wf_override(p, &w->base, "msg_type", "--msg-type", ov->msg_type))
		return -1;
	if (ov->references &&
	    wf_override(p, &w->base, "references", "--references", ov->references))
		return -1;
	for (size_t i = 0; ov->expires && i < w->n_info; i++)
		if (wf_override(p, &w->info[i]->base, "expires", "--expires", ov->expires))
			return -1;
	return 0;
}

static int wf_require(struct wf_parse *p, const ProtobufCMessage *m, int line,
		      const char *section, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!wf_has(m, names[i])) {
			wf_fail(p, line, NULL, "[%s]: missing '%s'", section, names[i]);
			return -1;
		}
	return 0;
}

static bool wf_identifier_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._:@-", *s))
			return false;
	return true;
}

/* Cross-field rules a sender gets wrong easily; admission checks them again. */
static int wf_check_alert(struct wf_parse *p)
{
	static const char *const req[] = { "identifier", "sender", "status", "msg_type" };
	Tocsin__Warning *w = p->w;
	int l = p->alert_line;

	if (wf_require(p, &w->base, l, "alert", req, 4) != 0)
		return -1;
	if (!wf_identifier_ok(w->identifier))
		return wf_fail(p, l, "identifier", "'%s': 1-128 of A-Z a-z 0-9 . _ : @ -",
			       w->identifier);
	if (w->national_id != NULL && strlen(w->national_id) != 31)
		return wf_fail(p, l, "national_id", "must be 31 characters, not %zu",
			       strlen(w->national_id));
	if (w->msg_type != TOCSIN__MSG_TYPE__ALERT && w->n_references == 0)
		return wf_fail(p, l, "references", "required when msg_type is not Alert");
	if (w->msg_type != TOCSIN__MSG_TYPE__CANCEL && w->n_targets == 0)
		return wf_fail(p, l, "targets", "required unless msg_type is Cancel");
	if (w->n_targets > WF_MAX_TARGETS)
		return wf_fail(p, l, "targets", "more than %d", WF_MAX_TARGETS);
	if (!w->has_scope) {
		w->has_scope = 1;
		w->scope = TOCSIN__SCOPE__PUBLIC;
	}
	if (w->scope == TOCSIN__SCOPE__RESTRICTED && w->restriction == NULL)
		return wf_fail(p, l, "restriction", "required when scope is Restricted");
	if (w->scope == TOCSIN__SCOPE__PRIVATE && w->n_addresses == 0)
		return wf_fail(p, l, "addresses", "required when scope is Private");
	if (!w->has_sent) {
		w->has_sent = 1;
		w->sent = p->now;
	}
	return 0;
}

static int wf_check(struct wf_parse *p)
{
	static const char *const req[] = { "category",  "event",   "urgency",  "severity",
					   "certainty", "expires", "headline" };
	Tocsin__Warning *w = p->w;
	char section[160];

	if (p->alert_line == 0) {
		snprintf(p->err, p->errlen, "%s: no [alert] section", p->name);
		return -1;
	}
	if (wf_check_alert(p) != 0)
		return -1;
	if (w->n_info == 0) {
		snprintf(p->err, p->errlen, "%s: no [info LANGUAGE] section", p->name);
		return -1;
	}
	for (size_t i = 0; i < w->n_info; i++) {
		snprintf(section, sizeof(section), "info %s", w->info[i]->language);
		if (wf_require(p, &w->info[i]->base, p->info_lines[i], section, req, 7) != 0)
			return -1;
	}
	return 0;
}

static int wf_parse_all(struct wf_parse *p, const struct warnfile_overrides *ov)
{
	int rc = ini_parse_stream(wf_reader, p, wf_handler, p);

	if (!p->failed && rc > 0)
		wf_fail(p, rc, NULL, "syntax error (expected [section] or 'key = value')");
	if (p->failed || wf_apply_overrides(p, ov) != 0)
		return -1;
	return wf_check(p);
}

int warnfile_build(const char *name, const char *text, size_t len, int64_t now,
		   const struct warnfile_overrides *ov, uint8_t **out, size_t *outlen, char *err,
		   size_t errlen)
{
	struct wf_parse p = { .name = name, .pos = text, .end = text + len, .now = now,
			      .err = err, .errlen = errlen };
	int rc = -1;

	p.w = malloc(sizeof(*p.w));
	if (p.w == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	tocsin__warning__init(p.w);
	if (wf_parse_all(&p, ov) != 0)
		goto out_free_warning;
	*outlen = tocsin__warning__get_packed_size(p.w);
	*out = malloc(*outlen ? *outlen : 1);
	if (*out == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out_free_warning;
	}
	tocsin__warning__pack(p.w, *out);
	rc = 0;
out_free_warning:
	protobuf_c_message_free_unpacked(&p.w->base, NULL);
	free(p.info_lines);
	return rc;
}

int warnfile_load(const char *path, int64_t now, const struct warnfile_overrides *ov,
		  uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t len;
	int rc = -1;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(WF_MAX_FILE + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out_close;
	}
	len = fread(buf, 1, WF_MAX_FILE + 1, f);
	if (ferror(f))
		snprintf(err, errlen, "%s: read error", path);
	else if (len > WF_MAX_FILE)
		snprintf(err, errlen, "%s: larger than %d bytes", path, WF_MAX_FILE);
	else
		rc = warnfile_build(path, buf, len, now, ov, out, outlen, err, errlen);
	free(buf);
out_close:
	fclose(f);
	return rc;
}
