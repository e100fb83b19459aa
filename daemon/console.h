/* SPDX-License-Identifier: MIT */
/*
 * A VM's serial console as a byte stream both ways, for whoever serves it: the raw
 * stream of GET /v1/vms/{name}/console with "Upgrade: plinth-console" (server.c,
 * pd_console_pump) and a WebSocket of the web console (framing its own messages
 * around pd_console_read and pd_console_write).
 *
 * Output is the VM's console log (RUNDIR/console.log: plinth's stdout and stderr,
 * appended across restarts): an attachment starts with its last 64 KiB (the
 * scrollback) and then follows what is appended, woken by inotify. Input goes to
 * RUNDIR/console.in, the FIFO plinth reads as its stdin, opened anew for each write
 * (a restarted VM has a new FIFO). An attachment holds no lock and touches nothing
 * of struct plinthd after pd_console_open: any thread may use it, one at a time.
 */
#ifndef PLINTH_DAEMON_CONSOLE_H
#define PLINTH_DAEMON_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct plinthd;
struct pd_reply;

#define PD_CONSOLE_SCROLLBACK (64 * 1024)
/* The Upgrade token of the raw stream (GET /v1/vms/{name}/console). */
#define PD_CONSOLE_PROTOCOL "plinth-console"
/* ... and of a display's RFB bytes (GET /v1/vms/{name}/display; the control socket and
 * other hosts of the cluster only). */
#define PD_DISPLAY_PROTOCOL "plinth-display"

/* One attachment to a VM's console. */
struct pd_console;

/* Attach to VM name's console (under pd->lock). The stream starts at the log's last
 * PD_CONSOLE_SCROLLBACK bytes. The VM need not run (its log so far, then what a
 * later start writes). Owned by the caller: pd_console_close. NULL with r set: 404
 * no such VM, 500 out of memory or no inotify. */
struct pd_console *pd_console_open(struct plinthd *pd, const char *name, struct pd_reply *r);

/* An attachment that is a byte stream relayed from elsewhere: sock, a connected
 * stream socket, owned from here on (the other end relays another host's console:
 * cluster_forward.c). Reads and writes below go to it without blocking; its end reads
 * as -ECONNRESET. NULL if out of memory (sock closed). */
struct pd_console *pd_console_of_stream(int sock);

/* An fd that becomes readable when more output may be there (for the caller's poll;
 * then call pd_console_read). Owned by c. */
int pd_console_fd(const struct pd_console *c);

/* The next output bytes into buf, without blocking: >0 bytes, 0 none now, -EPIPE
 * when the VM was deleted (its log is gone: the stream ends), -ECONNRESET when a
 * relayed stream ended, -errno on error. */
ssize_t pd_console_read(struct pd_console *c, void *buf, size_t size);

/* Bytes typed to the guest's serial console: the count written (maybe short),
 * -ENXIO when the VM is not running (no reader), -EAGAIN when the guest is not
 * reading (the FIFO is full), -errno else. */
ssize_t pd_console_write(struct pd_console *c, const void *buf, size_t len);

/* Copy both ways between c and the connected stream socket sock (bytes unframed)
 * until the peer closes, the VM is deleted or *quit is set (looked at every 200 ms).
 * Input typed while the VM is not running is dropped. 0 or -errno. */
int pd_console_pump(struct pd_console *c, int sock, const volatile bool *quit);

void pd_console_close(struct pd_console *c);

#endif
