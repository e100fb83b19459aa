// SPDX-License-Identifier: MIT
/*
 * Networks: a Linux bridge each ("plbr<id>", the host's address the network's first
 * one), created and removed with iproute2's `ip`; a VM's NIC is a tap
 * ("pt<vm id>n<index>") made at start, enslaved to the bridge and given to plinth
 * (--net tap=...,mac=...), removed when the VM's process ends. MACs are stable per
 * NIC (from the VM's uuid). Addresses: static in the guest for now (no DHCP yet).
 *
 * Order (crash safety): create records the network, then makes the bridge (a
 * failure rolls back and removes it); delete removes the record, then the bridge.
 * pd_networks_init() makes missing bridges again after a host reboot.
 */
#include "plinthd.h"

#include <errno.h>
#include <net/if.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

extern char **environ;

/* Run `ip ARGS...` (NULL-terminated); 0 if it exited 0, else -EIO (its stderr shows why). */
static int ip(const char *a0, ...)
{
	char *argv[16];
	va_list ap;
	int n = 0, status;
	pid_t pid;

	argv[n++] = (char *)"ip";
	argv[n++] = (char *)a0;
	va_start(ap, a0);
	while (n < 15 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	if (posix_spawnp(&pid, "ip", NULL, NULL, argv, environ))
		return -EIO;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -EIO;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
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

static json_t *net_json(const struct store_network *net)
{
	char gw[32];

	gateway(net, gw, sizeof(gw));
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}", "name", net->name, "bridge",
			 net->bridge, "cidr", net->cidr, "host_address", gw, "present",
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
		ret = bridge_up(&net);
	if (!ret)
		ret = pd_event(pd, "network.create", net.name, "ok", "bridge %s, %s", net.bridge,
			       net.cidr);
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		if (net.bridge[0] && link_exists(net.bridge))
			ip("link", "del", net.bridge, (char *)NULL);
		if (ret == -ERANGE || ret == -EADDRINUSE)
			pd_reply_error(r, 409, "no default subnet left for '%s': give a cidr",
				       a->name);
		else
			pd_reply_error(r, 500, "network '%s': cannot create its bridge (see "
					       "plinthd's log)", a->name);
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
	if (link_exists(net.bridge))
		ip("link", "del", net.bridge, (char *)NULL);
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
		if (bridge_up(&net) || ip("tuntap", "add", "dev", tap, "mode", "tap", (char *)NULL) ||
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

	if (pd->ops->network_list(pd->st, &nets, &n))
		return -EIO;
	for (i = 0; i < n; i++)
		if (bridge_up(&nets[i]))
			log_warn("network %s: bridge %s could not be made again", nets[i].name,
				 nets[i].bridge);
	free(nets);
	return 0;
}
