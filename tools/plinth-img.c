// SPDX-License-Identifier: MIT
/*
 * plinth-img: qemu-img's shape over the plinth image library.
 *
 *   info [--output=human|json] [-f FMT] [--backing-chain] FILE
 *   create -f FMT [-o OPTIONS] [-b BACKING [-F BACKING_FMT]] FILE [SIZE]
 *   convert [-p] [-c] [-t writeback|unsafe] [-f FMT] -O FMT [-o OPTIONS] SRC DST
 *   check [--output=human|json] [-r leaks|all] [-f FMT] FILE   exit 0 clean, 2 corrupt, 3 leaks
 *   compare [-f FMT] [-F FMT] A B                               exit 0 same, 1 differ, 2 error
 *   resize [-f FMT] FILE [+|-]SIZE
 *   commit [-f FMT] FILE
 *   bench [-f FMT] [-c COUNT] [-s BUFSIZE] [-S STEP] [--pattern random|sequential]
 *         [--seed N] [--offsets FILE] [--checksum] [--output=human|json] FILE
 * Every command also takes --allow-backing, --backing-dir=DIR, --allow-blockdev: the
 * external-file policy (take_policy_options); without them only the image is opened.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "plinth-img.h"
#include "util.h"

#define CHUNK (1 * MiB)
/* convert copies in pieces of CONVERT_CHUNK, read ahead by a second thread into
 * CONVERT_SLOTS buffers, so that reading the source and writing the output overlap. */
#define CONVERT_CHUNK (4 * MiB)
#define CONVERT_SLOTS 3
/* convert -c compresses batches of ZIP_BATCH bytes (at least two granules a thread),
 * with at most ZIP_THREADS_MAX threads. */
#define ZIP_BATCH (8 * MiB)
#define ZIP_THREADS_MAX 16

static void usage(FILE *f)
{
	fputs("usage: plinth-img COMMAND [OPTIONS]\n"
	      "  info [--output=human|json] [-f FMT] [--backing-chain] FILE\n"
	      "  create -f FMT [-o OPTIONS] [-b BACKING [-F BACKING_FMT]] FILE [SIZE]\n"
	      "  convert [-p] [-c] [-t writeback|unsafe] [-f FMT] -O FMT [-o OPTIONS] SRC DST\n"
	      "  check [--output=human|json] [-r leaks|all] [-f FMT] FILE\n"
	      "  compare [-f FMT] [-F FMT] A B\n"
	      "  resize [-f FMT] FILE [+|-]SIZE\n"
	      "  commit [-f FMT] FILE\n"
	      "  bench [-f FMT] [-c COUNT] [-s BUFSIZE] [-S STEP] [--pattern random|sequential]\n"
	      "        [--seed N] [--offsets FILE] [--checksum] [--output=human|json] FILE\n"
	      "every command: --allow-backing (open the backing files, parents and extents an\n"
	      "  image names, in its own directory), --backing-dir=DIR (or in DIR; repeatable),\n"
	      "  --allow-blockdev (such a file may be a block device)\n"
	      "formats: raw, qcow2, vpc (VHD), vhdx, vmdk, vdi, parallels (read)\n",
	      f);
}

static void size_str(char *buf, size_t len, uint64_t v)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, "%.3g %s", d, units[u]);
}

static bool output_json(const char *arg, bool *json)
{
	if (!strcmp(arg, "json"))
		*json = true;
	else if (!strcmp(arg, "human"))
		*json = false;
	else
		return false;
	return true;
}

static int dump_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER);

	json_decref(j);
	if (!s) {
		log_error("out of memory");
		return 1;
	}
	printf("%s\n", s);
	free(s);
	return 0;
}

/* ---- info ------------------------------------------------------------------ */

/*
 * info --backing-chain: the chain as the policy lets it be opened, each image with
 * the file it was opened from. A backing file that is refused or missing ends the
 * chain: the listing says so, stderr has the reason (one line), exit status 1.
 */
static int info_chain(const char *path, const char *fmt, bool json,
		      const struct pimg_open_policy *pol)
{
	struct pimg *top = pimg_open_with(path, fmt, PIMG_O_RDONLY | PIMG_O_BACKING_REPORT, pol);
	json_t *arr = json ? json_array() : NULL;
	const char *refused = NULL;
	char s1[32];
	int rc = 0;

	if (!top) {
		json_decref(arr);
		return 1;
	}
	for (struct pimg *img = top; img; img = pimg_backing(img)) {
		struct pimg_info info;
		struct pimg *b = pimg_backing(img);

		if (pimg_get_info(img, &info)) {
			rc = 1;
			break;
		}
		refused = pimg_backing_refusal(img);
		if (json) {
			json_t *o = json_object();

			json_object_set_new(o, "filename", json_string(pimg_filename(img)));
			json_object_set_new(o, "format", json_string(info.format));
			json_object_set_new(o, "virtual-size", json_integer((json_int_t)info.virtual_size));
			if (info.backing_file[0]) {
				json_object_set_new(o, "backing-filename", json_string(info.backing_file));
				if (info.backing_fmt[0])
					json_object_set_new(o, "backing-filename-format",
							    json_string(info.backing_fmt));
				if (b)
					json_object_set_new(o, "full-backing-filename",
							    json_string(pimg_filename(b)));
			}
			if (refused)
				json_object_set_new(o, "backing-refused", json_string(refused));
			json_array_append_new(arr, o);
		} else {
			size_str(s1, sizeof(s1), info.virtual_size);
			printf("%simage: %s\nfile format: %s\nvirtual size: %s (%" PRIu64 " bytes)\n",
			       img == top ? "" : "\n", pimg_filename(img), info.format, s1,
			       info.virtual_size);
			if (info.backing_file[0])
				printf("backing file: %s%s%s%s\n", info.backing_file,
				       b ? " (opened as " : refused ? " (refused, see stderr)" : "",
				       b ? pimg_filename(b) : "", b ? ")" : "");
			if (info.backing_fmt[0])
				printf("backing file format: %s\n", info.backing_fmt);
		}
		pimg_info_free(&info);
		if (refused) {
			log_error("%s", refused);
			rc = 1;
		}
	}
	if (json && dump_json(arr))
		rc = 1;
	pimg_close(top);
	return rc;
}

/* The backing file's path as it is opened: relative names are relative to the image's
 * directory (qemu-img's full-backing-filename). Returns malloc'd text or NULL. */
static char *full_backing_name(const char *image, const char *backing)
{
	const char *slash = strrchr(image, '/');
	char *out;

	if (backing[0] == '/' || !slash)
		return strdup(backing);
	if (asprintf(&out, "%.*s/%s", (int)(slash - image), image, backing) < 0)
		return NULL;
	return out;
}

/* qemu-img's "bitmaps" list of format-specific data. */
static json_t *bitmaps_json(const struct pimg_info *info)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < info->n_bitmaps; i++) {
		const struct pimg_bitmap_info *b = &info->bitmaps[i];
		json_t *o = json_object(), *flags = json_array();

		if (b->in_use)
			json_array_append_new(flags, json_string("in-use"));
		if (b->auto_)
			json_array_append_new(flags, json_string("auto"));
		json_object_set_new(o, "flags", flags);
		json_object_set_new(o, "name", json_string(b->name));
		json_object_set_new(o, "granularity", json_integer((json_int_t)b->granularity));
		json_array_append_new(arr, o);
	}
	return arr;
}

static int cmd_info(int argc, char **argv, const struct pimg_open_policy *pol)
{
	static const struct option lo[] = { { "output", required_argument, NULL, 'o' },
					    { "format", required_argument, NULL, 'f' },
					    { "backing-chain", no_argument, NULL, 'B' },
					    { NULL, 0, NULL, 0 } };
	const char *fmt = NULL;
	bool json = false, chain = false;
	struct pimg_info info;
	struct pimg *img;
	char s1[32], s2[32];
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "f:", lo, NULL)) != -1) {
		if (c == 'B') {
			chain = true;
		} else if (c == 'f') {
			fmt = optarg;
		} else if (c == 'o') {
			if (!output_json(optarg, &json)) {
				log_error("--output must be human or json");
				return 1;
			}
		} else {
			return 1;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 1;
	}
	if (chain)
		return info_chain(argv[optind], fmt, json, pol);
	img = pimg_open_with(argv[optind], fmt, PIMG_O_RDONLY | PIMG_O_NO_BACKING, pol);
	if (!img)
		return 1;
	if (pimg_get_info(img, &info)) {
		pimg_close(img);
		return 1;
	}
	if (json) {
		json_t *j = json_object(), *spec = json_object(), *data = json_object();

		json_object_set_new(j, "virtual-size", json_integer((json_int_t)info.virtual_size));
		json_object_set_new(j, "filename", json_string(argv[optind]));
		if (info.cluster_size)
			json_object_set_new(j, "cluster-size", json_integer(info.cluster_size));
		json_object_set_new(j, "format", json_string(info.format));
		json_object_set_new(j, "actual-size", json_integer((json_int_t)info.actual_size));
		if (info.backing_file[0]) {
			char *full = full_backing_name(argv[optind], info.backing_file);

			if (full)
				json_object_set_new(j, "full-backing-filename", json_string(full));
			free(full);
			json_object_set_new(j, "backing-filename", json_string(info.backing_file));
			if (info.backing_fmt[0])
				json_object_set_new(j, "backing-filename-format", json_string(info.backing_fmt));
		}
		json_object_set_new(j, "dirty-flag", json_boolean(info.dirty));
		if (info.n_snapshots) {
			json_t *arr = json_array();

			for (size_t i = 0; i < info.n_snapshots; i++) {
				struct pimg_snapshot_info *s = &info.snapshots[i];
				json_t *o = json_object();

				if (s->icount != UINT64_MAX)
					json_object_set_new(o, "icount", json_integer((json_int_t)s->icount));
				json_object_set_new(o, "vm-state-size", json_integer((json_int_t)s->vm_state_size));
				json_object_set_new(o, "date-sec", json_integer(s->date_sec));
				json_object_set_new(o, "date-nsec", json_integer(s->date_nsec));
				json_object_set_new(o, "vm-clock-sec",
						    json_integer((json_int_t)(s->vm_clock_nsec / 1000000000)));
				json_object_set_new(o, "vm-clock-nsec",
						    json_integer((json_int_t)(s->vm_clock_nsec % 1000000000)));
				json_object_set_new(o, "name", json_string(s->name));
				json_object_set_new(o, "id", json_string(s->id));
				json_array_append_new(arr, o);
			}
			json_object_set_new(j, "snapshots", arr);
		}
		if (info.n_items) {
			for (size_t i = 0; i < info.n_items; i++) {
				struct pimg_info_item *it = &info.items[i];

				json_object_set_new(data, it->key,
						    it->is_bool  ? json_boolean(it->num)
						    : it->is_num ? json_integer(it->num)
								 : json_string(it->str));
			}
			if (info.n_bitmaps)
				json_object_set_new(data, "bitmaps", bitmaps_json(&info));
			json_object_set_new(spec, "type", json_string(info.format));
			json_object_set_new(spec, "data", data);
			json_object_set_new(j, "format-specific", spec);
		} else {
			json_decref(spec);
			json_decref(data);
		}
		rc = dump_json(j);
	} else {
		size_str(s1, sizeof(s1), info.virtual_size);
		size_str(s2, sizeof(s2), info.actual_size);
		printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRIu64 " bytes)\ndisk size: %s\n",
		       argv[optind], info.format, s1, info.virtual_size, s2);
		if (info.cluster_size)
			printf("cluster_size: %u\n", info.cluster_size);
		if (info.backing_file[0])
			printf("backing file: %s\n", info.backing_file);
		if (info.backing_fmt[0])
			printf("backing file format: %s\n", info.backing_fmt);
		if (info.dirty)
			printf("dirty flag: yes\n");
		if (info.n_snapshots) {
			printf("Snapshot list:\n%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE",
			       "VM CLOCK", "ICOUNT");
			for (size_t i = 0; i < info.n_snapshots; i++) {
				struct pimg_snapshot_info *s = &info.snapshots[i];
				time_t t = s->date_sec;
				struct tm tm;
				char date[32], icount[24] = "--";
				uint64_t ms = s->vm_clock_nsec / 1000000;

				gmtime_r(&t, &tm);
				strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
				size_str(s1, sizeof(s1), s->vm_state_size);
				if (s->icount != UINT64_MAX)
					snprintf(icount, sizeof(icount), "%" PRIu64, s->icount);
				printf("%-9s %-16s %8s %19s %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64
				       " %10s\n",
				       s->id, s->name, s1, date, ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
				       ms % 1000, icount);
			}
		}
		if (info.n_items) {
			printf("Format specific information:\n");
			for (size_t i = 0; i < info.n_items; i++) {
				struct pimg_info_item *it = &info.items[i];

				if (it->is_bool)
					printf("    %s: %s\n", it->key, it->num ? "true" : "false");
				else if (it->is_num)
					printf("    %s: %" PRId64 "\n", it->key, it->num);
				else
					printf("    %s: %s\n", it->key, it->str);
			}
			if (info.n_bitmaps)
				printf("    bitmaps:\n");
			for (size_t i = 0; i < info.n_bitmaps; i++) {
				const struct pimg_bitmap_info *b = &info.bitmaps[i];

				printf("        [%zu]:\n            flags:\n", i);
				if (b->in_use)
					printf("                [%d]: in-use\n", 0);
				if (b->auto_)
					printf("                [%d]: auto\n", b->in_use);
				printf("            name: %s\n            granularity: %" PRIu64 "\n", b->name, b->granularity);
			}
		}
	}
	pimg_info_free(&info);
	pimg_close(img);
	return rc;
}

/* ---- create ---------------------------------------------------------------- */

static int cmd_create(int argc, char **argv, const struct pimg_open_policy *pol)
{
	(void)pol; /* the backing file is the operator's: pimg_create reads its header only */
	const char *fmt = NULL, *opts = NULL, *backing = NULL, *bfmt = NULL;
	char *all = NULL;
	uint64_t size = 0;
	int c, ret;

	while ((c = getopt(argc, argv, "f:o:b:F:")) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'o': opts = optarg; break;
		case 'b': backing = optarg; break;
		case 'F': bfmt = optarg; break;
		default: return 1;
		}
	}
	if (!fmt) {
		log_error("create needs -f FORMAT");
		return 1;
	}
	if (optind >= argc || argc - optind > 2) {
		usage(stderr);
		return 1;
	}
	if (optind + 1 < argc && parse_size(argv[optind + 1], &size)) {
		log_error("bad size '%s'", argv[optind + 1]);
		return 1;
	}
	if (backing || bfmt) {
		if (asprintf(&all, "%s%s%s%s%s%s", opts ? opts : "", opts ? "," : "",
			     backing ? "backing_file=" : "", backing ? backing : "",
			     bfmt ? ",backing_fmt=" : "", bfmt ? bfmt : "") < 0)
			return 1;
		opts = all;
	}
	if (!size && !(opts && strstr(opts, "backing_file=")) && !(opts && strstr(opts, "size="))) {
		log_error("create needs a SIZE");
		free(all);
		return 1;
	}
	ret = pimg_create(argv[optind], fmt, size, opts);
	free(all);
	if (ret) {
		log_error("%s: could not create image: %s", argv[optind], strerror(-ret));
		return 1;
	}
	return 0;
}

/* ---- convert --------------------------------------------------------------- */

static void progress(bool on, uint64_t done, uint64_t total)
{
	if (!on)
		return;
	printf("    (%.2f/100%%)\r", total ? 100.0 * (double)done / (double)total : 100.0);
	fflush(stdout);
}

/* Write buf (len bytes at off) skipping zero pieces of `piece` bytes: holes stay holes. */
static int write_sparse(struct pimg *dst, const uint8_t *buf, uint64_t len, uint64_t off,
			uint64_t piece)
{
	uint64_t i = 0;

	while (i < len) {
		uint64_t n = MIN(piece - ((off + i) % piece), len - i), start;

		if (pimg_is_zero(buf + i, n)) {
			i += n;
			continue;
		}
		/* Extend over following non-zero pieces to issue one write. */
		start = i;
		i += n;
		while (i < len) {
			uint64_t m = MIN(piece, len - i);

			if (pimg_is_zero(buf + i, m))
				break;
			i += m;
		}
		int ret = pimg_pwrite(dst, buf + start, i - start, off + start);

		if (ret)
			return ret;
	}
	return 0;
}

/*
 * convert -c, and every streamOptimized output: the main thread reads a batch of the
 * source's data granules, every thread (the main one and a helper per further CPU)
 * compresses the batch's granules, each with its own compressor, then the main thread
 * writes them in order. Only the main thread touches src and writes dst; the batch is
 * the only shared state (items taken and finished under mu).
 */
struct zip_item {
	uint64_t off, len;
	uint8_t *raw;  /* into the batch buffer, one granule */
	uint8_t *out;  /* owned by the pool: pimg_compress_bound bytes */
	size_t clen;   /* compressed length, 0: write raw plainly */
	bool zero;     /* nothing to write */
	int ret;
};

struct zip_pool {
	const struct pimg *dst;  /* borrowed: helpers only compress for it */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct zip_item *items;  /* owned, cap entries */
	unsigned cap, n;         /* the current batch has n items */
	unsigned next, done;     /* items of the batch taken, finished */
	unsigned gen;            /* batches handed out */
	bool quit;
};

struct zip_helper {
	struct zip_pool *pool;      /* borrowed */
	struct pimg_compressor *c;  /* owned */
	pthread_t thread;
};

/* Compress items of the current batch until none is left to take. */
static void zip_take(struct zip_pool *p, struct pimg_compressor *c)
{
	for (;;) {
		struct zip_item *it;

		pthread_mutex_lock(&p->mu);
		if (p->next == p->n) {
			pthread_mutex_unlock(&p->mu);
			return;
		}
		it = &p->items[p->next++];
		pthread_mutex_unlock(&p->mu);
		it->zero = pimg_is_zero(it->raw, it->len);
		it->clen = 0;
		it->ret = it->zero ? 0 : pimg_compress(c, it->raw, it->len, it->off, it->out, &it->clen);
		if (it->ret == -ENOSPC) { /* does not pay: written plainly */
			it->clen = 0;
			it->ret = 0;
		}
		pthread_mutex_lock(&p->mu);
		if (++p->done == p->n)
			pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
}

static void *zip_thread(void *opaque)
{
	struct zip_helper *h = opaque;
	struct zip_pool *p = h->pool;
	unsigned seen = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->quit)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->quit)
			break;
		seen = p->gen;
		pthread_mutex_unlock(&p->mu);
		zip_take(p, h->c);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* CPUs this process may run on, at least 1. */
static unsigned cpus_usable(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return (unsigned)MAX(CPU_COUNT(&set), 1);
}

/* Fill the pool's items (*n of them) with the next data granules of src from *off
 * (granule aligned); zero ranges of whole granules are skipped. Called while no item is
 * left to take: the batch is handed out afterwards, under mu. */
static int zip_fill(struct zip_pool *p, struct pimg *src, uint64_t size, uint64_t *off, uint8_t *buf,
		    unsigned *n)
{
	uint64_t g = pimg_granule(p->dst);

	*n = 0;
	while (*n < p->cap && *off < size) {
		uint64_t pnum, k, span;
		int ret, st = pimg_block_status(src, *off, size - *off, &pnum, true);

		if (st < 0)
			return st;
		if (st == PIMG_ZERO && (pnum >= g || *off + pnum == size)) {
			*off += *off + pnum == size ? pnum : pnum / g * g;
			continue;
		}
		k = MIN(p->cap - *n, (pnum + g - 1) / g);
		span = MIN(k * g, size - *off);
		ret = pimg_pread(src, buf + (uint64_t)*n * g, span, *off);
		if (ret)
			return ret;
		for (uint64_t j = 0; j < k; j++) {
			unsigned i = (*n)++;
			struct zip_item *it = &p->items[i];

			it->off = *off + j * g;
			it->len = MIN(g, size - it->off);
			it->raw = buf + (uint64_t)i * g;
			if (it->len < g && pimg_size(p->dst) >= it->off + g) {
				memset(it->raw + it->len, 0, g - it->len);
				it->len = g;
			}
		}
		*off += k * g;
	}
	return 0;
}

static int convert_compressed(struct pimg *src, struct pimg *dst, uint64_t size, bool prog)
{
	struct zip_pool p = { .dst = dst };
	struct zip_helper helpers[ZIP_THREADS_MAX];
	struct pimg_compressor *mine = pimg_compressor_new(dst);
	uint64_t g = pimg_granule(dst), off = 0;
	unsigned n_helpers = 0, n_outs = 0, want = MIN(cpus_usable(), ZIP_THREADS_MAX) - 1;
	uint8_t *buf = NULL;
	int ret = 0;

	if (!mine) {
		ret = errno == ENOTSUP ? -ENOTSUP : -ENOMEM;
		if (ret == -ENOTSUP)
			log_error("-c: %s images are not compressed", pimg_format(dst));
		return ret;
	}
	p.cap = (unsigned)MAX(ZIP_BATCH / g, 2 * (want + 1));
	p.items = calloc(p.cap, sizeof(*p.items));
	buf = malloc(p.cap * g);
	if (!p.items || !buf) {
		ret = -ENOMEM;
		goto out_free_outs;
	}
	for (; n_outs < p.cap; n_outs++) {
		p.items[n_outs].out = malloc(pimg_compress_bound(dst));
		if (!p.items[n_outs].out) {
			ret = -ENOMEM;
			goto out_free_outs;
		}
	}
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	/* Helpers are a speed-up only: with fewer (none made), the main thread does it all. */
	for (; n_helpers < want; n_helpers++) {
		struct zip_helper *h = &helpers[n_helpers];

		h->pool = &p;
		h->c = pimg_compressor_new(dst);
		if (!h->c)
			break;
		if (pthread_create(&h->thread, NULL, zip_thread, h)) {
			pimg_compressor_free(h->c);
			break;
		}
	}
	while (off < size && !ret) {
		unsigned n;

		ret = zip_fill(&p, src, size, &off, buf, &n);
		if (ret || !n)
			break;
		pthread_mutex_lock(&p.mu);
		p.n = n;
		p.next = p.done = 0;
		p.gen++;
		pthread_cond_broadcast(&p.cv);
		pthread_mutex_unlock(&p.mu);
		zip_take(&p, mine);
		pthread_mutex_lock(&p.mu);
		while (p.done < p.n)
			pthread_cond_wait(&p.cv, &p.mu);
		pthread_mutex_unlock(&p.mu);
		for (unsigned i = 0; i < p.n && !ret; i++) {
			struct zip_item *it = &p.items[i];

			ret = it->ret;
			if (ret || it->zero)
				continue;
			ret = pimg_write_compressed_data(dst, it->clen ? it->out : NULL, it->clen, it->raw,
							 it->len, it->off);
		}
		progress(prog && !ret, MIN(off, size), size);
	}
	pthread_mutex_lock(&p.mu);
	p.quit = true;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	for (unsigned i = 0; i < n_helpers; i++) {
		pthread_join(helpers[i].thread, NULL);
		pimg_compressor_free(helpers[i].c);
	}
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
out_free_outs:
	for (unsigned i = 0; i < n_outs; i++)
		free(p.items[i].out);
	free(p.items);
	free(buf);
	pimg_compressor_free(mine);
	return ret;
}

/*
 * The read-ahead of convert_copy: one thread reads the source's data pieces in order
 * into a ring of buffers, the caller's thread writes them. Only the reader touches
 * src, only the writer dst; the ring is the only shared state (under mu).
 */
struct read_ahead {
	struct pimg *src;          /* borrowed; the reader's only */
	uint64_t size;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct {
		uint8_t *buf;      /* owned, CONVERT_CHUNK bytes */
		uint64_t off, len; /* the source range it holds */
	} slot[CONVERT_SLOTS];
	unsigned filled, emptied;  /* slots ever filled by the reader, emptied by the writer */
	bool done;                 /* the reader has filled its last slot (or failed) */
	bool stop;                 /* the writer failed: the reader stops */
	int err;                   /* the reader's failure, -errno */
};

/* Reader thread: every data range of the source, in order, in pieces that never cross a
 * CONVERT_CHUNK boundary; zero ranges are skipped (the output starts out zero). */
static void *read_ahead_thread(void *opaque)
{
	struct read_ahead *ra = opaque;
	uint64_t off = 0;
	int ret = 0;

	while (off < ra->size && !ret) {
		uint64_t pnum;
		int st = pimg_block_status(ra->src, off, ra->size - off, &pnum, true);

		if (st < 0) {
			ret = st;
			break;
		}
		if (st == PIMG_ZERO) {
			off += pnum;
			continue;
		}
		while (pnum && !ret) {
			uint64_t n = MIN(pnum, CONVERT_CHUNK - off % CONVERT_CHUNK);
			unsigned i;

			pthread_mutex_lock(&ra->mu);
			while (ra->filled - ra->emptied == CONVERT_SLOTS && !ra->stop)
				pthread_cond_wait(&ra->cv, &ra->mu);
			i = ra->filled % CONVERT_SLOTS;
			ret = ra->stop ? -ECANCELED : 0;
			pthread_mutex_unlock(&ra->mu);
			if (ret)
				break;
			ret = pimg_pread(ra->src, ra->slot[i].buf, n, off);
			if (ret)
				break;
			ra->slot[i].off = off;
			ra->slot[i].len = n;
			pthread_mutex_lock(&ra->mu);
			ra->filled++;
			pthread_cond_broadcast(&ra->cv);
			pthread_mutex_unlock(&ra->mu);
			off += n;
			pnum -= n;
		}
	}
	pthread_mutex_lock(&ra->mu);
	ra->err = ret;
	ra->done = true;
	pthread_cond_broadcast(&ra->cv);
	pthread_mutex_unlock(&ra->mu);
	return NULL;
}

static int convert_copy(struct pimg *src, struct pimg *dst, uint64_t size, bool prog)
{
	struct read_ahead ra = { .src = src, .size = size };
	uint64_t g = pimg_granule(dst), piece;
	pthread_t reader;
	unsigned i, n_bufs;
	int ret = 0, err;

	/* Zero detection granularity: the destination's allocation unit, at most 64 KiB. */
	piece = strcmp(pimg_format(dst), "raw") ? MIN(g, 64 * KiB) : 4096;
	/* Writing into the page cache costs most: a second CPU takes half of each piece.
	 * Without the helper the copy only runs slower. */
	(void)pimg_set_io_helper(dst);
	for (n_bufs = 0; n_bufs < CONVERT_SLOTS; n_bufs++) {
		ra.slot[n_bufs].buf = malloc(CONVERT_CHUNK);
		if (!ra.slot[n_bufs].buf) {
			ret = -ENOMEM;
			goto out_free_bufs;
		}
	}
	pthread_mutex_init(&ra.mu, NULL);
	pthread_cond_init(&ra.cv, NULL);
	err = pthread_create(&reader, NULL, read_ahead_thread, &ra);
	if (err) {
		ret = -err;
		goto out_destroy;
	}
	for (;;) {
		pthread_mutex_lock(&ra.mu);
		while (ra.filled == ra.emptied && !ra.done)
			pthread_cond_wait(&ra.cv, &ra.mu);
		if (ra.filled == ra.emptied) { /* done, nothing left */
			pthread_mutex_unlock(&ra.mu);
			break;
		}
		i = ra.emptied % CONVERT_SLOTS;
		pthread_mutex_unlock(&ra.mu);
		ret = write_sparse(dst, ra.slot[i].buf, ra.slot[i].len, ra.slot[i].off, piece);
		if (ret)
			break;
		progress(prog, ra.slot[i].off + ra.slot[i].len, size);
		pthread_mutex_lock(&ra.mu);
		ra.emptied++;
		pthread_cond_broadcast(&ra.cv);
		pthread_mutex_unlock(&ra.mu);
	}
	pthread_mutex_lock(&ra.mu);
	ra.stop = true;
	pthread_cond_broadcast(&ra.cv);
	pthread_mutex_unlock(&ra.mu);
	pthread_join(reader, NULL);
	if (!ret)
		ret = ra.err;
out_destroy:
	pthread_cond_destroy(&ra.cv);
	pthread_mutex_destroy(&ra.mu);
out_free_bufs:
	for (i = 0; i < n_bufs; i++)
		free(ra.slot[i].buf);
	return ret;
}

/*
 * The files an image create may write beside PATH: PATH itself and the extents named
 * after it (VMDK's NAME-flat.vmdk, NAME-s001.vmdk...). A list of names (owned, NULL
 * ended) of DIR entries starting with PATH's stem, or NULL when out of memory.
 */
struct outputs {
	char *dir;     /* owned */
	char *stem;    /* owned: base name without its extension */
	char **before; /* owned: matching names present before the create */
	size_t n_before;
};

static bool outputs_scan(struct outputs *o, char ***names, size_t *n)
{
	DIR *d = opendir(o->dir);
	struct dirent *de;
	size_t stem_len = strlen(o->stem);

	*names = NULL;
	*n = 0;
	if (!d)
		return true;
	while ((de = readdir(d))) {
		char **nn;

		if (strncmp(de->d_name, o->stem, stem_len))
			continue;
		nn = realloc(*names, (*n + 1) * sizeof(*nn));
		if (!nn || !(nn[*n] = strdup(de->d_name))) {
			free(nn ? nn : *names);
			closedir(d);
			return false;
		}
		*names = nn;
		(*n)++;
	}
	closedir(d);
	return true;
}

static void names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static bool outputs_begin(struct outputs *o, const char *path)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path, *dot;

	memset(o, 0, sizeof(*o));
	o->dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
	dot = strrchr(base, '.');
	o->stem = strndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
	return o->dir && o->stem && outputs_scan(o, &o->before, &o->n_before);
}

/* Remove path and every file named after it that the create added. */
static void outputs_remove(struct outputs *o, const char *path)
{
	char **now;
	size_t n;

	unlink(path);
	if (!outputs_scan(o, &now, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		bool old = false;
		char *p;

		for (size_t j = 0; j < o->n_before && !old; j++)
			old = !strcmp(now[i], o->before[j]);
		if (!old && asprintf(&p, "%s/%s", o->dir, now[i]) >= 0) {
			unlink(p);
			free(p);
		}
	}
	names_free(now, n);
}

static void outputs_free(struct outputs *o)
{
	names_free(o->before, o->n_before);
	free(o->dir);
	free(o->stem);
}

static int cmd_convert(int argc, char **argv, const struct pimg_open_policy *pol)
{
	const char *fmt = NULL, *ofmt = NULL, *opts = NULL;
	bool prog = false, compress = false, unsafe = false;
	struct pimg *src, *dst;
	struct outputs outs;
	unsigned long errors;
	uint64_t size;
	int c, ret;

	while ((c = getopt(argc, argv, "f:O:o:pct:")) != -1) {
		switch (c) {
		case 't':
			if (!strcmp(optarg, "unsafe")) {
				unsafe = true;
			} else if (strcmp(optarg, "writeback")) {
				log_error("-t takes writeback (default: flushed at the end) or unsafe");
				return 1;
			}
			break;
		case 'f': fmt = optarg; break;
		case 'O': ofmt = optarg; break;
		case 'o': opts = optarg; break;
		case 'p': prog = true; break;
		case 'c': compress = true; break;
		default: return 1;
		}
	}
	if (!ofmt || optind + 2 != argc) {
		if (!ofmt)
			log_error("convert needs -O FORMAT");
		else
			usage(stderr);
		return 1;
	}
	if (opts && strstr(opts, "backing_file")) {
		log_error("convert does not take backing_file: the output is a full copy");
		return 1;
	}
	src = pimg_open_with(argv[optind], fmt, PIMG_O_RDONLY, pol);
	if (!src)
		return 1;
	size = pimg_size(src);
	/* A failure leaves no output behind and prints one line: the cause where the
	 * library said it, else our own. */
	errors = log_error_count();
	if (!outputs_begin(&outs, argv[optind + 1])) {
		log_error("out of memory");
		ret = -ENOMEM;
		goto out_free_outputs;
	}
	ret = pimg_create(argv[optind + 1], ofmt, size, opts);
	if (ret) {
		if (log_error_count() == errors)
			log_error("%s: could not create image: %s", argv[optind + 1], strerror(-ret));
		outputs_remove(&outs, argv[optind + 1]);
		goto out_free_outputs;
	}
	/* Made just now, by us: its own extents (a monolithicFlat VMDK's) may be opened. */
	dst = pimg_open_with(argv[optind + 1], ofmt, unsafe ? PIMG_O_UNSAFE : 0,
			     &(struct pimg_open_policy){ .allow_external = true });
	if (!dst) {
		ret = -EIO;
		goto out_remove;
	}
	if (pimg_size(dst) < size) {
		log_error("%s: created image is smaller than the source", argv[optind + 1]);
		ret = -EINVAL;
		goto out_close_dst;
	}
	progress(prog, 0, size);
	if (compress || pimg_sequential_only(dst))
		ret = convert_compressed(src, dst, size, prog);
	else
		ret = convert_copy(src, dst, size, prog);
	if (!ret)
		ret = pimg_flush(dst);
	if (prog)
		printf(ret ? "\n" : "    (100.00/100%%)\n");
out_close_dst:
	pimg_close(dst);
out_remove:
	if (ret) {
		if (log_error_count() == errors)
			log_error("convert %s -> %s failed: %s", argv[optind], argv[optind + 1], strerror(-ret));
		outputs_remove(&outs, argv[optind + 1]);
	}
out_free_outputs:
	outputs_free(&outs);
	pimg_close(src);
	return ret ? 1 : 0;
}

/* ---- compare --------------------------------------------------------------- */

static int zero_tail(struct pimg *img, uint64_t from, uint64_t to, uint8_t *buf, uint64_t *bad)
{
	while (from < to) {
		uint64_t pnum, n;
		int st = pimg_block_status(img, from, to - from, &pnum, true);

		if (st < 0)
			return st;
		if (st == PIMG_DATA) {
			for (uint64_t o = from; o < from + pnum; o += n) {
				n = MIN(CHUNK, from + pnum - o);
				int ret = pimg_pread(img, buf, n, o);

				if (ret)
					return ret;
				for (uint64_t i = 0; i < n; i++) {
					if (buf[i]) {
						*bad = o + i;
						return 1;
					}
				}
			}
		}
		from += pnum;
	}
	return 0;
}

static int cmd_compare(int argc, char **argv, const struct pimg_open_policy *pol)
{
	const char *fa = NULL, *fb = NULL;
	struct pimg *a, *b;
	uint8_t *ba = NULL, *bb = NULL;
	uint64_t sa, sb, common, off = 0, bad = 0;
	int c, rc = 2, ret;

	while ((c = getopt(argc, argv, "f:F:")) != -1) {
		if (c == 'f')
			fa = optarg;
		else if (c == 'F')
			fb = optarg;
		else
			return 2;
	}
	if (optind + 2 != argc) {
		usage(stderr);
		return 2;
	}
	a = pimg_open_with(argv[optind], fa, PIMG_O_RDONLY, pol);
	if (!a)
		return 2;
	b = pimg_open_with(argv[optind + 1], fb ? fb : fa, PIMG_O_RDONLY, pol);
	if (!b)
		goto out_close_a;
	ba = malloc(CHUNK);
	bb = malloc(CHUNK);
	if (!ba || !bb)
		goto out;
	sa = pimg_size(a);
	sb = pimg_size(b);
	common = MIN(sa, sb);
	while (off < common) {
		uint64_t pa, pb, n;
		int s1 = pimg_block_status(a, off, common - off, &pa, true);
		int s2 = pimg_block_status(b, off, common - off, &pb, true);

		if (s1 < 0 || s2 < 0) {
			log_error("block status failed at %" PRIu64 ": %s", off, strerror(-(s1 < 0 ? s1 : s2)));
			goto out;
		}
		n = MIN(pa, pb);
		if (s1 == PIMG_ZERO && s2 == PIMG_ZERO) {
			off += n;
			continue;
		}
		n = MIN(n, CHUNK);
		if (pimg_pread(a, ba, n, off) || pimg_pread(b, bb, n, off)) {
			log_error("read failed at offset %" PRIu64, off);
			goto out;
		}
		if (memcmp(ba, bb, n)) {
			uint64_t i = 0;

			while (ba[i] == bb[i])
				i++;
			printf("Content mismatch at offset %" PRIu64 "!\n", off + i);
			rc = 1;
			goto out;
		}
		off += n;
	}
	if (sa != sb) {
		struct pimg *big = sa > sb ? a : b;

		ret = zero_tail(big, common, MAX(sa, sb), ba, &bad);
		if (ret < 0) {
			log_error("read failed: %s", strerror(-ret));
			goto out;
		}
		if (ret) {
			printf("Content mismatch at offset %" PRIu64 "!\n", bad);
			rc = 1;
			goto out;
		}
		printf("Warning: Image size mismatch!\n");
	}
	printf("Images are identical.\n");
	rc = 0;
out:
	free(ba);
	free(bb);
	pimg_close(b);
out_close_a:
	pimg_close(a);
	return rc;
}

/* ---- check ----------------------------------------------------------------- */

static int cmd_check(int argc, char **argv, const struct pimg_open_policy *pol)
{
	static const struct option lo[] = { { "output", required_argument, NULL, 'o' },
					    { "format", required_argument, NULL, 'f' },
					    { "repair", required_argument, NULL, 'r' },
					    { NULL, 0, NULL, 0 } };
	const char *fmt = NULL;
	bool json = false;
	unsigned repair = 0;
	struct pimg_check res;
	struct pimg *img;
	int c, ret;

	while ((c = getopt_long(argc, argv, "f:r:", lo, NULL)) != -1) {
		if (c == 'f') {
			fmt = optarg;
		} else if (c == 'o') {
			if (!output_json(optarg, &json)) {
				log_error("--output must be human or json");
				return 1;
			}
		} else if (c == 'r') {
			if (!strcmp(optarg, "leaks")) {
				repair = PIMG_REPAIR_LEAKS;
			} else if (!strcmp(optarg, "all")) {
				repair = PIMG_REPAIR_ALL;
			} else {
				log_error("-r takes leaks or all");
				return 1;
			}
		} else {
			return 1;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 1;
	}
	img = pimg_open_with(argv[optind], fmt,
			     (repair ? PIMG_O_REPAIR : PIMG_O_RDONLY) | PIMG_O_NO_BACKING, pol);
	if (!img)
		return 1;
	ret = pimg_check(img, &res, repair);
	if (ret == -ENOTSUP) {
		log_error("%s: format '%s' does not support checks", argv[optind], pimg_format(img));
		pimg_close(img);
		return 63;
	}
	if (ret) {
		log_error("%s: check failed: %s", argv[optind], strerror(-ret));
		pimg_close(img);
		return 1;
	}
	uint64_t corrupt = res.corruptions - res.corruptions_fixed, leaks = res.leaks - res.leaks_fixed;

	if (json) {
		json_t *j = json_object();

		json_object_set_new(j, "image-end-offset", json_integer((json_int_t)res.image_end_offset));
		json_object_set_new(j, "total-clusters", json_integer((json_int_t)res.total_clusters));
		json_object_set_new(j, "check-errors", json_integer(res.check_errors));
		json_object_set_new(j, "allocated-clusters", json_integer((json_int_t)res.allocated_clusters));
		json_object_set_new(j, "filename", json_string(argv[optind]));
		json_object_set_new(j, "format", json_string(pimg_format(img)));
		if (corrupt)
			json_object_set_new(j, "corruptions", json_integer((json_int_t)corrupt));
		if (leaks)
			json_object_set_new(j, "leaks", json_integer((json_int_t)leaks));
		if (res.leaks_fixed)
			json_object_set_new(j, "leaks-fixed", json_integer((json_int_t)res.leaks_fixed));
		if (res.corruptions_fixed)
			json_object_set_new(j, "corruptions-fixed",
					    json_integer((json_int_t)res.corruptions_fixed));
		dump_json(j);
	} else {
		if (res.leaks_fixed || res.corruptions_fixed)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n",
			       res.leaks_fixed, res.corruptions_fixed);
		if (!corrupt && !leaks && !res.check_errors)
			printf("No errors were found on the image.\n");
		if (corrupt)
			printf("\n%" PRIu64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt it.\n",
			       corrupt);
		if (leaks)
			printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n",
			       leaks);
		if (res.total_clusters)
			printf("%" PRIu64 "/%" PRIu64 " = %.2f%% allocated\n", res.allocated_clusters,
			       res.total_clusters, 100.0 * (double)res.allocated_clusters / (double)res.total_clusters);
		if (res.image_end_offset)
			printf("Image end offset: %" PRIu64 "\n", res.image_end_offset);
	}
	pimg_close(img);
	if (res.check_errors)
		return 1;
	if (corrupt)
		return 2;
	if (leaks)
		return 3;
	return 0;
}

/* ---- resize, commit -------------------------------------------------------- */

static int cmd_resize(int argc, char **argv, const struct pimg_open_policy *pol)
{
	const char *fmt = NULL, *s;
	struct pimg *img;
	uint64_t size, cur;
	int c, ret, sign = 0;

	while ((c = getopt(argc, argv, "+f:")) != -1) {
		if (c == 'f')
			fmt = optarg;
		else
			return 1;
	}
	/* A negative size ("-1G") must not be taken for an option. */
	if (optind + 2 != argc) {
		usage(stderr);
		return 1;
	}
	s = argv[optind + 1];
	if (*s == '+' || *s == '-')
		sign = *s++ == '+' ? 1 : -1;
	if (parse_size(s, &size)) {
		log_error("bad size '%s'", argv[optind + 1]);
		return 1;
	}
	img = pimg_open_with(argv[optind], fmt, PIMG_O_NO_BACKING, pol);
	if (!img)
		return 1;
	cur = pimg_size(img);
	if (sign > 0 && add_overflow(cur, size, &size)) {
		log_error("size overflow");
		pimg_close(img);
		return 1;
	}
	if (sign < 0) {
		if (size > cur) {
			log_error("cannot shrink below zero");
			pimg_close(img);
			return 1;
		}
		size = cur - size;
	}
	ret = pimg_resize(img, size);
	pimg_close(img);
	if (ret) {
		log_error("%s: resize failed: %s", argv[optind], strerror(-ret));
		return 1;
	}
	printf("Image resized.\n");
	return 0;
}

static int cmd_commit(int argc, char **argv, const struct pimg_open_policy *pol)
{
	const char *fmt = NULL;
	struct pimg *img;
	int c, ret;

	while ((c = getopt(argc, argv, "f:")) != -1) {
		if (c == 'f')
			fmt = optarg;
		else
			return 1;
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 1;
	}
	img = pimg_open_with(argv[optind], fmt, PIMG_O_RDONLY, pol);
	if (!img)
		return 1;
	ret = pimg_commit(img);
	pimg_close(img);
	if (ret) {
		log_error("%s: commit failed: %s", argv[optind], strerror(-ret));
		return 1;
	}
	printf("Image committed.\n");
	return 0;
}

/* ---- bench ----------------------------------------------------------------- */

#define BENCH_MAX_BUF   (1 * GiB)
#define BENCH_MAX_COUNT UINT32_MAX

enum bench_pattern { BENCH_RANDOM, BENCH_SEQUENTIAL, BENCH_LIST };

/* Where the reads go: a generator (random or qemu-img's stride) or a list from a file. */
struct bench {
	enum bench_pattern pattern;
	uint64_t size;    /* virtual size of the image */
	uint64_t bufsize; /* bytes per read */
	uint64_t step;    /* sequential: distance between reads */
	uint64_t rng;     /* random: splitmix64 state, starts at the seed */
	uint64_t next;    /* sequential: the next offset */
	uint64_t *list;   /* list: owned, every entry + bufsize inside the image */
	uint64_t n_list;
};

/* splitmix64: a well-mixed sequence from any 64-bit seed, the same on every machine. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The i-th offset. Random: a whole BUFSIZE block anywhere in the image; sequential:
 * like qemu-img bench, advance by STEP and wrap modulo (size - bufsize). */
static uint64_t bench_offset(struct bench *b, uint64_t i)
{
	uint64_t off;

	switch (b->pattern) {
	case BENCH_RANDOM:
		return splitmix64(&b->rng) % (b->size / b->bufsize) * b->bufsize;
	case BENCH_SEQUENTIAL:
		off = b->next;
		b->next = b->size > b->bufsize ? (off + b->step) % (b->size - b->bufsize) : 0;
		return off;
	case BENCH_LIST:
		return b->list[i];
	}
	return 0;
}

/* Read decimal offsets, one a line, from path into b->list; each must leave room for
 * one buffer inside the image. 0, or 1 after logging the first bad line. */
static int bench_load_offsets(struct bench *b, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	unsigned long lineno = 0;
	ssize_t n;
	int rc = 1;

	if (!f) {
		log_error("%s: %s", path, strerror(errno));
		return 1;
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		uint64_t off;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (parse_uint(line, 0, UINT64_MAX, &off)) {
			log_error("%s:%lu: not an offset: '%.40s'", path, lineno, line);
			goto out;
		}
		if (!range_within(off, b->bufsize, b->size)) {
			log_error("%s:%lu: a %" PRIu64 "-byte read at %" PRIu64
				  " ends beyond the virtual size (%" PRIu64 ")",
				  path, lineno, b->bufsize, off, b->size);
			goto out;
		}
		if (b->n_list == alloc) {
			uint64_t *p;

			if (alloc >= BENCH_MAX_COUNT) {
				log_error("%s: more than %" PRIu64 " offsets", path, (uint64_t)BENCH_MAX_COUNT);
				goto out;
			}
			alloc = alloc ? alloc * 2 : 4096;
			p = reallocarray(b->list, alloc, sizeof(*p));
			if (!p) {
				log_error("out of memory for %zu offsets", alloc);
				goto out;
			}
			b->list = p;
		}
		b->list[b->n_list++] = off;
	}
	if (ferror(f)) {
		log_error("%s: read error", path);
		goto out;
	}
	if (!b->n_list) {
		log_error("%s: no offsets", path);
		goto out;
	}
	rc = 0;
out:
	free(line);
	fclose(f);
	return rc;
}

/* FNV-1a 64 over buf, continuing from h: --checksum lets a test check what was read. */
static uint64_t fnv1a(uint64_t h, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ buf[i]) * 0x100000001b3ULL;
	return h;
}

/*
 * Timed reads through the library, shaped like qemu-img bench (read side, queue depth 1):
 * COUNT synchronous reads of BUFSIZE; only the read loop is timed (CLOCK_MONOTONIC), not the
 * open nor, with --offsets, loading the list.
 */
static int cmd_bench(int argc, char **argv, const struct pimg_open_policy *pol)
{
	static const struct option lo[] = { { "output", required_argument, NULL, 'o' },
					    { "format", required_argument, NULL, 'f' },
					    { "pattern", required_argument, NULL, 'p' },
					    { "seed", required_argument, NULL, 'e' },
					    { "offsets", required_argument, NULL, 'l' },
					    { "checksum", no_argument, NULL, 'k' },
					    { NULL, 0, NULL, 0 } };
	static const char *const pattern_names[] = { "random", "sequential", "list" };
	const char *fmt = NULL, *offsets = NULL;
	struct bench b = { .pattern = BENCH_RANDOM, .bufsize = 4 * KiB, .rng = 1 };
	uint64_t count = 75000, seed = 1, hash = 0xcbf29ce484222325ULL, i;
	bool json = false, checksum = false, have_count = false, have_step = false, have_pattern = false;
	struct timespec t0, t1;
	struct pimg *img;
	uint8_t *buf;
	double secs;
	int c, ret, rc = 1;

	while ((c = getopt_long(argc, argv, "f:c:s:S:", lo, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'l': offsets = optarg; break;
		case 'k': checksum = true; break;
		case 'o':
			if (!output_json(optarg, &json)) {
				log_error("--output must be human or json");
				return 1;
			}
			break;
		case 'c':
			if (parse_uint(optarg, 1, BENCH_MAX_COUNT, &count)) {
				log_error("-c takes a count from 1 to %" PRIu64 ", not '%s'",
					  (uint64_t)BENCH_MAX_COUNT, optarg);
				return 1;
			}
			have_count = true;
			break;
		case 's':
			if (parse_size(optarg, &b.bufsize) || !b.bufsize || b.bufsize > BENCH_MAX_BUF) {
				log_error("-s takes a buffer size from 1 byte to 1G, not '%s'", optarg);
				return 1;
			}
			break;
		case 'S':
			if (parse_size(optarg, &b.step) || !b.step) {
				log_error("-S takes a non-zero step size, not '%s'", optarg);
				return 1;
			}
			have_step = true;
			break;
		case 'p':
			if (!strcmp(optarg, "random")) {
				b.pattern = BENCH_RANDOM;
			} else if (!strcmp(optarg, "sequential")) {
				b.pattern = BENCH_SEQUENTIAL;
			} else {
				log_error("--pattern takes random or sequential, not '%s'", optarg);
				return 1;
			}
			have_pattern = true;
			break;
		case 'e':
			if (parse_uint(optarg, 0, UINT64_MAX, &seed)) {
				log_error("--seed takes an unsigned integer, not '%s'", optarg);
				return 1;
			}
			break;
		default: return 1;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 1;
	}
	if (have_step && b.pattern != BENCH_SEQUENTIAL) {
		log_error("-S is for --pattern sequential");
		return 1;
	}
	if (offsets && have_pattern) {
		log_error("--offsets and --pattern exclude each other");
		return 1;
	}
	if (!have_step)
		b.step = b.bufsize;
	b.rng = seed;
	img = pimg_open_with(argv[optind], fmt, PIMG_O_RDONLY, pol);
	if (!img)
		return 1;
	b.size = pimg_size(img);
	if (b.size < b.bufsize) {
		log_error("%s: the image (%" PRIu64 " bytes) is smaller than one %" PRIu64 "-byte read",
			  argv[optind], b.size, b.bufsize);
		goto out_close_img;
	}
	if (offsets) {
		b.pattern = BENCH_LIST;
		if (bench_load_offsets(&b, offsets))
			goto out_free_list;
		if (have_count && count > b.n_list) {
			log_error("-c %" PRIu64 " but %s holds only %" PRIu64 " offsets", count, offsets,
				  b.n_list);
			goto out_free_list;
		}
		if (!have_count)
			count = b.n_list;
	}
	buf = aligned_alloc(4096, align_up(b.bufsize, 4096));
	if (!buf) {
		log_error("out of memory for a %" PRIu64 "-byte buffer", b.bufsize);
		goto out_free_list;
	}
	if (!json)
		printf("Sending %" PRIu64 " read requests, %" PRIu64 " bytes each, %s offsets\n", count,
		       b.bufsize, pattern_names[b.pattern]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < count; i++) {
		uint64_t off = bench_offset(&b, i);

		ret = pimg_pread(img, buf, b.bufsize, off);
		if (ret) {
			log_error("%s: read of %" PRIu64 " bytes at %" PRIu64 " failed: %s", argv[optind],
				  b.bufsize, off, strerror(-ret));
			goto out_free_buf;
		}
		if (checksum)
			hash = fnv1a(hash, buf, b.bufsize);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (json) {
		json_t *j = json_object();

		json_object_set_new(j, "filename", json_string(argv[optind]));
		json_object_set_new(j, "format", json_string(pimg_format(img)));
		json_object_set_new(j, "pattern", json_string(pattern_names[b.pattern]));
		if (b.pattern == BENCH_RANDOM)
			json_object_set_new(j, "seed", json_integer((json_int_t)seed));
		if (b.pattern == BENCH_SEQUENTIAL)
			json_object_set_new(j, "step", json_integer((json_int_t)b.step));
		json_object_set_new(j, "count", json_integer((json_int_t)count));
		json_object_set_new(j, "bufsize", json_integer((json_int_t)b.bufsize));
		json_object_set_new(j, "bytes", json_integer((json_int_t)(count * b.bufsize)));
		json_object_set_new(j, "seconds", json_real(secs));
		json_object_set_new(j, "iops", json_real(secs > 0 ? (double)count / secs : 0));
		if (checksum) {
			char h[17];

			snprintf(h, sizeof(h), "%016" PRIx64, hash);
			json_object_set_new(j, "checksum", json_string(h));
		}
		rc = dump_json(j);
	} else {
		printf("Run completed in %.3f seconds.\n"
		       "%" PRIu64 " reads, %" PRIu64 " bytes, %.0f IOPS, %.1f MiB/s\n",
		       secs, count, count * b.bufsize, secs > 0 ? (double)count / secs : 0,
		       secs > 0 ? (double)(count * b.bufsize) / (double)MiB / secs : 0);
		if (checksum)
			printf("checksum (FNV-1a 64): %016" PRIx64 "\n", hash);
		rc = 0;
	}
out_free_buf:
	free(buf);
out_free_list:
	free(b.list);
out_close_img:
	pimg_close(img);
	return rc;
}

/*
 * The external-file options every command takes (anywhere before "--"), removed
 * from argv so that each command's own parsing never sees them:
 *   --allow-backing        open the backing files, parents and extents an image
 *                          names, inside the image's own directory
 *   --backing-dir=DIR      ... or inside DIR (repeatable; implies --allow-backing)
 *   --allow-blockdev       such a file may be a block device
 * dirs (argc entries, zeroed) receives the directories. Returns the new argc, or -1
 * after a line on stderr.
 */
static int take_policy_options(int argc, char **argv, struct pimg_open_policy *pol,
			       const char **dirs)
{
	int out = 2, n_dirs = 0;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(a, "--allow-backing")) {
			pol->allow_external = true;
		} else if (!strcmp(a, "--allow-blockdev")) {
			pol->allow_block_devices = true;
		} else if (!strncmp(a, "--backing-dir=", 14) || !strcmp(a, "--backing-dir")) {
			const char *d = a[13] == '=' ? a + 14 : i + 1 < argc ? argv[++i] : NULL;

			if (!d || !*d) {
				log_error("--backing-dir needs a directory");
				return -1;
			}
			dirs[n_dirs++] = d;
			pol->allow_external = true;
		} else {
			argv[out++] = argv[i];
		}
	}
	argv[out] = NULL;
	return out;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **, const struct pimg_open_policy *);
	} cmds[] = {
		{ "info", cmd_info },       { "create", cmd_create }, { "convert", cmd_convert },
		{ "compare", cmd_compare }, { "check", cmd_check },   { "resize", cmd_resize },
		{ "commit", cmd_commit },   { "bench", cmd_bench },
	};

	log_set_prog("plinth-img");
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (!strcmp(argv[1], cmds[i].name)) {
			struct pimg_open_policy pol = { 0 };
			const char **dirs = calloc((size_t)argc, sizeof(*dirs));
			int rc = 1;

			if (!dirs) {
				log_error("out of memory");
				return 1;
			}
			pol.dirs = dirs;
			argc = take_policy_options(argc, argv, &pol, dirs);
			if (argc >= 0) {
				optind = 1;
				rc = cmds[i].fn(argc - 1, argv + 1, &pol);
			}
			free(dirs);
			return rc;
		}
	}
	log_error("unknown command '%s'", argv[1]);
	usage(stderr);
	return 1;
}
