# packaging.mk - make install, uninstall, deb, check-deb, and the packaging
# tests of make check.  Included by the top-level Makefile.
#
#   make install     [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=...]
#   make uninstall   the same variables as install
#   make deb         Debian packages into $(B)/deb/ (dpkg-buildpackage)
#   make check-deb   build them, lintian, install them on this machine as
#                    root, check the broker runs, remove and purge them
#
# The files under packaging/ name the paths of the Debian layout (/usr/sbin,
# /etc/sipc, /usr/share/doc/sipc-epmd); "make install" rewrites them for the
# directories it is given (PKG_SUBST).

DATADIR		?= $(PREFIX)/share
MANDIR		?= $(DATADIR)/man
DOCDIR		?= $(DATADIR)/doc/sipc
PKGCONFIGDIR	?= $(LIBDIR)/pkgconfig
ifeq ($(PREFIX),/usr)
SYSCONFDIR	?= /etc
SYSTEMDUNITDIR	?= /lib/systemd/system
else
SYSCONFDIR	?= $(PREFIX)/etc
SYSTEMDUNITDIR	?= $(PREFIX)/lib/systemd/system
endif

PKG_SUBST	= sed -e 's|/usr/sbin/|$(SBINDIR)/|g' \
		      -e 's|/usr/bin/|$(BINDIR)/|g' \
		      -e 's|/etc/sipc/|$(SYSCONFDIR)/sipc/|g' \
		      -e 's|/usr/share/doc/sipc-epmd/|$(DOCDIR)/|g'
# pkg-config paths relative to ${prefix} where they can be, so that
# pkg-config --define-prefix and sysroots work.
pc_path		= $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

MAN1		= brokerctl.1 sipc.1
MAN3		= sipc.3
MAN8		= sipc-epmd.8 sipc-epmd-start.8
MAN_LINKS8	= sipc-epmd-stop.8
DROPINS		= password.conf tls.conf low-port.conf cluster.conf

# D: $(DESTDIR), short for the many lines below.
D		= $(DESTDIR)
INSTALL_DIRS	= $(D)$(BINDIR) $(D)$(SBINDIR) $(D)$(LIBDIR) \
		  $(D)$(PKGCONFIGDIR) $(D)$(INCLUDEDIR) $(D)$(MANDIR)/man1 \
		  $(D)$(MANDIR)/man3 $(D)$(MANDIR)/man8 $(D)$(SYSTEMDUNITDIR) \
		  $(D)$(SYSCONFDIR)/sipc $(D)$(DOCDIR)/examples

.PHONY: install uninstall install-files deb check-deb

# On the live system (no DESTDIR) the dynamic linker's cache and systemd
# are told about the new files.
install: all install-files
	@if [ -z "$(DESTDIR)" ]; then \
	    if [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; \
	    then ldconfig; fi; \
	    if [ -d /run/systemd/system ]; then \
	        systemctl daemon-reload || true; \
	        echo "make install: start the broker with" \
	            "'systemctl enable --now sipc-epmd'"; \
	    else \
	        echo "make install: start the broker with" \
	            "'$(SBINDIR)/sipc-epmd-start'"; \
	    fi; \
	fi

install-files: all
	install -d $(INSTALL_DIRS)
	install -m 0755 $(B)/bin/sipc-epmd $(D)$(SBINDIR)/sipc-epmd
	install -m 0755 $(B)/bin/brokerctl $(B)/bin/sipc $(D)$(BINDIR)/
	for s in sipc-epmd-start sipc-epmd-stop; do \
	    $(PKG_SUBST) scripts/$$s >$(D)$(SBINDIR)/$$s && \
	    chmod 0755 $(D)$(SBINDIR)/$$s || exit 1; \
	done
	install -m 0644 $(LIBSIPC_SO) $(D)$(LIBDIR)/
	ln -sf libsipc.so.$(SOVERSION).$(SOMINOR) \
	    $(D)$(LIBDIR)/libsipc.so.$(SOVERSION)
	ln -sf libsipc.so.$(SOVERSION) $(D)$(LIBDIR)/libsipc.so
	install -m 0644 $(LIBSIPC_A) $(D)$(LIBDIR)/
	install -m 0644 libclient/include/sipc.h $(D)$(INCLUDEDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|' \
	    -e 's|@VERSION@|$(VERSION)|' \
	    packaging/sipc.pc.in >$(D)$(PKGCONFIGDIR)/sipc.pc
	chmod 0644 $(D)$(PKGCONFIGDIR)/sipc.pc
	for m in $(MAN1:%=1/%) $(MAN3:%=3/%) $(MAN8:%=8/%); do \
	    $(PKG_SUBST) packaging/man/$${m#*/} \
	        >$(D)$(MANDIR)/man$${m%%/*}/$${m#*/} && \
	    chmod 0644 $(D)$(MANDIR)/man$${m%%/*}/$${m#*/} || exit 1; \
	done
	for m in $(MAN_LINKS8); do \
	    ln -sf sipc-epmd-start.8 $(D)$(MANDIR)/man8/$$m || exit 1; \
	done
	$(PKG_SUBST) packaging/systemd/sipc-epmd.service \
	    >$(D)$(SYSTEMDUNITDIR)/sipc-epmd.service
	chmod 0644 $(D)$(SYSTEMDUNITDIR)/sipc-epmd.service
	for f in $(DROPINS); do \
	    $(PKG_SUBST) packaging/systemd/$$f >$(D)$(DOCDIR)/examples/$$f && \
	    chmod 0644 $(D)$(DOCDIR)/examples/$$f || exit 1; \
	done
	@# The config is the administrator's: never overwritten.
	@conf=$(D)$(SYSCONFDIR)/sipc/epmd.conf; \
	if [ -e "$$conf" ]; then \
	    $(PKG_SUBST) packaging/epmd.conf | cmp -s - "$$conf" || \
	    echo "make install: kept $$conf (changed); the default is" \
	        "$(DOCDIR)/examples/epmd.conf"; \
	else \
	    echo "make install: installed $$conf"; \
	    $(PKG_SUBST) packaging/epmd.conf >"$$conf" && chmod 0644 "$$conf"; \
	fi
	$(PKG_SUBST) packaging/epmd.conf >$(D)$(DOCDIR)/examples/epmd.conf
	chmod 0644 $(D)$(DOCDIR)/examples/epmd.conf

# Stops the brokers that run the sipc-epmd being removed (the packages do
# the same), and keeps a config file that was changed.
uninstall:
	@sh packaging/stop-installed.sh $(D)$(SBINDIR)/sipc-epmd \
	    $(if $(DESTDIR),,$(SYSTEMDUNITDIR)/sipc-epmd.service)
	rm -f $(D)$(SBINDIR)/sipc-epmd $(D)$(SBINDIR)/sipc-epmd-start \
	    $(D)$(SBINDIR)/sipc-epmd-stop $(D)$(BINDIR)/brokerctl \
	    $(D)$(BINDIR)/sipc
	rm -f $(D)$(LIBDIR)/libsipc.so.$(SOVERSION).$(SOMINOR) \
	    $(D)$(LIBDIR)/libsipc.so.$(SOVERSION) $(D)$(LIBDIR)/libsipc.so \
	    $(D)$(LIBDIR)/libsipc.a $(D)$(PKGCONFIGDIR)/sipc.pc \
	    $(D)$(INCLUDEDIR)/sipc.h
	rm -f $(MAN1:%=$(D)$(MANDIR)/man1/%) $(MAN3:%=$(D)$(MANDIR)/man3/%) \
	    $(MAN8:%=$(D)$(MANDIR)/man8/%) $(MAN_LINKS8:%=$(D)$(MANDIR)/man8/%)
	rm -f $(D)$(SYSTEMDUNITDIR)/sipc-epmd.service
	rm -f $(DROPINS:%=$(D)$(DOCDIR)/examples/%) \
	    $(D)$(DOCDIR)/examples/epmd.conf
	rmdir $(D)$(DOCDIR)/examples $(D)$(DOCDIR) 2>/dev/null || true
	@conf=$(D)$(SYSCONFDIR)/sipc/epmd.conf; \
	if [ -e "$$conf" ]; then \
	    if $(PKG_SUBST) packaging/epmd.conf | cmp -s - "$$conf"; then \
	        echo "rm -f $$conf"; rm -f "$$conf"; \
	    else \
	        echo "make uninstall: kept $$conf (changed)"; \
	    fi; \
	fi; \
	rmdir $(D)$(SYSCONFDIR)/sipc 2>/dev/null || true
	@if [ -z "$(DESTDIR)" ]; then \
	    if [ -d /run/systemd/system ]; then \
	        systemctl daemon-reload || true; fi; \
	    if [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; \
	    then ldconfig; fi; \
	fi

# ---- Debian packages --------------------------------------------------------
# The source of the packages is this tree: copied, with packaging/debian as
# debian/, into $(B)/deb/sipc-$(VERSION), built there; the .debs land in
# $(B)/deb/.

DEB_DIR		= $(B)/deb
DEB_STAGE	= $(DEB_DIR)/sipc-$(VERSION)
# The tree's files: git's list (tracked, and new ones not ignored) in a
# checkout, else every top-level entry but the build directories.
DEB_FILES	= if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		      git ls-files -z --cached --others --exclude-standard | \
		      grep -z -v '^$(B)/'; \
		  else \
		      find $(filter-out build $(word 1,$(subst /, ,$(B))), \
		          $(wildcard *)) -type f -print0; \
		  fi

deb:
	@command -v dpkg-buildpackage >/dev/null && \
	    command -v dh >/dev/null || sh scripts/install-deps.sh
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version); \
	if [ "$$v" != "$(VERSION)" ]; then \
	    echo "make deb: packaging/debian/changelog is at $$v," \
	        "the Makefile at $(VERSION); add a changelog entry" \
	        "(dch -c packaging/debian/changelog -v $(VERSION))" >&2; \
	    exit 1; \
	fi
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_STAGE)
	($(DEB_FILES)) | tar --null -T - --ignore-failed-read -cf - | \
	    tar -xf - -C $(DEB_STAGE)
	rm -rf $(DEB_STAGE)/packaging/debian
	cp -R packaging/debian $(DEB_STAGE)/debian
	chmod 0755 $(DEB_STAGE)/debian/rules
	@# Not a sub-make of this one: B and the rest stay out of its build.
	cd $(DEB_STAGE) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	    dpkg-buildpackage -us -uc -b
	@ls -1 $(DEB_DIR)/*.deb

check-deb: all $(B)/tests/test_deb
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "make check-deb: installs the packages on this machine;" \
	        "run it as root" >&2; exit 1; fi
	@SIPC_BUILD=$(CURDIR)/$(B) sh tests/run.sh $(B)/tests/test_deb

# ---- Tests --------------------------------------------------------------------
# Each is a shell script in tests/install/, run through a small wrapper in
# $(B)/tests/ that tells it where the tree and the build are.  test_deb
# (about a minute) installs and purges the packages on this machine: it
# runs as root only, and says SKIPPED otherwise.

PKG_TESTS	= test_install test_pkgconfig test_symbols test_scripts \
		  test_notify test_lint test_deb
PKG_TEST_BINS	= $(PKG_TESTS:%=$(B)/tests/%)
EXTRA_TESTS	+= $(PKG_TEST_BINS)

# "check" lists $(TESTS) before this file adds to it.
check: $(PKG_TEST_BINS)

$(PKG_TEST_BINS): $(B)/tests/%: tests/install/%.sh packaging/packaging.mk
	@mkdir -p $(dir $@)
	@{ echo '#!/bin/sh'; \
	   echo '# Generated by packaging/packaging.mk: runs $<.'; \
	   echo "SIPC_SRC='$(CURDIR)'; export SIPC_SRC"; \
	   echo "SIPC_B='$(B)'; export SIPC_B"; \
	   echo 'exec sh "$$SIPC_SRC/$<" "$$@"'; } >$@
	@chmod 0755 $@
