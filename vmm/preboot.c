// SPDX-License-Identifier: MIT
#include "preboot.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "machine.h"
#include "util.h"

#define PREBOOT_SENT_WAIT_S 10 /* how long the start's answer may take to go out */

enum preboot_state { PB_CONFIGURING, PB_STARTING, PB_STARTED };

struct preboot {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int wake_fd;               /* eventfd: a start request for the main thread */
	enum preboot_state state;  /* (lock) */
	struct machine_conf *conf; /* the pending config, or NULL (lock; owned) */
	struct api_start_args how; /* the start asked for: boot, restore, receive (lock) */
	bool answered;             /* the start request has its answer (lock) */
	int start_ret;             /* that answer: 0 or -errno (lock) */
	char start_err[API_ERROR_MAX];
	bool sent;                 /* the start's answer went out (lock) */
};

struct preboot *preboot_new(void)
{
	struct preboot *pb = calloc(1, sizeof(*pb));

	if (!pb) {
		log_error("pre-boot API: out of memory");
		return NULL;
	}
	pb->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pb->wake_fd < 0) {
		log_error("eventfd: %s", strerror(errno));
		free(pb);
		return NULL;
	}
	pthread_mutex_init(&pb->lock, NULL);
	pthread_cond_init(&pb->cond, NULL);
	return pb;
}

void preboot_free(struct preboot *pb)
{
	if (!pb)
		return;
	if (pb->conf)
		machine_conf_free(pb->conf);
	free(pb->conf);
	close(pb->wake_fd);
	pthread_cond_destroy(&pb->cond);
	pthread_mutex_destroy(&pb->lock);
	free(pb);
}

/* ---- the ops (the pre-boot server's thread) ---- */

static int op_info(void *opaque, struct api_reply *reply)
{
	struct preboot *pb = opaque;
	json_t *cfg = NULL;

	pthread_mutex_lock(&pb->lock);
	if (pb->conf) {
		cfg = machine_config_json(&pb->conf->cfg);
		if (!cfg) {
			pthread_mutex_unlock(&pb->lock);
			return -ENOMEM;
		}
	}
	reply->body = json_pack("{s:s, s:o}", "state",
				pb->state == PB_CONFIGURING ? "configuring" : "starting", "config",
				cfg ? cfg : json_null());
	pthread_mutex_unlock(&pb->lock);
	return reply->body ? 0 : -ENOMEM;
}

static int op_configure(void *opaque, const json_t *config, struct api_reply *reply)
{
	struct preboot *pb = opaque;
	struct machine_conf *mc = malloc(sizeof(*mc)), *old;
	struct log_capture cap;
	int ret;

	if (!mc)
		return -ENOMEM;
	log_capture_tee(&cap);
	ret = machine_conf_parse_json(config, mc);
	log_capture_end(&cap);
	if (ret) {
		snprintf(reply->error, sizeof(reply->error), "%.*s", API_ERROR_MAX - 1,
			 cap.first_error);
		free(mc);
		return ret;
	}
	pthread_mutex_lock(&pb->lock);
	if (pb->state != PB_CONFIGURING) {
		pthread_mutex_unlock(&pb->lock);
		snprintf(reply->error, sizeof(reply->error), "the VM is starting");
		machine_conf_free(mc);
		free(mc);
		return -EBUSY;
	}
	old = pb->conf;
	pb->conf = mc;
	pthread_mutex_unlock(&pb->lock);
	if (old) {
		machine_conf_free(old);
		free(old);
	}
	return 0;
}

/* The start's answer went out (or its client left): the main thread may stop the server. */
static void start_sent(void *opaque)
{
	struct preboot *pb = opaque;

	pthread_mutex_lock(&pb->lock);
	pb->sent = true;
	pthread_cond_broadcast(&pb->cond);
	pthread_mutex_unlock(&pb->lock);
}

static int op_start(void *opaque, const struct api_start_args *args, struct api_reply *reply)
{
	struct preboot *pb = opaque;
	uint64_t one = 1;
	int ret;

	pthread_mutex_lock(&pb->lock);
	if (pb->state != PB_CONFIGURING || !pb->conf) {
		snprintf(reply->error, sizeof(reply->error), "%s",
			 pb->state != PB_CONFIGURING ? "the VM is starting" :
			 "nothing to start: PUT /v1/vm/config first");
		pthread_mutex_unlock(&pb->lock);
		return -EBUSY;
	}
	pb->state = PB_STARTING;
	pb->how = *args;
	pb->answered = false;
	pb->sent = false;
	pthread_mutex_unlock(&pb->lock);
	if (write(pb->wake_fd, &one, sizeof(one)) < 0)
		return -errno;
	pthread_mutex_lock(&pb->lock);
	while (!pb->answered)
		pthread_cond_wait(&pb->cond, &pb->lock);
	ret = pb->start_ret;
	if (ret)
		snprintf(reply->error, sizeof(reply->error), "%s", pb->start_err);
	else
		reply->sent = start_sent;
	pthread_mutex_unlock(&pb->lock);
	return ret;
}

/* Everything a running VM serves: nothing to act on yet. */
static int not_started(struct api_reply *reply)
{
	snprintf(reply->error, sizeof(reply->error), "the VM has not started (PUT /v1/vm/config, "
		 "then POST /v1/vm/start)");
	return -EBUSY;
}

static int op_action(void *opaque, struct api_reply *reply)
{
	(void)opaque;
	return not_started(reply);
}

static int op_snapshot(void *opaque, const struct api_snapshot_args *a, struct api_reply *reply)
{
	(void)opaque;
	(void)a;
	return not_started(reply);
}

static int op_migrate(void *opaque, const struct api_migrate_args *a, struct api_reply *reply)
{
	(void)opaque;
	(void)a;
	return not_started(reply);
}

static int op_disk_add(void *opaque, const struct api_disk_args *a, struct api_reply *reply)
{
	(void)opaque;
	(void)a;
	return not_started(reply);
}

static int op_disk_remove(void *opaque, const char *id, struct api_reply *reply)
{
	(void)opaque;
	(void)id;
	return not_started(reply);
}

static int op_net_add(void *opaque, const struct api_net_args *a, struct api_reply *reply)
{
	(void)opaque;
	(void)a;
	return not_started(reply);
}

const struct api_vm_ops preboot_api_ops = {
	.info = op_info,
	.pause = op_action,
	.resume = op_action,
	.shutdown = op_action,
	.reset = op_action,
	.snapshot = op_snapshot,
	.migrate = op_migrate,
	.disk_add = op_disk_add,
	.disk_remove = op_disk_remove,
	.net_add = op_net_add,
	.net_remove = op_disk_remove, /* the same answer */
	.configure = op_configure,
	.start = op_start,
};

/* ---- the main thread ---- */

/* The pending config's machine settings into cfg; its devices move (cfg owns them). */
static void take_config(struct preboot *pb, struct vm_config *cfg)
{
	struct vm_config *p = &pb->conf->cfg;

	cfg->kernel = p->kernel;
	cfg->initrd = p->initrd;
	cfg->cmdline = p->cmdline;
	cfg->firmware = p->firmware;
	cfg->firmware_vars = p->firmware_vars;
	cfg->cpus = p->cpus;
	cfg->memory = p->memory;
	cfg->no_reboot = p->no_reboot;
	cfg->console_in = p->console_in;
	memcpy(cfg->devices, p->devices, sizeof(p->devices));
	cfg->nr_devices = p->nr_devices;
	memset(p->devices, 0, sizeof(p->devices));
	p->nr_devices = 0;
}

int preboot_wait(struct preboot *pb, int sfd, struct vm_config *cfg, struct api_start_args *how)
{
	struct pollfd fds[2] = { { .fd = sfd, .events = POLLIN },
				 { .fd = pb->wake_fd, .events = POLLIN } };
	struct signalfd_siginfo si;
	uint64_t v;

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return 1;
		}
		if (fds[0].revents && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			log_warn("stopped by signal %u before the VM started", si.ssi_signo);
			return 128 + (int)si.ssi_signo;
		}
		if (!fds[1].revents || read(pb->wake_fd, &v, sizeof(v)) < 0)
			continue;
		pthread_mutex_lock(&pb->lock);
		if (pb->state == PB_STARTING && !pb->answered) {
			take_config(pb, cfg);
			*how = pb->how;
			pthread_mutex_unlock(&pb->lock);
			return 0;
		}
		pthread_mutex_unlock(&pb->lock);
	}
}

void preboot_refuse(struct preboot *pb, struct vm_config *cfg, const char *msg)
{
	struct vm_config *p = &pb->conf->cfg;

	pthread_mutex_lock(&pb->lock);
	memcpy(p->devices, cfg->devices, sizeof(p->devices));
	p->nr_devices = cfg->nr_devices;
	memset(cfg->devices, 0, sizeof(cfg->devices));
	cfg->nr_devices = 0;
	pb->state = PB_CONFIGURING;
	pb->start_ret = -EINVAL;
	snprintf(pb->start_err, sizeof(pb->start_err), "%s",
		 msg[0] ? msg : "the VM could not be built (see the VMM's log)");
	pb->answered = true;
	pthread_cond_broadcast(&pb->cond);
	pthread_mutex_unlock(&pb->lock);
}

void preboot_started(struct preboot *pb)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PREBOOT_SENT_WAIT_S;
	pthread_mutex_lock(&pb->lock);
	pb->state = PB_STARTED;
	pb->start_ret = 0;
	pb->answered = true;
	pthread_cond_broadcast(&pb->cond);
	while (!pb->sent)
		if (pthread_cond_timedwait(&pb->cond, &pb->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&pb->lock);
}
