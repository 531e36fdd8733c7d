# packaging.mk - make install, uninstall, deb (owned by the packaging work).
install uninstall: all
	@echo "make $@: not written yet" >&2; exit 1
