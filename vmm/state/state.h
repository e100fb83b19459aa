/* SPDX-License-Identifier: MIT */
/*
 * The VM state container: one byte format for snapshot files and live-migration
 * streams. Devices write their state as typed fields inside named sections; the
 * reader checks every byte before a device sees it.
 *
 * Format (version 1, all integers little-endian):
 *
 *   file header, 24 bytes
 *     0  char[8] magic "PLNSTATE"
 *     8  u32     format version (STATE_FORMAT_VERSION)
 *    12  u32     header length (24 in version 1)
 *    16  u32     flags (0; any other bit is refused)
 *    20  u32     crc32 of bytes 0..19
 *   then sections, each:
 *     0  u32     section magic "SECT" (0x54434553)
 *     4  char[16] type: 1..15 chars of [a-z0-9_.-], NUL padded
 *    20  u32     id (instance: vCPU index, device slot...)
 *    24  u32     flags (bit 0: STATE_SECTION_OPTIONAL; other bits must be 0)
 *    28  u64     payload length L (at most STATE_SECTION_MAX)
 *    36  u32     crc32 of bytes 0..35 of this section header
 *    40  u8[L]   payload: a sequence of typed fields (below)
 *   40+L u32     crc32 of the payload, seeded with the header crc
 *   the last section has type "end", id 0, flags 0, and holds three fields:
 *     u64 number of sections before it, u64 number of bytes before it (file
 *     header included), u32 crc32 of all those bytes (the whole-file checksum).
 *
 *   payload fields: a tag byte, then the value
 *     0x01 u8 | 0x02 u16 | 0x03 u32 | 0x04 u64 | 0x05 bytes: u32 length n, n bytes
 *
 * Invariants the reader enforces (every violation is an error, never a guess):
 *  1. The magic, then the header crc, then the version are checked in that order,
 *     so a file from another version is refused with "version N", and a damaged
 *     header is reported as damaged, not as another version.
 *  2. A section header's crc is checked before its length is trusted; a length is
 *     checked against STATE_SECTION_MAX and, for files and memory, against the
 *     bytes that remain, before anything is allocated. On a stream the payload
 *     buffer grows only as bytes actually arrive.
 *  3. A payload is handed to the caller only after its crc matched, so a device
 *     never parses corrupted bytes. Every field read checks its tag and its length
 *     against what remains of the payload; state_reader_end_section() refuses
 *     unread bytes, so a reader and a writer that disagree are caught.
 *  4. The stream ends only at a valid "end" section whose counts and whole-file
 *     crc match; truncation anywhere, even between sections, is an error. A file
 *     or buffer must end exactly there (no trailing bytes); a stream is left
 *     positioned after it.
 *  5. Unknown sections are refused unless their writer marked them optional.
 *
 * Errors: functions return 0 or -errno: -EPROTONOSUPPORT (another format
 * version), -EBADMSG (corruption: bad magic, checksum, tag, length), -ENODATA
 * (truncated), -EPROTO (well-formed but not what the caller expects: unknown
 * mandatory section, unread bytes, wrong field size), -EIO etc. from the fd. The
 * one-line reason is kept in the reader/writer: state_reader_error(). Errors are
 * sticky: after the first, every call returns it, so devices can chain getters
 * and check once.
 *
 * Evolution: STATE_FORMAT_VERSION covers the container only. What a section holds is
 * defined by its owner (a device's save/load pair); when that changes, the owner
 * gives the section a new type ("virtio-blk.2") or adds an optional section, so an
 * older reader refuses (or skips) rather than misreads.
 *
 * Use, for a device:
 *   save:  state_writer_begin_section(w, "virtio-blk", slot, 0);
 *          state_put_u64(w, dev->features);
 *          state_put_bytes(w, &dev->cfg, sizeof(dev->cfg));
 *          ret = state_writer_end_section(w);      (first error of any put)
 *   load:  {"virtio-blk", blk_load} in the table given to state_reader_load_all();
 *          blk_load() reads the same fields in the same order and refuses values it
 *          cannot accept with state_reader_fail(r, -EINVAL, "queue size %u", n).
 *
 * Threads: a reader or writer is used by one thread at a time.
 */
#ifndef PLINTH_VMM_STATE_H
#define PLINTH_VMM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_MAGIC	     "PLNSTATE"
#define STATE_FORMAT_VERSION 1u
#define STATE_HEADER_SIZE    24u
#define STATE_SECTION_MAGIC  0x54434553u /* "SECT" little-endian */
#define STATE_SECTION_HDR    40u
#define STATE_TYPE_MAX	     15u	  /* characters in a section type */
#define STATE_SECTION_MAX    (256u << 20) /* payload bytes in one section */

/* Section flags. */
#define STATE_SECTION_OPTIONAL 0x1u /* a reader that does not know the type may skip it */

/* Payload field tags. */
enum state_tag {
	STATE_TAG_U8 = 1,
	STATE_TAG_U16 = 2,
	STATE_TAG_U32 = 3,
	STATE_TAG_U64 = 4,
	STATE_TAG_BYTES = 5,
};

/* The file names inside a snapshot directory. */
#define STATE_SNAPSHOT_STATE_FILE  "state"
#define STATE_SNAPSHOT_MEMORY_FILE "memory"

/*
 * A byte stream other than an fd, for a reader or writer (a TLS channel): read
 * returns the bytes read (> 0), 0 at the end, or -errno; write the bytes written
 * (> 0) or -errno. Such a stream is never bounded (like a socket).
 */
struct state_io {
	long (*read)(void *opaque, void *buf, size_t len);
	long (*write)(void *opaque, const void *buf, size_t len);
	void *opaque;
};

/* --- Writer ---------------------------------------------------------------------- */

struct state_writer;

/*
 * A writer that emits to fd (a file, pipe or socket; not owned, not closed) and
 * writes the file header at once. name is used in messages ("snapshot state",
 * "migration stream"; copied). NULL (logged) on allocation failure only. Each
 * section is written when it ends; a snapshot writer fsyncs (and renames into
 * place) after state_writer_finish(). On a socket, a vanished peer is an error
 * (-EPIPE), never a SIGPIPE; timeouts are the caller's (SO_SNDTIMEO).
 */
struct state_writer *state_writer_new_fd(int fd, const char *name);
/* The same over io (copied; io->opaque must outlive the writer). */
struct state_writer *state_writer_new_io(const struct state_io *io, const char *name);
void state_writer_free(struct state_writer *w);

/*
 * Open a section. type: 1..STATE_TYPE_MAX chars of [a-z0-9_.-], not "end";
 * flags: 0 or STATE_SECTION_OPTIONAL. Sections do not nest. The section is
 * buffered in memory and written at state_writer_end_section().
 */
int state_writer_begin_section(struct state_writer *w, const char *type, uint32_t id,
			       uint32_t flags);
/* Field writers; a failure (too large, no memory, no open section) is sticky. */
void state_put_u8(struct state_writer *w, uint8_t v);
void state_put_u16(struct state_writer *w, uint16_t v);
void state_put_u32(struct state_writer *w, uint32_t v);
void state_put_u64(struct state_writer *w, uint64_t v);
void state_put_bool(struct state_writer *w, bool v);
void state_put_bytes(struct state_writer *w, const void *buf, uint32_t len);
/* Checksum and write the open section. 0 or the first error of this writer. */
int state_writer_end_section(struct state_writer *w);
/* Write the "end" section. 0 or the first error; the writer takes no more sections. */
int state_writer_finish(struct state_writer *w);
/* Bytes emitted so far. */
uint64_t state_writer_offset(const struct state_writer *w);
/* The first error's one-line reason, or "" if none. */
const char *state_writer_error(const struct state_writer *w);

/* --- Reader ---------------------------------------------------------------------- */

struct state_reader;

/*
 * A reader over fd (not owned, not closed). A regular file's size bounds every
 * length; other fds are treated as streams. name is used in messages (copied).
 * NULL (logged) on allocation failure only; the header is read by
 * state_reader_next_section().
 */
struct state_reader *state_reader_new_fd(int fd, const char *name);
/* A reader over a stream io (copied; io->opaque must outlive the reader). */
struct state_reader *state_reader_new_io(const struct state_io *io, const char *name);
/* A reader over buf[0..len) (not copied: buf must outlive the reader). */
struct state_reader *state_reader_new_mem(const void *buf, size_t len, const char *name);
void state_reader_free(struct state_reader *r);

/*
 * Move to the next section: checks the file header first time, then reads and
 * verifies the next section. Returns 1 with the section loaded (its type and id
 * from state_reader_type()/_id()), 0 when the verified "end" section was reached
 * (and, for a file or buffer, nothing follows it), or -errno.
 * A section left partly read is an error (-EPROTO): call end or skip first.
 */
int state_reader_next_section(struct state_reader *r);
const char *state_reader_type(const struct state_reader *r);
uint32_t state_reader_id(const struct state_reader *r);
uint32_t state_reader_flags(const struct state_reader *r);

/* Field readers: the tag and size must match what was written. */
int state_get_u8(struct state_reader *r, uint8_t *v);
int state_get_u16(struct state_reader *r, uint16_t *v);
int state_get_u32(struct state_reader *r, uint32_t *v);
int state_get_u64(struct state_reader *r, uint64_t *v);
/* A u8 that must be 0 or 1. */
int state_get_bool(struct state_reader *r, bool *v);
/* A bytes field of exactly len bytes, copied into buf. */
int state_get_bytes(struct state_reader *r, void *buf, uint32_t len);
/* A bytes field of at most max bytes, copied into buf; its length in *len. */
int state_get_bytes_var(struct state_reader *r, void *buf, uint32_t max, uint32_t *len);
/* A bytes field by reference: *p stays valid until the next section. */
int state_get_bytes_ref(struct state_reader *r, const void **p, uint32_t *len);
/* The tag of the next field (enum state_tag, or any byte a forged file holds), or -1
 * at the end of the payload, outside a section or after an error. */
int state_peek_tag(const struct state_reader *r);
/* Bytes of the current payload not read yet. */
uint32_t state_reader_remaining(const struct state_reader *r);
/* Finish the current section: -EPROTO if bytes are left unread. */
int state_reader_end_section(struct state_reader *r);
/* Drop the current section unread: -EPROTO unless it is optional. */
int state_reader_skip_section(struct state_reader *r);

/*
 * Record an error found by the caller (a device refusing a value it read) so that
 * it is reported like the reader's own: "NAME: section 'TYPE'[ID]: MESSAGE".
 * Returns err (a -errno), which becomes sticky.
 */
int state_reader_fail(struct state_reader *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The first error's one-line reason, or "" if none. */
const char *state_reader_error(const struct state_reader *r);

/* --- Dispatch -------------------------------------------------------------------- */

/* One loader per section type: reads the fields of one section (not end_section). */
struct state_section_loader {
	const char *type;
	int (*load)(void *ctx, struct state_reader *r, uint32_t id);
};

/*
 * Read every section up to "end", calling the loader registered for its type and
 * then state_reader_end_section(); unknown types are skipped if optional, refused
 * otherwise. 0 or the first error (reason in state_reader_error()).
 */
int state_reader_load_all(struct state_reader *r, const struct state_section_loader *loaders,
			  size_t nr_loaders, void *ctx);

#endif
