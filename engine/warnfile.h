/*
 * engine/warnfile.h: a human-written warning description (INI) -> the
 * serialized tocsin.Warning bytes that a bureau signs.
 *
 * ops/warning.example.ini is a complete, commented example. The format:
 *
 *   [alert]                       ; exactly one; the CAP alert block
 *   identifier = gulou-typhoon-2026-001
 *   sender     = met.fuzhou.gov.cn
 *   sent       = now              ; default now; or +30m / RFC 3339
 *   status     = Actual           ; Actual Exercise System Test Draft
 *   msg_type   = Alert            ; Alert Update Cancel Ack Error
 *   scope      = Public           ; default Public; Restricted Private
 *   references = id1 id2          ; required for Update Cancel Ack Error
 *   note       = ...
 *   national_id = 35010241600000_20261129080000_1   ; optional, 31 chars
 *   colour     = red              ; red orange yellow blue white
 *   targets    = 350102001, 350102002001   ; required unless Cancel
 *   (also: source, restriction, addresses, code, incidents)
 *
 *   [info zh-CN]                  ; one per language, order kept; >= 1
 *   category = Met                ; list; Geo Met Safety Security Rescue ...
 *   event = 台风
 *   response_type = Shelter, Prepare
 *   urgency = Immediate           ; Immediate Expected Future Past Unknown
 *   severity = Extreme            ; Extreme Severe Moderate Minor Unknown
 *   certainty = Observed          ; Observed Likely Possible Unlikely Unknown
 *   effective = now               ; optional; times: now, +N{s,m,h,d}, RFC 3339
 *   onset = +1h                   ; optional
 *   expires = +6h                 ; required
 *   sender_name / headline / description / instruction / web / contact / audience
 *   event_code = NAME:VALUE       ; repeatable; parameter likewise
 *   area = 鼓楼区                 ; starts a new area (area_desc)
 *   geocode = GB/T2260:350102     ; repeatable, for the last area
 *   polygon = ... / circle = ...  ; repeatable, for the last area
 *
 * Keys are the proto field names (proto/warning.proto documents them).
 * Enum values are CAP's names, case-insensitive. Lists are separated by
 * commas or spaces, and a repeated list key appends. Text fields (note,
 * description, instruction, contact, audience) may continue on indented
 * lines or repeat; the parts are joined with newlines. Other keys may not
 * repeat. A physical line is at most 198 bytes (inih's buffer); an inline
 * comment starts at " ;".
 *
 * Errors name the place: "w.ini:7: urgency: unknown value 'Soon'
 * (Immediate, Expected, Future, Past, Unknown)", and overrides name the
 * flag: "--status: unknown value ...".
 */
#ifndef TOCSIN_WARNFILE_H
#define TOCSIN_WARNFILE_H

#include <stddef.h>
#include <stdint.h>

/* Fields the CLI may override; NULL members leave the file's value. */
struct warnfile_overrides {
	const char *identifier;
	const char *status;     /* CAP name, e.g. "Exercise" */
	const char *msg_type;   /* CAP name, e.g. "Cancel" */
	const char *references; /* space- or comma-separated; replaces the file's */
	const char *expires;    /* now / +N{s,m,h,d} / RFC 3339; set on every info */
};

/*
 * Build a Warning from `len` bytes of INI text; `name` is used in error
 * messages; `now` is seconds since the epoch for "now" and "+6h"; `ov`
 * may be NULL. On success returns 0 and *out (malloc'd, caller frees)
 * holds the serialized tocsin.Warning. On failure returns -1, writes the
 * reason into err and allocates nothing.
 */
int warnfile_build(const char *name, const char *text, size_t len, int64_t now,
		   const struct warnfile_overrides *ov, uint8_t **out, size_t *outlen, char *err,
		   size_t errlen);

/* warnfile_build over the contents of the file at `path` (max 1 MiB). */
int warnfile_load(const char *path, int64_t now, const struct warnfile_overrides *ov,
		  uint8_t **out, size_t *outlen, char *err, size_t errlen);

/*
 * Parse a time value as the file accepts it: "now", "+N" with unit s, m,
 * h or d, relative to `now`, or RFC 3339 / CAP. Returns 0, or -1.
 */
int warnfile_parse_time(const char *s, int64_t now, int64_t *out);

#endif
