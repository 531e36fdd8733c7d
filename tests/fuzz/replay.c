/*
 * replay.c - the fuzzing regression test: every seed input of
 * tests/fuzz/corpus/TARGET/ and every finding of tests/fuzz/regress/TARGET/
 * through its target, built with the normal compiler and without libFuzzer,
 * so that what the fuzzers once found stays fixed ("make check", and with
 * the sanitizers "make check-asan").
 *
 *   test_fuzz_replay                   every target, every file
 *   test_fuzz_replay TARGET FILE...    these files through one target
 *
 * The files are found under $SIPC_SRC/tests/fuzz ("make check" sets it),
 * else under ./tests/fuzz.  Exit 0: every input ran, and every target had
 * seeds.  An input that breaks something crashes the program, after its
 * name was printed (or, under a sanitizer, from its death callback).
 *
 * Each target's entry point is renamed at compile time
 * (-DLLVMFuzzerTestOneInput=fuzz_TARGET_one), so all link into one program.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

int	fuzz_frame_one(const uint8_t *, size_t);
int	fuzz_broker_one(const uint8_t *, size_t);
int	fuzz_reader_one(const uint8_t *, size_t);
int	fuzz_zframe_one(const uint8_t *, size_t);
int	fuzz_parse_one(const uint8_t *, size_t);
int	fuzz_framer_one(const uint8_t *, size_t);

static const struct target {
	const char	*name;
	int		(*one)(const uint8_t *, size_t);
} targets[] = {
	{ "fuzz_frame",		fuzz_frame_one },
	{ "fuzz_broker",	fuzz_broker_one },
	{ "fuzz_reader",	fuzz_reader_one },
	{ "fuzz_zframe",	fuzz_zframe_one },
	{ "fuzz_parse",		fuzz_parse_one },
	{ "fuzz_framer",	fuzz_framer_one },
};
#define NTARGETS	(sizeof(targets) / sizeof(targets[0]))

/* The input running now, named when something kills the program. */
static char current[4096];

/* In a sanitizer's runtime only; NULL without one. */
void	__sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

static void
name_current(void)
{
	if (current[0])
		fprintf(stderr, "replay: the input was %s\n", current);
}

static void
on_signal(int sig)
{
	name_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Runs one file through t, in a buffer of exactly its size (so that ASan
 * sees a byte read too far).  0, or -1 when it cannot be read.
 */
static int
run_file(const struct target *t, const char *path)
{
	struct stat st;
	uint8_t *buf;
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "rb")) == NULL || fstat(fileno(fp), &st) == -1) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (fp)
			fclose(fp);
		return -1;
	}
	n = (size_t)st.st_size;
	if ((buf = malloc(n ? n : 1)) == NULL || fread(buf, 1, n, fp) != n) {
		fprintf(stderr, "replay: %s: cannot read\n", path);
		free(buf);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	snprintf(current, sizeof(current), "%s", path);
	t->one(buf, n);
	current[0] = '\0';
	free(buf);
	return 0;
}

/* Every regular file in dir, in name order; returns how many, or -1. */
static int
run_dir(const struct target *t, const char *dir, int must_exist)
{
	struct dirent **ents;
	char path[4096];
	struct stat st;
	int i, n, ran = 0, bad = 0;

	if ((n = scandir(dir, &ents, NULL, alphasort)) == -1) {
		if (errno == ENOENT && !must_exist)
			return 0;
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (ents[i]->d_name[0] != '.' && stat(path, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			if (run_file(t, path) == 0)
				ran++;
			else
				bad = 1;
		}
		free(ents[i]);
	}
	free(ents);
	return bad ? -1 : ran;
}

static const struct target *
find_target(const char *name)
{
	size_t i;

	for (i = 0; i < NTARGETS; i++)
		if (strcmp(targets[i].name, name) == 0)
			return &targets[i];
	return NULL;
}

int
main(int argc, char **argv)
{
	const struct target *t;
	const char *src = getenv("SIPC_SRC");
	char dir[4096];
	int i, seeds, found, failed = 0;
	size_t k;

	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(name_current);
	signal(SIGABRT, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGBUS, on_signal);
	signal(SIGFPE, on_signal);

	if (argc > 1) {
		if ((t = find_target(argv[1])) == NULL || argc < 3) {
			fprintf(stderr, "usage: %s [TARGET FILE...]\n",
			    argv[0]);
			return 2;
		}
		for (i = 2; i < argc; i++)
			if (run_file(t, argv[i]) == -1)
				failed = 1;
		return failed;
	}
	if (src == NULL || src[0] == '\0')
		src = ".";
	for (k = 0; k < NTARGETS; k++) {
		t = &targets[k];
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", src,
		    t->name);
		seeds = run_dir(t, dir, 1);
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/regress/%s", src,
		    t->name);
		found = run_dir(t, dir, 0);
		if (seeds <= 0 || found < 0) {
			if (seeds == 0)
				fprintf(stderr, "replay: %s: no seed inputs\n",
				    t->name);
			failed = 1;
			continue;
		}
		printf("%-12s %4d seeds, %3d findings replayed\n", t->name,
		    seeds, found);
	}
	return failed;
}
