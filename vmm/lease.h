/* SPDX-License-Identifier: MIT */
/*
 * Disk leases: who runs the guest of a disk image, recorded next to the image
 * (IMAGE.lease, one line). Image locks (flock) keep two processes of one host from
 * writing an image at once, but flock does not hold across hosts on every shared
 * filesystem, and a migration hands the images from one host to another. So:
 *   - a VMM that starts a guest on its disks (run, restore) writes its identity
 *     into each writable disk's lease;
 *   - a migration's destination writes its own, after it took the images over and
 *     before it acks (a destination that may run the guest has always moved it);
 *   - a source whose migration outcome is unknown takes the guest back only if
 *     every lease still names it (lease_check): otherwise the destination took the
 *     disks and may be running the guest.
 * The record is advisory (whoever can write the directory can change it) and is
 * written atomically (a temporary file renamed over it).
 */
#ifndef PLINTH_VMM_LEASE_H
#define PLINTH_VMM_LEASE_H

#include <stddef.h>

#include "vm.h"

#define LEASE_OWNER_MAX 160

/*
 * This process's identity, "HOST pid=N start=NS", into out. Call at start-up:
 * the host name needs uname, which the filters refuse. 0 or -errno.
 */
int lease_owner_self(char *out, size_t len);
/*
 * Open the lease record of every writable disk of cfg now, creating it empty if
 * there is none, into fds (by device index; -1 where none or on a failure, which is
 * logged: that disk's lease then goes by path). Call at start-up, before --jail:
 * lease_take and lease_check then use cfg->lease_fds, never a path, so they work
 * inside the jail and under the main thread's narrowed filter. lease_close() closes
 * them. An empty record means "no record".
 */
void lease_open(const struct vm_config *cfg, int fds[VM_MAX_DEVICES]);
void lease_close(int fds[VM_MAX_DEVICES]);
/*
 * Record owner in the lease of every writable disk of cfg (through cfg->lease_fds,
 * rewritten in place, where open; else a temporary file renamed over it). Failures
 * are logged, not fatal.
 */
void lease_take(const struct vm_config *cfg, const char *owner);
/*
 * 0 if the lease of every writable disk of cfg names owner or does not exist;
 * -EBUSY with a one-line reason (the disk and the other owner) in err otherwise.
 */
int lease_check(const struct vm_config *cfg, const char *owner, char *err, size_t errlen);
/* The lease file of image path, into out. 0 or -ENAMETOOLONG. */
int lease_path(const char *image, char *out, size_t len);

#endif
