/*
 * engine/cli_load.h: `tocsin load`, the population importer.
 *
 * Reads segments.csv, households.csv and terminals.csv, validates all of
 * them in memory, then writes a new version of the population into Redis
 * (keys tocsin:pop:v{N}:...) and switches tocsin:pop:current to N. Nothing
 * of a load is visible unless the whole load is valid. The key layout and
 * the resolver's command sequence are in engine/README-population.md.
 *
 *   tocsin load --redis HOST:PORT|unix:/path
 *               [--dir DIR | --segments F --households F --terminals F]
 *               [--grace SECONDS]
 *
 * Exit status: 0 loaded or unchanged, 1 invalid input or Redis failure,
 * 2 usage error. Errors go to stderr as "FILE:LINE: reason" (at most
 * LOAD_MAX_ERRORS of them); progress goes to stderr, the summary to stdout.
 */
#ifndef TOCSIN_CLI_LOAD_H
#define TOCSIN_CLI_LOAD_H

#define LOAD_MAX_ERRORS 20

/* argv[0] is "load" (the subcommand), as the CLI dispatch passes it. */
int cli_load_main(int argc, char **argv);

#endif
