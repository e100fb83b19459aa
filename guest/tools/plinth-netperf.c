// SPDX-License-Identifier: MIT
/*
 * plinth-netperf: a minimal TCP throughput test, one stream, IPv4.
 *
 *   plinth-netperf --send HOST:PORT [--time SECONDS] [--bs SIZE]
 *   plinth-netperf --listen [ADDR:]PORT [--once]
 *
 * The sender writes --bs blocks (default 128k) for --time seconds (default 10), then
 * shuts its side down and waits for the receiver to close, so that the time counts
 * every byte delivered, not just queued in the socket buffer. It prints
 *
 *   PLINTH-NET bytes=N secs=S mbits=X
 *
 * (mbits is 10^6 bits per second, CLOCK_MONOTONIC). The listener discards what it
 * reads and prints PLINTH-NET-RECV bytes=N secs=S mbits=X for each connection, one at
 * a time, until killed (or after one with --once).
 */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TRIES 50 /* 100 ms apart: the listener may still be starting */

static const char usage_text[] =
	"Usage: plinth-netperf --send HOST:PORT [--time SECONDS] [--bs SIZE]\n"
	"       plinth-netperf --listen [ADDR:]PORT [--once]\n"
	"One TCP stream from the sender to the listener, which discards the data.\n";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parse "A.B.C.D:PORT", or "PORT" when any_ok (address 0.0.0.0). 0 or -EINVAL. */
static int parse_addr(const char *s, bool any_ok, struct sockaddr_in *sa)
{
	const char *colon = strrchr(s, ':');
	char host[INET_ADDRSTRLEN];
	uint64_t port;

	*sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	if (!colon && !any_ok)
		return -EINVAL;
	if (parse_uint(colon ? colon + 1 : s, 1, 65535, &port))
		return -EINVAL;
	sa->sin_port = htons((uint16_t)port);
	if (!colon)
		return 0;
	if ((size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, colon - s);
	host[colon - s] = '\0';
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

static void report(const char *tag, uint64_t bytes, double secs)
{
	printf("%s bytes=%llu secs=%.3f mbits=%.1f\n", tag, (unsigned long long)bytes, secs,
	       secs > 0 ? bytes * 8 / secs / 1e6 : 0.0);
	fflush(stdout);
}

static int do_send(const struct sockaddr_in *sa, uint64_t seconds, size_t bs)
{
	uint64_t bytes = 0;
	double t0, end;
	char *buf, sink[256];
	int fd, i, ret = -1;
	ssize_t n;

	buf = malloc(bs);
	if (!buf) {
		fprintf(stderr, "plinth-netperf: no memory for a %zu-byte buffer\n", bs);
		return -1;
	}
	for (size_t j = 0; j < bs; j++)
		buf[j] = (char)(j * 131 + 7);
	for (i = 0;; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			fprintf(stderr, "plinth-netperf: socket: %s\n", strerror(errno));
			goto out_free_buf;
		}
		if (!connect(fd, (const struct sockaddr *)sa, sizeof(*sa)))
			break;
		if (i + 1 >= CONNECT_TRIES) {
			fprintf(stderr, "plinth-netperf: connect: %s\n", strerror(errno));
			goto out_close_fd;
		}
		close(fd);
		usleep(100 * 1000);
	}

	t0 = now();
	end = t0 + (double)seconds;
	while (now() < end) {
		n = send(fd, buf, bs, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "plinth-netperf: send: %s\n", strerror(errno));
			goto out_close_fd;
		}
		bytes += (uint64_t)n;
	}
	/* Wait for the receiver to have read everything and closed its end. */
	shutdown(fd, SHUT_WR);
	while ((n = recv(fd, sink, sizeof(sink), 0)) > 0 || (n < 0 && errno == EINTR))
		;
	report("PLINTH-NET", bytes, now() - t0);
	ret = 0;
out_close_fd:
	close(fd);
out_free_buf:
	free(buf);
	return ret;
}

static int do_listen(const struct sockaddr_in *sa, bool once)
{
	static char buf[256 * 1024];
	int lfd, fd, one = 1, ret = -1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		fprintf(stderr, "plinth-netperf: socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(lfd, 4) < 0) {
		fprintf(stderr, "plinth-netperf: bind/listen: %s\n", strerror(errno));
		goto out_close_lfd;
	}
	do {
		uint64_t bytes = 0;
		double t0;
		ssize_t n;

		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "plinth-netperf: accept: %s\n", strerror(errno));
			goto out_close_lfd;
		}
		t0 = now();
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0 || (n < 0 && errno == EINTR))
			if (n > 0)
				bytes += (uint64_t)n;
		report("PLINTH-NET-RECV", bytes, now() - t0);
		close(fd);
	} while (!once);
	ret = 0;
out_close_lfd:
	close(lfd);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "send", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "time", required_argument, NULL, 't' },
		{ "bs", required_argument, NULL, 'b' },
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *send_to = NULL, *listen_on = NULL;
	uint64_t seconds = 10, bs = 128 * KiB;
	struct sockaddr_in sa;
	bool once = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			send_to = optarg;
			break;
		case 'l':
			listen_on = optarg;
			break;
		case 't':
			if (parse_uint(optarg, 1, 86400, &seconds)) {
				fprintf(stderr, "plinth-netperf: --time must be 1..86400 seconds\n");
				return 2;
			}
			break;
		case 'b':
			if (parse_size(optarg, &bs) || !bs || bs > 64 * MiB) {
				fprintf(stderr, "plinth-netperf: --bs must be 1..64M\n");
				return 2;
			}
			break;
		case 'o':
			once = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc || !send_to == !listen_on) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (parse_addr(send_to ? send_to : listen_on, !send_to, &sa)) {
		fprintf(stderr, "plinth-netperf: bad address '%s' (want A.B.C.D:PORT)\n",
			send_to ? send_to : listen_on);
		return 2;
	}
	if (send_to)
		return do_send(&sa, seconds, (size_t)bs) ? 1 : 0;
	return do_listen(&sa, once) ? 1 : 0;
}
