/* SPDX-License-Identifier: MIT */
/*
 * The migration channel's security: TLS 1.3 with a pre-shared key (GnuTLS), so
 * that only a peer holding the cluster's key can send a VM to a destination or
 * receive one from a source, and nobody on the path reads or changes the guest's
 * memory.
 *
 * The key is a file of 64..128 hex digits (32..64 bytes; whitespace ignored),
 * e.g. `openssl rand -hex 32 > key`, readable by root only; the daemon will hand
 * these out. Both sides use the identity "plinth-migration-v1" and refuse any
 * other; TLS 1.3 PSK with (EC)DHE key exchange (psk_dhe_ke), so a stolen key
 * does not decrypt past streams. No certificates are involved.
 *
 * Threads and the sandbox: mig_tls_new() reads the key and makes GnuTLS parse its
 * priorities and start its random generator, so it must run at start-up,
 * before the jail and the seccomp filters; the handshake and the traffic then
 * need only read/write/getrandom, allowed to the main thread's filter (which the
 * migration thread inherits).
 */
#ifndef PLINTH_VMM_MIGRATE_TLS_H
#define PLINTH_VMM_MIGRATE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "state/state.h"

#define MIG_TLS_IDENTITY "plinth-migration-v1"
#define MIG_TLS_KEY_MIN	 32 /* bytes */
#define MIG_TLS_KEY_MAX	 64

struct mig_tls;	     /* a context: the key and the TLS settings of one side */
struct mig_tls_conn; /* one established channel */

/*
 * Read the key in psk_file and build the client's (server false) or server's
 * context. NULL after one line naming the file and what is wrong with it.
 */
struct mig_tls *mig_tls_new(const char *psk_file, bool server);
void mig_tls_free(struct mig_tls *t);

/*
 * Run the handshake on the connected socket fd (not owned; its SO_RCVTIMEO and
 * SO_SNDTIMEO bound it) as t's side. NULL with a one-line reason in err (a wrong
 * key reads "the peer does not hold this cluster's migration key" or the TLS
 * alert).
 */
struct mig_tls_conn *mig_tls_handshake(struct mig_tls *t, int fd, char *err, size_t errlen);
/* A state_io over the channel, for state_reader_new_io()/state_writer_new_io(). */
void mig_tls_io(struct mig_tls_conn *c, struct state_io *io);
/* Whole-buffer send/receive of small messages (the ack): 0 or -errno. */
int mig_tls_send(struct mig_tls_conn *c, const void *buf, size_t len);
int mig_tls_recv(struct mig_tls_conn *c, void *buf, size_t len);
/* Close the TLS session (close_notify, best effort) and free it; fd stays open. */
void mig_tls_close(struct mig_tls_conn *c);

#endif
