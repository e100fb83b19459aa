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
 * written atomically (a temporary file renamed over it) or, through the file opened at
 * start-up, rewritten in place.
 *
 * The ownership epoch (docs/cluster.md, rule 3): a VMM started with --epoch N[,vm=ID]
 * (plinthd passes the inventory's epoch of the VM and its uuid) records "epoch=N vm=ID"
 * on a second line and refuses to start, restart after a guest reset, resume, or take
 * the disks over in a migration while a record of the same VM holds a higher epoch:
 * the owner has changed since (an HA restart or a migration elsewhere), and this VMM
 * is a stale copy on a host that did not hear of it. A VMM without --epoch checks
 * nothing and keeps the epoch it found. Record (at most LEASE_RECORD_MAX bytes):
 *   OWNER\n                      old and epoch-less records: epoch 0, no VM
 *   OWNER\nepoch=N[ vm=ID]\n     OWNER printable ASCII, N decimal, ID [A-Za-z0-9._-]
 *   OWNER\nepoch=N[ vm=ID][ renew=C]\n   C: the holder's renewal count (rule 4)
 * Anything else (a torn in-place rewrite, another program's bytes) is refused by a VMM
 * that presents an epoch; an empty file is no record.
 *
 * The renewed lease (docs/cluster.md, rule 4, after sanlock's delta leases): a VMM
 * with --epoch rewrites its records every LEASE_RENEW_MS with the count going up
 * (lease_renew), and pauses its guest when it could not for LEASE_LOST_MS. A VMM about
 * to start a guest whose record was renewed by a VMM of another host watches it for
 * LEASE_WATCH_MS first (lease_watch) and refuses if it moved: that VMM is alive and
 * its guest may write. Unmoved for that long, its holder has paused itself, or is gone.
 * Only time intervals each side measures itself count, never the two hosts' clocks.
 */
#ifndef PLINTH_VMM_LEASE_H
#define PLINTH_VMM_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm.h"

#define LEASE_OWNER_MAX 160
#define LEASE_VM_MAX	64  /* the VM an epoch counts for, NUL included */
#define LEASE_RECORD_MAX 256

/* One lease record, parsed. */
struct lease_rec {
	char owner[LEASE_OWNER_MAX]; /* the VMM that runs the guest; "" for no record */
	uint64_t epoch;              /* its ownership epoch; 0: none recorded */
	char vm[LEASE_VM_MAX];       /* the VM that epoch counts for; "" for any */
	uint64_t renew;              /* the holder's renewal count */
	bool renewed;                /* a renew= field: its holder renews it */
};

#define LEASE_RENEW_MS 1000 /* a running VMM rewrites its records this often, */
#define LEASE_LOST_MS  4000 /* pauses its guest when it could not for this long; */
#define LEASE_WATCH_MS 6000 /* a VMM of another host watches them this long first */

/*
 * Parse a record of len bytes (not NUL-terminated; hostile: any bytes) into rec.
 * 0, or -EINVAL if it is not a record plinth writes (rec then zeroed).
 */
int lease_parse(const char *buf, size_t len, struct lease_rec *rec);
/* rec as a record into out. Its length, or -ENAMETOOLONG. */
int lease_format(const struct lease_rec *rec, char *out, size_t len);
/*
 * Parse --epoch's argument "N" or "N,vm=ID" into cfg's lease_epoch fields (the ID
 * points into arg). 0, or -EINVAL (the caller says so).
 */
int lease_parse_epoch_opt(const char *arg, struct vm_config *cfg);

/*
 * This process's identity, "HOST pid=N start=NS", into out. Call at start-up:
 * the host name needs uname, which the filters refuse. 0 or -errno.
 */
int lease_owner_self(char *out, size_t len);
/*
 * Open the lease record of every writable disk of cfg now, creating it empty if
 * there is none, into fds (by device index; -1 where none or on a failure, which is
 * logged: that disk's lease then goes by path). Call at start-up, before --jail:
 * lease_take, lease_fence and lease_check then use cfg->lease_fds, never a path, so
 * they work inside the jail and under the main thread's narrowed filter.
 * lease_close() closes them. An empty record means "no record".
 */
void lease_open(const struct vm_config *cfg, int fds[VM_MAX_DEVICES]);
void lease_close(int fds[VM_MAX_DEVICES]);
/*
 * With --epoch (cfg->lease_epoch_set): 0 if no writable disk's record holds a higher
 * epoch of the same VM; -ESTALE, or -EINVAL for a record that is not one, with one
 * line in err naming the disk and what this VMM was about to do (doing: "starting",
 * "resuming"...). Without --epoch: 0.
 */
int lease_fence(const struct vm_config *cfg, const char *doing, char *err, size_t errlen);
/*
 * Record owner (and with --epoch, the epoch and its VM; without, the epoch each
 * record held) in the lease of every writable disk of cfg, through cfg->lease_fds,
 * rewritten in place, where open, else a temporary file renamed over it. First
 * lease_fence(cfg, doing): refused as it says, nothing written. Write failures are
 * logged, not fatal (0).
 */
int lease_take(const struct vm_config *cfg, const char *owner, const char *doing, char *err,
	       size_t errlen);
/*
 * lease_take for a disk d hot-added to cfg's VM: its record opened into *lfd where
 * cfg has open records (-1 otherwise, or on a failure, logged), fenced under --epoch
 * (-ESTALE or -EINVAL with one line in err: *lfd closed, nothing written), then owner
 * recorded. 0 for a read-only disk or another kind of device (*lfd -1).
 */
int lease_add(const struct vm_config *cfg, const struct dev_config *d, const char *owner,
	      int *lfd, char *err, size_t errlen);
/*
 * 0 if the lease of every writable disk of cfg names owner or does not exist (or
 * cannot be read); -EBUSY with a one-line reason (the disk and the other owner, or a
 * record that is not one) in err otherwise.
 */
int lease_check(const struct vm_config *cfg, const char *owner, char *err, size_t errlen);
/*
 * Rule 4, the running VMM's side (with --epoch; disks with an open record): check as
 * lease_fence(cfg, "running") does (-ESTALE, one line in err), then rewrite each record
 * with owner, this VMM's epoch and renewal count. 0, or -errno with one line in err
 * when a record could not be read or written (the caller counts how long).
 */
int lease_renew(const struct vm_config *cfg, const char *owner, uint64_t count, char *err,
		size_t errlen);
/*
 * Rule 4, a starting VMM's side (with --epoch): every writable disk whose record of this
 * VM, at this epoch or lower, was renewed by a VMM whose host is not owner's is watched
 * for ms; 0 if none moved, -EBUSY with one line in err if one did (its holder is alive).
 */
int lease_watch(const struct vm_config *cfg, const char *owner, unsigned int ms, char *err,
		size_t errlen);
/* The lease file of image path, into out. 0 or -ENAMETOOLONG. */
int lease_path(const char *image, char *out, size_t len);

#endif
