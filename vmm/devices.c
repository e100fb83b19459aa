// SPDX-License-Identifier: MIT
/*
 * The device-class table and the typed configs of the virtio devices
 * (vmm/virtio/devices.h documents their options). A class's parse checks every
 * value once; its device is then created from the canonical spec dev_config made.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devconf.h"
#include "display/vnc.h"
#include "log.h"
#include "util.h"
#include "virtio/devices.h"
#include "virtio/spec.h"

static json_t *set_str(json_t *o, const char *key, const char *val)
{
	if (o && val && json_object_set_new(o, key, json_string(val))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *set_bool(json_t *o, const char *key, bool val)
{
	if (o && val && json_object_set_new(o, key, json_true())) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- disk ---- */

struct disk_config {
	char *path;        /* the image file or block device */
	char *format;      /* raw, qcow2, vhd, vhdx, vmdk, vdi, parallels, or NULL: recognised */
	bool readonly;
	char *serial;      /* GET_ID, or NULL: the file's name */
	bool backing;      /* its image may name files in its directory */
	char *backing_dir; /* ... or in this one */
};

static const char *const disk_keys[] = { "path", "format", "readonly", "serial", "backing",
					 "backing_dir" };

static void disk_free(void *conf)
{
	struct disk_config *c = conf;

	free(c->path);
	free(c->format);
	free(c->serial);
	free(c->backing_dir);
	free(c);
}

static int disk_parse(const char *opt, char *const *v, void **conf)
{
	static const char *const formats[] = { "raw", "qcow2", "vhd", "vpc", "vhdx", "vmdk", "vdi",
					       "parallels" };
	struct disk_config *c;
	size_t i;
	int ret;

	if (!v[0] || !*v[0]) {
		log_error("%s: path=FILE is required", opt);
		return -EINVAL;
	}
	for (i = 0; v[1] && i < ARRAY_SIZE(formats) && strcmp(v[1], formats[i]); i++)
		;
	if (v[1] && i == ARRAY_SIZE(formats)) {
		log_error("%s: unknown format '%s' (expected raw, qcow2, vhd, vhdx, vmdk, vdi, "
			  "parallels)", opt, v[1]);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if ((ret = dev_bool(opt, "readonly", v[2], &c->readonly)) ||
	    (ret = dev_bool(opt, "backing", v[4], &c->backing)) ||
	    (ret = dev_strdup(opt, v[0], &c->path)) || (ret = dev_strdup(opt, v[1], &c->format)) ||
	    (ret = dev_strdup(opt, v[3], &c->serial)) ||
	    (ret = dev_strdup(opt, v[5], &c->backing_dir))) {
		disk_free(c);
		return ret;
	}
	*conf = c;
	return 0;
}

static json_t *disk_to_json(const void *conf)
{
	const struct disk_config *c = conf;
	json_t *o = set_str(json_object(), "path", c->path);

	o = set_str(o, "format", c->format);
	o = set_bool(o, "readonly", c->readonly);
	o = set_str(o, "serial", c->serial);
	o = set_bool(o, "backing", c->backing);
	return set_str(o, "backing_dir", c->backing_dir);
}

const struct dev_class dev_class_disk = {
	.name = "disk",
	.synopsis = "path=FILE[,format=raw|qcow2|vhd|vhdx|vmdk|vdi|parallels][,readonly=on]"
		    "[,serial=ID]\n         [,backing=on][,backing_dir=DIR]",
	.help = DEV_HELP_INDENT "a virtio disk (repeatable: vda, vdb, ... in this order); the\n"
		DEV_HELP_INDENT "backing files and extents it names only with backing=on (in\n"
		DEV_HELP_INDENT "its directory) or backing_dir=DIR\n",
	.keys = disk_keys,
	.nr_keys = ARRAY_SIZE(disk_keys),
	.parse = disk_parse,
	.to_json = disk_to_json,
	.free = disk_free,
	.create = virtio_blk_create,
	.create_incoming = virtio_blk_create_incoming,
};

/* ---- net ---- */

struct net_config {
	char *tap; /* the tap interface */
	char *mac; /* XX:XX:XX:XX:XX:XX (unicast), or NULL: derived from tap */
};

static const char *const net_keys[] = { "tap", "mac" };

static void net_free(void *conf)
{
	struct net_config *c = conf;

	free(c->tap);
	free(c->mac);
	free(c);
}

static bool mac_valid(const char *s)
{
	unsigned int b[6];
	char end;

	return strlen(s) == 17 &&
	       sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		      &end) == 6 &&
	       !(b[0] & 1);
}

static int net_parse(const char *opt, char *const *v, void **conf)
{
	struct net_config *c;
	int ret;

	if (!v[0] || !*v[0]) {
		log_error("%s: tap=IFNAME is required", opt);
		return -EINVAL;
	}
	if (v[1] && !mac_valid(v[1])) {
		log_error("%s: mac=%s: expected a unicast address like 52:54:00:12:34:56", opt, v[1]);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if ((ret = dev_strdup(opt, v[0], &c->tap)) || (ret = dev_strdup(opt, v[1], &c->mac))) {
		net_free(c);
		return ret;
	}
	*conf = c;
	return 0;
}

static json_t *net_to_json(const void *conf)
{
	const struct net_config *c = conf;

	return set_str(set_str(json_object(), "tap", c->tap), "mac", c->mac);
}

static const struct dev_class dev_class_net = {
	.name = "net",
	.synopsis = "tap=IFNAME[,mac=XX:XX:XX:XX:XX:XX]",
	.help = DEV_HELP_INDENT "a virtio NIC on a tap device (repeatable)\n",
	.keys = net_keys,
	.nr_keys = ARRAY_SIZE(net_keys),
	.parse = net_parse,
	.to_json = net_to_json,
	.free = net_free,
	.create = virtio_net_create,
};

/* ---- console ---- */

struct console_config {
	char *path; /* a tty, pty or fifo, or NULL: the VMM's stdin/stdout */
};

static const char *const console_keys[] = { "type", "path" };

static void console_free(void *conf)
{
	struct console_config *c = conf;

	free(c->path);
	free(c);
}

static int console_parse(const char *opt, char *const *v, void **conf)
{
	struct console_config *c;

	if (!v[0] || strcmp(v[0], "virtio")) {
		log_error("%s: expected 'virtio' or 'virtio,path=FILE'", opt);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || dev_strdup(opt, v[1], &c->path)) {
		free(c);
		return -ENOMEM;
	}
	*conf = c;
	return 0;
}

static json_t *console_to_json(const void *conf)
{
	const struct console_config *c = conf;

	return set_str(set_str(json_object(), "type", "virtio"), "path", c->path);
}

static bool console_on_stdio(const void *conf)
{
	return !((const struct console_config *)conf)->path;
}

static const struct dev_class dev_class_console = {
	.name = "console",
	.synopsis = "virtio[,path=FILE]",
	.help = DEV_HELP_INDENT "hvc0 on this terminal (or FILE) instead of COM1 input\n",
	.flag_key = "type",
	.keys = console_keys,
	.nr_keys = ARRAY_SIZE(console_keys),
	.parse = console_parse,
	.to_json = console_to_json,
	.free = console_free,
	.create = virtio_console_create,
	.reopens_in_jail = console_on_stdio,
	.uses_stdin = console_on_stdio,
};

/* ---- rng ---- */

static int rng_parse(const char *opt, char *const *v, void **conf)
{
	(void)opt;
	(void)v;
	*conf = calloc(1, 1); /* no options */
	return *conf ? 0 : -ENOMEM;
}

static json_t *rng_to_json(const void *conf)
{
	(void)conf;
	return json_object();
}

static bool rng_reopens(const void *conf)
{
	(void)conf;
	return true;
}

static const struct dev_class dev_class_rng = {
	.name = "rng",
	.synopsis = "",
	.help = DEV_HELP_INDENT "a virtio entropy source (getrandom)\n",
	.arg_optional = true,
	.parse = rng_parse,
	.to_json = rng_to_json,
	.free = free,
	.create = virtio_rng_create,
	.reopens_in_jail = rng_reopens,
};

/* ---- vsock ---- */

struct vsock_config {
	uint64_t cid;  /* the guest's CID, 3..2^32-2 */
	char *socket;  /* the host side's Unix socket */
};

static const char *const vsock_keys[] = { "cid", "socket" };

static void vsock_free(void *conf)
{
	struct vsock_config *c = conf;

	free(c->socket);
	free(c);
}

static int vsock_parse(const char *opt, char *const *v, void **conf)
{
	struct vsock_config *c;
	uint64_t cid;

	if (!v[0] || !v[1] || !*v[1]) {
		log_error("%s: cid=N and socket=PATH are required", opt);
		return -EINVAL;
	}
	/* 0-2 are reserved (hypervisor, local, host); -1 is VMADDR_CID_ANY. */
	if (spec_uint(opt, "cid", v[0], 3, UINT32_MAX - 1, &cid))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c || dev_strdup(opt, v[1], &c->socket)) {
		free(c);
		return -ENOMEM;
	}
	c->cid = cid;
	*conf = c;
	return 0;
}

static json_t *vsock_to_json(const void *conf)
{
	const struct vsock_config *c = conf;
	json_t *o = json_object();

	if (o && json_object_set_new(o, "cid", json_integer((json_int_t)c->cid))) {
		json_decref(o);
		return NULL;
	}
	return set_str(o, "socket", c->socket);
}

static const struct dev_class dev_class_vsock = {
	.name = "vsock",
	.synopsis = "cid=N,socket=PATH",
	.help = DEV_HELP_INDENT "virtio vsock; the host side is the Unix socket PATH\n",
	.keys = vsock_keys,
	.nr_keys = ARRAY_SIZE(vsock_keys),
	.parse = vsock_parse,
	.to_json = vsock_to_json,
	.free = vsock_free,
	.create = virtio_vsock_create,
	.io_connect = true,
};

/* ---- display ---- */

struct display_config {
	char *vnc;             /* unix:PATH or tcp:ADDR:PORT */
	uint64_t width, height; /* the mode offered to the guest */
	char *password_file;   /* tcp: only; NULL: no password */
};

static const char *const display_keys[] = { "vnc", "width", "height", "password-file" };

static void display_free(void *conf)
{
	struct display_config *c = conf;

	free(c->vnc);
	free(c->password_file);
	free(c);
}

static int display_parse(const char *opt, char *const *v, void **conf)
{
	struct display_config *c;
	uint64_t w = 1024, h = 768;

	if (!v[0] || !*v[0]) {
		log_error("%s: vnc=unix:PATH or vnc=tcp:ADDR:PORT is required", opt);
		return -EINVAL;
	}
	if (vnc_where_check(opt, v[0]) || (v[1] && spec_uint(opt, "width", v[1], 16, 16384, &w)) ||
	    (v[2] && spec_uint(opt, "height", v[2], 16, 16384, &h)))
		return -EINVAL;
	if (v[3] && (!*v[3] || strncmp(v[0], "tcp:", 4))) {
		log_error("%s: password-file=PATH is for vnc=tcp:... (a unix: socket is the VM "
			  "owner's by its mode 0600)", opt);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || dev_strdup(opt, v[0], &c->vnc) ||
	    (v[3] && dev_strdup(opt, v[3], &c->password_file))) {
		if (c)
			free(c->vnc);
		free(c);
		return -ENOMEM;
	}
	c->width = w;
	c->height = h;
	*conf = c;
	return 0;
}

static json_t *display_to_json(const void *conf)
{
	const struct display_config *c = conf;
	json_t *o = set_str(set_str(json_object(), "vnc", c->vnc), "password-file", c->password_file);

	if (o && (json_object_set_new(o, "width", json_integer((json_int_t)c->width)) ||
		  json_object_set_new(o, "height", json_integer((json_int_t)c->height)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static bool display_on_tcp(const void *conf)
{
	return !strncmp(((const struct display_config *)conf)->vnc, "tcp:", 4);
}

static const struct dev_class dev_class_display = {
	.name = "display",
	.synopsis = "vnc=unix:PATH|tcp:ADDR:PORT[,width=N,height=N][,password-file=PATH]",
	.help = DEV_HELP_INDENT "a virtio-gpu screen (2D) served to VNC viewers on PATH (mode\n"
		DEV_HELP_INDENT "0600) or ADDR:PORT (with password-file: VNC authentication,\n"
		DEV_HELP_INDENT "the file's first line, 1-8 bytes, mode 0600; without: bind it\n"
		DEV_HELP_INDENT "to loopback), with a virtio keyboard and tablet; the mode\n"
		DEV_HELP_INDENT "offered is 1024x768 unless width/height say\n",
	.keys = display_keys,
	.nr_keys = ARRAY_SIZE(display_keys),
	.parse = display_parse,
	.to_json = display_to_json,
	.free = display_free,
	.create = display_create,
	.uses_inet = display_on_tcp,
};

/* ---- the table ---- */

const struct dev_class *const dev_classes[] = {
	&dev_class_disk, &dev_class_net, &dev_class_console, &dev_class_rng, &dev_class_vsock,
	&dev_class_display,
};
const size_t dev_nr_classes = ARRAY_SIZE(dev_classes);
_Static_assert(ARRAY_SIZE(dev_classes) <= DEV_MAX_CLASSES, "raise DEV_MAX_CLASSES");
