// SPDX-License-Identifier: MIT
/*
 * `plinth ctl`: the command-line client of the control API. Debian has no small HTTP
 * client library for Unix sockets without TLS (libcurl brings a dozen), and all we need is one HTTP/1.1 request per connection over a Unix
 * socket ("Connection: close", body located by Content-Length), so the client is
 * written by hand here, with a cap on the response size.
 */
#include "api.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define CTL_RESPONSE_MAX (1u << 20) /* bytes of a whole response, headers included */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* --- Response parsing (pure) ---------------------------------------------------------- */

/* Case-insensitive compare of a counted header name with a literal. */
static bool name_is(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && !strncasecmp(p, lit, n);
}

/* A header value: skip leading/trailing blanks in [p, p+n). */
static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

int ctl_parse_response(const char *buf, size_t len, int *status, const char **body,
		       size_t *body_len, char *err, size_t errlen)
{
	const char *end, *line, *eol;
	uint64_t clen = 0;
	bool have_clen = false;
	size_t head, i;

	if (!buf || len < 12 || (memcmp(buf, "HTTP/1.1 ", 9) && memcmp(buf, "HTTP/1.0 ", 9))) {
		set_err(err, errlen, "the API socket did not answer with HTTP");
		return -EBADMSG;
	}
	for (i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9') {
			set_err(err, errlen, "malformed HTTP status line");
			return -EBADMSG;
		}
	}
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end) {
		set_err(err, errlen, "incomplete HTTP response headers");
		return -EBADMSG;
	}
	head = (size_t)(end - buf) + 4;
	/* Headers: lines after the status line, up to the blank line. */
	line = memchr(buf, '\n', head);
	for (line = line + 1; line < end; line = eol + 2) {
		const char *colon, *val;
		size_t nlen, vlen;

		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon) {
			set_err(err, errlen, "malformed HTTP header line");
			return -EBADMSG;
		}
		nlen = (size_t)(colon - line);
		val = colon + 1;
		vlen = (size_t)(eol - val);
		trim(&val, &vlen);
		if (name_is(line, nlen, "Content-Length")) {
			char num[24];

			if (have_clen || vlen == 0 || vlen >= sizeof(num)) {
				set_err(err, errlen, "malformed Content-Length");
				return -EBADMSG;
			}
			memcpy(num, val, vlen);
			num[vlen] = '\0';
			if (parse_uint(num, 0, CTL_RESPONSE_MAX, &clen)) {
				set_err(err, errlen, "malformed Content-Length");
				return -EBADMSG;
			}
			have_clen = true;
		} else if (name_is(line, nlen, "Transfer-Encoding")) {
			set_err(err, errlen, "chunked HTTP responses are not supported");
			return -EBADMSG;
		}
	}
	if (have_clen && clen > len - head) {
		set_err(err, errlen, "HTTP response truncated (%zu of %llu body bytes)", len - head,
			(unsigned long long)clen);
		return -EBADMSG;
	}
	*body = buf + head;
	*body_len = have_clen ? (size_t)clen : len - head;
	return 0;
}

/* --- Transport ----------------------------------------------------------------------- */

/* Milliseconds left before deadline (ms since boot), or -1 for no deadline. */
static int time_left(int64_t deadline)
{
	struct timespec ts;
	int64_t now;

	if (deadline < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return now >= deadline ? 0 : (int)MIN(deadline - now, (int64_t)INT32_MAX);
}

/* Wait for fd to be ready for events; -ETIMEDOUT past the deadline. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int n;

	do {
		n = poll(&pfd, 1, time_left(deadline));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

static int connect_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, ret;

	if (!path[0] || strlen(path) >= sizeof(sa.sun_path)) {
		set_err(err, errlen, "API socket path must be 1..%zu bytes",
			sizeof(sa.sun_path) - 1);
		return -EINVAL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		set_err(err, errlen, "socket: %s", strerror(errno));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		if (errno == ENOENT)
			set_err(err, errlen, "no API socket at %s (is the VM running?)", path);
		else if (errno == ECONNREFUSED)
			set_err(err, errlen,
				"nothing listens on the API socket %s (the VM has exited?)", path);
		else
			set_err(err, errlen, "cannot connect to the API socket %s: %s", path,
				strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n;
		int ret = wait_fd(fd, POLLOUT, deadline);

		if (ret)
			return ret;
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read until the server closes, at most CTL_RESPONSE_MAX bytes. *out malloc'd. */
static int recv_all(int fd, char **out, size_t *outlen, int64_t deadline)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1);
	int ret;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		ret = wait_fd(fd, POLLIN, deadline);
		if (ret)
			goto out_free;
		if (len == cap) {
			char *nb;

			if (cap >= CTL_RESPONSE_MAX) {
				ret = -EMSGSIZE;
				goto out_free;
			}
			cap = MIN(cap * 2, (size_t)CTL_RESPONSE_MAX);
			nb = realloc(buf, cap + 1);
			if (!nb) {
				ret = -ENOMEM;
				goto out_free;
			}
			buf = nb;
		}
		n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		/* A server that answered early (413) and closed without reading all we sent
		 * makes the kernel report a reset after its answer: that is its end. */
		if (n < 0 && errno == ECONNRESET && len > 0)
			break;
		if (n < 0) {
			ret = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;

out_free:
	free(buf);
	return ret;
}

int ctl_request(const char *socket_path, const char *method, const char *path, const char *body,
		int timeout_ms, int *status, char **resp_body, char *err, size_t errlen)
{
	size_t blen = body ? strlen(body) : 0, rlen = 0, body_len = 0;
	int64_t deadline = -1;
	char *req = NULL, *resp = NULL, *copy;
	const char *b;
	int fd, ret, send_ret, n;

	if (timeout_ms > 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
	}
	fd = connect_unix(socket_path, err, errlen);
	if (fd < 0)
		return fd;
	n = asprintf(&req,
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		     "Connection: close\r\n%s%zu\r\n\r\n%s",
		     method, path,
		     body ? "Content-Type: application/json\r\nContent-Length: "
			  : "Content-Length: ",
		     blen, body ? body : "");
	if (n < 0) {
		ret = -ENOMEM;
		set_err(err, errlen, "out of memory");
		goto out_close;
	}
	/* A server may answer before reading all of the request (413) and close: then
	 * sending fails, but its answer is waiting to be read. */
	send_ret = send_all(fd, req, (size_t)n, deadline);
	if (send_ret && send_ret != -EPIPE && send_ret != -ECONNRESET) {
		ret = send_ret;
		set_err(err, errlen, "sending the request: %s", strerror(-ret));
		goto out_free_req;
	}
	ret = recv_all(fd, &resp, &rlen, deadline);
	if (ret) {
		if (send_ret)
			set_err(err, errlen, "sending the request: %s", strerror(-send_ret));
		else if (ret == -EMSGSIZE)
			set_err(err, errlen, "response larger than %u bytes", CTL_RESPONSE_MAX);
		else if (ret == -ETIMEDOUT)
			set_err(err, errlen, "no answer within %d ms", timeout_ms);
		else
			set_err(err, errlen, "reading the response: %s", strerror(-ret));
		goto out_free_req;
	}
	ret = ctl_parse_response(resp, rlen, status, &b, &body_len, err, errlen);
	if (ret)
		goto out_free_resp;
	copy = malloc(body_len + 1);
	if (!copy) {
		ret = -ENOMEM;
		set_err(err, errlen, "out of memory");
		goto out_free_resp;
	}
	memcpy(copy, b, body_len);
	copy[body_len] = '\0';
	*resp_body = copy;

out_free_resp:
	free(resp);
out_free_req:
	free(req);
out_close:
	close(fd);
	return ret;
}

/* --- Command line -------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: plinth ctl --api-socket PATH [--timeout SECONDS] COMMAND [OPTIONS]\n"
		   "commands:\n"
		   "  info                                  state, configuration and counters\n"
		   "  pause | resume                        stop or restart the vCPUs\n"
		   "  shutdown                              press the ACPI power button\n"
		   "  reset                                 reset the VM\n"
		   "  snapshot --to DIR                     save the VM to a directory\n"
		   "  migrate --to tcp:HOST:PORT|unix:PATH [--downtime-ms N]\n"
		   "                                        live-migrate the VM\n"
		   "  disk-add --id ID --path FILE [--format FMT] [--readonly]\n"
		   "                                        hot-plug a disk (a raw image that\n"
		   "                                        is written needs --format raw)\n"
		   "  disk-remove --id ID                   ask the guest to eject a disk; it is\n"
		   "                                        gone from info once the guest did\n"
		   "  net-add --id ID --tap IFNAME [--mac MAC]\n"
		   "  net-remove --id ID                    the same for a NIC on a tap\n"
		   "  config --file FILE|-                  before boot: the machine's config (JSON,\n"
		   "                                        docs/api.yaml), from FILE or stdin\n"
		   "  start [--from DIR [--paused] | --listen tcp:HOST:PORT|unix:PATH]\n"
		   "                                        before boot: start the configured VM\n"
		   "                                        (boot it, restore it from a snapshot,\n"
		   "                                        or receive it from a migration)\n");
}

/* rel made absolute against the current directory, into out[size]. 0 or -errno. */
static int absolute(const char *rel, char *out, size_t size)
{
	char cwd[API_PATH_MAX];
	int n;

	if (rel[0] == '/')
		n = snprintf(out, size, "%s", rel);
	else if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	else
		n = snprintf(out, size, "%s/%s", cwd, rel);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* What one command sends. */
struct ctl_call {
	const char *method;
	char path[64];
	json_t *body; /* owned; NULL for none */
};

/* Parse a command and its options (argv[0] is the command) into call. 0 or -EINVAL, logged. */
static int parse_command(int argc, char **argv, struct ctl_call *call)
{
	static const struct option opts[] = {
		{"to", required_argument, NULL, 't'}, {"downtime-ms", required_argument, NULL, 'd'},
		{"id", required_argument, NULL, 'i'}, {"path", required_argument, NULL, 'p'},
		{"readonly", no_argument, NULL, 'r'}, {"file", required_argument, NULL, 'f'},
		{"from", required_argument, NULL, 'F'}, {"paused", no_argument, NULL, 'P'},
		{"listen", required_argument, NULL, 'l'}, {"format", required_argument, NULL, 'o'},
		{"tap", required_argument, NULL, 'T'}, {"mac", required_argument, NULL, 'M'},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0], *to = NULL, *id = NULL, *path = NULL, *downtime = NULL;
	const char *file = NULL, *from = NULL, *listen = NULL, *format = NULL, *tap = NULL;
	const char *mac = NULL;
	char abs[API_PATH_MAX + 8];
	bool readonly = false, paused = false;
	uint64_t dt = 0;
	int c;

	optind = 0; /* a fresh scan for GNU getopt */
	opterr = 0; /* our one line instead of getopt's */
	while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'd':
			downtime = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'p':
			path = optarg;
			break;
		case 'r':
			readonly = true;
			break;
		case 'f':
			file = optarg;
			break;
		case 'F':
			from = optarg;
			break;
		case 'P':
			paused = true;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'o':
			format = optarg;
			break;
		case 'T':
			tap = optarg;
			break;
		case 'M':
			mac = optarg;
			break;
		case ':':
			log_error("ctl %s: option '%s' needs a value", cmd, argv[optind - 1]);
			return -EINVAL;
		default:
			log_error("ctl %s: unknown option '%s' (see plinth ctl --help)", cmd,
				  argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_error("ctl %s: unexpected argument '%s'", cmd, argv[optind]);
		return -EINVAL;
	}
#define REFUSE_OPT(cond, what)                                                                     \
	do {                                                                                       \
		if (cond) {                                                                        \
			log_error("ctl %s: %s", cmd, what);                                        \
			return -EINVAL;                                                            \
		}                                                                                  \
	} while (0)

	call->method = "POST";
	call->body = NULL;
	REFUSE_OPT((from || listen || paused) && strcmp(cmd, "start"),
		   "--from, --paused and --listen are start's options");
	if (!strcmp(cmd, "start") && (from || listen || paused)) {
		REFUSE_OPT(to || id || path || downtime || readonly || file || format || tap || mac,
			   "takes only --from with --paused, or --listen");
		REFUSE_OPT(from && listen, "--from (a restore) and --listen (a migration's "
					   "destination) exclude each other");
		REFUSE_OPT(paused && !from, "--paused goes with --from");
		snprintf(call->path, sizeof(call->path), "/v1/vm/start");
		if (from) {
			REFUSE_OPT(absolute(from, abs, API_PATH_MAX), "--from: path too long");
			call->body = json_pack("{s:s, s:b}", "from", abs, "paused", paused);
		} else {
			call->body = json_pack("{s:s}", "listen", listen);
		}
		if (!call->body) {
			log_error("ctl %s: out of memory", cmd);
			return -ENOMEM;
		}
		return 0;
	}
	if (!strcmp(cmd, "config")) {
		json_error_t jerr;

		REFUSE_OPT(!file, "--file FILE (or - for stdin) is required");
		REFUSE_OPT(to || id || path || downtime || readonly || format || tap || mac,
			   "takes only --file");
		call->method = "PUT";
		snprintf(call->path, sizeof(call->path), "/v1/vm/config");
		call->body = strcmp(file, "-") ? json_load_file(file, JSON_REJECT_DUPLICATES, &jerr)
					       : json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
		if (!call->body) {
			log_error("ctl %s: %s: line %d: %s", cmd, file, jerr.line, jerr.text);
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(cmd, "info") || !strcmp(cmd, "pause") || !strcmp(cmd, "resume") ||
	    !strcmp(cmd, "shutdown") || !strcmp(cmd, "reset") || !strcmp(cmd, "start")) {
		REFUSE_OPT(to || id || path || downtime || readonly || file || format || tap || mac,
			   "takes no options");
		if (!strcmp(cmd, "info")) {
			call->method = "GET";
			snprintf(call->path, sizeof(call->path), "/v1/vm");
		} else {
			snprintf(call->path, sizeof(call->path), "/v1/vm/%s", cmd);
		}
		return 0;
	}
	if (!strcmp(cmd, "snapshot")) {
		REFUSE_OPT(!to, "--to DIR is required");
		REFUSE_OPT(id || path || downtime || readonly || file || format || tap || mac,
			   "takes only --to");
		REFUSE_OPT(absolute(to, abs, API_PATH_MAX), "--to: path too long");
		snprintf(call->path, sizeof(call->path), "/v1/vm/snapshot");
		call->body = json_pack("{s:s}", "to", abs);
	} else if (!strcmp(cmd, "migrate")) {
		REFUSE_OPT(!to, "--to tcp:HOST:PORT or --to unix:PATH is required");
		REFUSE_OPT(id || path || readonly || file || format || tap || mac,
			   "takes only --to and --downtime-ms");
		REFUSE_OPT(downtime && parse_uint(downtime, 1, API_DOWNTIME_MAX_MS, &dt),
			   "--downtime-ms must be 1..60000");
		if (!strncmp(to, "tcp:", 4)) {
			char why[API_ERROR_MAX];

			/* Names are resolved here: the VMM's filter forbids the resolver. */
			if (api_resolve_migrate_uri(to, abs, API_PATH_MAX, why, sizeof(why))) {
				log_error("ctl %s: --to: %s", cmd, why);
				return -EINVAL;
			}
			to = abs;
		} else if (!strncmp(to, "unix:", 5) && to[5] && to[5] != '/') {
			/* A relative socket path means relative to where ctl runs. */
			memcpy(abs, "unix:", 5);
			REFUSE_OPT(absolute(to + 5, abs + 5, API_PATH_MAX), "--to: path too long");
			to = abs;
		}
		snprintf(call->path, sizeof(call->path), "/v1/vm/migrate");
		call->body =
			downtime ? json_pack("{s:s, s:I}", "to", to, "downtime_ms", (json_int_t)dt)
				 : json_pack("{s:s}", "to", to);
	} else if (!strcmp(cmd, "disk-add") || !strcmp(cmd, "disk-remove")) {
		bool add = !strcmp(cmd, "disk-add");

		REFUSE_OPT(!id, "--id ID is required");
		REFUSE_OPT(!api_disk_id_valid(id), "--id: 1..31 characters of [A-Za-z0-9_-]");
		REFUSE_OPT(to || downtime || file || tap || mac,
			   "takes only --id, --path, --format and --readonly");
		REFUSE_OPT(add && !path, "--path FILE is required");
		REFUSE_OPT(!add && (path || readonly || format), "takes only --id");
		snprintf(call->path, sizeof(call->path), "/v1/vm/disks/%s", id);
		call->method = add ? "PUT" : "DELETE";
		if (add) {
			REFUSE_OPT(absolute(path, abs, API_PATH_MAX), "--path: path too long");
			call->body = json_pack("{s:s, s:b, s:s*}", "path", abs, "readonly", readonly,
					       "format", format);
		}
	} else if (!strcmp(cmd, "net-add") || !strcmp(cmd, "net-remove")) {
		bool add = !strcmp(cmd, "net-add");

		REFUSE_OPT(!id, "--id ID is required");
		REFUSE_OPT(!api_disk_id_valid(id), "--id: 1..31 characters of [A-Za-z0-9_-]");
		REFUSE_OPT(to || downtime || file || path || readonly || format,
			   "takes only --id, --tap and --mac");
		REFUSE_OPT(add && !tap, "--tap IFNAME is required");
		REFUSE_OPT(!add && (tap || mac), "takes only --id");
		snprintf(call->path, sizeof(call->path), "/v1/vm/nets/%s", id);
		call->method = add ? "PUT" : "DELETE";
		if (add)
			call->body = json_pack("{s:s, s:s*}", "tap", tap, "mac", mac);
	} else {
		log_error("ctl: unknown command '%s' (see plinth ctl --help)", cmd);
		return -EINVAL;
	}
#undef REFUSE_OPT
	if (!call->body && strcmp(call->method, "DELETE")) {
		log_error("ctl %s: out of memory", cmd);
		return -ENOMEM;
	}
	return 0;
}

/* One line for a failed request: the server's "error" field, or the raw body. */
static void report_failure(const char *cmd, int status, const char *body)
{
	char msg[API_ERROR_MAX * 2];
	json_t *j = json_loads(body, 0, NULL);
	const char *e = json_string_value(json_object_get(j, "error"));
	char *p;

	snprintf(msg, sizeof(msg), "%s", e ? e : (body[0] ? body : "no error message"));
	json_decref(j);
	for (p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	log_error("ctl %s: %s (HTTP %d)", cmd, msg, status);
}

int ctl_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"api-socket", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *cmd;
	struct ctl_call call;
	char err[512], *resp = NULL, *text = NULL;
	uint64_t timeout_s = 0;
	int c, status = 0, ret;
	json_t *j;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'T':
			if (parse_uint(optarg, 1, 86400, &timeout_s)) {
				log_error("ctl: --timeout must be 1..86400 seconds");
				return 1;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			log_error("ctl: option '%s' needs a value", argv[optind - 1]);
			return 1;
		default:
			log_error("ctl: unknown option '%s' (see plinth ctl --help)",
				  argv[optind - 1]);
			return 1;
		}
	}
	if (!sock) {
		log_error("ctl: --api-socket PATH is required (see plinth ctl --help)");
		return 1;
	}
	if (optind >= argc) {
		log_error("ctl: no command given (see plinth ctl --help)");
		return 1;
	}
	cmd = argv[optind];
	if (parse_command(argc - optind, argv + optind, &call))
		return 1;
	if (call.body) {
		text = json_dumps(call.body, JSON_COMPACT);
		json_decref(call.body);
		if (!text) {
			log_error("ctl: out of memory");
			return 1;
		}
	}
	ret = ctl_request(sock, call.method, call.path, text, (int)timeout_s * 1000, &status, &resp,
			  err, sizeof(err));
	free(text);
	if (ret) {
		log_error("ctl %s: %s", cmd, err);
		return 1;
	}
	if (status < 200 || status > 299) {
		report_failure(cmd, status, resp);
		free(resp);
		return 1;
	}
	j = json_loads(resp, 0, NULL);
	if (j) {
		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
	} else {
		fputs(resp, stdout);
	}
	fflush(stdout);
	free(resp);
	return 0;
}
