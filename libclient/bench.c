/*
 * bench.c - sipc bench: placeholder until the benchmark lands.
 */
#include <stdio.h>

#include "cli.h"

int
cmd_bench(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sipc bench: not written yet\n");
	return 1;
}
