// SPDX-License-Identifier: MIT
/*
 * Fuzz qcow2's write paths on hostile images: the VMM opens guest images writable, so
 * allocation, cluster reuse, subclusters, bitmap tracking and the flush order meet
 * hostile metadata too. The input is fuzz_img.inc's sparse file (records of {u32 page,
 * 512 bytes}) followed by a tail of operations, 8 bytes each: {u8 op, u8 len in KiB,
 * u16 unused, u32 offset in 512-byte sectors}. The image is opened writable, the
 * operations run, then it is closed, reopened read-only, read and checked.
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "plinth-img.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REC 516
#define MAX_PAGE (1u << 14) /* pages up to 8 MiB into the file: writes stay small */
#define MAX_OPS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	static uint8_t buf[256 * 1024];
	struct pimg_check res;
	struct pimg *img;
	size_t recs = size / REC, i, n_ops;
	uint64_t isize;

	if (fd < 0) {
		log_set_level(LOG_QUIET);
		fd = memfd_create("fuzz-img-w", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0))
		abort();
	for (i = 0; i < recs; i++) {
		uint32_t page;

		memcpy(&page, data + i * REC, 4);
		page = le32toh(page) % MAX_PAGE;
		if (pwrite(fd, data + i * REC + 4, 512, (off_t)page * 512) != 512)
			abort();
	}
	n_ops = (size - recs * REC) / 8;
	img = pimg_open(path, "qcow2", PIMG_O_NO_BACKING);
	if (!img)
		return 0;
	isize = pimg_size(img);
	memset(buf, 0xa5, sizeof(buf));
	for (i = 0; i < n_ops && i < MAX_OPS && isize; i++) {
		const uint8_t *op = data + recs * REC + i * 8;
		uint64_t len = ((uint64_t)op[1] + 1) * 1024, off;
		uint32_t sec;

		memcpy(&sec, op + 4, 4);
		off = ((uint64_t)le32toh(sec) * 512) % isize;
		len = len > isize - off ? isize - off : len;
		switch (op[0] % 5) {
		case 0: pimg_pwrite(img, buf, len, off); break;
		case 1: pimg_pwrite(img, buf, len > 700 ? len - 700 : len, off + (len > 700 ? 300 : 0)); break;
		case 2: pimg_discard(img, off, len); break;
		case 3: pimg_write_zeroes(img, off, len); break;
		default: pimg_flush(img); break;
		}
	}
	pimg_close(img);
	img = pimg_open(path, "qcow2", PIMG_O_RDONLY | PIMG_O_NO_BACKING);
	if (!img)
		return 0;
	isize = pimg_size(img);
	pimg_pread(img, buf, isize < sizeof(buf) ? isize : sizeof(buf), 0);
	pimg_check(img, &res, 0);
	pimg_close(img);
	return 0;
}
