/*
 * notify_listen.c - stands in for systemd's notification socket in
 * test_notify.sh: binds a Unix datagram socket at PATH and prints every
 * message it gets (sd_notify(3) states such as READY=1) on a line of its
 * own.  Exits 0 after a message with STOPPING=1, 1 when none came within
 * SECONDS, 2 on bad usage or a failed system call.
 *
 *   notify_listen PATH SECONDS
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	struct sockaddr_un sun;
	struct pollfd pfd;
	char buf[4096];
	time_t end;
	ssize_t n;
	int fd;

	if (argc != 3 || strlen(argv[1]) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "usage: notify_listen PATH SECONDS\n");
		return 2;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM, 0)) == -1) {
		perror("socket");
		return 2;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, argv[1]);
	unlink(argv[1]);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		perror(argv[1]);
		return 2;
	}
	end = time(NULL) + atoi(argv[2]);
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (time(NULL) < end) {
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((n = recv(fd, buf, sizeof(buf) - 1, 0)) < 0)
			continue;
		buf[n] = '\0';
		printf("%s\n", buf);
		fflush(stdout);
		if (strstr(buf, "STOPPING=1") != NULL) {
			unlink(argv[1]);
			return 0;
		}
	}
	unlink(argv[1]);
	return 1;
}
