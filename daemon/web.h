/* SPDX-License-Identifier: MIT */
/*
 * plinthd's web console (docs/web.md): a second listener, HTTPS only, that serves the
 * browser code built from web/ (embedded in plinthd, web_assets.c), the same REST API
 * as the control socket under /v1 with a log-in session instead of a token, and a
 * stream of live state (server-sent events) under /web/live.
 *
 * Parts:
 *   web.c        the listener (libmicrohttpd, thread per connection): routing, session
 *                and CSRF checks, role checks (pd_role_allows), static files, security
 *                headers; the live hub (one thread that snapshots VMs, tasks and new
 *                events every WEB_LIVE_PERIOD_MS and wakes the streams)
 *   web_users.c  users (DIR/web.db: name, role, Argon2id hash from libsodium), in-memory
 *                sessions, the log-in rate limit, and `plinthd user ...`
 *   web_tls.c    the certificate: given, or self-signed on first start into DIR
 *   web_ws.c     a VM's serial console and display (RFB, filtered by rfb_filter.c) over
 *                WebSockets (libmicrohttpd's upgrade, wslay's framing), opened with
 *                one-time tickets
 *   web_stats.c  the last hour of each VM's CPU, memory, disk and network use (charts)
 */
#ifndef PLINTH_DAEMON_WEB_H
#define PLINTH_DAEMON_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "plinthd.h"

#define WEB_ROLE_MAX 16
#define WEB_TOKEN_HEX 65	   /* 32 random bytes as hex + NUL (session ids, CSRF tokens) */
#define WEB_PASSWORD_MIN 8
#define WEB_PASSWORD_MAX 1024
#define WEB_IDLE_DEFAULT_S 1800	   /* a session ends after this long without a request */
#define WEB_LIFETIME_S (12 * 3600) /* and at the latest this long after the log-in */
#define WEB_LOGIN_FAILS 5	   /* failed log-ins per client address ... */
#define WEB_LOGIN_WINDOW_S 60	   /* ... within this window, then refused until it ends */

struct web_options {
	const char *listen;	   /* "ADDR:PORT" (IPv4) */
	const char *cert_path;	   /* PEM, or NULL: DIR/web-cert.pem (made if missing) */
	const char *key_path;	   /* PEM, or NULL: DIR/web-key.pem */
	unsigned idle_s;	   /* session idle timeout (WEB_IDLE_DEFAULT_S) */
};

/* A file of the browser code, embedded at build time (web_assets.c from web/embed.py). */
struct web_asset {
	const char *path;		/* "/index.html", "/static/app.js", ... */
	const char *type;		/* its Content-Type */
	const unsigned char *data;
	size_t len;
	const unsigned char *gz;	/* the same gzip-compressed, or NULL */
	size_t gz_len;
};
extern const struct web_asset web_assets[];
extern const size_t web_assets_count;

struct pd_web;
/* Start the web console of pd. NULL with the reason logged. */
struct pd_web *pd_web_start(struct plinthd *pd, const struct web_options *o);
void pd_web_stop(struct pd_web *w);

/* --- web_tls.c ----------------------------------------------------------------------- */

/*
 * The listener's certificate and key as PEM text (*cert, *key: owned, free()). With
 * paths given, read them; else DIR/web-cert.pem and DIR/web-key.pem, made first (a
 * self-signed ECDSA P-256 certificate for this host's name, localhost, 127.0.0.1 and
 * listen_ip) when neither exists. 0 or -errno with the reason logged.
 */
int web_tls_load(const char *dir, const char *cert_path, const char *key_path,
		 const char *listen_ip, char **cert, char **key);

/* --- web_users.c --------------------------------------------------------------------- */

struct web_users;
/* Open (creating) DIR/web.db. NULL with the reason logged. */
struct web_users *web_users_open(const char *dir);
void web_users_close(struct web_users *u);

/* The role of user name into role[WEB_ROLE_MAX]: 0, -ENOENT or -EIO. */
int web_user_role(struct web_users *u, const char *name, char *role);
/*
 * Check name's password (slow: Argon2id; a missing user costs the same). 0 with
 * role filled, -EACCES for a wrong name or password, -EIO.
 */
int web_user_verify(struct web_users *u, const char *name, const char *password, char *role);

/* Changes (the CLI's): 0, -EINVAL (bad name, role or password length), -EEXIST,
 * -ENOENT (no such user), -ENOMEM, -EIO. */
int web_user_add(struct web_users *u, const char *name, const char *role, const char *password);
int web_user_passwd(struct web_users *u, const char *name, const char *password);
int web_user_set_role(struct web_users *u, const char *name, const char *role);
int web_user_delete(struct web_users *u, const char *name);

/*
 * The log-in request's body {"user": NAME, "password": TEXT} (hostile bytes; fuzzed).
 * 0 with both copied (user a valid name, password at most WEB_PASSWORD_MAX bytes, no
 * NUL); -EACCES when well-formed but no user could match (it counts as a failed
 * log-in); -EINVAL when it is not that object.
 */
int web_parse_login(const char *body, size_t len, char user[STORE_NAME_MAX],
		    char password[WEB_PASSWORD_MAX + 1]);

/* A log-in session. */
struct web_session {
	char user[STORE_NAME_MAX];
	char role[WEB_ROLE_MAX];	/* read again from web.db on every request */
	char csrf[WEB_TOKEN_HEX];	/* sent back in X-CSRF-Token on state changes */
	int64_t created_ms, seen_ms;	/* monotonic */
};

/* Start a session for user (verified): *id gets the cookie's value. 0 or -errno. */
int web_session_new(struct web_users *u, const char *user, char id[WEB_TOKEN_HEX],
		    struct web_session *out);
/*
 * The live session of cookie id (NULL: none) into *out; touch refreshes its idle
 * time. 0, or -EACCES (none, ended, or its user was deleted: then it is dropped).
 */
int web_session_get(struct web_users *u, const char *id, bool touch, struct web_session *out);
void web_session_end(struct web_users *u, const char *id);

/* Log-in rate limit per client address: may it try now? (else *wait_s set) */
bool web_login_allowed(struct web_users *u, const char *client, unsigned *wait_s);
void web_login_failed(struct web_users *u, const char *client);

/* The session idle timeout in seconds (tests use a short one). */
void web_users_set_idle(struct web_users *u, unsigned idle_s);

/* `plinthd user add|passwd|delete|list ...`: a whole command; exit status. */
int web_user_main(int argc, char **argv);

/* Constant-time comparison of two NUL-terminated secrets. */
bool web_secret_equal(const char *a, const char *b);
/* 32 random bytes as hex (session ids, CSRF tokens, console tickets). */
void web_random_hex(char out[WEB_TOKEN_HEX]);

/* --- web.c --------------------------------------------------------------------------- */

/* Does an Accept-Encoding value (hostile; NULL: none) take gzip? (fuzz_web_ws.c) */
bool web_accepts_gzip(const char *accept_encoding);

/* Queue the JSON reply {"error": msg} (one sentence) with status. */
enum MHD_Result web_reply_error(struct MHD_Connection *conn, int status, const char *msg);

/* --- web_ws.c: consoles over WebSockets ----------------------------------------------- */

#define WEB_TICKET_S 30		/* a console ticket is good this long, once */
#define WEB_TICKETS 64		/* tickets given and not yet used, at most */
#define WEB_WS_ACCEPT_LEN 29	/* base64 of a SHA-1 + NUL */

struct web_consoles;
/* The consoles of the web console of pd. NULL with the reason logged. */
struct web_consoles *web_consoles_new(struct plinthd *pd, struct web_users *users);
/* End every viewer (a close frame: plinthd is stopping) and wait for their threads;
 * no new one starts. Before libmicrohttpd's stop. */
void web_consoles_stop(struct web_consoles *cs);
void web_consoles_free(struct web_consoles *cs);

/* A one-time ticket to open vm's console (display: its display) from session sid, good
 * for WEB_TICKET_S seconds: 0, or -EBUSY (WEB_TICKETS unused tickets are out). */
int web_console_ticket(struct web_consoles *cs, const char *sid, const char *vm, bool display,
		       char ticket[WEB_TOKEN_HEX]);
/* Answer GET /web/console/{vm}?ticket=T (display: /web/display/...), whose session s
 * (cookie sid) and Origin are checked: 101 and a viewer's thread, or an error reply. */
enum MHD_Result web_console_upgrade(struct web_consoles *cs, struct MHD_Connection *conn,
				    const char *vm, bool display, const char *sid,
				    const struct web_session *s);

/* --- web_stats.c: the charts' figures ------------------------------------------------ */

struct web_stats;
/* Start sampling every VM of pd's host that runs. NULL with the reason logged. */
struct web_stats *web_stats_start(struct plinthd *pd);
void web_stats_stop(struct web_stats *st);
/* {"vm", "period_s", "fields": [...], "points": [[time_ms, cpu_percent, memory_mib,
 * disk_read_bytes_s, disk_write_bytes_s, net_in_bytes_s, net_out_bytes_s], ...]} for the
 * last hour of VM vm (oldest first; null where not known: the first sample of a run, no
 * NIC). A new reference, NULL if out of memory. */
json_t *web_stats_json(struct web_stats *st, const char *vm);

/* The handshake's parts (hostile header values; fuzz_web_ws.c). Is token in the
 * comma-separated list value (case-insensitive; NULL: no)? */
bool web_ws_header_has_token(const char *value, const char *token);
/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: 0, -EINVAL (not 16 bytes in
 * base64), -EIO. */
int web_ws_accept_key(const char *key, char accept[WEB_WS_ACCEPT_LEN]);

#endif
