/* SPDX-License-Identifier: MIT */
/* One user's access to one file through its POSIX access ACL (acl.c). */
#ifndef PLINTH_DAEMON_ACL_H
#define PLINTH_DAEMON_ACL_H

#include <stdbool.h>
#include <sys/types.h>

/* Let uid read (and write, if write) path, whatever its mode says: an ACL entry of
 * its own, replacing one it had. 0 or -errno (-EOPNOTSUPP: no ACLs on the file's
 * filesystem). */
int pd_acl_grant(const char *path, uid_t uid, bool write);
/* Take uid's entry away (none: nothing changes); the last one gone, path's mode is
 * what it was before the first grant. 0 or -errno. */
int pd_acl_revoke(const char *path, uid_t uid);

#endif
