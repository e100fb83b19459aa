// SPDX-License-Identifier: MIT
#include "aml.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define AML_ZERO       0x00
#define AML_ONE	       0x01
#define AML_NAME       0x08
#define AML_BYTE       0x0a
#define AML_WORD       0x0b
#define AML_DWORD      0x0c
#define AML_STRING     0x0d
#define AML_QWORD      0x0e
#define AML_SCOPE      0x10
#define AML_BUFFER     0x11
#define AML_PACKAGE    0x12
#define AML_EXT	       0x5b
#define AML_DEVICE     0x82
#define AML_METHOD     0x14
#define AML_LOCAL0     0x60
#define AML_ARG0       0x68
#define AML_STORE      0x70
#define AML_AND	       0x7b
#define AML_NOTIFY     0x86
#define AML_IF	       0xa0
#define AML_OPREGION   0x80 /* after AML_EXT */
#define AML_FIELD      0x81 /* after AML_EXT */
#define AML_NULL_NAME  0x00
#define AML_SYSTEM_IO  0x01
/* FieldFlags: DWordAcc (3), NoLock (0), WriteAsZeros (2 << 5). */
#define AML_FIELD_DWORD_ZEROS 0x43
#define AML_ROOT       0x5c
#define AML_DUAL_NAME  0x2e
#define AML_MULTI_NAME 0x2f

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

static int aml_reserve(struct aml *a, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (a->err)
		return a->err;
	if (a->len + n <= a->cap)
		return 0;
	cap = a->cap ? a->cap : 256;
	while (cap < a->len + n)
		cap *= 2;
	p = realloc(a->buf, cap);
	if (!p)
		return a->err = -ENOMEM;
	a->buf = p;
	a->cap = cap;
	return 0;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (aml_reserve(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned int n)
{
	uint8_t b[8];
	unsigned int i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n);
}

/* Insert n bytes at offset at (used to place a PkgLength before contents). */
static void aml_insert(struct aml *a, size_t at, const uint8_t *p, size_t n)
{
	if (aml_reserve(a, n))
		return;
	memmove(a->buf + at + n, a->buf + at, a->len - at);
	memcpy(a->buf + at, p, n);
	a->len += n;
}

static int valid_seg(const char *s)
{
	int i;

	for (i = 0; i < 4; i++) {
		char c = s[i];

		if (!(isupper((unsigned char)c) || c == '_' || (i && isdigit((unsigned char)c))))
			return 0;
	}
	return 1;
}

void aml_name(struct aml *a, const char *path)
{
	size_t n, segs, i;

	if (*path == '\\') {
		aml_byte(a, AML_ROOT);
		path++;
	}
	n = strlen(path);
	/* Segments are 4 characters joined by dots: n = 5 * segs - 1. */
	if (n == 0 || (n + 1) % 5 || (n + 1) / 5 > 255) {
		a->err = a->err ? a->err : -EINVAL;
		return;
	}
	segs = (n + 1) / 5;
	for (i = 0; i < segs; i++) {
		if (!valid_seg(path + 5 * i) || (i + 1 < segs && path[5 * i + 4] != '.')) {
			a->err = a->err ? a->err : -EINVAL;
			return;
		}
	}
	if (segs == 2) {
		aml_byte(a, AML_DUAL_NAME);
	} else if (segs > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, (uint8_t)segs);
	}
	for (i = 0; i < segs; i++)
		aml_bytes(a, path + 5 * i, 4);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_ONE);
	} else if (v <= 0xff) {
		aml_byte(a, AML_BYTE);
		aml_le(a, v, 1);
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD);
		aml_le(a, v, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(a, AML_DWORD);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD);
		aml_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, AML_STRING);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint16_t vendor, product = 0;
	int i;

	if (strlen(id) != 7 || !isupper((unsigned char)id[0]) || !isupper((unsigned char)id[1]) ||
	    !isupper((unsigned char)id[2])) {
		a->err = a->err ? a->err : -EINVAL;
		return;
	}
	vendor = (uint16_t)((id[0] - '@') << 10 | (id[1] - '@') << 5 | (id[2] - '@'));
	for (i = 3; i < 7; i++) {
		int h = hexval(id[i]);

		if (h < 0) {
			a->err = a->err ? a->err : -EINVAL;
			return;
		}
		product = (uint16_t)(product << 4 | h);
	}
	/* Stored big-endian within the dword: vendor then product. */
	aml_byte(a, AML_DWORD);
	aml_byte(a, (uint8_t)(vendor >> 8));
	aml_byte(a, (uint8_t)vendor);
	aml_byte(a, (uint8_t)(product >> 8));
	aml_byte(a, (uint8_t)product);
}

void aml_name_decl(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME);
	aml_name(a, path);
}

size_t aml_scope_begin(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_SCOPE);
	mark = a->len;
	aml_name(a, path);
	return mark;
}

/* An extended-opcode object with a PkgLength and a name (Device, Field). */
static size_t aml_ext_named_begin(struct aml *a, uint8_t op, const char *path)
{
	size_t mark;

	aml_byte(a, AML_EXT);
	aml_byte(a, op);
	mark = a->len;
	aml_name(a, path);
	return mark;
}

size_t aml_device_begin(struct aml *a, const char *path)
{
	return aml_ext_named_begin(a, AML_DEVICE, path);
}

size_t aml_package_begin(struct aml *a, uint8_t nr_elements)
{
	size_t mark;

	aml_byte(a, AML_PACKAGE);
	mark = a->len;
	aml_byte(a, nr_elements);
	return mark;
}

size_t aml_buffer_begin(struct aml *a)
{
	aml_byte(a, AML_BUFFER);
	return a->len;
}

void aml_buffer_end(struct aml *a, size_t mark)
{
	struct aml size;

	if (a->err)
		return;
	aml_init(&size);
	aml_integer(&size, a->len - mark);
	if (size.err) {
		a->err = size.err;
		return;
	}
	aml_insert(a, mark, size.buf, size.len);
	aml_free(&size);
	aml_end(a, mark);
}

void aml_end(struct aml *a, size_t mark)
{
	uint8_t enc[4];
	size_t body, total;
	unsigned int n, i;

	if (a->err)
		return;
	body = a->len - mark;
	/* PkgLength counts its own bytes: 1 byte up to 63, else 2..4 bytes of 4+8k bits. */
	if (body + 1 <= 0x3f) {
		enc[0] = (uint8_t)(body + 1);
		aml_insert(a, mark, enc, 1);
		return;
	}
	for (n = 2; n <= 4; n++) {
		total = body + n;
		if (total < (1UL << (4 + 8 * (n - 1))))
			break;
	}
	if (n > 4) {
		a->err = -E2BIG;
		return;
	}
	enc[0] = (uint8_t)((n - 1) << 6 | (total & 0xf));
	for (i = 1; i < n; i++)
		enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	aml_insert(a, mark, enc, n);
}

unsigned int aml_pkglen_decode(const uint8_t *p, size_t n, uint32_t *len)
{
	unsigned int follow, i;
	uint32_t v;

	if (n < 1)
		return 0;
	follow = p[0] >> 6;
	if (!follow) {
		*len = p[0] & 0x3f;
		return 1;
	}
	if (p[0] & 0x30 || n < follow + 1)
		return 0;
	v = p[0] & 0xf;
	for (i = 1; i <= follow; i++)
		v |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	*len = v;
	return follow + 1;
}

size_t aml_method_begin(struct aml *a, const char *path, unsigned int nargs)
{
	size_t mark;

	aml_byte(a, AML_METHOD);
	mark = a->len;
	aml_name(a, path);
	if (nargs > 7)
		a->err = a->err ? a->err : -EINVAL;
	aml_byte(a, (uint8_t)(nargs & 7)); /* MethodFlags: not serialized, sync level 0 */
	return mark;
}

size_t aml_if_begin(struct aml *a)
{
	aml_byte(a, AML_IF);
	return a->len;
}

void aml_store(struct aml *a)
{
	aml_byte(a, AML_STORE);
}

void aml_and(struct aml *a)
{
	aml_byte(a, AML_AND);
}

void aml_no_target(struct aml *a)
{
	aml_byte(a, AML_NULL_NAME);
}

void aml_notify(struct aml *a)
{
	aml_byte(a, AML_NOTIFY);
}

void aml_local(struct aml *a, unsigned int n)
{
	if (n > 7)
		a->err = a->err ? a->err : -EINVAL;
	aml_byte(a, (uint8_t)(AML_LOCAL0 + (n & 7)));
}

void aml_arg(struct aml *a, unsigned int n)
{
	if (n > 6)
		a->err = a->err ? a->err : -EINVAL;
	aml_byte(a, (uint8_t)(AML_ARG0 + (n > 6 ? 0 : n)));
}

void aml_opregion_io(struct aml *a, const char *name, uint16_t base, uint16_t len)
{
	aml_byte(a, AML_EXT);
	aml_byte(a, AML_OPREGION);
	aml_name(a, name);
	aml_byte(a, AML_SYSTEM_IO);
	aml_integer(a, base);
	aml_integer(a, len);
}

size_t aml_field_begin(struct aml *a, const char *region)
{
	size_t mark = aml_ext_named_begin(a, AML_FIELD, region);

	aml_byte(a, AML_FIELD_DWORD_ZEROS);
	return mark;
}

void aml_field_unit(struct aml *a, const char *name, uint32_t bits)
{
	/* NamedField: a bare NameSeg, then the width in PkgLength's encoding (not counting
	 * its own bytes); units here are registers, under 4096 bits. */
	if (strlen(name) != 4 || !valid_seg(name) || !bits || bits >= 4096) {
		a->err = a->err ? a->err : -EINVAL;
		return;
	}
	aml_bytes(a, name, 4);
	if (bits < 0x40) {
		aml_byte(a, (uint8_t)bits);
	} else {
		aml_byte(a, (uint8_t)(0x40 | (bits & 0xf)));
		aml_byte(a, (uint8_t)(bits >> 4));
	}
}

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(a, 0x47); /* small item: I/O port, 7 bytes */
	aml_byte(a, 0x01); /* 16-bit decode */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_byte(a, align);
	aml_byte(a, len);
}

void aml_res_irq(struct aml *a, uint16_t mask)
{
	aml_byte(a, 0x22); /* small item: IRQ, 2 bytes (edge, active high) */
	aml_le(a, mask, 2);
}

/* Large word address space descriptor: a bridge window the bridge produces. */
static void aml_res_word(struct aml *a, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	aml_byte(a, 0x88);
	aml_le(a, 13, 2);
	aml_byte(a, type);
	aml_byte(a, 0x0c); /* producer, min and max fixed, positive decode */
	aml_byte(a, tflags);
	aml_le(a, 0, 2); /* granularity */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_le(a, 0, 2); /* translation */
	aml_le(a, (uint32_t)max - min + 1, 2);
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_word(a, 2, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_word(a, 1, 3 /* entire range */, min, max);
}

void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max)
{
	aml_byte(a, 0x87);
	aml_le(a, 23, 2);
	aml_byte(a, 0);	   /* memory */
	aml_byte(a, 0x0c); /* producer, min and max fixed */
	aml_byte(a, 0x01); /* read-write, non-cacheable */
	aml_le(a, 0, 4);
	aml_le(a, min, 4);
	aml_le(a, max, 4);
	aml_le(a, 0, 4);
	aml_le(a, (uint64_t)max - min + 1, 4);
}

void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len)
{
	aml_byte(a, 0x86);
	aml_le(a, 9, 2);
	aml_byte(a, 0x01); /* read-write */
	aml_le(a, base, 4);
	aml_le(a, len, 4);
}

void aml_res_end(struct aml *a)
{
	aml_byte(a, 0x79); /* end tag; checksum 0 means "treat as valid" */
	aml_byte(a, 0);
}
