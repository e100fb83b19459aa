// SPDX-License-Identifier: MIT
/*
 * Networks: a Linux bridge each ("plbr<id>", the host's address the network's first
 * one), created and removed with iproute2's `ip`; a VM's NIC is a tap
 * ("pt<vm id>n<index>") made at start, enslaved to the bridge and given to plinth
 * (--net tap=...,mac=...), removed when the VM's process ends. MACs are stable per
 * NIC (from the VM's uuid).
 *
 * Addresses: Debian's dnsmasq, one per network, serves DHCP on the bridge only (the
 * upper half of the subnet; the lower half is left for static addresses) and, in
 * nat mode, DNS on the host's address. Its files are DIR/networks/BRIDGE/
 * (dnsmasq.conf, dnsmasq.pid, leases); like the VMs it outlives plinthd, which adopts
 * it by its pidfile and command line or starts it again.
 *
 * Routing: an nftables table per network, "ip plinth_BRIDGE" (DIR/networks/BRIDGE/
 * nft.conf). nat: masquerade what leaves the subnet for another interface (the
 * uplink) and turn on IPv4 forwarding; isolated: drop what would be forwarded in
 * or out of the bridge (forwarding may be on for another network).
 *
 * Order (crash safety): create records the network, then makes the bridge, its rules
 * and its dnsmasq (a failure rolls back and removes them); delete removes the record,
 * then them. pd_networks_init() makes whatever is missing again (after a host reboot).
 */
#include "plinthd.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

extern char **environ;

/* Run argv (found on PATH); 0 if it exited 0, else -EIO (its stderr shows why). */
static int run_argv(char *const argv[])
{
	posix_spawnattr_t attr;
	sigset_t none, all;
	int status, ret;
	pid_t pid;

	/* plinthd's threads block the signals it waits for: dnsmasq must get them. */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	ret = posix_spawnp(&pid, argv[0], NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (ret) {
		log_error("cannot run %s (is it installed? scripts/deps)", argv[0]);
		return -EIO;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -EIO;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Run `ip ARGS...` (NULL-terminated). */
static int ip(const char *a0, ...)
{
	char *argv[16];
	va_list ap;
	int n = 0;

	argv[n++] = (char *)"ip";
	argv[n++] = (char *)a0;
	va_start(ap, a0);
	while (n < 15 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run_argv(argv);
}

/* In plinthd's network namespace (not /sys, which may show another one's). */
static bool link_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

/* The host's address on the network: its first, "A.B.C.D/N". */
static void gateway(const struct store_network *net, char *buf, size_t size)
{
	uint32_t a = 0;
	unsigned prefix = 24;

	pd_parse_cidr(net->cidr, &a, &prefix);
	a++;
	snprintf(buf, size, "%u.%u.%u.%u/%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255,
		 prefix);
}

static int bridge_up(const struct store_network *net)
{
	char gw[32];

	gateway(net, gw, sizeof(gw));
	if (!link_exists(net->bridge) &&
	    ip("link", "add", net->bridge, "type", "bridge", (char *)NULL)) {
		log_error("network %s: cannot create bridge %s", net->name, net->bridge);
		return -EIO;
	}
	ip("addr", "replace", gw, "dev", net->bridge, (char *)NULL);
	if (ip("link", "set", net->bridge, "up", (char *)NULL)) {
		log_error("network %s: cannot bring bridge %s up", net->name, net->bridge);
		return -EIO;
	}
	return 0;
}

static void ipv4(uint32_t a, char *buf, size_t size)
{
	snprintf(buf, size, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* The DHCP range: the upper half of the subnet but its broadcast address (at least
 * the host's next address), and the netmask. */
static void dhcp_range(const struct store_network *net, char *first, char *last, char *mask,
		       size_t size)
{
	uint32_t a = 0, hosts;
	unsigned prefix = 24;

	pd_parse_cidr(net->cidr, &a, &prefix); /* stored valid: N 8..30 */
	hosts = (uint32_t)1 << (32 - prefix);
	ipv4(a + (hosts / 2 > 2 ? hosts / 2 : 2), first, size);
	ipv4(a + hosts - 2, last, size);
	ipv4(~(hosts - 1), mask, size);
}

/* DIR/networks/BRIDGE[/file] into buf. */
static void net_path(const struct plinthd *pd, const struct store_network *net, const char *file,
		     char *buf, size_t size)
{
	if (snprintf(buf, size, "%s/networks/%s%s%s", pd->dir, net->bridge, file ? "/" : "",
		     file ? file : "") >= (int)size)
		buf[0] = '\0';
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write_full(fd, text, strlen(text)))
		ret = -EIO;
	close(fd);
	return ret;
}

/* The network's nftables table (replaced whole: one `nft -f` is atomic). */
static int rules_up(struct plinthd *pd, const struct store_network *net)
{
	char path[256], text[1024];
	char *argv[] = {(char *)"nft", (char *)"-f", path, NULL};
	bool nat = !strcmp(net->mode, "nat");
	int ret;

	if (nat) {
		ret = write_file("/proc/sys/net/ipv4/ip_forward", "1\n");
		if (ret) {
			log_error("network %s: cannot turn on IPv4 forwarding: %s", net->name,
				  strerror(-ret));
			return ret;
		}
		snprintf(text, sizeof(text),
			 "add table ip plinth_%s\ndelete table ip plinth_%s\n"
			 "table ip plinth_%s {\n"
			 "  chain post {\n"
			 "    type nat hook postrouting priority srcnat; policy accept;\n"
			 "    ip saddr %s ip daddr != %s oifname != \"%s\" masquerade\n"
			 "  }\n"
			 "}\n",
			 net->bridge, net->bridge, net->bridge, net->cidr, net->cidr, net->bridge);
	} else {
		snprintf(text, sizeof(text),
			 "add table ip plinth_%s\ndelete table ip plinth_%s\n"
			 "table ip plinth_%s {\n"
			 "  chain isolate {\n"
			 "    type filter hook forward priority filter; policy accept;\n"
			 "    iifname \"%s\" oifname != \"%s\" drop\n"
			 "    oifname \"%s\" iifname != \"%s\" drop\n"
			 "  }\n"
			 "}\n",
			 net->bridge, net->bridge, net->bridge, net->bridge, net->bridge, net->bridge,
			 net->bridge);
	}
	net_path(pd, net, "nft.conf", path, sizeof(path));
	ret = write_file(path, text);
	if (!ret)
		ret = run_argv(argv);
	if (ret)
		log_error("network %s: cannot load its nftables rules (%s)", net->name, path);
	return ret;
}

static void rules_down(const struct store_network *net)
{
	char table[32];
	char *argv[] = {(char *)"nft", (char *)"delete", (char *)"table", (char *)"ip", table, NULL};

	snprintf(table, sizeof(table), "plinth_%s", net->bridge);
	run_argv(argv);
}

/* The pid of the network's dnsmasq if it runs (its pidfile, and its command line
 * names this network's configuration), else 0. */
static pid_t dnsmasq_pid(const struct plinthd *pd, const struct store_network *net)
{
	char path[256], conf[256], buf[4096];
	int pid = 0;
	ssize_t n;

	net_path(pd, net, "dnsmasq.pid", path, sizeof(path));
	net_path(pd, net, "dnsmasq.conf", conf, sizeof(conf));
	if (pd_read_small(path, buf, sizeof(buf)) <= 0 || sscanf(buf, "%d", &pid) != 1 || pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	n = pd_read_small(path, buf, sizeof(buf));
	if (n <= 0)
		return 0;
	for (ssize_t i = 0; i < n; i++) /* arguments are NUL-separated */
		if (!buf[i])
			buf[i] = ' ';
	return strstr(buf, "dnsmasq") && strstr(buf, conf) ? (pid_t)pid : 0;
}

/* Start the network's dnsmasq unless it runs (it daemonizes: its own session,
 * outliving plinthd). 0 or -EIO. */
static int dnsmasq_up(struct plinthd *pd, const struct store_network *net)
{
	char dir[256], conf[256], pidf[256], leases[256], text[2048];
	char host[20], first[20], last[20], mask[20], confopt[300];
	char *argv[] = {(char *)"dnsmasq", confopt, NULL};
	bool nat = !strcmp(net->mode, "nat");
	uint32_t a = 0;
	unsigned prefix = 24;

	if (dnsmasq_pid(pd, net))
		return 0;
	pd_parse_cidr(net->cidr, &a, &prefix);
	ipv4(a + 1, host, sizeof(host));
	dhcp_range(net, first, last, mask, sizeof(first));
	net_path(pd, net, NULL, dir, sizeof(dir));
	net_path(pd, net, "dnsmasq.conf", conf, sizeof(conf));
	net_path(pd, net, "dnsmasq.pid", pidf, sizeof(pidf));
	net_path(pd, net, "leases", leases, sizeof(leases));
	/* Only this bridge, only its address; DNS (forwarding the host's resolvers) on
	 * nat networks only: an isolated one has nowhere to resolve to. */
	snprintf(text, sizeof(text),
		 "# plinthd's DHCP for network %s (bridge %s); rewritten at each start\n"
		 "interface=%s\nexcept-interface=lo\nbind-interfaces\nlisten-address=%s\n"
		 "port=%d\nno-hosts\nstrict-order\n"
		 "dhcp-range=%s,%s,%s,1h\ndhcp-authoritative\ndhcp-leasefile=%s\n"
		 "dhcp-option=option:router%s%s\n%s%s%s"
		 "pid-file=%s\nuser=nobody\nlog-facility=%s/dnsmasq.log\n",
		 net->name, net->bridge, net->bridge, host, nat ? 53 : 0, first, last, mask, leases,
		 nat ? "," : "", nat ? host : "", nat ? "dhcp-option=option:dns-server," : "",
		 nat ? host : "", nat ? "\n" : "", pidf, dir);
	if (write_file(conf, text)) {
		log_error("network %s: cannot write %s", net->name, conf);
		return -EIO;
	}
	snprintf(confopt, sizeof(confopt), "--conf-file=%s", conf);
	if (run_argv(argv)) {
		log_error("network %s: dnsmasq did not start (see %s/dnsmasq.log)", net->name, dir);
		return -EIO;
	}
	return 0;
}

static void dnsmasq_down(struct plinthd *pd, const struct store_network *net)
{
	pid_t pid = dnsmasq_pid(pd, net);

	if (pid > 0)
		kill(pid, SIGTERM);
}

/* Everything of the network on the host: dnsmasq, rules, bridge, its directory. */
static void net_down(struct plinthd *pd, const struct store_network *net)
{
	char dir[256];

	dnsmasq_down(pd, net);
	rules_down(net);
	if (net->bridge[0] && link_exists(net->bridge))
		ip("link", "del", net->bridge, (char *)NULL);
	net_path(pd, net, NULL, dir, sizeof(dir));
	if (net->bridge[0] && dir[0])
		pd_rm_tree(dir);
}

/* The bridge, its rules and its dnsmasq: whatever is missing is made. 0 or -EIO. */
static int net_up(struct plinthd *pd, const struct store_network *net)
{
	char dir[256];

	net_path(pd, net, NULL, dir, sizeof(dir));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_error("network %s: %s: %s", net->name, dir, strerror(errno));
		return -EIO;
	}
	if (bridge_up(net) || rules_up(pd, net) || dnsmasq_up(pd, net))
		return -EIO;
	return 0;
}

static json_t *net_json(const struct store_network *net)
{
	char gw[32];

	char first[20], last[20], mask[20], range[48];

	gateway(net, gw, sizeof(gw));
	dhcp_range(net, first, last, mask, sizeof(first));
	snprintf(range, sizeof(range), "%s-%s", first, last);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I}", "name", net->name, "bridge",
			 net->bridge, "cidr", net->cidr, "mode", net->mode[0] ? net->mode : "isolated",
			 "host_address", gw, "dhcp_range", range, "present",
			 link_exists(net->bridge), "created_ms", (json_int_t)net->created_ms);
}

void pd_net_list(struct plinthd *pd, struct pd_reply *r)
{
	struct store_network *nets;
	json_t *arr;
	size_t n, i;

	if (pd->ops->network_list(pd->st, &nets, &n)) {
		pd_reply_error(r, 500, "inventory error listing networks");
		return;
	}
	arr = json_array();
	for (i = 0; arr && i < n; i++)
		json_array_append_new(arr, net_json(&nets[i]));
	free(nets);
	r->status = 200;
	r->body = json_pack("{s:o}", "networks", arr);
}

void pd_net_get(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct store_network net;

	if (pd->ops->network_get(pd->st, name, &net)) {
		pd_reply_error(r, 404, "no network named '%s'", name);
		return;
	}
	r->status = 200;
	r->body = net_json(&net);
}

/* Does another network use this subnet? */
static bool cidr_taken(struct plinthd *pd, const char *cidr)
{
	struct store_network *nets;
	bool taken = false;
	size_t n, i;

	if (pd->ops->network_list(pd->st, &nets, &n))
		return true;
	for (i = 0; i < n; i++)
		taken |= !strcmp(nets[i].cidr, cidr);
	free(nets);
	return taken;
}

void pd_net_create(struct plinthd *pd, const struct pd_network_args *a, struct pd_reply *r)
{
	struct store_network net = {0};
	int ret;

	if (!pd->ops->network_get(pd->st, a->name, &net)) {
		pd_reply_error(r, 409, "a network named '%s' already exists", a->name);
		return;
	}
	if (a->cidr[0] && cidr_taken(pd, a->cidr)) {
		pd_reply_error(r, 409, "another network already uses %s", a->cidr);
		return;
	}
	memset(&net, 0, sizeof(net));
	snprintf(net.name, sizeof(net.name), "%s", a->name);
	snprintf(net.mode, sizeof(net.mode), "%s", a->mode[0] ? a->mode : "isolated");
	net.created_ms = pd_now_ms();
	ret = pd->ops->begin(pd->st);
	if (!ret)
		ret = pd->ops->network_insert(pd->st, &net);
	if (!ret) {
		snprintf(net.bridge, sizeof(net.bridge), "plbr%u", (unsigned)(net.id % 100000000));
		if (a->cidr[0])
			snprintf(net.cidr, sizeof(net.cidr), "%s", a->cidr);
		else if (net.id >= 1 && net.id <= 254)
			snprintf(net.cidr, sizeof(net.cidr), "10.77.%u.0/24", (unsigned)net.id);
		else
			ret = -ERANGE;
	}
	if (!ret && !a->cidr[0] && cidr_taken(pd, net.cidr))
		ret = -EADDRINUSE;
	if (!ret)
		ret = pd->ops->network_update(pd->st, &net);
	if (!ret)
		ret = net_up(pd, &net);
	if (!ret)
		ret = pd_event(pd, "network.create", net.name, "ok", "bridge %s, %s, %s", net.bridge,
			       net.cidr, net.mode);
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		net_down(pd, &net);
		if (ret == -ERANGE || ret == -EADDRINUSE)
			pd_reply_error(r, 409, "no default subnet left for '%s': give a cidr",
				       a->name);
		else
			pd_reply_error(r, 500, "network '%s': cannot create its bridge, rules or "
					       "dnsmasq (see plinthd's log)", a->name);
		return;
	}
	r->status = 201;
	r->body = net_json(&net);
}

void pd_net_delete(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct store_network net;
	char vm[STORE_NAME_MAX];
	int ret;

	if (pd->ops->network_get(pd->st, name, &net)) {
		pd_reply_error(r, 404, "no network named '%s'", name);
		return;
	}
	if (pd_network_used_by_vm(pd, name, vm, sizeof(vm))) {
		pd_reply_error(r, 409, "network '%s' is used by VM '%s'", name, vm);
		return;
	}
	ret = pd->ops->begin(pd->st);
	if (!ret)
		ret = pd->ops->network_delete(pd->st, net.id);
	if (!ret)
		ret = pd_event(pd, "network.delete", name, "ok", "bridge %s removed", net.bridge);
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		pd_reply_error(r, 500, "inventory error deleting network '%s'", name);
		return;
	}
	net_down(pd, &net);
	r->status = 200;
	r->body = json_pack("{s:s}", "deleted", name);
}

void pd_nic_tap(int64_t vm_id, unsigned index, char *buf, size_t size)
{
	snprintf(buf, size, "pt%un%u", (unsigned)(vm_id % 1000000000), index % 100);
}

int pd_nics_up(struct plinthd *pd, int64_t vm_id, const char *uuid, const struct pd_vm_def *def,
	       char (*spec)[128], struct pd_reply *r)
{
	unsigned i;

	for (i = 0; i < def->n_nics; i++) {
		struct store_network net;
		char tap[16];

		if (pd->ops->network_get(pd->st, def->nics[i].network, &net)) {
			pd_reply_error(r, 404, "nics[%u]: no network named '%s'", i,
				       def->nics[i].network);
			goto out_down;
		}
		pd_nic_tap(vm_id, i, tap, sizeof(tap));
		if (link_exists(tap))
			ip("link", "del", tap, (char *)NULL);
		if (net_up(pd, &net) || ip("tuntap", "add", "dev", tap, "mode", "tap", (char *)NULL) ||
		    ip("link", "set", tap, "master", net.bridge, (char *)NULL) ||
		    ip("link", "set", tap, "up", (char *)NULL)) {
			pd_reply_error(r, 500, "nics[%u]: cannot set up tap %s on bridge %s", i, tap,
				       net.bridge);
			i++;
			goto out_down;
		}
		/* A locally administered unicast MAC, stable per VM and NIC. */
		snprintf(spec[i], sizeof(spec[i]), "tap=%s,mac=52:54:%.2s:%.2s:%.2s:%02x", tap, uuid,
			 uuid + 2, uuid + 4, i);
	}
	return 0;

out_down:
	pd_nics_down(vm_id, i);
	return -EIO;
}

void pd_nics_down(int64_t vm_id, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		char tap[16];

		pd_nic_tap(vm_id, i, tap, sizeof(tap));
		if (link_exists(tap))
			ip("link", "del", tap, (char *)NULL);
	}
}

int pd_networks_init(struct plinthd *pd)
{
	struct store_network *nets;
	size_t n, i;

	char path[256];

	snprintf(path, sizeof(path), "%s/networks", pd->dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		log_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (pd->ops->network_list(pd->st, &nets, &n))
		return -EIO;
	for (i = 0; i < n; i++)
		if (net_up(pd, &nets[i]))
			log_warn("network %s: its bridge %s, rules or dnsmasq could not be made "
				 "again", nets[i].name, nets[i].bridge);
	free(nets);
	return 0;
}
