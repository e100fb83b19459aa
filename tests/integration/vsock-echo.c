// SPDX-License-Identifier: MIT
/*
 * A tiny vsock tool for the integration tests, built static and handed to the
 * guest on a raw disk (busybox has no vsock support):
 *   vsock-echo listen PORT          accept one connection, echo it back until EOF
 *   vsock-echo connect CID PORT MSG send MSG, print the reply
 */
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK };
	char buf[4096];
	ssize_t n;
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0) {
		perror("socket");
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "listen")) {
		int c;

		sa.svm_cid = VMADDR_CID_ANY;
		sa.svm_port = (unsigned int)atoi(argv[2]);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1)) {
			perror("bind/listen");
			return 1;
		}
		printf("vsock-echo: listening on %u\n", sa.svm_port);
		fflush(stdout);
		c = accept(fd, NULL, NULL);
		if (c < 0) {
			perror("accept");
			return 1;
		}
		while ((n = read(c, buf, sizeof(buf))) > 0)
			if (write(c, buf, (size_t)n) != n)
				return 1;
		printf("vsock-echo: echoed, peer closed\n");
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "connect")) {
		sa.svm_cid = (unsigned int)atoi(argv[2]);
		sa.svm_port = (unsigned int)atoi(argv[3]);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
			perror("connect");
			return 1;
		}
		if (write(fd, argv[4], strlen(argv[4])) != (ssize_t)strlen(argv[4]))
			return 1;
		n = read(fd, buf, sizeof(buf) - 1);
		if (n <= 0)
			return 1;
		buf[n] = 0;
		printf("vsock-echo: reply %s\n", buf);
		return 0;
	}
	fprintf(stderr, "usage: vsock-echo listen PORT | connect CID PORT MSG\n");
	return 2;
}
