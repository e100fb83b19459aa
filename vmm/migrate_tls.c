// SPDX-License-Identifier: MIT
/* The migration channel: TLS 1.3 with a pre-shared key (see migrate_tls.h). */
#include "migrate_tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "dynlib.h"
#include "keyfile.h"
#include "log.h"
#include "util.h"

/*
 * GnuTLS rather than OpenSSL: libvncserver (the display) and plinthd's libmicrohttpd
 * bring GnuTLS into the processes that use them, and a second TLS library was 1.7 MiB
 * of each VM's memory (libcrypto and libssl's pages, 128 MiB guest). It is loaded at run
 * time (common/dynlib.h says why), by mig_tls_new() (before any filter): every call
 * below goes through this table.
 */
#define TLS_FUNCS(X)                                                                               \
	X(gnutls_alert_send_appropriate)                                                           \
	X(gnutls_bye)                                                                              \
	X(gnutls_credentials_set)                                                                  \
	X(gnutls_deinit)                                                                           \
	X(gnutls_handshake)                                                                        \
	X(gnutls_init)                                                                             \
	X(gnutls_kx_get)                                                                           \
	X(gnutls_kx_get_name)                                                                      \
	X(gnutls_priority_deinit)                                                                  \
	X(gnutls_priority_init)                                                                    \
	X(gnutls_priority_set)                                                                     \
	X(gnutls_psk_allocate_client_credentials)                                                  \
	X(gnutls_psk_allocate_server_credentials)                                                  \
	X(gnutls_psk_free_client_credentials)                                                      \
	X(gnutls_psk_free_server_credentials)                                                      \
	X(gnutls_psk_set_client_credentials)                                                       \
	X(gnutls_psk_set_server_credentials_function)                                              \
	X(gnutls_record_recv)                                                                      \
	X(gnutls_record_send)                                                                      \
	X(gnutls_rnd)                                                                              \
	X(gnutls_session_get_ptr)                                                                  \
	X(gnutls_session_set_ptr)                                                                  \
	X(gnutls_strerror)                                                                         \
	X(gnutls_transport_set_int2)                                                               \
	X(gnutls_transport_set_pull_function)                                                      \
	X(gnutls_transport_set_push_function)
static struct {
	TLS_FUNCS(DYNLIB_FIELD)
	gnutls_alloc_function *gnutls_malloc; /* a variable of the library's */
} tls_fn;
static const char *const tls_names[] = { TLS_FUNCS(DYNLIB_NAME) "gnutls_malloc" };
static struct dynlib tls_lib = DYNLIB_INIT(PLINTH_GNUTLS_SONAME, tls_names, tls_fn);
_Static_assert(sizeof(tls_fn) == sizeof(tls_names), "one pointer per name");
#define gnutls_alert_send_appropriate	       (*tls_fn.gnutls_alert_send_appropriate)
#define gnutls_bye			       (*tls_fn.gnutls_bye)
#define gnutls_credentials_set		       (*tls_fn.gnutls_credentials_set)
#define gnutls_deinit			       (*tls_fn.gnutls_deinit)
#define gnutls_handshake		       (*tls_fn.gnutls_handshake)
#define gnutls_init			       (*tls_fn.gnutls_init)
#define gnutls_kx_get			       (*tls_fn.gnutls_kx_get)
#define gnutls_kx_get_name		       (*tls_fn.gnutls_kx_get_name)
#define gnutls_priority_deinit		       (*tls_fn.gnutls_priority_deinit)
#define gnutls_priority_init		       (*tls_fn.gnutls_priority_init)
#define gnutls_priority_set		       (*tls_fn.gnutls_priority_set)
#define gnutls_psk_allocate_client_credentials (*tls_fn.gnutls_psk_allocate_client_credentials)
#define gnutls_psk_allocate_server_credentials (*tls_fn.gnutls_psk_allocate_server_credentials)
#define gnutls_psk_free_client_credentials     (*tls_fn.gnutls_psk_free_client_credentials)
#define gnutls_psk_free_server_credentials     (*tls_fn.gnutls_psk_free_server_credentials)
#define gnutls_psk_set_client_credentials      (*tls_fn.gnutls_psk_set_client_credentials)
#define gnutls_psk_set_server_credentials_function                                                 \
	(*tls_fn.gnutls_psk_set_server_credentials_function)
#define gnutls_record_recv		   (*tls_fn.gnutls_record_recv)
#define gnutls_record_send		   (*tls_fn.gnutls_record_send)
#define gnutls_rnd			   (*tls_fn.gnutls_rnd)
#define gnutls_session_get_ptr		   (*tls_fn.gnutls_session_get_ptr)
#define gnutls_session_set_ptr		   (*tls_fn.gnutls_session_set_ptr)
#define gnutls_strerror			   (*tls_fn.gnutls_strerror)
#define gnutls_transport_set_int2	   (*tls_fn.gnutls_transport_set_int2)
#define gnutls_transport_set_pull_function (*tls_fn.gnutls_transport_set_pull_function)
#define gnutls_transport_set_push_function (*tls_fn.gnutls_transport_set_push_function)
#define gnutls_malloc			   (*tls_fn.gnutls_malloc)

struct mig_tls {
	gnutls_psk_client_credentials_t client_cred;
	gnutls_psk_server_credentials_t server_cred;
	gnutls_priority_t prio;
	bool server;
	unsigned char key[MIG_TLS_KEY_MAX];
	unsigned int key_len;
};

struct mig_tls_conn {
	gnutls_session_t s;
};

/* The key in path into t->key. 0 or -errno after one line. */
static int read_key(struct mig_tls *t, const char *path)
{
	size_t len;
	int ret;

	ret = keyfile_read_hex("--migrate-psk", path, t->key, MIG_TLS_KEY_MIN, MIG_TLS_KEY_MAX,
			       &len);
	if (ret)
		return ret;
	t->key_len = (unsigned int)len;
	return 0;
}

/* The server's key for the identity the client names: ours, for our one identity only. */
static int server_psk(gnutls_session_t s, const char *identity, gnutls_datum_t *key)
{
	const struct mig_tls *t = gnutls_session_get_ptr(s);

	if (!identity || strcmp(identity, MIG_TLS_IDENTITY))
		return -1;
	key->data = gnutls_malloc(t->key_len);
	if (!key->data)
		return -1;
	memcpy(key->data, t->key, t->key_len);
	key->size = t->key_len;
	return 0;
}

/*
 * TLS 1.3 only; the PSK with (EC)DHE (psk_dhe_ke: a stolen key does not decrypt past
 * streams), never plain PSK; AES-128-GCM or ChaCha20-Poly1305, both SHA-256 as the key's
 * binder. The client's order decides: AES-GCM first where the CPU has AES-NI and
 * carry-less multiply, ChaCha20 first where it has not (several times faster then, e.g.
 * in an emulated host).
 */
#define MIG_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK:-CIPHER-ALL:"

static const char *priorities(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul"))
		return MIG_TLS_PRIORITY "+AES-128-GCM:+CHACHA20-POLY1305";
	return MIG_TLS_PRIORITY "+CHACHA20-POLY1305:+AES-128-GCM";
}

struct mig_tls *mig_tls_new(const char *psk_file, bool server)
{
	struct mig_tls *t = calloc(1, sizeof(*t));
	gnutls_datum_t key;
	unsigned char seed[16];
	int rc;

	if (!t) {
		log_error("out of memory");
		return NULL;
	}
	if (dynlib_load(&tls_lib)) {
		free(t);
		return NULL;
	}
	t->server = server;
	if (read_key(t, psk_file)) {
		mig_tls_free(t); /* nothing allocated yet but t: freed with its key wiped */
		return NULL;
	}
	rc = gnutls_priority_init(&t->prio, priorities(), NULL);
	if (rc < 0)
		goto out_tls;
	if (server) {
		rc = gnutls_psk_allocate_server_credentials(&t->server_cred);
		if (rc < 0)
			goto out_tls;
		gnutls_psk_set_server_credentials_function(t->server_cred, server_psk);
	} else {
		rc = gnutls_psk_allocate_client_credentials(&t->client_cred);
		if (rc < 0)
			goto out_tls;
		key = (gnutls_datum_t){ .data = t->key, .size = t->key_len };
		rc = gnutls_psk_set_client_credentials(t->client_cred, MIG_TLS_IDENTITY, &key,
						       GNUTLS_PSK_KEY_RAW);
		if (rc < 0)
			goto out_tls;
	}
	/* The generator started now, while its sources can still be opened. */
	rc = gnutls_rnd(GNUTLS_RND_RANDOM, seed, sizeof(seed));
	if (rc < 0)
		goto out_tls;
	return t;

out_tls:
	log_error("--migrate-psk: cannot set up TLS: %s", gnutls_strerror(rc));
	mig_tls_free(t);
	return NULL;
}

void mig_tls_free(struct mig_tls *t)
{
	if (!t)
		return;
	if (t->client_cred)
		gnutls_psk_free_client_credentials(t->client_cred);
	if (t->server_cred)
		gnutls_psk_free_server_credentials(t->server_cred);
	if (t->prio)
		gnutls_priority_deinit(t->prio);
	explicit_bzero(t, sizeof(*t));
	free(t);
}

/* A failed GnuTLS call (rc < 0) as -errno, with its reason in err if given. */
static int tls_failure(int rc, int saved_errno, char *err, size_t errlen)
{
	const char *why = gnutls_strerror(rc);
	int ret;

	switch (rc) {
	case GNUTLS_E_AGAIN:
		ret = -ETIMEDOUT;
		why = "timed out";
		break;
	case GNUTLS_E_PREMATURE_TERMINATION:
		ret = -ECONNRESET;
		why = "connection closed";
		break;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		ret = saved_errno ? -saved_errno : -ECONNRESET;
		why = saved_errno ? strerror(saved_errno) : "connection closed";
		break;
	default:
		ret = -EPROTO;
		break;
	}
	if (err)
		snprintf(err, errlen, "%s", why ? why : "TLS error");
	return ret;
}

/*
 * The channel's bytes go through read(2) and write(2) on the socket, not GnuTLS's default
 * recv/send: they are in every filter's base section, and /proc/PID/io counts them (the
 * migration tests watch a destination's rchar to cut a stream in its middle).
 */
static ssize_t fd_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	return read((int)(intptr_t)p, buf, len);
}

static ssize_t fd_push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	return write((int)(intptr_t)p, buf, len);
}

struct mig_tls_conn *mig_tls_handshake(struct mig_tls *t, int fd, char *err, size_t errlen)
{
	struct mig_tls_conn *c = calloc(1, sizeof(*c));
	gnutls_kx_algorithm_t kx;
	char why[128];
	int rc;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rc = gnutls_init(&c->s, (t->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_TICKETS);
	if (rc < 0) {
		c->s = NULL;
		goto out_setup;
	}
	gnutls_session_set_ptr(c->s, t);
	rc = gnutls_priority_set(c->s, t->prio);
	if (rc >= 0)
		rc = gnutls_credentials_set(c->s, GNUTLS_CRD_PSK,
					    t->server ? (void *)t->server_cred : (void *)t->client_cred);
	if (rc < 0)
		goto out_setup;
	gnutls_transport_set_int(c->s, fd);
	gnutls_transport_set_pull_function(c->s, fd_pull);
	gnutls_transport_set_push_function(c->s, fd_push);
	do {
		errno = 0;
		rc = gnutls_handshake(c->s);
	} while (rc == GNUTLS_E_INTERRUPTED);
	if (rc < 0) {
		tls_failure(rc, errno, why, sizeof(why));
		/* GnuTLS leaves the alert to us: without it the peer waits for its timeout. */
		gnutls_alert_send_appropriate(c->s, rc);
		/* A key mismatch shows as a failed decryption, a bad binder or a refused PSK. */
		snprintf(err, errlen, "TLS handshake failed (%s): the peer does not hold this "
			 "cluster's migration key, or is not plinth", why);
		goto out_free;
	}
	kx = gnutls_kx_get(c->s);
	if (kx != GNUTLS_KX_ECDHE_PSK && kx != GNUTLS_KX_DHE_PSK) {
		snprintf(err, errlen, "TLS handshake gave key exchange %s, not (EC)DHE with the key",
			 gnutls_kx_get_name(kx) ?: "?");
		goto out_free;
	}
	return c;

out_setup:
	snprintf(err, errlen, "cannot set up a TLS session: %s", gnutls_strerror(rc));
out_free:
	if (c->s)
		gnutls_deinit(c->s);
	free(c);
	return NULL;
}

static long io_read(void *opaque, void *buf, size_t len)
{
	struct mig_tls_conn *c = opaque;
	ssize_t n;

	do {
		errno = 0;
		n = gnutls_record_recv(c->s, buf, len);
	} while (n == GNUTLS_E_INTERRUPTED);
	/* 0: the peer's close_notify, the end of the stream. */
	return n >= 0 ? n : tls_failure((int)n, errno, NULL, 0);
}

static long io_write(void *opaque, const void *buf, size_t len)
{
	struct mig_tls_conn *c = opaque;
	ssize_t n;

	do {
		errno = 0;
		n = gnutls_record_send(c->s, buf, len); /* at most one record's worth */
	} while (n == GNUTLS_E_INTERRUPTED);
	if (n > 0)
		return n;
	return n < 0 ? tls_failure((int)n, errno, NULL, 0) : -EPIPE;
}

void mig_tls_io(struct mig_tls_conn *c, struct state_io *io)
{
	io->read = io_read;
	io->write = io_write;
	io->opaque = c;
}

int mig_tls_send(struct mig_tls_conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	long n;

	while (len) {
		n = io_write(c, p, len);
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mig_tls_recv(struct mig_tls_conn *c, void *buf, size_t len)
{
	uint8_t *p = buf;
	long n;

	while (len) {
		n = io_read(c, p, len);
		if (n <= 0)
			return n ? (int)n : -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void mig_tls_close(struct mig_tls_conn *c)
{
	if (!c)
		return;
	gnutls_bye(c->s, GNUTLS_SHUT_WR); /* best effort: the stream's own "end" section counts */
	gnutls_deinit(c->s);
	free(c);
}
