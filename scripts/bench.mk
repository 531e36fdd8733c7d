# bench.mk - make bench (owned by the benchmark work; see scripts/bench/).
bench: all
	@echo "make bench: not written yet" >&2; exit 1
