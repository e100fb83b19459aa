// SPDX-License-Identifier: MIT
/*
 * plinthd's client verbs in the `plinth` binary. Each verb is one or a few
 * requests on the control socket (ctl_request of vmm/api, one HTTP request per
 * connection); a human table or key: value lines by default, the server's JSON
 * with --json. A refusal prints the server's one line and exits 1.
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "log.h"
#include "util.h"

#define REQ_TIMEOUT_MS 60000
#define WAIT_DEFAULT_S 180

struct cli {
	char sock[256];
	bool json;
	unsigned wait_s;	/* how long start/stop/task wait wait */
	int timeout_ms;		/* a request's answer waited for; 0: REQ_TIMEOUT_MS */
	int argc;		/* positional and verb options, globals removed */
	char **argv;
};

static const char usage_text[] =
	"Usage: plinth vm list | info NAME | create NAME --kernel PATH [--initrd PATH]\n"
	"                 [--cmdline STR] [--cpus N] [--memory MIB] [--restart never|on-crash|always]\n"
	"                 [--autostart] [--ha] [--disk image=NAME|path=FILE[,format=F][,readonly]]...\n"
	"                 [--nic NETWORK]... [--display vnc|none] [--anti-affinity GROUP]\n"
	"              | create --from FILE.json | start NAME | stop NAME [--timeout S]\n"
	"              | kill NAME | reboot NAME | pause NAME | resume NAME | delete NAME\n"
	"              | migrate NAME --to HOST|auto  (live, to another host of the cluster)\n"
	"              | console NAME [--attach]  (attached on a terminal or with --attach: the\n"
	"                last 64 KiB, then both ways, Ctrl-] detaches; else the last 64 KiB)\n"
	"              | display NAME  (how to connect to its VNC display)\n"
	"              | disk-add NAME ID image=NAME|path=FILE[,format=F][,readonly]\n"
	"                (hot-plugged if it runs, else at its next start)\n"
	"              | disk-remove NAME ID [--timeout S]  (waits for the guest's eject)\n"
	"       plinth image list | info NAME | create NAME --size SIZE [--format raw|qcow2]\n"
	"              | import NAME FILE [--format F] | clone SRC NEW [--linked] | delete NAME\n"
	"       plinth net list | info NAME | create NAME [--cidr A.B.C.D/N] [--nat] | delete NAME\n"
	"       plinth task list | wait ID | cancel ID\n"
	"       plinth token list | info NAME | create NAME --role admin|operator|viewer\n"
	"              | delete NAME   (API tokens of plinthd's TCP listener)\n"
	"       plinth events [--after ID] [--limit N]\n"
	"       plinth host list   (the cluster's hosts, their heartbeats and the leader)\n"
	"                 | evacuate HOST  (maintenance: its VMs move to other hosts; waited for)\n"
	"                 | activate HOST  (back in service)\n"
	"Options for all: --socket PATH (default $PLINTHD_SOCKET, else\n"
	"  /var/lib/plinth/plinthd.sock), --state-dir DIR (DIR/plinthd.sock), --json,\n"
	"  --wait-seconds N (start, stop, import and task wait; default 180, 0 = no wait).\n";

bool pd_client_handles(const char *word)
{
	return !strcmp(word, "vm") || !strcmp(word, "image") || !strcmp(word, "net") ||
	       !strcmp(word, "task") || !strcmp(word, "events") || !strcmp(word, "token") ||
	       !strcmp(word, "host");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("plinth: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (try plinth vm --help)\n", stderr); /* one usage text for all nouns */
	va_end(ap);
	return 2;
}

/* One request; *out gets the parsed body (NULL when not JSON). Returns the HTTP
 * status, or -1 with the reason printed. */
static int call(const struct cli *c, const char *method, const char *path, json_t *body,
		json_t **out)
{
	char err[512], *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *resp = NULL;
	int status = 0, ret;

	*out = NULL;
	ret = ctl_request(c->sock, method, path, text, c->timeout_ms ? c->timeout_ms : REQ_TIMEOUT_MS,
			  &status, &resp, err, sizeof(err));
	free(text);
	if (ret) {
		if (ret == -ENOENT || ret == -ECONNREFUSED)
			fprintf(stderr, "plinth: plinthd is not running on %s\n", c->sock);
		else
			fprintf(stderr, "plinth: %s\n", err);
		return -1;
	}
	*out = json_loads(resp, 0, NULL);
	free(resp);
	return status;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static long long num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* Report a non-2xx answer (one line) and return 1; 0 for 2xx. */
static int check(int status, json_t *body)
{
	if (status < 0)
		return 1;
	if (status >= 200 && status < 300)
		return 0;
	fprintf(stderr, "plinth: %s\n", body && *str(body, "error") ? str(body, "error")
								     : "plinthd refused the request");
	return 1;
}

static void print_json(json_t *o)
{
	char *t = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (t)
		puts(t);
	free(t);
}

/* Run a request and print its result as JSON (--json) or through show(). */
static int run(const struct cli *c, const char *method, const char *path, json_t *body,
	       void (*show)(json_t *o))
{
	json_t *o;
	int st = call(c, method, path, body, &o), rc = check(st, o);

	if (!rc) {
		if (c->json)
			print_json(o);
		else if (show)
			show(o);
	}
	json_decref(o);
	return rc;
}

/* --- VMs -------------------------------------------------------------------------------- */

static void show_vms(json_t *o)
{
	json_t *vms = json_object_get(o, "vms"), *v;
	size_t i;

	printf("%-24s %-9s %4s %8s %8s  %s\n", "NAME", "STATE", "CPUS", "MEMORY", "PID", "REASON");
	json_array_foreach(vms, i, v)
	{
		char pid[24] = "-";

		if (json_object_get(v, "pid"))
			snprintf(pid, sizeof(pid), "%lld", num(v, "pid"));
		printf("%-24s %-9s %4lld %7lldM %8s  %s\n", str(v, "name"), str(v, "state"),
		       num(v, "cpus"), num(v, "memory_mib"), pid, str(v, "reason"));
	}
}

static void show_vm(json_t *o)
{
	json_t *d, *devs, *disks = json_object_get(o, "disks");
	size_t i;

	printf("name:       %s\nuuid:       %s\nstate:      %s\n", str(o, "name"), str(o, "uuid"),
	       str(o, "state"));
	if (json_object_get(o, "pid"))
		printf("pid:        %lld\n", num(o, "pid"));
	if (*str(o, "reason"))
		printf("reason:     %s\n", str(o, "reason"));
	printf("cpus:       %lld\nmemory:     %lld MiB\nkernel:     %s\n", num(o, "cpus"),
	       num(o, "memory_mib"), str(o, "kernel"));
	if (*str(o, "initrd"))
		printf("initrd:     %s\n", str(o, "initrd"));
	if (*str(o, "cmdline"))
		printf("cmdline:    %s\n", str(o, "cmdline"));
	printf("restart:    %s\nautostart:  %s\n", str(o, "restart"),
	       json_is_true(json_object_get(o, "autostart")) ? "yes" : "no");
	if (*str(o, "anti_affinity"))
		printf("anti-affinity: %s\n", str(o, "anti_affinity"));
	if (*str(o, "display"))
		printf("display:    %s%s%s\n", str(o, "display"),
		       *str(o, "display_socket") ? " on " : "", str(o, "display_socket"));
	json_array_foreach(disks, i, d)
		printf("disk %zu:     %s%s%s%s\n", i,
		       *str(d, "image") ? "image " : "", *str(d, "image") ? str(d, "image")
									: str(d, "path"),
		       *str(d, "format") ? ", " : "", str(d, "format"));
	devs = json_object_get(o, "devices");
	json_array_foreach(devs, i, d)
		printf("%s%s slot %lld", i ? ", " : "devices:    ", str(d, "id"), num(d, "slot"));
	if (json_array_size(devs))
		printf("\n");
}

/* --disk's (and disk-add's) image=NAME|path=FILE[,format=F][,readonly] appended to
 * disks. 0, or 2 with the usage error printed. */
static int parse_disk(const char *spec, json_t *disks)
{
	char *copy = strdup(spec), *save = NULL, *kv;
	json_t *d = json_object();
	int rc = 0;

	if (!copy || !d) {
		free(copy);
		json_decref(d);
		return usage_error("out of memory");
	}
	for (kv = strtok_r(copy, ",", &save); kv && !rc; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');

		if (!strcmp(kv, "readonly") || !strcmp(kv, "readonly=on")) {
			json_object_set_new(d, "readonly", json_true());
		} else if (eq && (!strncmp(kv, "image=", 6) || !strncmp(kv, "path=", 5) ||
				  !strncmp(kv, "format=", 7))) {
			*eq = '\0';
			json_object_set_new(d, kv, json_string(eq + 1));
		} else {
			rc = usage_error("--disk: unknown item '%s'", kv);
		}
	}
	free(copy);
	if (!rc)
		json_array_append(disks, d);
	json_decref(d);
	return rc;
}

static int vm_create(struct cli *c)
{
	json_t *def, *disks, *nics;
	const char *from = NULL;
	int i, rc = 0;

	def = json_object();
	disks = json_array();
	nics = json_array();
	for (i = 2; i < c->argc && !rc; i++) {
		const char *a = c->argv[i], *v = i + 1 < c->argc ? c->argv[i + 1] : NULL;
		uint64_t n;

		if (!strcmp(a, "--autostart") || !strcmp(a, "--ha")) {
			json_object_set_new(def, a + 2, json_true());
			continue;
		}
		if (a[0] != '-') {
			if (json_object_get(def, "name"))
				rc = usage_error("unexpected argument '%s'", a);
			else
				json_object_set_new(def, "name", json_string(a));
			continue;
		}
		if (!v) {
			rc = usage_error("%s needs a value", a);
			break;
		}
		i++;
		if (!strcmp(a, "--from"))
			from = v;
		else if (!strcmp(a, "--kernel") || !strcmp(a, "--initrd") ||
			 !strcmp(a, "--cmdline") || !strcmp(a, "--restart") ||
			 !strcmp(a, "--display"))
			json_object_set_new(def, a + 2, json_string(v));
		else if (!strcmp(a, "--cpus") || !strcmp(a, "--memory")) {
			if (parse_uint(v, 0, 1u << 30, &n))
				rc = usage_error("%s: a number, not '%s'", a, v);
			json_object_set_new(def, a[2] == 'c' ? "cpus" : "memory_mib",
					    json_integer((json_int_t)n));
		} else if (!strcmp(a, "--disk"))
			rc = parse_disk(v, disks);
		else if (!strcmp(a, "--nic"))
			json_array_append_new(nics, json_pack("{s:s}", "network", v));
		else if (!strcmp(a, "--anti-affinity"))
			json_object_set_new(def, "anti_affinity", json_string(v));
		else
			rc = usage_error("unknown option '%s'", a);
	}
	if (!rc && from) {
		json_error_t jerr;

		json_decref(def);
		def = json_load_file(from, JSON_REJECT_DUPLICATES, &jerr);
		if (!def) {
			fprintf(stderr, "plinth: %s: %s (line %d)\n", from, jerr.text, jerr.line);
			rc = 1;
		}
	} else if (!rc) {
		if (json_array_size(disks))
			json_object_set(def, "disks", disks);
		if (json_array_size(nics))
			json_object_set(def, "nics", nics);
	}
	if (!rc && !from && !json_object_get(def, "name"))
		rc = usage_error("vm create needs a NAME");
	if (!rc)
		rc = run(c, "POST", "/v1/vms", def, show_vm);
	json_decref(def);
	json_decref(disks);
	json_decref(nics);
	return rc;
}

/* Poll the VM until its state is one of want ("a|b"); 0, or 1 with a line. */
static int wait_state(const struct cli *c, const char *name, const char *want, const char *fail)
{
	char path[160];
	time_t end = time(NULL) + c->wait_s;

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	for (;;) {
		json_t *o;
		int st = call(c, "GET", path, NULL, &o);
		char state[32];

		if (check(st, o)) {
			json_decref(o);
			return 1;
		}
		snprintf(state, sizeof(state), "|%s|", str(o, "state"));
		if (strstr(want, state)) {
			if (c->json)
				print_json(o);
			else
				printf("%s: %s\n", name, str(o, "state"));
			json_decref(o);
			return 0;
		}
		if (fail && strstr(fail, state)) {
			fprintf(stderr, "plinth: VM %s is %s: %s\n", name, str(o, "state"),
				str(o, "reason"));
			json_decref(o);
			return 1;
		}
		json_decref(o);
		if (time(NULL) >= end) {
			fprintf(stderr, "plinth: VM %s did not become %s within %u s\n", name, want,
				c->wait_s);
			return 1;
		}
		usleep(200000);
	}
}

static int vm_action(struct cli *c, const char *verb, const char *name)
{
	char path[160];
	json_t *body = NULL, *o;
	int st, rc, i;

	for (i = 3; i < c->argc; i++) {
		uint64_t t;

		if (!strcmp(verb, "stop") && !strcmp(c->argv[i], "--timeout") && i + 1 < c->argc &&
		    !parse_uint(c->argv[i + 1], 0, 3600, &t)) {
			body = json_pack("{s:I}", "timeout", (json_int_t)t);
			i++;
			continue;
		}
		json_decref(body);
		return usage_error("unexpected argument '%s'", c->argv[i]);
	}
	snprintf(path, sizeof(path), "/v1/vms/%s/%s", name, verb);
	st = call(c, "POST", path, body, &o);
	json_decref(body);
	rc = check(st, o);
	json_decref(o);
	if (rc)
		return rc;
	if (c->wait_s && !strcmp(verb, "start"))
		return wait_state(c, name, "|running|paused|", "|crashed|stopped|");
	if (c->wait_s && (!strcmp(verb, "stop") || !strcmp(verb, "kill")))
		return wait_state(c, name, "|stopped|crashed|", NULL);
	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	return run(c, "GET", path, NULL, show_vm);
}

/* Connect to plinthd's socket and ask for name's console as a raw stream (GET
 * /v1/vms/NAME/console, "Upgrade: plinth-console"). The connected fd after the 101
 * answer, or -1 with plinthd's refusal (or the reason) printed. */
static int console_connect(const struct cli *c, const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char req[512], head[4096];
	size_t len = 0;
	int fd;

	if (strlen(c->sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "plinth: socket path too long: %s\n", c->sock);
		return -1;
	}
	memcpy(sa.sun_path, c->sock, strlen(c->sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "plinth: plinthd is not running on %s\n", c->sock);
		else
			fprintf(stderr, "plinth: %s: %s\n", c->sock, strerror(errno));
		goto out_close;
	}
	snprintf(req, sizeof(req),
		 "GET /v1/vms/%s/console HTTP/1.1\r\nHost: plinthd\r\nUpgrade: plinth-console\r\n"
		 "Connection: Upgrade\r\n\r\n", name);
	if (write_full(fd, req, strlen(req)))
		goto out_io;
	/* The answer's head byte by byte: what follows a 101 is the console's. */
	while (len + 1 < sizeof(head) && !(len >= 4 && !memcmp(head + len - 4, "\r\n\r\n", 4))) {
		ssize_t n = read(fd, head + len, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n != 1)
			goto out_io;
		len++;
	}
	head[len] = '\0';
	if (!strncmp(head, "HTTP/1.1 101 ", 13))
		return fd;
	{ /* a refusal: its JSON body's one line (Content-Length bounded by the buffer) */
		const char *cl = strcasestr(head, "\r\nContent-Length:");
		size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
		char body[1024];
		json_t *o;

		len = 0;
		while (len < want && len + 1 < sizeof(body)) {
			ssize_t n = read(fd, body + len, want - len < sizeof(body) - 1 - len
								 ? want - len
								 : sizeof(body) - 1 - len);
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		body[len] = '\0';
		o = json_loads(body, 0, NULL);
		check(atoi(head + 9), o);
		json_decref(o);
	}
	goto out_close;
out_io:
	fprintf(stderr, "plinth: %s: plinthd did not answer the console request\n", c->sock);
out_close:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The VM's state into buf ("" if it can't be read). */
static void vm_state(const struct cli *c, const char *name, char *buf, size_t size)
{
	char path[160];
	json_t *o;
	int st;

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	st = call(c, "GET", path, NULL, &o);
	snprintf(buf, size, "%s", st == 200 ? str(o, "state") : "");
	json_decref(o);
}

static bool state_live(const char *s)
{
	return !strcmp(s, "starting") || !strcmp(s, "running") || !strcmp(s, "paused") ||
	       !strcmp(s, "stopping");
}

/*
 * plinth vm console NAME (attached): the last 64 KiB of scrollback, then what the
 * guest writes, while what is typed goes to its serial console; Ctrl-] detaches
 * (so does the end of stdin). One connection carries both ways. Once the VM was seen
 * running, its staying stopped or crashed for 2 s ends the attachment too (a guest
 * reset restarts it sooner).
 */
static int vm_attach(const struct cli *c, const char *name)
{
	struct termios saved, raw;
	bool tty = isatty(0) && tcgetattr(0, &saved) == 0, done = false, seen_live = false;
	int fd = console_connect(c, name), rc = 0, down = 0;
	unsigned polls = 0;

	if (fd < 0)
		return 1;
	fprintf(stderr, "plinth: attached to %s's console; Ctrl-] detaches\r\n", name);
	if (tty) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
	}
	while (!done) {
		struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
		char buf[16384];
		ssize_t n;
		int k = poll(p, 2, 1000);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (k == 0 || ++polls % 64 == 0) { /* look at the VM's state now and then */
			char st[32];

			vm_state(c, name, st, sizeof(st));
			if (state_live(st)) {
				seen_live = true;
				down = 0;
			} else if (seen_live && ++down >= 2) {
				fprintf(stderr, "\r\nplinth: %s is %s", name, st[0] ? st : "gone");
				break;
			}
		}
		if (p[1].revents) {
			n = read(fd, buf, sizeof(buf));
			if (n <= 0) {
				fprintf(stderr, "\r\nplinth: plinthd ended the console stream");
				rc = 1;
				break;
			}
			if (write_full(1, buf, (size_t)n))
				break;
		}
		if (p[0].revents) {
			char *esc;

			n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				done = true;
				n = 0;
			}
			esc = n ? memchr(buf, 0x1d, (size_t)n) : NULL;
			if (esc) {
				n = esc - buf;
				done = true;
			}
			if (n > 0 && write_full(fd, buf, (size_t)n)) {
				rc = 1;
				break;
			}
		}
	}
	if (done) {
		/* The end of our input, after what was typed: plinthd types the rest into
		 * the console and ends the stream. Read until it does (bounded), or closing
		 * now would cut its output short and could reset what it has not read. */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char buf[16384];
		ssize_t n = 1;

		shutdown(fd, SHUT_WR);
		while (n > 0 && poll(&p, 1, 5000) > 0 && (n = read(fd, buf, sizeof(buf))) > 0)
			if (write_full(1, buf, (size_t)n))
				break;
	}
	close(fd);
	if (tty)
		tcsetattr(0, TCSANOW, &saved);
	fprintf(stderr, "\r\nplinth: detached from %s's console\n", name);
	return rc;
}

static void show_console(json_t *o)
{
	fputs(str(o, "console"), stdout);
}

static int run_task(const struct cli *c, const char *path, json_t *body);

/*
 * plinth vm display NAME: where the VM's VNC display is (its Unix socket, root's
 * only) and ready-to-run lines to reach it: from this host through a local TCP port
 * (socat), from another machine through ssh's socket forwarding. 1 with one line if
 * the VM has no display or is not running.
 */
static int vm_display(const struct cli *c, const char *name)
{
	char path[160], host[256] = "THIS-HOST", port[] = "5900";
	const char *sock;
	json_t *o = NULL, *out;
	int rc;

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	rc = call(c, "GET", path, NULL, &o);
	rc = check(rc, o);
	if (rc)
		goto out_free;
	rc = 1;
	sock = str(o, "display_socket");
	if (strcmp(str(o, "display"), "vnc")) {
		fprintf(stderr, "plinth: VM '%s' has no display (define it with --display vnc, "
				"or \"display\": \"vnc\")\n", name);
		goto out_free;
	}
	if (!*sock) {
		fprintf(stderr, "plinth: VM '%s' is %s: its display is there only while it runs "
				"(plinth vm start %s)\n", name, str(o, "state"), name);
		goto out_free;
	}
	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "THIS-HOST");
	out = json_pack("{s:s,s:s,s:s,s:s,s:s+++,s:s+++}", "name", name, "display", "vnc",
			"state", str(o, "state"), "socket", sock,
			"socat", "socat TCP-LISTEN:5900,bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:",
			sock, "", "",
			"ssh", "ssh -N -L 5900:", sock, " root@", host);
	rc = out ? 0 : 1;
	if (out && c->json)
		print_json(out);
	else if (out)
		printf("VM %s: VNC display (RFB, no password) on the Unix socket\n  %s\n"
		       "(root only). On this host, forward it to a local port and open a viewer:\n"
		       "  %s &\n  vncviewer 127.0.0.1::%s\n"
		       "From another machine:\n  %s    then: vncviewer 127.0.0.1::%s\n"
		       "In a browser: the web console's Display button (plinthd --web).\n",
		       name, sock, str(out, "socat"), port, str(out, "ssh"), port);
	json_decref(out);
out_free:
	json_decref(o);
	return rc;
}

/*
 * plinth vm disk-add NAME ID SPEC | disk-remove NAME ID [--timeout S]: PUT or DELETE
 * /v1/vms/NAME/disks/ID; the VM as it is afterwards (a removal waits for the guest's
 * eject, up to the timeout, default 30 s).
 */
static int vm_disk(struct cli *c, const char *verb, const char *name)
{
	bool add = !strcmp(verb, "disk-add");
	json_t *body = NULL, *disks;
	char path[160];
	uint64_t t = 0;
	int rc;

	if (c->argc < 4)
		return usage_error("vm %s needs NAME ID%s", verb, add ? " image=NAME|path=FILE" : "");
	if (add) {
		if (c->argc != 5)
			return usage_error("vm disk-add needs NAME ID image=NAME|path=FILE"
					   "[,format=F][,readonly]");
		disks = json_array();
		if (!disks)
			return usage_error("out of memory");
		rc = parse_disk(c->argv[4], disks);
		body = json_incref(json_array_get(disks, 0));
		json_decref(disks);
		if (rc)
			return rc;
	} else if (c->argc != 4) {
		if (c->argc != 6 || strcmp(c->argv[4], "--timeout") ||
		    parse_uint(c->argv[5], 1, 600, &t))
			return usage_error("vm disk-remove takes NAME ID [--timeout S] (S: 1..600)");
		body = json_pack("{s:I}", "timeout", (json_int_t)t);
	}
	/* The eject is waited for by plinthd: its answer comes after it. */
	c->timeout_ms = ((int)(t ? t : 30) + 30) * 1000;
	if (snprintf(path, sizeof(path), "/v1/vms/%s/disks/%s", name, c->argv[3]) >=
	    (int)sizeof(path)) {
		json_decref(body);
		return usage_error("VM name or disk id too long");
	}
	rc = run(c, add ? "PUT" : "DELETE", path, body, show_vm);
	json_decref(body);
	return rc;
}

static int cmd_vm(struct cli *c)
{
	const char *verb = c->argc > 1 ? c->argv[1] : "list";
	const char *name = c->argc > 2 ? c->argv[2] : NULL;
	char path[160];

	if (!strcmp(verb, "list"))
		return c->argc > 2 ? usage_error("vm list takes no arguments")
				   : run(c, "GET", "/v1/vms", NULL, show_vms);
	if (!strcmp(verb, "create"))
		return vm_create(c);
	if (!name)
		return usage_error("vm %s needs a NAME", verb);
	/* console: attached on a terminal (or --attach), else the scrollback printed. */
	if (!strcmp(verb, "console") && c->argc == 4 && !strcmp(c->argv[3], "--attach"))
		return vm_attach(c, name);
	if (!strcmp(verb, "console") && c->argc == 3 && !c->json && isatty(0) && isatty(1))
		return vm_attach(c, name);
	if (!strcmp(verb, "info") || !strcmp(verb, "delete") || !strcmp(verb, "console")) {
		if (c->argc > 3)
			return usage_error("unexpected argument '%s'", c->argv[3]);
		snprintf(path, sizeof(path), "/v1/vms/%s%s", name,
			 !strcmp(verb, "console") ? "/console" : "");
		if (!strcmp(verb, "delete"))
			return run(c, "DELETE", path, NULL, NULL);
		return run(c, "GET", path, NULL, !strcmp(verb, "info") ? show_vm : show_console);
	}
	if (!strcmp(verb, "display"))
		return c->argc > 3 ? usage_error("unexpected argument '%s'", c->argv[3])
				   : vm_display(c, name);
	if (!strcmp(verb, "start") || !strcmp(verb, "stop") || !strcmp(verb, "kill") ||
	    !strcmp(verb, "reboot") || !strcmp(verb, "pause") || !strcmp(verb, "resume"))
		return vm_action(c, verb, name);
	if (!strcmp(verb, "migrate")) { /* a task on the VM's owner; waited for */
		json_t *body;
		int rc;

		if (c->argc != 5 || strcmp(c->argv[3], "--to"))
			return usage_error("vm migrate needs NAME --to HOST|auto");
		snprintf(path, sizeof(path), "/v1/vms/%s/migrate", name);
		body = json_pack("{s:s}", "to", c->argv[4]);
		rc = run_task(c, path, body);
		json_decref(body);
		return rc;
	}
	if (!strcmp(verb, "disk-add") || !strcmp(verb, "disk-remove"))
		return vm_disk(c, verb, name);
	return usage_error("unknown vm verb '%s'", verb);
}

/* --- Images and tasks ------------------------------------------------------------------- */

static void show_images(json_t *o)
{
	json_t *imgs = json_object_get(o, "images"), *v;
	size_t i;

	printf("%-24s %-6s %10s %-8s %-20s %s\n", "NAME", "FORMAT", "SIZE", "TEMPLATE", "BACKING",
	       "USED BY");
	json_array_foreach(imgs, i, v)
		printf("%-24s %-6s %9lldM %-8s %-20s %s\n", str(v, "name"), str(v, "format"),
		       num(v, "size") >> 20,
		       json_is_true(json_object_get(v, "template")) ? "yes" : "no",
		       *str(v, "backing") ? str(v, "backing") : "-",
		       *str(v, "used_by") ? str(v, "used_by") : "-");
}

static void show_image(json_t *o)
{
	printf("name:      %s\nformat:    %s\nsize:      %lld\ntemplate:  %s\n", str(o, "name"),
	       str(o, "format"), num(o, "size"),
	       json_is_true(json_object_get(o, "template")) ? "yes" : "no");
	if (*str(o, "backing"))
		printf("backing:   %s\n", str(o, "backing"));
	if (*str(o, "used_by"))
		printf("used by:   %s\n", str(o, "used_by"));
}

static void show_task(json_t *o)
{
	if (!strcmp(str(o, "kind"), "evacuate")) { /* VMs, not bytes */
		printf("task %lld: evacuate %s: %s, %lld of %lld VMs done%s%s\n", num(o, "id"),
		       str(o, "object"), str(o, "state"), num(o, "done_bytes"),
		       num(o, "total_bytes"), *str(o, "error") ? ": " : "", str(o, "error"));
		return;
	}
	if (!strcmp(str(o, "kind"), "migrate")) { /* no bytes to count: its outcome */
		printf("task %lld: migrate %s: %s%s%s\n", num(o, "id"), str(o, "object"),
		       str(o, "state"), *str(o, "error") ? ": " : "", str(o, "error"));
		return;
	}
	printf("task %lld: %s %s: %s, %lld%% (%lld of %lld bytes)%s%s\n", num(o, "id"),
	       str(o, "kind"), str(o, "object"), str(o, "state"), num(o, "percent"),
	       num(o, "done_bytes"), num(o, "total_bytes"), *str(o, "error") ? ": " : "",
	       str(o, "error"));
}

static void show_tasks(json_t *o)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(o, "tasks"), i, v)
		show_task(v);
}

static int task_wait(const struct cli *c, long long id)
{
	char path[64];
	time_t end = time(NULL) + c->wait_s;

	snprintf(path, sizeof(path), "/v1/tasks/%lld", id);
	for (;;) {
		json_t *o;
		int st = call(c, "GET", path, NULL, &o), rc = check(st, o);

		if (!rc && strcmp(str(o, "state"), "running")) {
			rc = strcmp(str(o, "state"), "done") ? 1 : 0;
			if (c->json)
				print_json(o);
			else
				show_task(o);
			json_decref(o);
			return rc;
		}
		json_decref(o);
		if (rc)
			return rc;
		if (time(NULL) >= end) {
			fprintf(stderr, "plinth: task %lld still runs after %u s\n", id, c->wait_s);
			return 1;
		}
		usleep(200000);
	}
}

/* POST that may answer 202 with a task: wait for it (unless --wait-seconds 0). */
static int run_task(const struct cli *c, const char *path, json_t *body)
{
	json_t *o;
	int st = call(c, "POST", path, body, &o), rc = check(st, o);

	if (!rc && st == 202 && c->wait_s) {
		long long id = num(o, "id");

		json_decref(o);
		return task_wait(c, id);
	}
	if (!rc) {
		if (c->json)
			print_json(o);
		else if (st == 202)
			show_task(o);
		else
			show_image(o);
	}
	json_decref(o);
	return rc;
}

/* Value of option opt among argv[from..], or NULL; sets *bad on a dangling option. */
static const char *opt(const struct cli *c, int from, const char *name)
{
	int i;

	for (i = from; i + 1 < c->argc; i++)
		if (!strcmp(c->argv[i], name))
			return c->argv[i + 1];
	return NULL;
}

/*
 * The verbs every collection has: list, info NAME, delete NAME (of /v1/COLL). True
 * when handled (*rc is the exit status); else path holds /v1/COLL/NAME for the
 * noun's own verbs.
 */
static bool common_verbs(struct cli *c, const char *noun, const char *coll,
			 void (*show_list)(json_t *o), void (*show_one)(json_t *o), char *path,
			 size_t size, int *rc)
{
	const char *verb = c->argc > 1 ? c->argv[1] : "list";

	snprintf(path, size, "/v1/%s", coll);
	if (!strcmp(verb, "list")) {
		*rc = run(c, "GET", path, NULL, show_list);
		return true;
	}
	if (c->argc < 3) {
		*rc = usage_error("%s %s needs a NAME", noun, verb);
		return true;
	}
	snprintf(path, size, "/v1/%s/%s", coll, c->argv[2]);
	if (!strcmp(verb, "info")) {
		*rc = run(c, "GET", path, NULL, show_one);
		return true;
	}
	if (!strcmp(verb, "delete")) {
		*rc = run(c, "DELETE", path, NULL, NULL);
		return true;
	}
	return false;
}

static int cmd_image(struct cli *c)
{
	const char *verb = c->argc > 1 ? c->argv[1] : "list";
	const char *name = c->argc > 2 ? c->argv[2] : NULL;
	char path[160];
	json_t *body;
	int rc;

	if (common_verbs(c, "image", "images", show_images, show_image, path, sizeof(path), &rc))
		return rc;
	if (!strcmp(verb, "create")) {
		const char *size = opt(c, 3, "--size"), *fmt = opt(c, 3, "--format");
		uint64_t bytes;

		if (!size || parse_size(size, &bytes))
			return usage_error("image create needs --size SIZE (e.g. 1G)");
		body = json_pack("{s:s, s:I}", "name", name, "size", (json_int_t)bytes);
		if (fmt)
			json_object_set_new(body, "format", json_string(fmt));
		rc = run(c, "POST", "/v1/images", body, show_image);
		json_decref(body);
		return rc;
	}
	if (!strcmp(verb, "import")) {
		const char *fmt = opt(c, 4, "--format");
		char abs[4096];

		if (c->argc < 4)
			return usage_error("image import needs NAME FILE");
		if (!realpath(c->argv[3], abs)) {
			fprintf(stderr, "plinth: %s: %s\n", c->argv[3], strerror(errno));
			return 1;
		}
		body = json_pack("{s:s, s:s}", "name", name, "import", abs);
		if (fmt)
			json_object_set_new(body, "format", json_string(fmt));
		rc = run_task(c, "/v1/images", body);
		json_decref(body);
		return rc;
	}
	if (!strcmp(verb, "clone")) {
		bool linked = c->argc > 4 && !strcmp(c->argv[4], "--linked");

		if (c->argc < 4)
			return usage_error("image clone needs SRC NEW");
		snprintf(path, sizeof(path), "/v1/images/%s/clone", name);
		body = json_pack("{s:s, s:b}", "name", c->argv[3], "linked", linked);
		rc = run_task(c, path, body);
		json_decref(body);
		return rc;
	}
	return usage_error("unknown image verb '%s'", verb);
}

static void show_net(json_t *o)
{
	printf("name:      %s\nbridge:    %s%s\ncidr:      %s\nmode:      %s\nhost:      %s\n"
	       "dhcp:      %s\n", str(o, "name"), str(o, "bridge"),
	       json_is_true(json_object_get(o, "present")) ? "" : " (missing)", str(o, "cidr"),
	       str(o, "mode"), str(o, "host_address"), str(o, "dhcp_range"));
}

static void show_nets(json_t *o)
{
	json_t *v;
	size_t i;

	printf("%-24s %-12s %-18s %-9s %s\n", "NAME", "BRIDGE", "CIDR", "MODE", "HOST ADDRESS");
	json_array_foreach(json_object_get(o, "networks"), i, v)
		printf("%-24s %-12s %-18s %-9s %s\n", str(v, "name"), str(v, "bridge"),
		       str(v, "cidr"), str(v, "mode"), str(v, "host_address"));
}

static int cmd_net(struct cli *c)
{
	const char *verb = c->argc > 1 ? c->argv[1] : "list";
	const char *name = c->argc > 2 ? c->argv[2] : NULL;
	char path[160];
	json_t *body;
	int rc;

	if (common_verbs(c, "net", "networks", show_nets, show_net, path, sizeof(path), &rc))
		return rc;
	if (!strcmp(verb, "create")) {
		const char *cidr = opt(c, 3, "--cidr");
		int i;

		body = json_pack("{s:s}", "name", name);
		if (cidr)
			json_object_set_new(body, "cidr", json_string(cidr));
		for (i = 3; i < c->argc; i++)
			if (!strcmp(c->argv[i], "--nat"))
				json_object_set_new(body, "mode", json_string("nat"));
		rc = run(c, "POST", "/v1/networks", body, show_net);
		json_decref(body);
		return rc;
	}
	return usage_error("unknown net verb '%s'", verb);
}

static void show_token(json_t *o)
{
	printf("name:      %s\nrole:      %s\n", str(o, "name"), str(o, "role"));
	if (*str(o, "token"))
		printf("token:     %s   (shown once: keep it now)\n", str(o, "token"));
}

static void show_tokens(json_t *o)
{
	json_t *v;
	size_t i;

	printf("%-24s %s\n", "NAME", "ROLE");
	json_array_foreach(json_object_get(o, "tokens"), i, v)
		printf("%-24s %s\n", str(v, "name"), str(v, "role"));
}

static int cmd_token(struct cli *c)
{
	const char *verb = c->argc > 1 ? c->argv[1] : "list";
	const char *role = opt(c, 3, "--role");
	char path[160];
	json_t *body;
	int rc;

	if (common_verbs(c, "token", "tokens", show_tokens, show_token, path, sizeof(path), &rc))
		return rc;
	if (strcmp(verb, "create"))
		return usage_error("unknown token verb '%s'", verb);
	if (!role)
		return usage_error("token create needs --role admin|operator|viewer");
	body = json_pack("{s:s, s:s}", "name", c->argv[2], "role", role);
	rc = run(c, "POST", "/v1/tokens", body, show_token);
	json_decref(body);
	return rc;
}

static int cmd_task(struct cli *c)
{
	const char *verb = c->argc > 1 ? c->argv[1] : "list";
	char path[64];
	uint64_t id;

	if (!strcmp(verb, "list"))
		return run(c, "GET", "/v1/tasks", NULL, show_tasks);
	if (c->argc < 3 || parse_uint(c->argv[2], 1, INT64_MAX, &id))
		return usage_error("task %s needs a task ID", verb);
	if (!strcmp(verb, "wait"))
		return task_wait(c, (long long)id);
	if (!strcmp(verb, "cancel")) {
		snprintf(path, sizeof(path), "/v1/tasks/%llu/cancel", (unsigned long long)id);
		return run(c, "POST", path, NULL, show_task);
	}
	return usage_error("unknown task verb '%s'", verb);
}

static void show_events(json_t *o)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(o, "events"), i, v)
	{
		time_t t = (time_t)(num(v, "time_ms") / 1000);
		struct tm tm;
		char when[32];

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%6lld %s %-8s %-14s %-20s %-6s %s\n", num(v, "id"), when, str(v, "actor"),
		       str(v, "action"), str(v, "object"), str(v, "result"), str(v, "message"));
	}
}

static int cmd_events(struct cli *c)
{
	const char *after = opt(c, 1, "--after"), *limit = opt(c, 1, "--limit");
	char path[128];

	snprintf(path, sizeof(path), "/v1/events?after=%s&limit=%s", after ? after : "0",
		 limit ? limit : "1000");
	return run(c, "GET", path, NULL, show_events);
}

static void show_hosts(json_t *o)
{
	json_t *v, *l = json_object_get(o, "leader");
	size_t i;

	printf("%-20s %-5s %-6s %5s %10s %8s %-11s  %s\n", "NAME", "STATE", "LEADER", "CPUS",
	       "MEMORY", "HEARTBT", "MODE", "ADDRESS");
	json_array_foreach(json_object_get(o, "hosts"), i, v)
	{
		char mem[32], age[32];

		snprintf(mem, sizeof(mem), "%lldM", num(v, "memory_mib"));
		if (num(v, "heartbeat_age_ms") >= 0)
			snprintf(age, sizeof(age), "%.1fs",
				 (double)num(v, "heartbeat_age_ms") / 1000.0);
		else
			snprintf(age, sizeof(age), "-");
		printf("%-20s %-5s %-6s %5lld %10s %8s %-11s  %s%s\n", str(v, "name"),
		       str(v, "state"), json_is_true(json_object_get(v, "leader")) ? "yes" : "-",
		       num(v, "cpus"), mem, age,
		       json_is_true(json_object_get(v, "maintenance")) ? "maintenance" : "active",
		       str(v, "address")[0] ? str(v, "address") : "-",
		       json_is_true(json_object_get(v, "self")) ? "  (this host)" : "");
	}
	if (l && str(l, "host")[0])
		printf("leader: %s, term %lld%s\n", str(l, "host"), num(l, "term"),
		       num(l, "expires_in_ms") > 0 ? "" : " (lease lapsed)");
}

static int cmd_host(struct cli *c)
{
	const char *verb = c->argc > 1 ? c->argv[1] : "list";

	if (!strcmp(verb, "list"))
		return run(c, "GET", "/v1/hosts", NULL, show_hosts);
	if (!strcmp(verb, "evacuate") || !strcmp(verb, "activate")) {
		char path[128];

		if (c->argc != 3)
			return usage_error("host %s needs HOST", verb);
		snprintf(path, sizeof(path), "/v1/hosts/%s/%s", c->argv[2], verb);
		if (verb[0] == 'e') /* a task on that host; waited for */
			return run_task(c, path, NULL);
		return run(c, "POST", path, NULL, NULL);
	}
	return usage_error("unknown host verb '%s'", verb);
}

int pd_client_main(int argc, char **argv)
{
	struct cli c = {.wait_s = WAIT_DEFAULT_S};
	const char *env = getenv("PLINTHD_SOCKET");
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	int i, rc;

	if (!args)
		return 1;
	snprintf(c.sock, sizeof(c.sock), "%s", env && *env ? env : "/var/lib/plinth/plinthd.sock");
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t n;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			free(args);
			return 0;
		}
		if (!strcmp(a, "--json")) {
			c.json = true;
		} else if ((!strcmp(a, "--socket") || !strcmp(a, "--state-dir")) && v) {
			snprintf(c.sock, sizeof(c.sock), "%s%s", v,
				 a[2] == 's' && a[3] == 't' ? "/plinthd.sock" : "");
			i++;
		} else if (!strcmp(a, "--wait-seconds") && v && !parse_uint(v, 0, 86400, &n)) {
			c.wait_s = (unsigned)n;
			i++;
		} else {
			args[c.argc++] = argv[i];
		}
	}
	c.argv = args;
	log_set_prog("plinth");
	if (!strcmp(args[0], "vm"))
		rc = cmd_vm(&c);
	else if (!strcmp(args[0], "image"))
		rc = cmd_image(&c);
	else if (!strcmp(args[0], "net"))
		rc = cmd_net(&c);
	else if (!strcmp(args[0], "token"))
		rc = cmd_token(&c);
	else if (!strcmp(args[0], "task"))
		rc = cmd_task(&c);
	else if (!strcmp(args[0], "host"))
		rc = cmd_host(&c);
	else
		rc = cmd_events(&c);
	free(args);
	return rc;
}
