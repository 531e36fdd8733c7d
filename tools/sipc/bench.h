/*
 * bench.h - sipc bench (bench.c), the measuring subcommand of sipc.
 */
#ifndef SIPC_TOOLS_BENCH_H
#define SIPC_TOOLS_BENCH_H

/* Runs "sipc bench ARGS": argv[0] is the first argument after "bench".
 * Returns the exit status. */
int	cmd_bench(int argc, char **argv);

#endif
