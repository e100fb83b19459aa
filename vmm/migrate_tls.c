// SPDX-License-Identifier: MIT
/* The migration channel: TLS 1.3 with a pre-shared key (see migrate_tls.h). */
#include "migrate_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "keyfile.h"
#include "log.h"
#include "util.h"

struct mig_tls {
	SSL_CTX *ctx;
	bool server;
	unsigned char key[MIG_TLS_KEY_MAX];
	unsigned int key_len;
};

struct mig_tls_conn {
	SSL *ssl;
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

static const struct mig_tls *tls_of(SSL *ssl)
{
	return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

static unsigned int client_psk(SSL *ssl, const char *hint, char *identity,
			       unsigned int max_identity_len, unsigned char *psk,
			       unsigned int max_psk_len)
{
	const struct mig_tls *t = tls_of(ssl);

	(void)hint;
	if (sizeof(MIG_TLS_IDENTITY) > max_identity_len || t->key_len > max_psk_len)
		return 0;
	memcpy(identity, MIG_TLS_IDENTITY, sizeof(MIG_TLS_IDENTITY));
	memcpy(psk, t->key, t->key_len);
	return t->key_len;
}

static unsigned int server_psk(SSL *ssl, const char *identity, unsigned char *psk,
			       unsigned int max_psk_len)
{
	const struct mig_tls *t = tls_of(ssl);

	if (!identity || strcmp(identity, MIG_TLS_IDENTITY) || t->key_len > max_psk_len)
		return 0;
	memcpy(psk, t->key, t->key_len);
	return t->key_len;
}

/*
 * The PSK callbacks tie the key to SHA-256: AES-128-GCM or ChaCha20-Poly1305. The
 * client's order decides (the server follows it): AES-GCM first where the CPU
 * has AES-NI and carry-less multiply, ChaCha20 first where it has not (several
 * times faster then, e.g. in an emulated host).
 */
static const char *ciphersuites(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul"))
		return "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";
	return "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
}

struct mig_tls *mig_tls_new(const char *psk_file, bool server)
{
	struct mig_tls *t = calloc(1, sizeof(*t));
	unsigned char seed[16];

	if (!t) {
		log_error("out of memory");
		return NULL;
	}
	t->server = server;
	if (read_key(t, psk_file))
		goto out_free;
	t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!t->ctx ||
	    !SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(t->ctx, ciphersuites()) ||
	    !SSL_CTX_set_num_tickets(t->ctx, 0) ||
	    /* Seeded now, while /dev/urandom and the config files can still be opened. */
	    RAND_bytes(seed, sizeof(seed)) != 1) {
		log_error("--migrate-psk: cannot set up TLS: %s",
			  ERR_reason_error_string(ERR_get_error()) ?: "OpenSSL error");
		goto out_ctx;
	}
	SSL_CTX_set_app_data(t->ctx, t);
	if (server)
		SSL_CTX_set_psk_server_callback(t->ctx, server_psk);
	else
		SSL_CTX_set_psk_client_callback(t->ctx, client_psk);
	return t;

out_ctx:
	SSL_CTX_free(t->ctx);
out_free:
	explicit_bzero(t, sizeof(*t));
	free(t);
	return NULL;
}

void mig_tls_free(struct mig_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	explicit_bzero(t, sizeof(*t));
	free(t);
}

/* A failed SSL call as -errno, with its reason in err if given. */
static int ssl_failure(SSL *ssl, int rc, char *err, size_t errlen)
{
	int e = SSL_get_error(ssl, rc), saved = errno;
	unsigned long code = ERR_get_error();
	const char *why = code ? ERR_reason_error_string(code) : NULL;
	int ret;

	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		ret = 0;
		why = "closed by the peer";
		break;
	case SSL_ERROR_SYSCALL:
		ret = saved ? -saved : -ECONNRESET;
		why = saved ? strerror(saved) : "connection closed";
		break;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ret = -ETIMEDOUT;
		why = "timed out";
		break;
	default:
		ret = -EPROTO;
		break;
	}
	ERR_clear_error();
	if (err)
		snprintf(err, errlen, "%s", why ? why : "TLS error");
	return ret;
}

struct mig_tls_conn *mig_tls_handshake(struct mig_tls *t, int fd, char *err, size_t errlen)
{
	struct mig_tls_conn *c = calloc(1, sizeof(*c));
	char why[128];
	int rc;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->ssl = SSL_new(t->ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
		snprintf(err, errlen, "cannot set up a TLS session");
		goto out_free;
	}
	ERR_clear_error();
	rc = t->server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
	if (rc != 1) {
		ssl_failure(c->ssl, rc, why, sizeof(why));
		/* A key mismatch shows as a failed decryption or a refused PSK. */
		snprintf(err, errlen, "TLS handshake failed (%s): the peer does not hold this "
			 "cluster's migration key, or is not plinth", why);
		goto out_free;
	}
	return c;

out_free:
	SSL_free(c->ssl);
	free(c);
	return NULL;
}

static long io_read(void *opaque, void *buf, size_t len)
{
	struct mig_tls_conn *c = opaque;
	int n, chunk = len > INT32_MAX ? INT32_MAX : (int)len;

	ERR_clear_error();
	errno = 0;
	n = SSL_read(c->ssl, buf, chunk);
	return n > 0 ? n : ssl_failure(c->ssl, n, NULL, 0);
}

static long io_write(void *opaque, const void *buf, size_t len)
{
	struct mig_tls_conn *c = opaque;
	int n, chunk = len > INT32_MAX ? INT32_MAX : (int)len;

	ERR_clear_error();
	errno = 0;
	n = SSL_write(c->ssl, buf, chunk);
	if (n > 0)
		return n;
	n = ssl_failure(c->ssl, n, NULL, 0);
	return n ? n : -EPIPE;
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
	ERR_clear_error();
	SSL_shutdown(c->ssl); /* best effort: the stream's own "end" section is what counts */
	ERR_clear_error();
	SSL_free(c->ssl);
	free(c);
}
