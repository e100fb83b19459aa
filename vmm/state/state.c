// SPDX-License-Identifier: MIT
/*
 * The VM state container (format and invariants in state.h). The writer buffers
 * one section in memory, then emits header, payload and checksum; the reader
 * verifies a whole section before handing out a single field.
 */
#include "state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "util.h"

#define STATE_NAME_MAX 64
#define STATE_MSG_MAX  320 /* name + type + id + what, never truncated */
#define STATE_WHAT_MAX 192
/* A stream's payload buffer grows by at most this much per read, so a forged length
 * costs no more memory than the bytes that really arrived (plus one step). */
#define STATE_STREAM_STEP (1u << 20)

static const char state_end_type[] = "end";

/* crc32 continued from seed; zlib returns its initial value for a NULL buffer, so an
 * empty range must not reach it. */
static uint32_t crc(uint32_t seed, const void *buf, size_t len)
{
	if (!len)
		return seed;
	return (uint32_t)crc32_z(seed, buf, len);
}

/* True for 1..STATE_TYPE_MAX chars of [a-z0-9_.-] followed by NUL padding in field[16]. */
static bool type_field_valid(const uint8_t *field)
{
	size_t n = 0, i;

	while (n < STATE_TYPE_MAX + 1 && field[n]) {
		uint8_t c = field[n];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
		n++;
	}
	if (n == 0 || n > STATE_TYPE_MAX)
		return false;
	for (i = n; i < STATE_TYPE_MAX + 1; i++)
		if (field[i])
			return false;
	return true;
}

static bool type_name_valid(const char *type)
{
	uint8_t field[STATE_TYPE_MAX + 1] = {0};
	size_t n = strnlen(type, STATE_TYPE_MAX + 1);

	if (n > STATE_TYPE_MAX)
		return false;
	memcpy(field, type, n);
	return type_field_valid(field);
}

/* --- Writer -------------------------------------------------------------------------- */

struct state_writer {
	int fd;			       /* output, not owned (-1 with io) */
	bool sock;		       /* fd is a socket: send() without SIGPIPE */
	bool has_io;		       /* output through io instead of fd */
	struct state_io io;
	char name[STATE_NAME_MAX];     /* for messages */
	uint8_t *buf;		       /* open section: header room + payload (owned) */
	size_t len, cap;	       /* bytes used / allocated in buf */
	bool in_section;	       /* between begin_section and end_section */
	bool finished;		       /* "end" written */
	char type[STATE_TYPE_MAX + 1]; /* open section's type */
	uint32_t id, flags;	       /* open section's id and flags */
	uint64_t offset;	       /* bytes emitted */
	uint64_t nr_sections;	       /* sections emitted, "end" excluded */
	uint32_t file_crc;	       /* crc32 of every byte emitted */
	int err;		       /* first error (sticky), 0 if none */
	char msg[STATE_MSG_MAX];       /* its one-line reason */
};

static int wfail(struct state_writer *w, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wfail(struct state_writer *w, int err, const char *fmt, ...)
{
	char what[STATE_WHAT_MAX];
	va_list ap;

	if (w->err)
		return w->err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (w->in_section)
		snprintf(w->msg, sizeof(w->msg), "%s: section '%s'[%u]: %s", w->name, w->type,
			 w->id, what);
	else
		snprintf(w->msg, sizeof(w->msg), "%s: %s", w->name, what);
	w->err = err;
	return err;
}

/* Write all of buf; on a socket without SIGPIPE, so a vanished peer is just an error. */
static int emit(struct state_writer *w, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t left = len;

	if (w->err)
		return w->err;
	while (left) {
		ssize_t n;

		if (w->has_io) {
			n = w->io.write(w->io.opaque, p, left);
			if (n < 0) {
				errno = (int)-n;
				n = -1;
			}
		} else {
			n = w->sock ? send(w->fd, p, left, MSG_NOSIGNAL) : write(w->fd, p, left);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return wfail(w, -errno, "write failed at offset %llu: %s",
				     (unsigned long long)w->offset, strerror(errno));
		if (n == 0)
			return wfail(w, -EIO, "write made no progress at offset %llu",
				     (unsigned long long)w->offset);
		p += n;
		left -= (size_t)n;
	}
	w->file_crc = crc(w->file_crc, buf, len);
	w->offset += len;
	return 0;
}

static struct state_writer *writer_new(int fd, const struct state_io *io, const char *name)
{
	struct state_writer *w = calloc(1, sizeof(*w));
	uint8_t hdr[STATE_HEADER_SIZE];
	struct stat st;

	if (!w) {
		log_error("%s: out of memory for the state writer", name);
		return NULL;
	}
	w->fd = fd;
	if (io) {
		w->has_io = true;
		w->io = *io;
	} else {
		w->sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	}
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->file_crc = crc(0, NULL, 0);
	memcpy(hdr, STATE_MAGIC, 8);
	put_le(hdr + 8, STATE_FORMAT_VERSION, 4);
	put_le(hdr + 12, STATE_HEADER_SIZE, 4);
	put_le(hdr + 16, 0, 4);
	put_le(hdr + 20, crc(0, hdr, 20), 4);
	emit(w, hdr, sizeof(hdr)); /* an error is sticky and reported by the next call */
	return w;
}

struct state_writer *state_writer_new_fd(int fd, const char *name)
{
	return writer_new(fd, NULL, name);
}

struct state_writer *state_writer_new_io(const struct state_io *io, const char *name)
{
	return writer_new(-1, io, name);
}

void state_writer_free(struct state_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

int state_writer_begin_section(struct state_writer *w, const char *type, uint32_t id,
			       uint32_t flags)
{
	if (w->err)
		return w->err;
	if (w->in_section)
		return wfail(w, -EINVAL, "section '%.15s' opened inside section '%s'", type,
			     w->type);
	if (w->finished)
		return wfail(w, -EINVAL, "section '%.15s' opened after the end", type);
	if (!type_name_valid(type) || !strcmp(type, state_end_type))
		return wfail(w, -EINVAL, "invalid section type '%.15s'", type);
	if (flags & ~STATE_SECTION_OPTIONAL)
		return wfail(w, -EINVAL, "invalid section flags %#x", flags);
	snprintf(w->type, sizeof(w->type), "%s", type);
	w->id = id;
	w->flags = flags;
	w->len = STATE_SECTION_HDR;
	if (w->cap < w->len) {
		uint8_t *nb = realloc(w->buf, 4096);

		if (!nb)
			return wfail(w, -ENOMEM, "out of memory");
		w->buf = nb;
		w->cap = 4096;
	}
	w->in_section = true;
	return 0;
}

/* Append n bytes to the open section, growing the buffer; sticky on failure. */
static uint8_t *wreserve(struct state_writer *w, size_t n)
{
	size_t need;
	uint8_t *p;

	if (w->err)
		return NULL;
	if (!w->in_section) {
		wfail(w, -EINVAL, "field written outside a section");
		return NULL;
	}
	if (add_overflow(w->len, n, &need) || need - STATE_SECTION_HDR > STATE_SECTION_MAX) {
		wfail(w, -EFBIG, "section larger than %u bytes", STATE_SECTION_MAX);
		return NULL;
	}
	if (need > w->cap) {
		size_t cap = w->cap;
		uint8_t *nb;

		while (cap < need)
			cap *= 2; /* bounded: need <= STATE_SECTION_MAX + header */
		nb = realloc(w->buf, cap);
		if (!nb) {
			wfail(w, -ENOMEM, "out of memory for %zu bytes", cap);
			return NULL;
		}
		w->buf = nb;
		w->cap = cap;
	}
	p = w->buf + w->len;
	w->len = need;
	return p;
}

static void put_scalar(struct state_writer *w, enum state_tag tag, uint64_t v, unsigned int n)
{
	uint8_t *p = wreserve(w, 1 + n);

	if (!p)
		return;
	p[0] = (uint8_t)tag;
	put_le(p + 1, v, n);
}

void state_put_u8(struct state_writer *w, uint8_t v)
{
	put_scalar(w, STATE_TAG_U8, v, 1);
}

void state_put_u16(struct state_writer *w, uint16_t v)
{
	put_scalar(w, STATE_TAG_U16, v, 2);
}

void state_put_u32(struct state_writer *w, uint32_t v)
{
	put_scalar(w, STATE_TAG_U32, v, 4);
}

void state_put_u64(struct state_writer *w, uint64_t v)
{
	put_scalar(w, STATE_TAG_U64, v, 8);
}

void state_put_bool(struct state_writer *w, bool v)
{
	put_scalar(w, STATE_TAG_U8, v ? 1 : 0, 1);
}

void state_put_bytes(struct state_writer *w, const void *buf, uint32_t len)
{
	uint8_t *p;

	if (len > STATE_SECTION_MAX) {
		wfail(w, -EFBIG, "bytes field of %u bytes is larger than a section", len);
		return;
	}
	p = wreserve(w, 5 + (size_t)len);
	if (!p)
		return;
	p[0] = STATE_TAG_BYTES;
	put_le(p + 1, len, 4);
	if (len)
		memcpy(p + 5, buf, len);
}

/* Fill in the header of the buffered section and emit it with its checksum. */
static int flush_section(struct state_writer *w)
{
	uint64_t plen = w->len - STATE_SECTION_HDR;
	uint8_t *h = w->buf;
	uint8_t tail[4];
	uint32_t hcrc;
	int ret;

	put_le(h, STATE_SECTION_MAGIC, 4);
	memset(h + 4, 0, STATE_TYPE_MAX + 1);
	memcpy(h + 4, w->type, strlen(w->type));
	put_le(h + 20, w->id, 4);
	put_le(h + 24, w->flags, 4);
	put_le(h + 28, plen, 8);
	hcrc = crc(0, h, 36);
	put_le(h + 36, hcrc, 4);
	put_le(tail, crc(hcrc, h + STATE_SECTION_HDR, plen), 4);
	ret = emit(w, w->buf, w->len);
	if (!ret)
		ret = emit(w, tail, sizeof(tail));
	return ret;
}

int state_writer_end_section(struct state_writer *w)
{
	int ret;

	if (w->err)
		return w->err;
	if (!w->in_section)
		return wfail(w, -EINVAL, "end of a section that was not begun");
	ret = flush_section(w);
	w->in_section = false;
	if (!ret)
		w->nr_sections++;
	return ret;
}

int state_writer_finish(struct state_writer *w)
{
	uint64_t nr = w->nr_sections, bytes = w->offset;
	uint32_t fcrc = w->file_crc;
	int ret;

	if (w->err)
		return w->err;
	if (w->in_section)
		return wfail(w, -EINVAL, "finished with section '%s' still open", w->type);
	if (w->finished)
		return wfail(w, -EINVAL, "finished twice");
	/* The "end" section is built by hand: begin_section refuses its type. */
	snprintf(w->type, sizeof(w->type), "%s", state_end_type);
	w->id = 0;
	w->flags = 0;
	w->len = STATE_SECTION_HDR;
	w->in_section = true;
	if (w->cap < w->len) {
		uint8_t *nb = realloc(w->buf, 4096);

		if (!nb)
			return wfail(w, -ENOMEM, "out of memory");
		w->buf = nb;
		w->cap = 4096;
	}
	state_put_u64(w, nr);
	state_put_u64(w, bytes);
	state_put_u32(w, fcrc);
	ret = w->err ? w->err : flush_section(w);
	w->in_section = false;
	w->finished = true;
	return ret;
}

uint64_t state_writer_offset(const struct state_writer *w)
{
	return w->offset;
}

const char *state_writer_error(const struct state_writer *w)
{
	return w->msg;
}

/* --- Reader -------------------------------------------------------------------------- */

enum reader_state {
	R_START,      /* file header not read yet */
	R_BETWEEN,    /* before a section header */
	R_IN_SECTION, /* a verified payload is loaded */
	R_DONE,	      /* "end" verified */
};

struct state_reader {
	int fd;		      /* input if !mem and !has_io, not owned */
	bool is_mem;	      /* input is mem[0..limit), else fd or io */
	bool has_io;	      /* input is io (a stream) */
	struct state_io io;
	const uint8_t *mem;   /* memory input (not owned) */
	bool bounded;	      /* total input size is known: limit */
	uint64_t limit;	      /* bytes available from the start, if bounded */
	uint64_t offset;      /* bytes consumed */
	uint32_t file_crc;    /* crc32 of the bytes consumed */
	uint64_t nr_sections; /* sections verified, "end" excluded */
	enum reader_state state;
	uint8_t *buf;		       /* payload buffer for fd input (owned) */
	size_t cap;		       /* its size */
	const uint8_t *payload;	       /* current payload (buf or inside mem) */
	uint32_t plen, pos;	       /* its length, bytes read so far */
	char type[STATE_TYPE_MAX + 1]; /* current section */
	uint32_t id, flags;
	char name[STATE_NAME_MAX]; /* for messages */
	int err;		   /* first error (sticky) */
	char msg[STATE_MSG_MAX];   /* its one-line reason */
};

static int vrfail(struct state_reader *r, int err, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static int vrfail(struct state_reader *r, int err, const char *fmt, va_list ap)
{
	char what[STATE_WHAT_MAX];

	if (r->err)
		return r->err;
	vsnprintf(what, sizeof(what), fmt, ap);
	if (r->state == R_IN_SECTION)
		snprintf(r->msg, sizeof(r->msg), "%s: section '%s'[%u]: %s", r->name, r->type,
			 r->id, what);
	else
		snprintf(r->msg, sizeof(r->msg), "%s: %s", r->name, what);
	r->err = err;
	return err;
}

int state_reader_fail(struct state_reader *r, int err, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vrfail(r, err, fmt, ap);
	va_end(ap);
	return ret;
}

#define rfail state_reader_fail

static struct state_reader *reader_alloc(const char *name)
{
	struct state_reader *r = calloc(1, sizeof(*r));

	if (!r) {
		log_error("%s: out of memory for the state reader", name);
		return NULL;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->file_crc = crc(0, NULL, 0);
	r->fd = -1;
	return r;
}

struct state_reader *state_reader_new_fd(int fd, const char *name)
{
	struct state_reader *r = reader_alloc(name);
	struct stat st;

	if (!r)
		return NULL;
	r->fd = fd;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		off_t pos = lseek(fd, 0, SEEK_CUR);

		if (pos >= 0 && pos <= st.st_size) {
			r->bounded = true;
			r->limit = (uint64_t)(st.st_size - pos);
		}
	}
	return r;
}

struct state_reader *state_reader_new_io(const struct state_io *io, const char *name)
{
	struct state_reader *r = reader_alloc(name);

	if (!r)
		return NULL;
	r->has_io = true;
	r->io = *io;
	return r;
}

struct state_reader *state_reader_new_mem(const void *buf, size_t len, const char *name)
{
	struct state_reader *r = reader_alloc(name);

	if (!r)
		return NULL;
	r->is_mem = true;
	r->mem = buf;
	r->bounded = true;
	r->limit = len;
	return r;
}

void state_reader_free(struct state_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

/* Read exactly n bytes into dst and account for them; -ENODATA on a short input. */
static int rd(struct state_reader *r, void *dst, size_t n, const char *what)
{
	uint8_t *p = dst;
	size_t got = 0;

	if (r->is_mem) {
		if (!range_within(r->offset, n, r->limit))
			return rfail(r, -ENODATA, "truncated in %s at offset %llu", what,
				     (unsigned long long)r->limit);
		memcpy(dst, r->mem + r->offset, n);
		got = n;
	}
	while (got < n) {
		ssize_t k;

		if (r->has_io) {
			k = r->io.read(r->io.opaque, p + got, n - got);
			if (k < 0) {
				errno = (int)-k;
				k = -1;
			}
		} else {
			k = read(r->fd, p + got, n - got);
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return rfail(r, -errno, "read failed at offset %llu: %s",
				     (unsigned long long)(r->offset + got), strerror(errno));
		if (k == 0)
			return rfail(r, -ENODATA, "truncated in %s at offset %llu", what,
				     (unsigned long long)(r->offset + got));
		got += (size_t)k;
	}
	r->file_crc = crc(r->file_crc, dst, n);
	r->offset += n;
	return 0;
}

static int read_file_header(struct state_reader *r)
{
	uint8_t h[STATE_HEADER_SIZE];
	uint32_t version, hlen, flags;
	int ret;

	ret = rd(r, h, sizeof(h), "the file header");
	if (ret)
		return ret;
	if (memcmp(h, STATE_MAGIC, 8))
		return rfail(r, -EBADMSG, "not a plinth state (bad magic)");
	if (get_le(h + 20, 4) != crc(0, h, 20))
		return rfail(r, -EBADMSG, "file header checksum mismatch (corrupted)");
	version = (uint32_t)get_le(h + 8, 4);
	hlen = (uint32_t)get_le(h + 12, 4);
	flags = (uint32_t)get_le(h + 16, 4);
	if (version != STATE_FORMAT_VERSION)
		return rfail(r, -EPROTONOSUPPORT,
			     "state format version %u, this plinth reads only version %u", version,
			     STATE_FORMAT_VERSION);
	if (hlen != STATE_HEADER_SIZE || flags)
		return rfail(r, -EBADMSG, "invalid file header (length %u, flags %#x)", hlen,
			     flags);
	r->state = R_BETWEEN;
	return 0;
}

/* Read plen payload bytes and its checksum; on a stream, grow the buffer as bytes arrive. */
static int read_payload(struct state_reader *r, uint32_t plen, uint32_t hcrc)
{
	uint8_t tail[4];
	int ret;

	if (r->is_mem) {
		if (!range_within(r->offset, plen, r->limit))
			return rfail(r, -ENODATA,
				     "truncated in the payload of '%s'[%u] at offset %llu", r->type,
				     r->id, (unsigned long long)r->limit);
		r->payload = r->mem + r->offset;
		r->file_crc = crc(r->file_crc, r->payload, plen);
		r->offset += plen;
	} else {
		size_t done = 0;

		while (done < plen) {
			size_t step = MIN((size_t)plen - done, (size_t)STATE_STREAM_STEP);

			if (done + step > r->cap) {
				size_t cap = r->cap ? r->cap : 4096;
				uint8_t *nb;

				while (cap < done + step)
					cap *= 2;
				cap = MIN(cap, (size_t)plen);
				nb = realloc(r->buf, cap);
				if (!nb)
					return rfail(r, -ENOMEM, "out of memory for %zu bytes",
						     cap);
				r->buf = nb;
				r->cap = cap;
			}
			ret = rd(r, r->buf + done, step, "a section payload");
			if (ret)
				return ret;
			done += step;
		}
		r->payload = r->buf;
	}
	ret = rd(r, tail, sizeof(tail), "a section checksum");
	if (ret)
		return ret;
	if (get_le(tail, 4) != crc(hcrc, r->payload, plen))
		return rfail(
			r, -EBADMSG,
			"checksum mismatch in section '%s'[%u] ending at offset %llu (corrupted)",
			r->type, r->id, (unsigned long long)r->offset);
	r->plen = plen;
	r->pos = 0;
	return 0;
}

static int verify_end(struct state_reader *r, uint64_t nr_before, uint64_t off_before,
		      uint32_t crc_before);

int state_reader_next_section(struct state_reader *r)
{
	uint8_t h[STATE_SECTION_HDR];
	uint64_t plen, off_before = r->offset, nr_before = r->nr_sections;
	uint32_t crc_before = r->file_crc, hcrc;
	int ret;

	if (r->err)
		return r->err;
	if (r->state == R_START) {
		ret = read_file_header(r);
		if (ret)
			return ret;
		off_before = r->offset;
		crc_before = r->file_crc;
	}
	if (r->state == R_DONE)
		return 0;
	if (r->state == R_IN_SECTION) {
		if (r->pos != r->plen)
			return rfail(r, -EPROTO, "%u bytes left unread", r->plen - r->pos);
		r->state = R_BETWEEN;
	}
	ret = rd(r, h, sizeof(h), "a section header");
	if (ret)
		return ret;
	if (get_le(h, 4) != STATE_SECTION_MAGIC)
		return rfail(r, -EBADMSG, "no section header at offset %llu (corrupted)",
			     (unsigned long long)off_before);
	hcrc = (uint32_t)get_le(h + 36, 4);
	if (hcrc != crc(0, h, 36))
		return rfail(r, -EBADMSG,
			     "section header checksum mismatch at offset %llu (corrupted)",
			     (unsigned long long)off_before);
	if (!type_field_valid(h + 4))
		return rfail(r, -EBADMSG, "invalid section type at offset %llu",
			     (unsigned long long)off_before);
	memcpy(r->type, h + 4, STATE_TYPE_MAX + 1);
	r->id = (uint32_t)get_le(h + 20, 4);
	r->flags = (uint32_t)get_le(h + 24, 4);
	plen = get_le(h + 28, 8);
	if (r->flags & ~STATE_SECTION_OPTIONAL)
		return rfail(r, -EBADMSG, "section '%s'[%u] has unknown flags %#x", r->type, r->id,
			     r->flags);
	if (plen > STATE_SECTION_MAX)
		return rfail(r, -EBADMSG, "section '%s'[%u] claims %llu bytes (limit %u)", r->type,
			     r->id, (unsigned long long)plen, STATE_SECTION_MAX);
	if (r->bounded && !range_within(r->offset, plen + 4, r->limit))
		return rfail(
			r, -ENODATA,
			"truncated: section '%s'[%u] at offset %llu needs %llu bytes, %llu remain",
			r->type, r->id, (unsigned long long)off_before,
			(unsigned long long)plen + 4, (unsigned long long)(r->limit - r->offset));
	ret = read_payload(r, (uint32_t)plen, hcrc);
	if (ret)
		return ret;
	r->state = R_IN_SECTION;
	if (!strcmp(r->type, state_end_type))
		return verify_end(r, nr_before, off_before, crc_before);
	r->nr_sections++;
	return 1;
}

/* Check the "end" section against what was read, and that nothing follows a file. */
static int verify_end(struct state_reader *r, uint64_t nr_before, uint64_t off_before,
		      uint32_t crc_before)
{
	uint64_t nr, bytes;
	uint32_t fcrc;
	uint8_t extra;
	int ret;

	if (r->id || r->flags)
		return rfail(r, -EBADMSG, "invalid end section");
	if (state_get_u64(r, &nr) || state_get_u64(r, &bytes) || state_get_u32(r, &fcrc))
		return r->err;
	ret = state_reader_end_section(r);
	if (ret)
		return ret;
	if (nr != nr_before || bytes != off_before)
		return rfail(r, -EBADMSG,
			     "end section counts %llu sections in %llu bytes, found %llu in %llu",
			     (unsigned long long)nr, (unsigned long long)bytes,
			     (unsigned long long)nr_before, (unsigned long long)off_before);
	if (fcrc != crc_before)
		return rfail(r, -EBADMSG, "whole-file checksum mismatch (corrupted)");
	if (r->is_mem && r->offset != r->limit)
		return rfail(r, -EBADMSG, "%llu unexpected bytes after the end",
			     (unsigned long long)(r->limit - r->offset));
	if (!r->is_mem && r->bounded) {
		ssize_t k;

		do {
			k = read(r->fd, &extra, 1);
		} while (k < 0 && errno == EINTR);
		if (k != 0)
			return rfail(r, -EBADMSG, "unexpected bytes after the end at offset %llu",
				     (unsigned long long)r->offset);
	}
	r->state = R_DONE;
	return 0;
}

const char *state_reader_type(const struct state_reader *r)
{
	return r->type;
}

uint32_t state_reader_id(const struct state_reader *r)
{
	return r->id;
}

uint32_t state_reader_flags(const struct state_reader *r)
{
	return r->flags;
}

int state_peek_tag(const struct state_reader *r)
{
	if (r->err || r->state != R_IN_SECTION || r->pos == r->plen)
		return -1;
	return r->payload[r->pos];
}

uint32_t state_reader_remaining(const struct state_reader *r)
{
	return r->state == R_IN_SECTION ? r->plen - r->pos : 0;
}

static const char *tag_name(uint8_t tag)
{
	switch (tag) {
	case STATE_TAG_U8:
		return "u8";
	case STATE_TAG_U16:
		return "u16";
	case STATE_TAG_U32:
		return "u32";
	case STATE_TAG_U64:
		return "u64";
	case STATE_TAG_BYTES:
		return "bytes";
	default:
		return "unknown";
	}
}

/* Check the next field's tag and that n value bytes follow it; return them in *p. */
static int take(struct state_reader *r, enum state_tag tag, uint32_t n, const uint8_t **p)
{
	uint32_t left;
	uint8_t found;

	if (r->err)
		return r->err;
	if (r->state != R_IN_SECTION)
		return rfail(r, -EPROTO, "%s field read outside a section", tag_name(tag));
	left = r->plen - r->pos;
	if (left == 0)
		return rfail(r, -EPROTO, "%s field read past the end of the section",
			     tag_name(tag));
	found = r->payload[r->pos];
	if (found != tag)
		return rfail(r, -EPROTO, "expected a %s field at payload offset %u, found %s (%u)",
			     tag_name(tag), r->pos, tag_name(found), found);
	if (n > left - 1)
		return rfail(r, -EBADMSG, "%s field at payload offset %u runs past the section",
			     tag_name(tag), r->pos);
	*p = r->payload + r->pos + 1;
	r->pos += 1 + n;
	return 0;
}

static int get_scalar(struct state_reader *r, enum state_tag tag, unsigned int n, uint64_t *v)
{
	const uint8_t *p;
	int ret = take(r, tag, n, &p);

	if (!ret)
		*v = get_le(p, n);
	return ret;
}

int state_get_u8(struct state_reader *r, uint8_t *v)
{
	uint64_t x;
	int ret = get_scalar(r, STATE_TAG_U8, 1, &x);

	if (!ret)
		*v = (uint8_t)x;
	return ret;
}

int state_get_u16(struct state_reader *r, uint16_t *v)
{
	uint64_t x;
	int ret = get_scalar(r, STATE_TAG_U16, 2, &x);

	if (!ret)
		*v = (uint16_t)x;
	return ret;
}

int state_get_u32(struct state_reader *r, uint32_t *v)
{
	uint64_t x;
	int ret = get_scalar(r, STATE_TAG_U32, 4, &x);

	if (!ret)
		*v = (uint32_t)x;
	return ret;
}

int state_get_u64(struct state_reader *r, uint64_t *v)
{
	return get_scalar(r, STATE_TAG_U64, 8, v);
}

int state_get_bool(struct state_reader *r, bool *v)
{
	uint8_t x;
	int ret = state_get_u8(r, &x);

	if (ret)
		return ret;
	if (x > 1)
		return rfail(r, -EPROTO, "boolean field holds %u", x);
	*v = x;
	return 0;
}

int state_get_bytes_ref(struct state_reader *r, const void **p, uint32_t *len)
{
	const uint8_t *lp;
	uint32_t n;
	int ret = take(r, STATE_TAG_BYTES, 4, &lp);

	if (ret)
		return ret;
	n = (uint32_t)get_le(lp, 4);
	if (n > r->plen - r->pos)
		return rfail(r, -EBADMSG, "bytes field of %u bytes runs past the section (%u left)",
			     n, r->plen - r->pos);
	*p = r->payload + r->pos;
	*len = n;
	r->pos += n;
	return 0;
}

int state_get_bytes_var(struct state_reader *r, void *buf, uint32_t max, uint32_t *len)
{
	const void *p;
	uint32_t n;
	int ret = state_get_bytes_ref(r, &p, &n);

	if (ret)
		return ret;
	if (n > max)
		return rfail(r, -EPROTO, "bytes field of %u bytes, at most %u expected", n, max);
	if (n)
		memcpy(buf, p, n);
	*len = n;
	return 0;
}

int state_get_bytes(struct state_reader *r, void *buf, uint32_t len)
{
	const void *p;
	uint32_t n;
	int ret = state_get_bytes_ref(r, &p, &n);

	if (ret)
		return ret;
	if (n != len)
		return rfail(r, -EPROTO, "bytes field of %u bytes, %u expected", n, len);
	if (n)
		memcpy(buf, p, n);
	return 0;
}

int state_reader_end_section(struct state_reader *r)
{
	if (r->err)
		return r->err;
	if (r->state != R_IN_SECTION)
		return rfail(r, -EPROTO, "end of a section that was not read");
	if (r->pos != r->plen)
		return rfail(r, -EPROTO, "%u bytes left unread", r->plen - r->pos);
	r->state = R_BETWEEN;
	return 0;
}

int state_reader_skip_section(struct state_reader *r)
{
	if (r->err)
		return r->err;
	if (r->state != R_IN_SECTION)
		return rfail(r, -EPROTO, "skip of a section that was not read");
	if (!(r->flags & STATE_SECTION_OPTIONAL))
		return rfail(r, -EPROTO, "unknown mandatory section");
	r->pos = r->plen;
	r->state = R_BETWEEN;
	return 0;
}

const char *state_reader_error(const struct state_reader *r)
{
	return r->msg;
}

int state_reader_load_all(struct state_reader *r, const struct state_section_loader *loaders,
			  size_t nr_loaders, void *ctx)
{
	int ret;

	while ((ret = state_reader_next_section(r)) == 1) {
		const struct state_section_loader *l = NULL;
		size_t i;

		for (i = 0; i < nr_loaders; i++) {
			if (!strcmp(loaders[i].type, r->type)) {
				l = &loaders[i];
				break;
			}
		}
		if (!l) {
			ret = state_reader_skip_section(r);
		} else {
			ret = l->load(ctx, r, r->id);
			if (ret < 0 && !r->err)
				rfail(r, ret, "%s", strerror(-ret));
			if (ret < 0)
				return r->err;
			ret = state_reader_end_section(r);
		}
		if (ret)
			return ret;
	}
	return ret;
}
