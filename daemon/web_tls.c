// SPDX-License-Identifier: MIT
/*
 * The web console's certificate: the operator's (--web-cert, --web-key), or a
 * self-signed one made with GnuTLS on first start and kept in the state directory
 * (DIR/web-cert.pem, DIR/web-key.pem, mode 0600), so that a browser that accepted it
 * once keeps accepting it across restarts.
 */
#include "web.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "log.h"
#include "util.h"

#define CERT_DAYS 825 /* a little over two years */

/* A whole PEM file as a NUL-terminated string (owned). */
static int load_pem(const char *path, char **out)
{
	gnutls_datum_t d = {NULL, 0};
	int ret = gnutls_load_file(path, &d);
	char *s;

	if (ret < 0) {
		log_error("%s: cannot read it (%s)", path, gnutls_strerror(ret));
		return -EIO;
	}
	s = malloc((size_t)d.size + 1);
	if (!s) {
		gnutls_free(d.data);
		return -ENOMEM;
	}
	memcpy(s, d.data, d.size);
	s[d.size] = '\0';
	gnutls_free(d.data);
	*out = s;
	return 0;
}

static int write_datum(const char *path, const gnutls_datum_t *d, mode_t mode)
{
	return write_file_atomic(path, d->data, d->size, mode);
}

static int add_ip(gnutls_x509_crt_t crt, const char *ip)
{
	struct in_addr a;

	if (inet_pton(AF_INET, ip, &a) != 1)
		return 0;
	return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, &a, sizeof(a),
						    GNUTLS_FSAN_APPEND);
}

/* Make a self-signed certificate and its key at cert_path and key_path. */
static int make_cert(const char *cert_path, const char *key_path, const char *listen_ip)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t kd = {NULL, 0}, cd = {NULL, 0};
	char host[256] = "localhost", cn[300];
	uint8_t serial[16];
	time_t now = time(NULL);
	int ret;

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if (getrandom(serial, sizeof(serial), 0) != (ssize_t)sizeof(serial))
		return -EIO;
	serial[0] &= 0x7f; /* a positive serial number */
	if (gnutls_x509_privkey_init(&key) < 0)
		return -ENOMEM;
	ret = gnutls_x509_crt_init(&crt);
	if (ret < 0)
		goto out_key;
	snprintf(cn, sizeof(cn), "plinthd %s", host);
	ret = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
					   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (!ret)
		ret = gnutls_x509_crt_set_version(crt, 3);
	if (!ret)
		ret = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	if (!ret)
		ret = gnutls_x509_crt_set_activation_time(crt, now - 3600);
	if (!ret)
		ret = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)CERT_DAYS * 86400);
	if (!ret)
		ret = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						    (unsigned)strlen(cn));
	if (!ret)
		ret = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host,
							   (unsigned)strlen(host),
							   GNUTLS_FSAN_APPEND);
	if (!ret && strcmp(host, "localhost"))
		ret = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
							   GNUTLS_FSAN_APPEND);
	if (!ret)
		ret = add_ip(crt, "127.0.0.1");
	if (!ret && strcmp(listen_ip, "127.0.0.1") && strcmp(listen_ip, "0.0.0.0"))
		ret = add_ip(crt, listen_ip);
	if (!ret)
		ret = gnutls_x509_crt_set_key(crt, key);
	if (!ret)
		ret = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
	if (!ret)
		ret = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (!ret)
		ret = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
	if (!ret)
		ret = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
	if (!ret)
		ret = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kd);
	if (!ret)
		ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cd);
	if (ret < 0) {
		log_error("web: cannot make a certificate: %s", gnutls_strerror(ret));
		ret = -EIO;
		goto out_free;
	}
	/* The key first: a certificate without its key is never left behind. */
	ret = write_datum(key_path, &kd, 0600);
	if (ret) {
		log_error("web: cannot write %s: %s", key_path, strerror(-ret));
		goto out_free;
	}
	ret = write_datum(cert_path, &cd, 0644);
	if (ret) {
		log_error("web: cannot write %s: %s", cert_path, strerror(-ret));
		unlink(key_path);
		goto out_free;
	}
	log_info("web: made a self-signed certificate %s (%s, localhost, 127.0.0.1)", cert_path,
		 host);
out_free:
	gnutls_free(kd.data);
	gnutls_free(cd.data);
	gnutls_x509_crt_deinit(crt);
out_key:
	gnutls_x509_privkey_deinit(key);
	return ret;
}

int web_tls_load(const char *dir, const char *cert_path, const char *key_path,
		 const char *listen_ip, char **cert, char **key)
{
	char cp[PD_DIR_MAX + 32], kp[PD_DIR_MAX + 32];
	bool have_cert, have_key;
	int ret;

	if (!cert_path) {
		snprintf(cp, sizeof(cp), "%s/web-cert.pem", dir);
		snprintf(kp, sizeof(kp), "%s/web-key.pem", dir);
		have_cert = access(cp, F_OK) == 0;
		have_key = access(kp, F_OK) == 0;
		if (have_cert != have_key) {
			log_error("web: %s exists without %s: remove it to make a new pair, or "
				  "give --web-cert and --web-key",
				  have_cert ? cp : kp, have_cert ? kp : cp);
			return -EINVAL;
		}
		if (!have_cert) {
			ret = make_cert(cp, kp, listen_ip);
			if (ret)
				return ret;
		}
		cert_path = cp;
		key_path = kp;
	}
	ret = load_pem(cert_path, cert);
	if (ret)
		return ret;
	ret = load_pem(key_path, key);
	if (ret) {
		free(*cert);
		*cert = NULL;
	}
	return ret;
}
