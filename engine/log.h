/*
 * engine/log.h: structured log lines on stderr.
 *
 * One line per event: "2026-11-29T08:00:00.123Z level=info msg=... k=v".
 * Thread-safe (one write(2) per line). Logging is for people and log
 * shippers; it never blocks the loop for long (stderr is a pipe or a file).
 */
#ifndef TOCSIN_LOG_H
#define TOCSIN_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below `level` are dropped. Default LOG_INFO. Set once at start-up. */
void log_set_level(enum log_level level);

void tlog(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) tlog(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) tlog(LOG_INFO, __VA_ARGS__)
#define log_warn(...) tlog(LOG_WARN, __VA_ARGS__)
#define log_error(...) tlog(LOG_ERROR, __VA_ARGS__)

#endif
