/* SPDX-License-Identifier: MIT */
/*
 * virtio devices as the VMM creates them: one call per configured device, in
 * command-line order, each at the PCI slot its config pinned (vmm/devconf.h: addr=,
 * or the next free slot in command-line order, so disks appear to the guest as vda,
 * vdb, ... in the order given). The options are parsed and checked once into typed
 * configs (vmm/devices.c); spec is the canonical key=value list made from them. Every
 * option also takes id= and addr=, which never reach these functions.
 *
 *   --disk path=FILE[,format=raw|qcow2|vhd|vhdx|vmdk][,readonly=on][,serial=ID]
 *          [,backing=on][,backing_dir=DIR]
 *        (repeatable) An image file or block device, through the image library
 *        (plinth-img.h). Without format= the library recognises the header; a
 *        writable file without one is refused, never guessed to be raw. Files the
 *        image names (backing file, parent, extents) are refused unless backing=on
 *        (then only inside FILE's directory) or backing_dir=DIR (or inside DIR).
 *        readonly=on advertises VIRTIO_BLK_F_RO and fails writes. serial is the
 *        GET_ID string (default: the file's name, cut to 20 bytes).
 *   --net tap=IFNAME[,mac=XX:XX:XX:XX:XX:XX]                    (repeatable)
 *        Attaches to (or, with CAP_NET_ADMIN, creates) tap IFNAME. Without mac=,
 *        a locally administered MAC is derived from IFNAME.
 *   --console virtio[,path=FILE]
 *        hvc0 on the VMM's stdin/stdout, or on FILE (a tty, pty or fifo) opened
 *        read-write.
 *   --rng
 *        Bytes from getrandom(2).
 *   --display vnc=unix:PATH|tcp:ADDR:PORT[,width=N,height=N][,password-file=PATH]
 *        A virtio-gpu (gpu.h) shown to VNC viewers, with a virtio-input keyboard and
 *        tablet (input.h) fed by them: vmm/display/vnc.h.
 *   --vsock cid=N,socket=PATH
 *        Firecracker's convention: host-initiated connections connect to the Unix
 *        socket PATH and send "CONNECT <port>\n" (answer "OK <hostport>\n");
 *        guest-initiated connections to port P go to the Unix socket "PATH_P".
 *
 * Each returns 0 or -errno, having logged one line that names the option on
 * error. *out (may be NULL) receives the device, for virtio_pci_free() at exit
 * (which also flushes disks) and for save/restore.
 */
#ifndef PLINTH_VMM_VIRTIO_DEVICES_H
#define PLINTH_VMM_VIRTIO_DEVICES_H

#include "hw/pci.h"
#include "mem.h"

struct virtio_pci;

int virtio_blk_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      struct virtio_pci **out);
/* For a live migration's destination: the image stays the source's (its file opened
 * now, read-write, but the image read-only without locks) until virtio_blk_acquire()
 * takes it over from that file: no path is needed then (inside --jail too). */
int virtio_blk_create_incoming(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
			       struct virtio_pci **out);
/*
 * The path= of a --disk spec, malloc'd into *path (caller frees), whether it says
 * readonly=on, and whether it lets its image name files (backing=on or backing_dir=);
 * readonly and external may be NULL. 0 or -errno.
 */
int virtio_blk_spec_path(const char *spec, char **path, bool *readonly, bool *external);
int virtio_net_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      struct virtio_pci **out);
/* spec: "virtio" or "virtio,path=FILE". */
int virtio_console_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
			  struct virtio_pci **out);
/* spec may be NULL or "" (no options). */
int virtio_rng_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      struct virtio_pci **out);
int virtio_vsock_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
			struct virtio_pci **out);

/* Stop and free a device made by one of the above (flushes a disk). */
void virtio_pci_free(struct virtio_pci *vp);

/*
 * Each device has its own I/O thread, spawned (parked) by
 * virtio_pci_spawn_worker() on the calling thread (the VMM's main thread, after
 * the jail: the functions above create no thread); DRIVER_OK and resets are
 * carried out there, never on a vCPU thread. hook(opaque) runs once on that thread before anything else it does
 * (e.g. sandbox_seccomp_install(SANDBOX_IO)); a failure keeps the device from
 * starting. Call before the guest runs.
 */
void virtio_pci_set_thread_hook(struct virtio_pci *vp, int (*hook)(void *opaque), void *opaque);
/* The same for a device's own other thread (virtio-gpu's display), if it has one. */
void virtio_pci_set_aux_hook(struct virtio_pci *vp, int (*hook)(void *opaque), void *opaque);
/* Spawn the device's parked I/O thread (no-op if it exists). 0 or -errno, logged. */
int virtio_pci_spawn_worker(struct virtio_pci *vp);

#endif
