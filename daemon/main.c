// SPDX-License-Identifier: MIT
/*
 * plinthd: the host daemon's command line. Runs in the foreground until SIGTERM,
 * SIGINT or SIGHUP; the VMs it started keep running and are adopted by the next
 * plinthd started on the same state directory.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core.h"
#include "web.h"
#include "log.h"
#include "util.h"

static const char usage_text[] =
	"Usage: plinthd [--state-dir DIR] [--db postgresql://...] [--plinth PATH]\n"
	"               [--host-name NAME] [--placement local|spread|pack]\n"
	"               [--overcommit RATIO]\n"
	"               [--uid-base N] [--no-jail]\n"
	"               [--listen tcp:ADDR:PORT --tls-cert PEM --tls-key PEM]\n"
	"               [--web tcp:ADDR:PORT [--web-cert PEM --web-key PEM]] [-v]\n"
	"               [--cluster-key FILE [--cluster-ca PEM]] [--watchdog DEV]\n"
	"       plinthd user add|passwd|role|delete|list ...   (web console users)\n"
	"\n"
	"The plinth host daemon: an inventory of VMs and images (SQLite in DIR), each VM\n"
	"its own plinth process, a REST/JSON API on DIR/plinthd.sock (docs/plinthd.yaml).\n"
	"\n"
	"  --state-dir DIR     inventory, control socket, images and run directories\n"
	"                      (default /var/lib/plinth)\n"
	"  --db postgresql://USER@HOST/DB?...  keep the inventory in PostgreSQL (a libpq\n"
	"                      URI), shared by the hosts of a cluster (docs/cluster.md);\n"
	"                      default: SQLite in DIR/inventory.db\n"
	"  --host-name NAME    this host in the inventory (default: the host name); every\n"
	"                      plinthd on one PostgreSQL needs its own\n"
	"  --placement P       where new VMs go: local (this host, the default), spread\n"
	"                      (the up host with most room) or pack (the fullest that\n"
	"                      fits), by memory and vCPUs of the VMs each host owns\n"
	"  --plinth PATH       the VMM binary (default: plinth beside plinthd)\n"
	"  --overcommit RATIO  memory limit of running VMs = host memory x RATIO (default 1)\n"
	"  --uid-base N        as root, VM number n runs jailed as uid/gid N+n (default 200000)\n"
	"  --no-jail           as root, run VMs without --jail (seccomp stays on)\n"
	"  --listen tcp:ADDR:PORT  also serve the API over TCP (IPv4), TLS only, each\n"
	"                      request with an API token (plinth token create NAME --role R)\n"
	"  --tls-cert PEM, --tls-key PEM  the listener's certificate and key (required)\n"
	"  --web tcp:ADDR:PORT the web console (HTTPS; users from plinthd user add)\n"
	"  --web-cert PEM, --web-key PEM  its certificate and key (default: a self-signed\n"
	"                      pair made on first start, DIR/web-cert.pem, DIR/web-key.pem)\n"
	"  --web-idle SECONDS  a web session ends after this long without a request (1800)\n"
	"  --cluster-key FILE  the cluster's key (64..128 hex digits, mode 0600, the same\n"
	"                      file on every host): requests about a VM another host owns\n"
	"                      are forwarded to it over TLS, and VMs migrate between hosts\n"
	"                      with it (needs --listen; docs/cluster.md)\n"
	"  --cluster-ca PEM    the certificates other hosts' --listen must chain to\n"
	"                      (default: --tls-cert, when every host shares one)\n"
	"  --watchdog DEV      feed the host's watchdog (/dev/watchdog; softdog if there\n"
	"                      is no hardware one) with a 5 s timeout while this host may\n"
	"                      run HA VMs: a host whose kernel or plinthd hangs is reset\n"
	"                      before the cluster restarts its VMs (needs --db)\n"
	"  -v, --verbose       more messages (repeat for debug)\n"
	"  -h, --help          this text\n";

enum {
	OPT_STATE_DIR = 256,
	OPT_DB,
	OPT_HOST_NAME,
	OPT_PLACEMENT,
	OPT_PLINTH,
	OPT_OVERCOMMIT,
	OPT_UID_BASE,
	OPT_NO_JAIL,
	OPT_LISTEN,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_WEB,
	OPT_WEB_CERT,
	OPT_WEB_KEY,
	OPT_WEB_IDLE,
	OPT_CLUSTER_KEY,
	OPT_CLUSTER_CA,
	OPT_WATCHDOG,
};

/* A whole small file (a PEM) as a string; NULL with the reason logged. */
static char *read_pem(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r"), *m;

	if (!f) {
		log_error("%s: %s", path, strerror(errno));
		return NULL;
	}
	m = open_memstream(&buf, &len);
	if (m) {
		char chunk[4096];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && len < (1 << 20))
			fwrite(chunk, 1, n, m);
		fclose(m);
	}
	fclose(f);
	if (!buf || !len) {
		log_error("%s: empty or unreadable", path);
		free(buf);
		return NULL;
	}
	return buf;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, OPT_STATE_DIR},
		{"db", required_argument, NULL, OPT_DB},
		{"host-name", required_argument, NULL, OPT_HOST_NAME},
		{"placement", required_argument, NULL, OPT_PLACEMENT},
		{"plinth", required_argument, NULL, OPT_PLINTH},
		{"overcommit", required_argument, NULL, OPT_OVERCOMMIT},
		{"uid-base", required_argument, NULL, OPT_UID_BASE},
		{"no-jail", no_argument, NULL, OPT_NO_JAIL},
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
		{"tls-key", required_argument, NULL, OPT_TLS_KEY},
		{"web", required_argument, NULL, OPT_WEB},
		{"web-cert", required_argument, NULL, OPT_WEB_CERT},
		{"web-key", required_argument, NULL, OPT_WEB_KEY},
		{"web-idle", required_argument, NULL, OPT_WEB_IDLE},
		{"cluster-key", required_argument, NULL, OPT_CLUSTER_KEY},
		{"cluster-ca", required_argument, NULL, OPT_CLUSTER_CA},
		{"watchdog", required_argument, NULL, OPT_WATCHDOG},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct pd_options o = {
		.state_dir = "/var/lib/plinth",
		.overcommit = 1.0,
		.uid_base = 200000,
		.jail = geteuid() == 0,
	};
	enum log_level level = LOG_INFO;
	struct signalfd_siginfo si;
	const char *listen = NULL, *cert_path = NULL, *key_path = NULL;
	char *cert = NULL, *key = NULL;
	struct pd_server *srv, *tcp = NULL;
	struct web_options wo = {.idle_s = WEB_IDLE_DEFAULT_S};
	struct pd_web *web = NULL;
	int rc = 1;
	struct plinthd *pd;
	const struct store_ops *ops = &store_sqlite_ops;
	char sock[PD_DIR_MAX + 32];
	sigset_t mask;
	uint64_t v;
	char *end;
	int c, sfd;

	log_set_prog("plinthd");
	if (argc > 1 && !strcmp(argv[1], "user"))
		return web_user_main(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STATE_DIR:
			o.state_dir = optarg;
			break;
		case OPT_DB:
			ops = store_ops_for(optarg);
			if (!ops) {
				/* not echoed: it may hold a password */
				log_error("--db: a postgresql:// or postgres:// URI (libpq's form)");
				return 2;
			}
			o.db = optarg;
			break;
		case OPT_HOST_NAME:
			o.host_name = optarg;
			break;
		case OPT_PLACEMENT:
			if (pd_placement_parse(optarg, &o.placement)) {
				log_error("--placement: local, spread or pack, not '%s'", optarg);
				return 2;
			}
			break;
		case OPT_PLINTH:
			o.plinth_bin = optarg;
			break;
		case OPT_OVERCOMMIT:
			o.overcommit = strtod(optarg, &end);
			if (*end || o.overcommit < 0.1 || o.overcommit > 100) {
				log_error("--overcommit: a ratio in 0.1..100, not '%s'", optarg);
				return 2;
			}
			break;
		case OPT_UID_BASE:
			if (parse_uint(optarg, 1000, 0x7fffffffu - 0x1000000u, &v)) {
				log_error("--uid-base: a number in 1000..2130706431, not '%s'",
					  optarg);
				return 2;
			}
			o.uid_base = (uid_t)v;
			break;
		case OPT_NO_JAIL:
			o.jail = false;
			break;
		case OPT_LISTEN:
			if (strncmp(optarg, "tcp:", 4)) {
				log_error("--listen: tcp:ADDR:PORT, not '%s'", optarg);
				return 2;
			}
			listen = optarg + 4;
			o.address = listen; /* where other hosts reach this one */
			break;
		case OPT_TLS_CERT:
			cert_path = optarg;
			break;
		case OPT_TLS_KEY:
			key_path = optarg;
			break;
		case OPT_WEB:
			if (strncmp(optarg, "tcp:", 4)) {
				log_error("--web: tcp:ADDR:PORT, not '%s'", optarg);
				return 2;
			}
			wo.listen = optarg + 4;
			break;
		case OPT_WEB_CERT:
			wo.cert_path = optarg;
			break;
		case OPT_WEB_KEY:
			wo.key_path = optarg;
			break;
		case OPT_WEB_IDLE:
			if (parse_uint(optarg, 1, 86400, &v)) {
				log_error("--web-idle: seconds in 1..86400, not '%s'", optarg);
				return 2;
			}
			wo.idle_s = (unsigned)v;
			break;
		case OPT_CLUSTER_KEY:
			o.cluster_key = optarg;
			break;
		case OPT_CLUSTER_CA:
			o.cluster_ca = optarg;
			break;
		case OPT_WATCHDOG:
			o.watchdog = optarg;
			break;
		case 'v':
			if (level < LOG_DEBUG)
				level++;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s' (try plinthd --help)", argv[optind]);
		return 2;
	}
	if (listen && (!cert_path || !key_path)) {
		log_error("--listen needs --tls-cert and --tls-key: the API is never served "
			  "in clear text over TCP");
		return 2;
	}
	if (!listen && (cert_path || key_path)) {
		log_error("--tls-cert and --tls-key go with --listen");
		return 2;
	}
	if (!wo.cert_path != !wo.key_path || (wo.cert_path && !wo.listen)) {
		log_error("--web-cert and --web-key go together, with --web");
		return 2;
	}
	if (o.cluster_key && (!listen || !o.db)) {
		log_error("--cluster-key goes with --listen and --db postgresql://...: other "
			  "hosts reach this one there");
		return 2;
	}
	if (o.watchdog && !o.db) {
		log_error("--watchdog goes with --db postgresql://...: it guards the HA VMs of "
			  "a cluster (docs/cluster.md)");
		return 2;
	}
	if (o.cluster_ca && !o.cluster_key) {
		log_error("--cluster-ca goes with --cluster-key");
		return 2;
	}
	if (o.cluster_key && !o.cluster_ca)
		o.cluster_ca = cert_path;
	log_set_level(level);
	if (listen && (!(cert = read_pem(cert_path)) || !(key = read_pem(key_path)))) {
		free(cert);
		return 2;
	}
	/* Block the stop signals before any thread exists: they come through sfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	pd = pd_open(&o, ops);
	if (!pd)
		return 1;
	snprintf(sock, sizeof(sock), "%s/plinthd.sock", pd->dir);
	srv = pd_server_start(pd, sock);
	if (!srv)
		goto out_close;
	if (listen) {
		tcp = pd_server_start_tcp(pd, listen, cert, key);
		if (!tcp)
			goto out_stop;
		log_info("serving TLS on %s (API tokens required)", listen);
	}
	if (wo.listen) {
		web = pd_web_start(pd, &wo);
		if (!web)
			goto out_stop_tcp;
		log_info("web console on https://%s/", wo.listen);
	}
	if (o.db)
		log_info("serving on %s (host %s, inventory in PostgreSQL, VMs %s)", sock,
			 pd->host, pd->jail ? "jailed" : "not jailed");
	else
		log_info("serving on %s (inventory %s/inventory.db, VMs %s)", sock, pd->dir,
			 pd->jail ? "jailed" : "not jailed");
	while (read(sfd, &si, sizeof(si)) < 0 && errno == EINTR)
		;
	log_info("signal %u: stopping (VMs keep running)", si.ssi_signo);
	rc = 0;
	pd_web_stop(web);
out_stop_tcp:
	pd_server_stop(tcp);
out_stop:
	pd_server_stop(srv);
out_close:
	pd_close(pd);
	close(sfd);
	free(cert);
	free(key);
	return rc;
}
