// SPDX-License-Identifier: MIT
/*
 * One user's access to one file through the file's POSIX access ACL (the kernel's
 * system.posix_acl_access attribute, in the layout of linux/posix_acl_xattr.h): what
 * lets a jailed VMM, running as its own uid with no capability, open an image that
 * plinthd hot-plugs into it (hotplug.c), and nothing more. Other users' and groups'
 * entries are kept; once the last named entry goes, the attribute goes and the
 * file's mode is what it was before the first grant.
 *
 * The attribute is read from the file: it is bounds-checked (version, size, count)
 * before use.
 */
#include "acl.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>

#define ACL_XATTR "system.posix_acl_access"
#define ACL_MAX	  64 /* entries handled; a file with more is left alone (-E2BIG) */

struct acl_entry {
	unsigned tag, perm;
	uint32_t id;
};

struct acl {
	struct acl_entry e[ACL_MAX];
	size_t n;
};

/* path's ACL into a (host order), or its mode as the three base entries when it has
 * none. 0 or -errno (-EOPNOTSUPP: the filesystem has no ACLs). */
static int acl_read(const char *path, const struct stat *sb, struct acl *a)
{
	char buf[sizeof(struct posix_acl_xattr_header) +
		 ACL_MAX * sizeof(struct posix_acl_xattr_entry)];
	struct posix_acl_xattr_header h;
	ssize_t len = getxattr(path, ACL_XATTR, buf, sizeof(buf));
	size_t i;

	if (len < 0 && errno == ENODATA) {
		a->n = 3;
		a->e[0] = (struct acl_entry){ACL_USER_OBJ, (sb->st_mode >> 6) & 7, ACL_UNDEFINED_ID};
		a->e[1] = (struct acl_entry){ACL_GROUP_OBJ, (sb->st_mode >> 3) & 7, ACL_UNDEFINED_ID};
		a->e[2] = (struct acl_entry){ACL_OTHER, sb->st_mode & 7, ACL_UNDEFINED_ID};
		return 0;
	}
	if (len < 0)
		return errno == ERANGE ? -E2BIG : -errno;
	if ((size_t)len < sizeof(h) || ((size_t)len - sizeof(h)) % sizeof(struct posix_acl_xattr_entry))
		return -EPROTO;
	memcpy(&h, buf, sizeof(h));
	if (le32toh(h.a_version) != POSIX_ACL_XATTR_VERSION)
		return -EPROTO;
	a->n = ((size_t)len - sizeof(h)) / sizeof(struct posix_acl_xattr_entry);
	for (i = 0; i < a->n; i++) {
		struct posix_acl_xattr_entry x;

		memcpy(&x, buf + sizeof(h) + i * sizeof(x), sizeof(x));
		a->e[i] = (struct acl_entry){le16toh(x.e_tag), le16toh(x.e_perm) & 7,
					     le32toh(x.e_id)};
	}
	return 0;
}

static int entry_cmp(const void *x, const void *y)
{
	const struct acl_entry *a = x, *b = y;

	if (a->tag != b->tag)
		return a->tag < b->tag ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* The entry of tag (and id, for ACL_USER and ACL_GROUP) in a, or -1. */
static int find(const struct acl *a, unsigned tag, uint32_t id)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (a->e[i].tag == tag && (tag != ACL_USER && tag != ACL_GROUP ? true
										: a->e[i].id == id))
			return (int)i;
	return -1;
}

static void drop(struct acl *a, int i)
{
	if (i < 0)
		return;
	memmove(&a->e[i], &a->e[i + 1], (a->n - (size_t)i - 1) * sizeof(a->e[0]));
	a->n--;
}

/* Write a to path: its mask recomputed (the union of what the named entries and the
 * owning group get), or, with no named entry left, no attribute and the mode's
 * permission bits from the base entries. 0 or -errno. */
static int acl_write(const char *path, const struct stat *sb, struct acl *a)
{
	char buf[sizeof(struct posix_acl_xattr_header) +
		 ACL_MAX * sizeof(struct posix_acl_xattr_entry)];
	struct posix_acl_xattr_header h = {htole32(POSIX_ACL_XATTR_VERSION)};
	int uo = find(a, ACL_USER_OBJ, 0), go = find(a, ACL_GROUP_OBJ, 0), o = find(a, ACL_OTHER, 0);
	unsigned mask = 0;
	bool named = false;
	size_t i;

	if (uo < 0 || go < 0 || o < 0)
		return -EPROTO; /* not a valid access ACL: leave it */
	for (i = 0; i < a->n; i++) {
		if (a->e[i].tag == ACL_USER || a->e[i].tag == ACL_GROUP || a->e[i].tag == ACL_GROUP_OBJ)
			mask |= a->e[i].perm;
		named |= a->e[i].tag == ACL_USER || a->e[i].tag == ACL_GROUP;
	}
	if (!named) {
		mode_t mode = (sb->st_mode & 07000) | a->e[uo].perm << 6 | a->e[go].perm << 3 |
			      a->e[o].perm;

		if (removexattr(path, ACL_XATTR) < 0 && errno != ENODATA)
			return -errno;
		return chmod(path, mode) < 0 ? -errno : 0;
	}
	drop(a, find(a, ACL_MASK, 0));
	if (a->n >= ACL_MAX)
		return -E2BIG;
	a->e[a->n++] = (struct acl_entry){ACL_MASK, mask, ACL_UNDEFINED_ID};
	qsort(a->e, a->n, sizeof(a->e[0]), entry_cmp);
	memcpy(buf, &h, sizeof(h));
	for (i = 0; i < a->n; i++) {
		struct posix_acl_xattr_entry x = {htole16(a->e[i].tag), htole16(a->e[i].perm),
						  htole32(a->e[i].id)};

		memcpy(buf + sizeof(h) + i * sizeof(x), &x, sizeof(x));
	}
	return setxattr(path, ACL_XATTR, buf, sizeof(h) + a->n * sizeof(struct posix_acl_xattr_entry),
			0) < 0 ? -errno : 0;
}

int pd_acl_grant(const char *path, uid_t uid, bool write)
{
	struct acl *a = malloc(sizeof(*a));
	struct stat sb;
	int ret;

	if (!a)
		return -ENOMEM;
	ret = stat(path, &sb) < 0 ? -errno : acl_read(path, &sb, a);
	if (!ret) {
		drop(a, find(a, ACL_USER, uid));
		if (a->n >= ACL_MAX - 1) {
			ret = -E2BIG;
		} else {
			a->e[a->n++] = (struct acl_entry){ACL_USER, ACL_READ | (write ? ACL_WRITE : 0),
							  uid};
			ret = acl_write(path, &sb, a);
		}
	}
	free(a);
	return ret;
}

int pd_acl_revoke(const char *path, uid_t uid)
{
	struct acl *a = malloc(sizeof(*a));
	struct stat sb;
	int ret, i;

	if (!a)
		return -ENOMEM;
	ret = stat(path, &sb) < 0 ? -errno : acl_read(path, &sb, a);
	i = ret ? -1 : find(a, ACL_USER, uid);
	if (i >= 0) {
		drop(a, i);
		ret = acl_write(path, &sb, a);
	}
	free(a);
	return ret;
}
