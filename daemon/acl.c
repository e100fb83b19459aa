// SPDX-License-Identifier: MIT
/*
 * One user's access to one file through the file's POSIX access ACL (libacl): what
 * lets a jailed VMM, running as its own uid with no capability, open an image that
 * plinthd hot-plugs into it (hotplug.c), and nothing more. Other users' and groups'
 * entries are kept; once the last named entry goes, so does the mask, and the kernel
 * folds what is left back into the file's mode: the mode before the first grant.
 */
#include "acl.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/acl.h>
#include <acl/libacl.h>

/* uid's ACL_USER entry in a (*e), or false. */
static bool find_user(acl_t a, uid_t uid, acl_entry_t *e)
{
	int id;

	for (id = ACL_FIRST_ENTRY; acl_get_entry(a, id, e) == 1; id = ACL_NEXT_ENTRY) {
		acl_tag_t tag;
		uid_t *q;
		bool same;

		if (acl_get_tag_type(*e, &tag) || tag != ACL_USER)
			continue;
		q = acl_get_qualifier(*e);
		same = q && *q == uid;
		acl_free(q);
		if (same)
			return true;
	}
	return false;
}

/* a's first entry of tag (*e), or false. */
static bool find_tag(acl_t a, acl_tag_t want, acl_entry_t *e)
{
	int id;

	for (id = ACL_FIRST_ENTRY; acl_get_entry(a, id, e) == 1; id = ACL_NEXT_ENTRY) {
		acl_tag_t tag;

		if (!acl_get_tag_type(*e, &tag) && tag == want)
			return true;
	}
	return false;
}

static int fail(acl_t a)
{
	int err = errno == ENOTSUP ? EOPNOTSUPP : errno ? errno : EIO;

	acl_free(a);
	return -err;
}

int pd_acl_grant(const char *path, uid_t uid, bool write)
{
	acl_t a = acl_get_file(path, ACL_TYPE_ACCESS); /* from the mode when there is none */
	acl_permset_t p;
	acl_entry_t e;

	if (!a)
		return -(errno == ENOTSUP ? EOPNOTSUPP : errno);
	if (!find_user(a, uid, &e) &&
	    (acl_create_entry(&a, &e) || acl_set_tag_type(e, ACL_USER) || acl_set_qualifier(e, &uid)))
		return fail(a);
	if (acl_get_permset(e, &p) || acl_clear_perms(p) || acl_add_perm(p, ACL_READ) ||
	    (write && acl_add_perm(p, ACL_WRITE)) || acl_set_permset(e, p) || acl_calc_mask(&a) ||
	    acl_set_file(path, ACL_TYPE_ACCESS, a))
		return fail(a);
	acl_free(a);
	return 0;
}

int pd_acl_revoke(const char *path, uid_t uid)
{
	acl_t a = acl_get_file(path, ACL_TYPE_ACCESS);
	acl_entry_t e;

	if (!a)
		return -(errno == ENOTSUP ? EOPNOTSUPP : errno);
	if (!find_user(a, uid, &e)) {
		acl_free(a);
		return 0;
	}
	if (acl_delete_entry(a, e))
		return fail(a);
	/* The last named entry gone: without the mask too, the ACL is the mode's. */
	if (!find_tag(a, ACL_USER, &e) && !find_tag(a, ACL_GROUP, &e)) {
		if (find_tag(a, ACL_MASK, &e) && acl_delete_entry(a, e))
			return fail(a);
	} else if (acl_calc_mask(&a)) {
		return fail(a);
	}
	if (acl_set_file(path, ACL_TYPE_ACCESS, a))
		return fail(a);
	acl_free(a);
	return 0;
}
