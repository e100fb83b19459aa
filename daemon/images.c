// SPDX-License-Identifier: MIT
/*
 * The directory pool (DIR/images) and tasks. An image's file and its inventory
 * record change together:
 *   create/clone/import: write POOL/.NAME.partial, then in one transaction insert
 *     the record and rename the file to POOL/NAME;
 *   delete: rename POOL/NAME to POOL/.NAME.deleting, delete the record (one
 *     transaction), then unlink.
 * pd_images_init() finishes or undoes what a crash left between those steps:
 * .partial files are removed, .deleting files are unlinked (record gone) or
 * renamed back (record kept), and a file without a record (renamed, commit lost)
 * is adopted as an image.
 *
 * Tasks (import, full clone) copy on a worker thread of their own, outside the
 * lock, and take pd->lock only to record progress; cancel sets a flag the worker
 * checks between chunks.
 */
#include "plinthd.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "plinth-img.h"
#include "util.h"

#define COPY_CHUNK (1u << 20)

void pd_image_path(const struct plinthd *pd, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", pd->pool, name);
}

static void temp_path(const struct plinthd *pd, const char *name, const char *suffix, char *buf,
		      size_t size)
{
	snprintf(buf, size, "%s/.%s.%s", pd->pool, name, suffix);
}

static struct pd_task *task_by_object(struct plinthd *pd, const char *name)
{
	struct pd_task *t;

	for (t = pd->tasks; t; t = t->next)
		if (!t->done && (!strcmp(t->object, name) || !strcmp(t->dst_name, name)))
			return t;
	return NULL;
}

bool pd_image_name_busy(struct plinthd *pd, const char *name)
{
	struct store_image img;

	return !pd->ops->image_get(pd->st, name, &img) || task_by_object(pd, name);
}

static json_t *image_json(struct plinthd *pd, const struct store_image *img)
{
	char vm[STORE_NAME_MAX] = "";
	json_t *o = json_pack("{s:s, s:s, s:I, s:b, s:I}", "name", img->name, "format", img->format,
			      "size", (json_int_t)img->size, "template", img->is_template,
			      "created_ms", (json_int_t)img->created_ms);

	if (!o)
		return NULL;
	if (img->backing[0])
		json_object_set_new(o, "backing", json_string(img->backing));
	if (pd_image_used_by_vm(pd, img->name, vm, sizeof(vm)))
		json_object_set_new(o, "used_by", json_string(vm));
	return o;
}

void pd_image_list(struct plinthd *pd, struct pd_reply *r)
{
	struct store_image *imgs;
	json_t *arr;
	size_t n, i;

	if (pd->ops->image_list(pd->st, &imgs, &n)) {
		pd_reply_error(r, 500, "inventory error listing images");
		return;
	}
	arr = json_array();
	for (i = 0; arr && i < n; i++)
		json_array_append_new(arr, image_json(pd, &imgs[i]));
	free(imgs);
	r->status = 200;
	r->body = json_pack("{s:o}", "images", arr);
}

void pd_image_get(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct store_image img;

	if (pd->ops->image_get(pd->st, name, &img)) {
		pd_reply_error(r, 404, "no image named '%s' in the pool", name);
		return;
	}
	r->status = 200;
	r->body = image_json(pd, &img);
}

/* Insert img's record and rename its .partial file into place, in one transaction. */
static int image_commit(struct plinthd *pd, struct store_image *img, const char *action,
			const char *msg)
{
	char partial[4200], final[4200];
	int ret;

	temp_path(pd, img->name, "partial", partial, sizeof(partial));
	pd_image_path(pd, img->name, final, sizeof(final));
	img->created_ms = pd_now_ms();
	ret = pd->ops->begin(pd->st);
	if (!ret)
		ret = pd->ops->image_insert(pd->st, img);
	if (!ret)
		ret = pd_event(pd, action, img->name, "ok", "%s", msg);
	if (!ret && rename(partial, final) < 0) {
		ret = -errno;
		log_error("image %s: rename: %s", img->name, strerror(errno));
	}
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		unlink(partial);
		unlink(final);
	}
	return ret;
}

void pd_image_delete(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	char vm[STORE_NAME_MAX], path[4200], gone[4200], lease[4210];
	struct store_image img, *imgs;
	size_t n, i;
	int ret;

	if (pd->ops->image_get(pd->st, name, &img)) {
		pd_reply_error(r, 404, "no image named '%s' in the pool", name);
		return;
	}
	if (pd_image_used_by_vm(pd, name, vm, sizeof(vm))) {
		pd_reply_error(r, 409, "image '%s' is used by VM '%s'", name, vm);
		return;
	}
	if (task_by_object(pd, name)) {
		pd_reply_error(r, 409, "image '%s' is being copied by a task", name);
		return;
	}
	if (pd->ops->image_list(pd->st, &imgs, &n)) {
		pd_reply_error(r, 500, "inventory error listing images");
		return;
	}
	for (i = 0; i < n; i++) {
		if (!strcmp(imgs[i].backing, name)) {
			pd_reply_error(r, 409, "image '%s' is the template of linked clone '%s'",
				       name, imgs[i].name);
			free(imgs);
			return;
		}
	}
	free(imgs);
	pd_image_path(pd, name, path, sizeof(path));
	temp_path(pd, name, "deleting", gone, sizeof(gone));
	if (rename(path, gone) < 0 && errno != ENOENT) {
		pd_reply_error(r, 500, "image '%s': %s", name, strerror(errno));
		return;
	}
	ret = pd->ops->begin(pd->st);
	if (!ret)
		ret = pd->ops->image_delete(pd->st, img.id);
	if (!ret)
		ret = pd_event(pd, "image.delete", name, "ok", "deleted");
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		rename(gone, path);
		pd_reply_error(r, 500, "inventory error deleting image '%s'", name);
		return;
	}
	unlink(gone);
	/* The owner record plinth keeps beside a disk (vmm/lease.c) goes with the image. */
	if (strlen(path) + sizeof(".lease") <= sizeof(lease)) {
		snprintf(lease, sizeof(lease), "%s.lease", path);
		unlink(lease);
	}
	r->status = 200;
	r->body = json_pack("{s:s}", "deleted", name);
}

/* --- Tasks ------------------------------------------------------------------------------ */

static json_t *task_json(const struct store_task *t)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:i, s:I, s:I, s:I}", "id", (json_int_t)t->id,
			      "kind", t->kind, "object", t->object, "state", t->state, "percent",
			      t->percent, "done_bytes", (json_int_t)t->done_bytes, "total_bytes",
			      (json_int_t)t->total_bytes, "created_ms", (json_int_t)t->created_ms);

	if (o && t->finished_ms)
		json_object_set_new(o, "finished_ms", json_integer(t->finished_ms));
	if (o && t->error[0])
		json_object_set_new(o, "error", json_string(t->error));
	if (o && t->host[0])
		json_object_set_new(o, "host", json_string(t->host));
	return o;
}

void pd_task_list(struct plinthd *pd, struct pd_reply *r)
{
	struct store_task *ts;
	json_t *arr;
	size_t n, i;

	if (pd->ops->task_list(pd->st, &ts, &n)) {
		pd_reply_error(r, 500, "inventory error listing tasks");
		return;
	}
	arr = json_array();
	for (i = 0; arr && i < n; i++)
		json_array_append_new(arr, task_json(&ts[i]));
	free(ts);
	r->status = 200;
	r->body = json_pack("{s:o}", "tasks", arr);
}

void pd_task_get(struct plinthd *pd, int64_t id, struct pd_reply *r)
{
	struct store_task t;

	if (pd->ops->task_get(pd->st, id, &t)) {
		pd_reply_error(r, 404, "no task %lld", (long long)id);
		return;
	}
	r->status = 200;
	r->body = task_json(&t);
}

void pd_task_cancel(struct plinthd *pd, int64_t id, struct pd_reply *r)
{
	struct pd_task *t;

	for (t = pd->tasks; t; t = t->next)
		if (t->id == id && !t->done)
			break;
	if (!t) {
		struct store_task st;

		if (pd->ops->task_get(pd->st, id, &st))
			pd_reply_error(r, 404, "no task %lld", (long long)id);
		else
			pd_reply_error(r, 409, "task %lld is %s: nothing to cancel", (long long)id,
				       st.state);
		return;
	}
	t->cancel = true;
	pd_event(pd, "task.cancel", t->dst_name, "ok", "task %lld", (long long)id);
	pd_task_get(pd, id, r);
	if (r->status == 200)
		r->status = 202;
}

void pd_task_record(struct plinthd *pd, int64_t id, const char *state, uint64_t done,
			uint64_t total, const char *error)
{
	struct store_task t;

	if (pd->ops->task_get(pd->st, id, &t))
		return;
	if (state)
		snprintf(t.state, sizeof(t.state), "%s", state);
	t.done_bytes = done;
	t.total_bytes = total;
	t.percent = total ? (int)(done * 100 / total) : 100;
	if (error)
		snprintf(t.error, sizeof(t.error), "%s", error);
	if (state && strcmp(state, "running"))
		t.finished_ms = pd_now_ms();
	pd->ops->task_update(pd->st, &t);
}

/*
 * Copy every byte src reads (through its backing chain) into dst, skipping zeros so
 * that dst stays sparse. Reports progress; -ECANCELED when cancelled.
 */
static int copy_image(struct pd_task *t, struct pimg *src, struct pimg *dst)
{
	struct plinthd *pd = t->pd;
	uint64_t size = pimg_size(src), off = 0;
	int64_t last = 0;
	char *buf = malloc(COPY_CHUNK);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	while (off < size) {
		uint64_t pnum = 0, len = MIN((uint64_t)COPY_CHUNK, size - off);
		int st = pimg_block_status(src, off, len, &pnum, true);

		if (st < 0) {
			ret = st;
			break;
		}
		if (st == PIMG_DATA) {
			ret = pimg_pread(src, buf, pnum, off);
			if (!ret && !pimg_is_zero(buf, pnum))
				ret = pimg_pwrite(dst, buf, pnum, off);
			if (ret)
				break;
		}
		off += pnum;
		if (t->cancel) {
			ret = -ECANCELED;
			break;
		}
		if (pd_mono_ms() - last > 200) {
			last = pd_mono_ms();
			pthread_mutex_lock(&pd->lock);
			pd_task_record(pd, t->id, NULL, off, size, NULL);
			pthread_mutex_unlock(&pd->lock);
		}
	}
	if (!ret)
		ret = pimg_flush(dst);
	free(buf);
	return ret;
}

/* Into err: what failed and why, the image library's own sentence when it said one
 * on this thread during c (a tee: plinthd's log has it too), else strerror(-ret). */
static void image_error(char *err, size_t size, const struct log_capture *c, const char *what,
			int ret)
{
	if (c->first_error[0])
		snprintf(err, size, "%.80s: %.170s", what, c->first_error);
	else
		snprintf(err, size, "%.80s: %s", what, strerror(-ret));
}

static void *task_main(void *arg)
{
	struct pd_task *t = arg;
	struct plinthd *pd = t->pd;
	struct store_image img = {0};
	char partial[4200], err[STORE_REASON_MAX] = "";
	struct pimg *src, *dst = NULL;
	struct log_capture cap;
	uint64_t size = 0;
	int ret = -EIO;

	temp_path(pd, t->dst_name, "partial", partial, sizeof(partial));
	/* The image library's sentences of this task go into its error, not only the log. */
	log_capture_tee(&cap);
	/* A linked clone's template, or an imported image's parent or extents, only from the
	 * source's own directory (no symlinks, no block devices: img/core.c's policy). */
	src = pimg_open_with(t->src, t->src_format[0] ? t->src_format : NULL, PIMG_O_RDONLY,
			     &(const struct pimg_open_policy){ .allow_external = true });
	if (!src) {
		log_capture_end(&cap);
		image_error(err, sizeof(err), &cap, "cannot open the source", -EIO);
		goto out_record;
	}
	size = pimg_size(src);
	ret = pimg_create(partial, "qcow2", size, NULL);
	if (!ret) {
		dst = pimg_open(partial, "qcow2", 0);
		ret = dst ? 0 : -EIO;
	}
	if (ret) {
		log_capture_end(&cap);
		image_error(err, sizeof(err), &cap, "cannot create the pool's copy", ret);
		goto out_close;
	}
	ret = copy_image(t, src, dst);
	log_capture_end(&cap);
	if (ret && ret != -ECANCELED)
		image_error(err, sizeof(err), &cap, "copy failed", ret);
out_close:
	pimg_close(dst);
	pimg_close(src);
out_record:
	pthread_mutex_lock(&pd->lock);
	if (!ret) {
		snprintf(img.name, sizeof(img.name), "%s", t->dst_name);
		snprintf(img.format, sizeof(img.format), "qcow2");
		img.size = size;
		ret = image_commit(pd, &img, t->action, t->src);
		if (ret)
			snprintf(err, sizeof(err), "inventory error recording the image");
	}
	if (ret)
		unlink(partial);
	pd_task_record(pd, t->id, !ret ? "done" : ret == -ECANCELED ? "cancelled" : "failed", size,
		    size, err);
	if (ret && ret != -ECANCELED)
		pd_event(pd, t->action, t->dst_name, "failed", "%s", err);
	t->done = true;
	pthread_mutex_unlock(&pd->lock);
	return NULL;
}

int pd_task_launch(struct plinthd *pd, struct pd_task *t, const char *kind,
		   void *(*work)(void *), struct pd_reply *r)
{
	struct store_task st = {0};

	snprintf(st.kind, sizeof(st.kind), "%s", kind);
	snprintf(st.object, sizeof(st.object), "%s", t->object);
	snprintf(st.state, sizeof(st.state), "running");
	snprintf(st.host, sizeof(st.host), "%s", pd->host);
	st.created_ms = pd_now_ms();
	if (pd->ops->task_insert(pd->st, &st)) {
		pd_reply_error(r, 500, "inventory error creating a task");
		free(t);
		return -EIO;
	}
	t->id = st.id;
	t->pd = pd;
	if (pthread_create(&t->thread, NULL, work, t)) {
		pd_task_record(pd, t->id, "failed", 0, 0, "cannot create a thread");
		pd_reply_error(r, 500, "cannot create a task thread");
		free(t);
		return -EAGAIN;
	}
	t->next = pd->tasks;
	pd->tasks = t;
	pd_task_get(pd, t->id, r);
	if (r->status == 200)
		r->status = 202;
	return 0;
}

/* Start a copy task from src (a path) into the pool as dst_name; 202 + the task. */
static void task_start(struct plinthd *pd, const char *kind, const char *src,
		       const char *src_format, const char *dst_name, struct pd_reply *r)
{
	struct pd_task *t = calloc(1, sizeof(*t));

	if (!t) {
		pd_reply_error(r, 500, "out of memory");
		return;
	}
	snprintf(t->object, sizeof(t->object), "%s", dst_name);
	snprintf(t->action, sizeof(t->action), "image.%s", kind);
	snprintf(t->src, sizeof(t->src), "%s", src);
	snprintf(t->src_format, sizeof(t->src_format), "%s", src_format);
	snprintf(t->dst_name, sizeof(t->dst_name), "%s", dst_name);
	pd_task_launch(pd, t, kind, task_main, r);
}

void pd_tasks_reap(struct plinthd *pd, bool all)
{
	struct pd_task **pp = &pd->tasks;

	while (*pp) {
		struct pd_task *t = *pp;

		if (!t->done && !all) {
			pp = &t->next;
			continue;
		}
		if (!t->done)
			t->cancel = true;
		*pp = t->next;
		pthread_mutex_unlock(&pd->lock);
		pthread_join(t->thread, NULL);
		pthread_mutex_lock(&pd->lock);
		free(t);
		pp = &pd->tasks; /* the list may have changed while unlocked */
	}
}

/* --- Create and clone ------------------------------------------------------------------ */

void pd_image_create(struct plinthd *pd, const struct pd_image_args *a, struct pd_reply *r)
{
	char partial[4200], what[STORE_NAME_MAX + 32], err[STORE_REASON_MAX];
	struct store_image img = {0};
	struct log_capture cap;
	struct stat sb;
	int ret;

	if (pd_image_name_busy(pd, a->name)) {
		pd_reply_error(r, 409, "an image named '%s' already exists", a->name);
		return;
	}
	if (a->import[0]) {
		if (stat(a->import, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			pd_reply_error(r, 404, "cannot import %s: %s", a->import,
				       errno ? strerror(errno) : "not a regular file");
			return;
		}
		task_start(pd, "import", a->import, a->format, a->name, r);
		return;
	}
	temp_path(pd, a->name, "partial", partial, sizeof(partial));
	log_capture_tee(&cap);
	ret = pimg_create(partial, a->format, a->size, NULL);
	log_capture_end(&cap);
	if (ret) {
		unlink(partial);
		snprintf(what, sizeof(what), "creating image '%s'", a->name);
		image_error(err, sizeof(err), &cap, what, ret);
		pd_reply_error(r, ret == -ENOSPC ? 507 : 500, "%s", err);
		return;
	}
	snprintf(img.name, sizeof(img.name), "%s", a->name);
	snprintf(img.format, sizeof(img.format), "%s", a->format);
	img.size = a->size;
	if (image_commit(pd, &img, "image.create", a->format)) {
		pd_reply_error(r, 500, "inventory error creating image '%s'", a->name);
		return;
	}
	r->status = 201;
	r->body = image_json(pd, &img);
}

void pd_image_clone(struct plinthd *pd, const char *src, const struct pd_clone_args *a,
		    struct pd_reply *r)
{
	char vm[STORE_NAME_MAX], opts[256], srcpath[4200], partial[4200];
	char what[STORE_NAME_MAX + 32], err[STORE_REASON_MAX];
	struct store_image base, img = {0};
	struct log_capture cap;
	int ret;

	if (pd->ops->image_get(pd->st, src, &base)) {
		pd_reply_error(r, 404, "no image named '%s' in the pool", src);
		return;
	}
	if (pd_image_name_busy(pd, a->name)) {
		pd_reply_error(r, 409, "an image named '%s' already exists", a->name);
		return;
	}
	pd_image_path(pd, src, srcpath, sizeof(srcpath));
	if (!a->linked) {
		task_start(pd, "clone", srcpath, base.format, a->name, r);
		return;
	}
	if (!base.is_template && pd_image_used_by_vm(pd, src, vm, sizeof(vm))) {
		pd_reply_error(r, 409,
			       "image '%s' is used by VM '%s': a linked clone's template must be "
			       "read-only",
			       src, vm);
		return;
	}
	/* The base becomes a template: read-only from now on (record and file mode). */
	if (!base.is_template) {
		base.is_template = true;
		if (pd->ops->image_update(pd->st, &base)) {
			pd_reply_error(r, 500, "inventory error marking '%s' a template", src);
			return;
		}
		chmod(srcpath, 0444);
		pd_event(pd, "image.template", src, "ok", "now the read-only base of linked clones");
	}
	temp_path(pd, a->name, "partial", partial, sizeof(partial));
	snprintf(opts, sizeof(opts), "backing_file=%s,backing_fmt=%s", src, base.format);
	log_capture_tee(&cap);
	ret = pimg_create(partial, "qcow2", 0, opts);
	log_capture_end(&cap);
	if (ret) {
		unlink(partial);
		snprintf(what, sizeof(what), "linked clone of '%s'", src);
		image_error(err, sizeof(err), &cap, what, ret);
		pd_reply_error(r, 500, "%s", err);
		return;
	}
	snprintf(img.name, sizeof(img.name), "%s", a->name);
	snprintf(img.format, sizeof(img.format), "qcow2");
	snprintf(img.backing, sizeof(img.backing), "%s", src);
	img.size = base.size;
	if (image_commit(pd, &img, "image.clone", src)) {
		pd_reply_error(r, 500, "inventory error recording clone '%s'", a->name);
		return;
	}
	r->status = 201;
	r->body = image_json(pd, &img);
}

/* --- Start-up --------------------------------------------------------------------------- */

/* Adopt a pool file with no record (its creation's commit was lost). */
static void adopt_file(struct plinthd *pd, const char *name)
{
	struct store_image img = {0};
	struct pimg_info info;
	char path[4200];
	struct pimg *p;

	pd_image_path(pd, name, path, sizeof(path));
	p = pimg_open(path, pimg_probe(path) ? NULL : "raw", PIMG_O_RDONLY | PIMG_O_NO_BACKING);
	if (!p) {
		log_warn("pool: %s is not an image plinthd can read; left alone", path);
		return;
	}
	snprintf(img.name, sizeof(img.name), "%s", name);
	snprintf(img.format, sizeof(img.format), "%s", pimg_format(p));
	img.size = pimg_size(p);
	if (!pimg_get_info(p, &info)) {
		if (strlen(info.backing_file) < sizeof(img.backing) &&
		    pd_name_valid(info.backing_file))
			memcpy(img.backing, info.backing_file, strlen(info.backing_file) + 1);
		pimg_info_free(&info);
	}
	pimg_close(p);
	img.created_ms = pd_now_ms();
	if (pd->ops->image_insert(pd->st, &img) == 0) {
		pd_event(pd, "image.adopt", name, "ok", "found in the pool without a record");
		log_info("pool: adopted %s", path);
	}
}

/* Is image name (len bytes) being made by a running task of a host other than self? */
static bool task_elsewhere(const char *self, const struct store_task *ts, size_t n,
			   const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(ts[i].state, "running") && ts[i].host[0] && strcmp(ts[i].host, self) &&
		    strlen(ts[i].object) == len && !strncmp(ts[i].object, name, len))
			return true;
	return false;
}

int pd_images_init(struct plinthd *pd)
{
	struct store_task *ts = NULL;
	struct dirent *de;
	size_t n = 0, i;
	DIR *d;

	if (mkdir(pd->pool, 0700) < 0 && errno != EEXIST) {
		log_error("%s: %s", pd->pool, strerror(errno));
		return -errno;
	}
	/* This host's tasks cut short by a restart: their partial files go below. Another
	 * host's (a shared inventory and pool) are its own. */
	if (pd->ops->task_list(pd->st, &ts, &n))
		n = 0;
	for (i = 0; i < n; i++)
		if (!strcmp(ts[i].state, "running") &&
		    (!ts[i].host[0] || !strcmp(ts[i].host, pd->host)))
			pd_task_record(pd, ts[i].id, "failed", ts[i].done_bytes, ts[i].total_bytes,
				    "interrupted by a plinthd restart");
	d = opendir(pd->pool);
	if (!d) {
		int err = -errno;

		free(ts);
		return err;
	}
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		struct store_image img;
		char path[4200], name[STORE_NAME_MAX];
		size_t len = strlen(nm);

		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pd->pool, nm);
		if (nm[0] == '.' && len > 9 && !strcmp(nm + len - 8, ".partial")) {
			if (task_elsewhere(pd->host, ts, n, nm + 1, len - 9))
				continue; /* another host is making it */
			log_info("pool: removing %s (cut short)", path);
			unlink(path);
			continue;
		}
		if (nm[0] == '.' && len > 10 && !strcmp(nm + len - 9, ".deleting") &&
		    len - 10 < sizeof(name)) {
			char back[4200];

			memcpy(name, nm + 1, len - 10);
			name[len - 10] = '\0';
			pd_image_path(pd, name, back, sizeof(back));
			if (pd->ops->image_get(pd->st, name, &img) == 0)
				rename(path, back);
			else
				unlink(path);
			continue;
		}
		if (pd_name_valid(nm) && pd->ops->image_get(pd->st, nm, &img) == -ENOENT)
			adopt_file(pd, nm);
	}
	closedir(d);
	free(ts);
	return 0;
}
