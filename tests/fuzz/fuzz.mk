# fuzz.mk - make fuzz (owned by the fuzzing work).
fuzz:
	@echo "make fuzz: not written yet" >&2; exit 1
