/*
 * engine/main.c: tocsind, the warning dissemination daemon.
 *
 *   tocsind --config FILE [--listen HOST:PORT] [--redis ADDR] [--keyring FILE]
 *           [--threads N] [--log-level debug|info|warn|error]
 *
 * The main thread only starts the workers and handles signals with
 * sigwait(): SIGHUP reloads the keyring (connections stay up), SIGTERM and
 * SIGINT drain and stop. Start-up errors name the file, line or key and
 * exit with status 1; usage errors exit with 2.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "adapters.h"
#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "server.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: tocsind --config FILE [--listen HOST:PORT] [--redis HOST:PORT|unix:PATH]\n"
		   "               [--keyring FILE] [--threads N] [--log-level LEVEL]\n");
}

/* The --config argument, for error messages. */
static const char *cfg_path(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c"))
			return argv[i + 1];
	return "config";
}

/*
 * Every connection (terminals above all) is a descriptor: take the whole
 * hard limit, and say what we got (raising the hard limit itself needs
 * CAP_SYS_RESOURCE, which containers usually lack).
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("msg=\"cannot raise the descriptor limit\" err=\"%s\"", strerror(errno));
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	log_info("msg=\"descriptor limit\" soft=%llu hard=%llu", (unsigned long long)rl.rlim_cur,
		 (unsigned long long)rl.rlim_max);
}

static int set_level(const char *s)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i])) {
			log_set_level((enum log_level)i);
			return 0;
		}
	return -1;
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	static const struct option opts[] = {
		{"config", required_argument, 0, 'c'},  {"listen", required_argument, 0, 'l'},
		{"redis", required_argument, 0, 'r'},   {"keyring", required_argument, 0, 'k'},
		{"threads", required_argument, 0, 't'}, {"log-level", required_argument, 0, 'v'},
		{"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
	const char *path = NULL, *listen = NULL, *redis = NULL, *keyring = NULL, *level = NULL;
	int threads = -1, c;
	char err[512];
	while ((c = getopt_long(argc, argv, "c:l:r:k:t:v:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'l': listen = optarg; break;
		case 'r': redis = optarg; break;
		case 'k': keyring = optarg; break;
		case 't': threads = atoi(optarg); break;
		case 'v': level = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 2;
	}
	config_defaults(cfg);
	if (config_load(cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "tocsind: %s\n", err);
		return 1;
	}
	if (listen)
		snprintf(cfg->listen, sizeof(cfg->listen), "%s", listen);
	if (redis)
		snprintf(cfg->redis, sizeof(cfg->redis), "%s", redis);
	if (keyring)
		snprintf(cfg->keyring, sizeof(cfg->keyring), "%s", keyring);
	if (threads >= 0)
		cfg->threads = threads;
	if (level)
		snprintf(cfg->log_level, sizeof(cfg->log_level), "%s", level);
	if (set_level(cfg->log_level) < 0) {
		fprintf(stderr, "tocsind: %s: [log] level: unknown level '%s'\n", path, cfg->log_level);
		return 1;
	}
	if (config_check(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "tocsind: %s: %s\n", path, err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	static struct engine e;
	char err[1024];
	int ret = parse_args(argc, argv, &cfg);
	if (ret)
		return ret;
	raise_fd_limit();
	/* A warning creates deliveries by the hundred thousand in a burst: grow the
	 * heaps 16 MB at a time instead of a few pages per mprotect/brk call
	 * (thousands of calls per district-wide warning otherwise). */
	mallopt(M_TOP_PAD, 16 << 20);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* workers inherit the mask */
	signal(SIGPIPE, SIG_IGN);
	if (engine_init(&e, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "tocsind: %s\n", err);
		return 1;
	}
	if (cfg.dispatch && cfg.n_lanes) {
		e.dispatcher = dispatch_new(&cfg, adapter_find, err, sizeof(err));
		if (!e.dispatcher || dispatch_start(e.dispatcher, err, sizeof(err)) < 0) {
			fprintf(stderr, "tocsind: %s: %s\n", cfg_path(argc, argv), err);
			return 1;
		}
	}
	if (engine_start(&e, err, sizeof(err)) < 0) {
		fprintf(stderr, "tocsind: %s\n", err);
		return 1;
	}
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			if (engine_reload_keyring(&e, err, sizeof(err)) < 0)
				log_error("msg=\"keyring reload failed; keeping the old one\" err=\"%s\"", err);
			continue;
		}
		log_info("msg=\"stopping\" signal=%d", sig);
		break;
	}
	engine_stop(&e);
	dispatch_stop(e.dispatcher);
	dispatch_free(e.dispatcher);
	engine_release(&e);
	log_info("msg=\"tocsind stopped\"");
	return 0;
}
