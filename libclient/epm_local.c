/*
 * epm_local.c - the local registry backend of an EPM: no daemon, one user,
 * one machine.
 *
 * The registry is a directory, $XDG_RUNTIME_DIR/sipc/ (else
 * /tmp/sipc-UID/), that only its user may enter (0700, checked every time).
 * A receiver's registration is its listening Unix socket in that directory,
 * named HASH.PID.INSTANCE: HASH is the first 16 bytes of SHA-256 of the
 * handle in hex (handles may be 255 bytes, socket paths only 107), PID the
 * receiver's process, INSTANCE its random id in hex.  A receiver binds a
 * hidden temporary name, listens, then renames it into place, so a name
 * that appears always accepts connections.  Senders scan the directory and
 * follow it with inotify.  Entries of processes that no longer exist, and
 * sockets that refuse connections, are removed by whoever finds them.
 */
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "internal.h"

#define HASH_HEX	32	/* characters of the handle hash in a name */

struct epm_local {
	sipc_epm	*epm;
	char		 dir[128];
	int		 ifd;
	struct event	*iev;
};

static const char *
local_dir(sipc_epm *epm)
{
	return epm->local->dir;
}

/* Creates and checks the registry directory; 0 or SIPC_EPERM/ESYS. */
static int
local_dir_prepare(char *dir, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (xdg && xdg[0] == '/')
		snprintf(dir, size, "%s/sipc", xdg);
	else
		snprintf(dir, size, "/tmp/sipc-%u", (unsigned)getuid());
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		return seterr_sys(SIPC_ESYS, "cannot create the registry "
		    "directory %s", dir);
	if (lstat(dir, &st) == -1)
		return seterr_sys(SIPC_ESYS, "registry directory %s", dir);
	if (!S_ISDIR(st.st_mode))
		return seterr(SIPC_EPERM, "registry %s is not a directory",
		    dir);
	if (st.st_uid != getuid())
		return seterr(SIPC_EPERM, "registry directory %s belongs to "
		    "uid %u, not to this user (uid %u)", dir,
		    (unsigned)st.st_uid, (unsigned)getuid());
	if (st.st_mode & 077)
		return seterr(SIPC_EPERM, "registry directory %s is open to "
		    "group or others (mode %03o); it must be 0700", dir,
		    (unsigned)(st.st_mode & 0777));
	return 0;
}

static void
handle_hash(const char *handle, size_t hlen, char out[HASH_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int i;

	EVP_Digest(handle, hlen, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < HASH_HEX / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Socket path of a receiver: DIR/HASH.PID.INSTANCE; 0 or SIPC_EINVAL. */
static int
local_socket_path(sipc_epm *epm, const char *handle, size_t hlen,
    uint64_t instance, char *path, size_t size)
{
	char hash[HASH_HEX + 1];
	int n;

	handle_hash(handle, hlen, hash);
	n = snprintf(path, size, "%s/%s.%ld.%016llx", epm->local->dir, hash,
	    (long)getpid(), (unsigned long long)instance);
	if (n < 0 || (size_t)n >= size || n > SIPC_UNIX_PATH_MAX)
		return seterr(SIPC_EINVAL, "registry directory %s is too long "
		    "for Unix socket paths (%d bytes at most)",
		    epm->local->dir, SIPC_UNIX_PATH_MAX);
	return 0;
}

socklen_t
samehost_addr(const char *handle, size_t hlen, long pid, uint64_t instance,
    struct sockaddr_un *sun)
{
	char hash[HASH_HEX + 1];
	int n;

	handle_hash(handle, hlen, hash);
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	/* Abstract (a leading NUL): no file, gone with the process. */
	n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
	    "sipc/h/%s.%ld.%016llx", hash, pid, (unsigned long long)instance);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/*
 * Parses NAME as an entry of the handle whose hash is hash: fills pid and
 * instance.  1 when it is one, 0 otherwise.
 */
static int
parse_entry(const char *name, const char *hash, long *pid,
    uint64_t *instance)
{
	char *end;

	if (strncmp(name, hash, HASH_HEX) != 0 || name[HASH_HEX] != '.')
		return 0;
	*pid = strtol(name + HASH_HEX + 1, &end, 10);
	if (*end != '.' || *pid <= 0)
		return 0;
	*instance = strtoull(end + 1, &end, 16);
	return *end == '\0' && *instance != 0;
}

static void
entry_peer(struct epm_local *l, const char *name, long pid,
    uint64_t instance, struct peer *peer)
{
	memset(peer, 0, sizeof(*peer));
	peer->instance = instance;
	peer->pid = (uint32_t)pid;
	peer->ep.family = WIRE_AF_UNIX;
	snprintf(peer->ep.path, sizeof(peer->ep.path), "%s/%s", l->dir, name);
	snprintf(peer->host, sizeof(peer->host), "local");
}

/* Removes entries whose process is gone; 1 when name was one. */
static int
reap_if_dead(struct epm_local *l, const char *name, long pid)
{
	char path[512];

	if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", l->dir, name);
	unlink(path);
	return 1;
}

/* Reports every live entry of w's handle as a join. */
static void
scan(struct epm_local *l, struct epm_watch *w)
{
	char hash[HASH_HEX + 1];
	struct dirent *de;
	struct peer peer;
	uint64_t inst;
	long pid;
	DIR *d;

	handle_hash(w->handle, w->hlen, hash);
	if ((d = opendir(l->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!parse_entry(de->d_name, hash, &pid, &inst))
			continue;
		if (reap_if_dead(l, de->d_name, pid))
			continue;
		entry_peer(l, de->d_name, pid, inst, &peer);
		w->on_join(w->arg, &peer);
	}
	closedir(d);
}

static void
inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct epm_local *l = arg;
	sipc_epm *epm = l->epm;
	char buf[8192] __attribute__((aligned(8))), hash[HASH_HEX + 1];
	const struct inotify_event *ev;
	struct epm_watch *w, *wn;
	struct peer peer;
	uint64_t inst;
	ssize_t n;
	long pid;
	char *p;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				/* Events were lost: rescan everything. */
				for (w = TAILQ_FIRST(&epm->watches); w;
				    w = wn) {
					wn = TAILQ_NEXT(w, entry);
					if (w->on_resync)
						w->on_resync(w->arg);
					scan(l, w);
					if (w->on_synced)
						w->on_synced(w->arg);
				}
				continue;
			}
			if (ev->len == 0 || ev->name[0] == '.')
				continue;
			for (w = TAILQ_FIRST(&epm->watches); w; w = wn) {
				wn = TAILQ_NEXT(w, entry);
				handle_hash(w->handle, w->hlen, hash);
				if (!parse_entry(ev->name, hash, &pid, &inst))
					continue;
				entry_peer(l, ev->name, pid, inst, &peer);
				if (ev->mask & (IN_CREATE | IN_MOVED_TO))
					w->on_join(w->arg, &peer);
				else
					w->on_leave(w->arg, &peer);
			}
		}
	}
}

/* ---- Backend interface --------------------------------------------------- */

static int
local_create(sipc_epm *epm, const char *addr)
{
	struct epm_local *l;
	int rc;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	l->epm = epm;
	if ((rc = local_dir_prepare(l->dir, sizeof(l->dir))) != 0) {
		free(l);
		return rc;
	}
	l->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (l->ifd == -1) {
		free(l);
		return seterr_sys(SIPC_ESYS, "inotify_init1");
	}
	if (inotify_add_watch(l->ifd, l->dir, IN_CREATE | IN_MOVED_TO |
	    IN_DELETE | IN_MOVED_FROM) == -1) {
		rc = seterr_sys(SIPC_ESYS, "inotify on %s", l->dir);
		close(l->ifd);
		free(l);
		return rc;
	}
	l->iev = event_new(epm->loop.base, l->ifd, EV_READ | EV_PERSIST,
	    inotify_cb, l);
	if (l->iev == NULL || event_add(l->iev, NULL) == -1) {
		if (l->iev)
			event_free(l->iev);
		close(l->ifd);
		free(l);
		return seterr(SIPC_ENOMEM, "out of memory");
	}
	epm->local = l;
	return 0;
}

static void
local_destroy(sipc_epm *epm)
{
	struct epm_local *l = epm->local;

	if (l == NULL)
		return;
	event_free(l->iev);
	close(l->ifd);
	free(l);
	epm->local = NULL;
}

/*
 * A receiver's socket in the registry directory: bound and listening under
 * a hidden name (staged), renamed to its registered name by
 * local_reg_add(), so that every visible name accepts connections.
 */
static int
local_listen(sipc_epm *epm, struct epm_listen *o)
{
	struct sockaddr_un sun;
	int fd, rc;

	if ((rc = local_socket_path(epm, o->handle, o->hlen, o->instance,
	    o->ep.path, sizeof(o->ep.path))) != 0)
		return rc;
	o->ep.family = WIRE_AF_UNIX;
	snprintf(o->staged, sizeof(o->staged), "%s/.%016llx.tmp",
	    local_dir(epm), (unsigned long long)o->instance);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", o->staged);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return seterr_sys(SIPC_ESYS, "socket");
	unlink(o->staged);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(o->staged, 0600) == -1 || listen(fd, 511) == -1) {
		rc = seterr_sys(SIPC_ESYS, "listen on %s", o->staged);
		close(fd);
		unlink(o->staged);
		return rc;
	}
	o->fd = fd;
	return 0;
}

static void
local_reg_add(sipc_epm *epm, struct epm_reg *r)
{
	char msg[SIPC_UNIX_PATH_MAX + 64];
	int rc = 0;

	(void)epm;
	/* The receiver's socket, renamed into place (listening already),
	 * is the registration. */
	if (r->staged[0] && rename(r->staged, r->ep.path) == -1) {
		rc = SIPC_ESYS;
		snprintf(msg, sizeof(msg), "rename %s: %s", r->ep.path,
		    strerror(errno));
	} else
		r->staged[0] = '\0';
	r->id = r->instance;
	if (r->done)
		r->done(r->arg, rc, rc ? msg : NULL);
	r->done = NULL;
}

static void
local_reg_remove(sipc_epm *epm, struct epm_reg *r)
{
	(void)epm;
	unlink(r->ep.path);
}

static void
local_watch_add(sipc_epm *epm, struct epm_watch *w)
{
	scan(epm->local, w);
	if (w->on_synced)
		w->on_synced(w->arg);
}

static void
local_watch_remove(sipc_epm *epm, struct epm_watch *w)
{
	(void)epm;
	(void)w;
}

/* A registered name always listens (receivers rename it into place after
 * listen), so one that refuses is stale: whoever finds it removes it. */
static int
local_refused(sipc_epm *epm, const struct peer *p)
{
	(void)epm;
	unlink(p->ep.path);
	return 1;
}

const struct epm_ops epm_local_ops = {
	.name = "local registry",
	.local = 1,
	.create = local_create,
	.destroy = local_destroy,
	.listen = local_listen,
	.reg_add = local_reg_add,
	.reg_remove = local_reg_remove,
	.watch_add = local_watch_add,
	.watch_remove = local_watch_remove,
	.refused = local_refused,
	.resync_grace_ms = 0,
};
