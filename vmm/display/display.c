// SPDX-License-Identifier: MIT
/*
 * The --display class's plinth side (vnc.h): its spec, its listening socket, its
 * virtio-gpu and input devices, and the VNC server module.
 *
 * The VNC server (vnc.c, libvncserver) is a module, plinth-vnc.so, loaded the first
 * time a VM has a display: libvncserver pulls libgcrypt, libgpg-error, libjpeg and
 * liblzo2 into a process, about 0.5 MiB of every VM's resident memory, and most VMs
 * of a server have no screen. The module exports one table (plinth_vnc_module);
 * it calls back into plinth only for log_msg() and virtio_input_send(), the two
 * symbols plinth exports (module.syms).
 *
 * It is found beside the running plinth (the build tree) or in PLINTH_MODULE_DIR
 * (the installed libdir/plinth); loaded before the jail and the filters, since the
 * first display is made at start-up, and never unloaded: a guest reset re-creates
 * the display, inside the jail and under the main filter, from the loaded module.
 * A program that links vnc.c itself (the unit tests) uses that copy instead.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "keyfile.h"
#include "log.h"
#include "util.h"
#include "virtio/devices.h"
#include "virtio/input.h"
#include "virtio/internal.h"
#include "virtio/virtio-pci.h"
#include "virtio/spec.h"
#include "vnc.h"
#include "devconf.h"
#include "spec.h"

#define VNC_MODULE_FILE "plinth-vnc.so"

/* Defined when vnc.c is linked in (tests); plinth itself loads the module. */
extern const struct vnc_module plinth_vnc_module __attribute__((weak));

/* The module's table, loaded on first use. NULL with the reason logged. */
static const struct vnc_module *vnc_module(void)
{
	static const struct vnc_module *mod;
	char self[PATH_MAX], path[PATH_MAX + sizeof(VNC_MODULE_FILE)];
	const char *dirs[2] = { NULL, PLINTH_MODULE_DIR };
	const struct vnc_module *m;
	void *h = NULL;
	ssize_t n;
	size_t i;

	if (mod)
		return mod;
	if (&plinth_vnc_module) {
		mod = &plinth_vnc_module;
		return mod;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		if (strrchr(self, '/'))
			*strrchr(self, '/') = 0;
		dirs[0] = self;
	}
	path[0] = 0;
	for (i = 0; i < ARRAY_SIZE(dirs) && !h; i++) {
		if (!dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirs[i], VNC_MODULE_FILE);
		if (access(path, R_OK))
			continue;
		h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			log_error("--display: cannot load the VNC server %s: %s", path, dlerror());
			return NULL;
		}
	}
	if (!h) {
		log_error("--display: no VNC server module %s beside %s or in %s", VNC_MODULE_FILE,
			  dirs[0] ? dirs[0] : "plinth", PLINTH_MODULE_DIR);
		return NULL;
	}
	m = dlsym(h, "plinth_vnc_module");
	if (!m || m->abi != VNC_MODULE_ABI) {
		log_error("--display: %s is not this plinth's VNC server (rebuild it)", path);
		dlclose(h);
		return NULL;
	}
	mod = m;
	return mod;
}

/* "tcp:A.B.C.D:PORT" into sin; false if it is not one. */
static bool parse_tcp(const char *s, struct sockaddr_in *sin)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	uint64_t port;

	if (!colon || (size_t)(colon - s) >= sizeof(host) || colon == s)
		return false;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return false;
	if (!*++colon || strspn(colon, "0123456789") != strlen(colon) || strlen(colon) > 5)
		return false;
	port = strtoull(colon, NULL, 10);
	if (port < 1 || port > 65535)
		return false;
	sin->sin_port = htons((uint16_t)port);
	return true;
}

int vnc_where_check(const char *opt, const char *where)
{
	struct sockaddr_in sin;

	if (!strncmp(where, "unix:", 5) && where[5]) {
		if (strlen(where + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			log_error("%s: vnc=%s: the socket's path is too long", opt, where);
			return -EINVAL;
		}
		return 0;
	}
	if (!strncmp(where, "tcp:", 4) && parse_tcp(where + 4, &sin))
		return 0;
	log_error("%s: vnc=%s: expected unix:PATH or tcp:ADDR:PORT (ADDR an IPv4 address)", opt,
		  where);
	return -EINVAL;
}

/* The listening socket for where (checked by vnc_where_check). fd or -errno, logged. */
static int vnc_listen(const char *where)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr_in sin;
	struct stat st;
	int fd, one = 1, r;

	if (!strncmp(where, "unix:", 5)) {
		mode_t old;

		strcpy(sun.sun_path, where + 5); /* length checked */
		/* Replace a stale socket of ours; never another kind of file. */
		if (!lstat(sun.sun_path, &st) && S_ISSOCK(st.st_mode))
			unlink(sun.sun_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			goto out_err;
		old = umask(0177); /* start-up: one thread; mode 0600, the VM owner's only */
		r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		umask(old);
	} else {
		parse_tcp(where + 4, &sin);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			goto out_err;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		r = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	}
	if (r || listen(fd, 8)) {
		r = -errno;
		log_error("--display: vnc=%s: %s", where, strerror(errno));
		close(fd);
		return r;
	}
	return fd;

out_err:
	r = -errno;
	log_error("--display: vnc=%s: socket: %s", where, strerror(errno));
	return r;
}

int vnc_display_new(const char *where, uint32_t width, uint32_t height,
		    const struct gpu_display_ops **ops, void **opaque)
{
	const struct vnc_module *m = vnc_module();
	int fd, r;

	if (!m)
		return -ENOENT;
	fd = vnc_listen(where);
	if (fd < 0)
		return fd;
	r = m->display_new(fd, !strncmp(where, "unix:", 5) ? where + 5 : NULL, width, height, ops,
			   opaque);
	if (r) { /* the socket stays ours */
		close(fd);
		if (!strncmp(where, "unix:", 5))
			unlink(where + 5);
	}
	return r;
}

int vnc_display_set_password(void *opaque, const char *password)
{
	return vnc_module()->set_password(opaque, password); /* a display exists: loaded */
}

void vnc_display_set_inputs(void *opaque, struct virtio_dev *kbd, struct virtio_dev *tablet)
{
	vnc_module()->set_inputs(opaque, kbd, tablet);
}

/* The password in path into a new display's opaque. 0 or -errno, logged. */
static int display_password(void *opaque, const char *path)
{
	char pw[VNC_PASSWORD_MAX + 1];
	int r = keyfile_read_line("--display: password-file", path, pw, sizeof(pw));

	if (!r) {
		r = vnc_display_set_password(opaque, pw);
		if (r)
			log_error("--display: out of memory");
	}
	explicit_bzero(pw, sizeof(pw));
	return r;
}

int display_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		   struct virtio_pci **out)
{
	static const char *const keys[] = { "vnc", "width", "height", "password-file" };
	char *vals[ARRAY_SIZE(keys)] = { 0 };
	const struct gpu_display_ops *ops;
	uint64_t w = 1024, h = 768;
	void *opaque;
	int r;

	/* spec is the canonical one devices.c made from checked values. */
	r = spec_parse("--display", spec, keys, ARRAY_SIZE(keys), NULL, vals);
	if (!r && vals[1])
		r = spec_uint("--display", "width", vals[1], 1, 16384, &w);
	if (!r && vals[2])
		r = spec_uint("--display", "height", vals[2], 1, 16384, &h);
	if (!r)
		r = vnc_display_new(vals[0], (uint32_t)w, (uint32_t)h, &ops, &opaque);
	if (!r && vals[3] && (r = display_password(opaque, vals[3])))
		ops->destroy(opaque);
	if (!r)
		r = virtio_gpu_create_on(bus, mem, (uint32_t)w, (uint32_t)h, ops, opaque, out);
	spec_free(vals, ARRAY_SIZE(keys));
	return r;
}

int display_add_inputs(struct pci_bus *bus, const struct guest_mem *mem, struct virtio_pci *gpu,
		       struct virtio_pci **kbd, struct virtio_pci **tablet)
{
	void *v = virtio_gpu_display(virtio_pci_vdev(gpu));
	int r;

	*kbd = *tablet = NULL;
	r = virtio_input_create_on(bus, mem, INPUT_KEYBOARD, kbd);
	if (!r)
		r = virtio_input_create_on(bus, mem, INPUT_TABLET, tablet);
	if (r) {
		log_error("--display: cannot add its keyboard and tablet: %s", strerror(-r));
		return r;
	}
	vnc_display_set_inputs(v, virtio_pci_vdev(*kbd), virtio_pci_vdev(*tablet));
	return 0;
}

/* ---- the --display class (vmm/devconf.h): its typed config and options ---- */

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
	if (!c || spec_dup(opt, v[0], &c->vnc) ||
	    (v[3] && spec_dup(opt, v[3], &c->password_file))) {
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
	json_t *o = spec_json_str(spec_json_str(json_object(), "vnc", c->vnc), "password-file", c->password_file);

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

const struct dev_class dev_class_display = {
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
