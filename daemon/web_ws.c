// SPDX-License-Identifier: MIT
/*
 * A VM's serial console and its display in the web console's page (web.h,
 * docs/web.md): a WebSocket (RFC 6455) that carries console.h's byte stream both ways
 * between plinthd and the page's xterm.js, or the RFB (VNC) stream between the VM's
 * display socket (RUNDIR/display.sock, plinth's libvncserver) and the page's noVNC.
 *
 *   POST /web/console/{vm}/ticket   (session, CSRF token) -> {"ticket", "url"}: a
 *                                   one-time ticket for this session and VM, good for
 *                                   WEB_TICKET_S seconds
 *   GET  /web/console/{vm}?ticket=T (Upgrade: websocket; session cookie, Origin this
 *                                   listener's) -> 101, then the console
 *   POST /web/display/{vm}/ticket, GET /web/display/{vm}?ticket=T: the same for the
 *                                   display (a ticket opens only what it was asked for)
 *
 * Why not libwebsockets: the listener is libmicrohttpd's (HTTPS, sessions, the API),
 * and libwebsockets cannot serve a connection on another library's listener: it only
 * adopts a socket before the HTTP exchange (to answer the handshake itself), while
 * libmicrohttpd answers the 101 itself and only then hands the connection over (a
 * socketpair it feeds through its TLS). A second listener for libwebsockets would be a
 * second origin, port, certificate and TLS stack. So libmicrohttpd does HTTP, TLS and
 * the upgrade, and wslay (Debian's libwslay, a framing library with no I/O of its own)
 * frames the messages: no hand-written framing either way.
 *
 * Messages: binary frames from plinthd are console output (the scrollback first);
 * text frames from plinthd are one JSON object, {"error": SENTENCE} or {"notice":
 * SENTENCE}; any data frame from the page is bytes typed to the guest (at most
 * WS_MSG_MAX each; a viewer's are refused with an error message, not typed). A close
 * frame carries the reason as one sentence.
 *
 * The display: binary frames both ways are RFB bytes, passed through as they come;
 * no text messages (the close frame's reason is the sentence).
 * The page's half is framed message by message (rfb_filter.c) on its way to the
 * socket: a viewer's keyboard, pointer, clipboard and xvp messages are left out
 * (libvncserver's view-only mode is the whole server's, not one client's), and what
 * cannot be framed (RFB 3.3, an unknown message) closes the display with a sentence.
 * The VM's bytes come from libvncserver in plinth (its thread is seccomp-filtered);
 * plinthd does not parse them. The VM stopping closes the socket: the page is told.
 *
 * Bounds (a slow or hostile page cannot grow plinthd's memory): output is read from
 * the console log only while less than WS_OUT_MAX bytes wait to be sent (the rest stays
 * in the log, read later); the page's input is read from the socket only while less
 * than WS_IN_HIGH bytes wait for the guest to read them. Each viewer has its own thread
 * and its own attachment (pd_console_open), so several viewers see the same output.
 *
 * Lifetime: a viewer ends when the page closes, its session ends (log-out, expiry: it
 * is checked every WS_TICK_MS), the VM is deleted, the peer is silent for WS_DEAD_S
 * (pings go every WS_PING_S, so an idle console stays open), or plinthd stops
 * (web_consoles_free waits for every viewer: libmicrohttpd's stop needs the upgraded
 * connections closed first).
 */
#include "web.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "cluster.h"
#include "console.h"
#include "log.h"
#include "rfb_filter.h"

#define WS_MSG_MAX   4096	  /* largest message the page may send */
#define WS_OUT_MAX   (256 * 1024) /* output queued for a viewer before the log waits */
#define WS_IN_MAX    (32 * 1024)  /* typed input waiting for the guest */
#define WS_IN_HIGH   (WS_IN_MAX - 2 * WS_MSG_MAX - 4096) /* no socket reads above this */
#define WS_TICK_MS   200 /* session, quit and input retries are looked at this often */
#define WS_PING_S    20
#define WS_DEAD_S    65
#define WS_CLOSING_S 3 /* after our close, how long the peer's is waited for */
#define WS_GUID	     "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct web_ticket {
	char id[WEB_TOKEN_HEX];	 /* "" when free */
	char sid[WEB_TOKEN_HEX]; /* the session it was given to */
	char vm[STORE_NAME_MAX];
	bool display;	    /* for the display, else the console */
	int64_t expires_ms; /* monotonic */
};

struct web_consoles {
	struct plinthd *pd;
	struct web_users *users;
	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t gone;  /* a viewer's thread ended */
	unsigned viewers;     /* threads running */
	bool quit;	      /* viewers end (web_consoles_free) */
	struct web_ticket tickets[WEB_TICKETS];
};

/* One viewer: a WebSocket bridged to one console attachment or display connection. */
struct ws_viewer {
	struct web_consoles *cs;
	struct pd_console *c; /* owned; NULL for a display */
	int disp;	      /* the display's socket, owned; -1 for a console */
	char host[STORE_NAME_MAX]; /* the VM's host when relayed from there, else "" */
	const char *fail;     /* the sentence the WebSocket closes with at once (the
			       * VM's host could not give its stream), else NULL */
	uint16_t fail_code;
	struct rfb_filter rfb; /* the page's RFB stream (a display) */
	char sid[WEB_TOKEN_HEX];
	char user[STORE_NAME_MAX];
	char vm[STORE_NAME_MAX];
	int sock; /* libmicrohttpd's end of the connection */
	struct MHD_UpgradeResponseHandle *urh;
	unsigned char *extra; /* bytes that came with the request, owned */
	size_t extra_len, extra_off;
	wslay_event_context_ptr ctx;
	unsigned char in[WS_IN_MAX]; /* typed, not yet taken by the guest: in[0..in_len) */
	size_t in_len;
	bool viewer_role; /* may watch, not type */
	int64_t last_rx_ms, last_ping_ms, closing_ms, told_ms;
};

/* --- tickets ------------------------------------------------------------------------- */

int web_console_ticket(struct web_consoles *cs, const char *sid, const char *vm, bool display,
		       char ticket[WEB_TOKEN_HEX])
{
	int64_t now = pd_mono_ms();
	struct web_ticket *t = NULL;
	size_t i;

	pthread_mutex_lock(&cs->lock);
	for (i = 0; i < WEB_TICKETS; i++) {
		struct web_ticket *x = &cs->tickets[i];

		if (x->id[0] && x->expires_ms <= now)
			x->id[0] = '\0';
		if (!x->id[0] && !t)
			t = x;
	}
	if (!t) {
		pthread_mutex_unlock(&cs->lock);
		return -EBUSY;
	}
	web_random_hex(t->id);
	snprintf(t->sid, sizeof(t->sid), "%s", sid);
	snprintf(t->vm, sizeof(t->vm), "%s", vm);
	t->display = display;
	t->expires_ms = now + WEB_TICKET_S * 1000;
	memcpy(ticket, t->id, WEB_TOKEN_HEX);
	pthread_mutex_unlock(&cs->lock);
	return 0;
}

/* Take ticket id if it was given to session sid for vm (its display or console) and is
 * still good. */
static bool ticket_take(struct web_consoles *cs, const char *id, const char *sid, const char *vm,
			bool display)
{
	int64_t now = pd_mono_ms();
	bool ok = false;
	size_t i;

	if (!id || strlen(id) != WEB_TOKEN_HEX - 1)
		return false;
	pthread_mutex_lock(&cs->lock);
	for (i = 0; i < WEB_TICKETS && !ok; i++) {
		struct web_ticket *t = &cs->tickets[i];

		if (!t->id[0] || !web_secret_equal(t->id, id))
			continue;
		ok = t->expires_ms > now && web_secret_equal(t->sid, sid) && !strcmp(t->vm, vm) &&
		     t->display == display;
		t->id[0] = '\0'; /* used, or tried from elsewhere: gone either way */
	}
	pthread_mutex_unlock(&cs->lock);
	return ok;
}

/* --- the handshake (hostile header values; fuzzed: fuzz_web_ws.c) --------------------- */

bool web_ws_header_has_token(const char *value, const char *token)
{
	size_t n = strlen(token);

	while (value && *value) {
		size_t len;

		value += strspn(value, " \t,");
		len = strcspn(value, " \t,");
		if (len == n && !strncasecmp(value, token, n))
			return true;
		value += len;
	}
	return false;
}

int web_ws_accept_key(const char *key, char accept[WEB_WS_ACCEPT_LEN])
{
	unsigned char nonce[16], sha[20];
	char joined[64];
	size_t bin_len = 0;
	const char *end = NULL;

	/* A client's key is 16 random bytes in base64: exactly 24 characters. */
	if (!key || strlen(key) != 24 ||
	    sodium_base642bin(nonce, sizeof(nonce), key, 24, NULL, &bin_len, &end,
			      sodium_base64_VARIANT_ORIGINAL) ||
	    bin_len != sizeof(nonce) || *end)
		return -EINVAL;
	snprintf(joined, sizeof(joined), "%s" WS_GUID, key);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, joined, strlen(joined), sha) < 0)
		return -EIO;
	sodium_bin2base64(accept, WEB_WS_ACCEPT_LEN, sha, sizeof(sha),
			  sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

/* --- one viewer's thread -------------------------------------------------------------- */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	struct ws_viewer *v = user;
	ssize_t n;

	(void)flags;
	if (v->extra_off < v->extra_len) {
		n = (ssize_t)(v->extra_len - v->extra_off < len ? v->extra_len - v->extra_off
								: len);
		memcpy(buf, v->extra + v->extra_off, (size_t)n);
		v->extra_off += (size_t)n;
		return n;
	}
	if (v->in_len > WS_IN_HIGH) { /* the guest is behind: leave it in the socket */
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n = recv(v->sock, buf, len, MSG_DONTWAIT);
	if (n > 0) {
		v->last_rx_ms = pd_mono_ms();
		return n;
	}
	wslay_event_set_error(ctx, n < 0 && (errno == EAGAIN || errno == EINTR)
					   ? WSLAY_ERR_WOULDBLOCK
					   : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *user)
{
	struct ws_viewer *v = user;
	ssize_t n;

	(void)flags;
	n = send(v->sock, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	wslay_event_set_error(ctx, errno == EAGAIN || errno == EINTR ? WSLAY_ERR_WOULDBLOCK
								     : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

/* A text message {"error"|"notice": msg} to the page. */
static void ws_say(struct ws_viewer *v, const char *kind, const char *msg)
{
	json_t *o = json_pack("{s:s}", kind, msg);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text,
				    text ? strlen(text) : 0};

	/* A display's frames are all RFB (noVNC reads them): its sentences go only in
	 * the close frame; the page knows a viewer's role itself. */
	if (text && v->disp < 0)
		wslay_event_queue_msg(v->ctx, &m);
	free(text);
	json_decref(o);
}

/* Say it, at most once every 5 seconds (typing goes on while it is true). */
static void ws_tell(struct ws_viewer *v, const char *kind, const char *msg)
{
	int64_t now = pd_mono_ms();

	if (v->told_ms && now - v->told_ms < 5000)
		return;
	v->told_ms = now;
	ws_say(v, kind, msg);
}

/* Close with code and a one-sentence reason (it also goes as an error message first,
 * since a page shows text messages more readily than close reasons). */
static void ws_close(struct ws_viewer *v, uint16_t code, const char *why)
{
	if (v->closing_ms)
		return;
	v->closing_ms = pd_mono_ms();
	ws_say(v, code == WSLAY_CODE_NORMAL_CLOSURE ? "notice" : "error", why);
	/* A close reason is at most 123 bytes; ours are shorter. */
	wslay_event_queue_close(v->ctx, code, (const uint8_t *)why,
				strlen(why) < 123 ? strlen(why) : 123);
}

/* The page's RFB bytes, framed and (for a viewer) filtered, queued for the display.
 * A viewer's input is left out silently: its page is in view-only mode and says so. */
static void ws_display_in(struct ws_viewer *v, const uint8_t *msg, size_t len)
{
	const char *why = NULL;
	ssize_t n;

	if (v->closing_ms)
		return;
	if (len + RFB_HDR_MAX > sizeof(v->in) - v->in_len) { /* not expected: reads stop first */
		ws_close(v, WSLAY_CODE_INTERNAL_SERVER_ERROR,
			 "The display's input backed up: the VM is not reading it.");
		return;
	}
	n = rfb_filter_feed(&v->rfb, msg, len, v->viewer_role, v->in + v->in_len, &why);
	if (n < 0) {
		ws_close(v, WSLAY_CODE_UNSUPPORTED_DATA, why);
		return;
	}
	v->in_len += (size_t)n;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		      void *user)
{
	struct ws_viewer *v = user;

	(void)ctx;
	if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
		return; /* ping, pong, close: wslay answers them */
	if (v->closing_ms)
		return; /* the stream may be gone: nothing goes to it any more */
	if (v->disp >= 0) {
		ws_display_in(v, arg->msg, arg->msg_length);
		return;
	}
	if (v->viewer_role) {
		ws_tell(v, "error", "Your role (viewer) may watch this console, not type into it.");
		return;
	}
	if (arg->msg_length > sizeof(v->in) - v->in_len) { /* not expected: reads stop first */
		ws_tell(v, "error", "Typed input was dropped: the guest is not reading it.");
		return;
	}
	memcpy(v->in + v->in_len, arg->msg, arg->msg_length);
	v->in_len += arg->msg_length;
}

/* Hand typed input to the guest, as much as it takes now. */
static void ws_type(struct ws_viewer *v)
{
	while (v->in_len) {
		ssize_t n = v->disp >= 0 ? send(v->disp, v->in, v->in_len, MSG_DONTWAIT | MSG_NOSIGNAL)
					 : pd_console_write(v->c, v->in, v->in_len);

		if (v->disp >= 0 && n < 0)
			n = errno == EAGAIN || errno == EINTR ? -EAGAIN : -ECONNRESET;
		if (n == -EAGAIN)
			return; /* the guest reads slowly: retried next tick */
		if (n == -ECONNRESET) { /* the display's end: ws_output says why */
			v->in_len = 0;
			return;
		}
		if (n <= 0) {
			v->in_len = 0;
			ws_tell(v, "notice",
				n == -ENXIO ? "The VM is not running: what you type goes "
					      "nowhere until it starts."
					    : "Typed input could not reach the guest.");
			return;
		}
		memmove(v->in, v->in + n, v->in_len - (size_t)n);
		v->in_len -= (size_t)n;
	}
}

/* Queue console or display output while the page keeps up. 0, -EPIPE (the VM was
 * deleted), -ECONNRESET (the display's socket closed: the VM stopped). */
static int ws_output(struct ws_viewer *v)
{
	unsigned char buf[16384];

	while (!v->closing_ms && wslay_event_get_queued_msg_length(v->ctx) < WS_OUT_MAX) {
		ssize_t n = v->disp < 0 ? pd_console_read(v->c, buf, sizeof(buf))
					: recv(v->disp, buf, sizeof(buf), MSG_DONTWAIT);
		struct wslay_event_msg m = {WSLAY_BINARY_FRAME, buf, n > 0 ? (size_t)n : 0};

		if (v->disp >= 0 && n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (v->disp >= 0 && n <= 0)
			return -ECONNRESET;

		if (n == 0)
			return 0;
		if (n < 0)
			return n == -EPIPE ? -EPIPE : (int)n;
		if (wslay_event_queue_msg(v->ctx, &m))
			return -ENOMEM;
	}
	return 0;
}

/* The page's session is still live (and its role, which may have changed). */
static bool ws_session_live(struct ws_viewer *v)
{
	struct web_session s;

	if (web_session_get(v->cs->users, v->sid, false, &s))
		return false;
	v->viewer_role = !strcmp(s.role, "viewer");
	return true;
}

static void ws_run(struct ws_viewer *v)
{
	int64_t last_tick = 0;

	v->last_rx_ms = v->last_ping_ms = pd_mono_ms();
	if (v->fail)
		ws_close(v, v->fail_code, v->fail);
	for (;;) {
		int64_t now = pd_mono_ms();
		struct pollfd p[2] = {{.fd = v->sock},
				      {.fd = v->disp >= 0 ? v->disp : v->c ? pd_console_fd(v->c) : -1}};
		bool quit;
		int ret;

		if (now - last_tick >= WS_TICK_MS) {
			last_tick = now;
			pthread_mutex_lock(&v->cs->lock);
			quit = v->cs->quit;
			pthread_mutex_unlock(&v->cs->lock);
			if (quit)
				ws_close(v, WSLAY_CODE_GOING_AWAY, "plinthd is stopping.");
			else if (!ws_session_live(v))
				ws_close(v, WSLAY_CODE_POLICY_VIOLATION,
					 "Your session has ended; log in again.");
			else if (now - v->last_rx_ms > WS_DEAD_S * 1000)
				ws_close(v, WSLAY_CODE_GOING_AWAY, "The page stopped answering.");
			if (v->closing_ms && now - v->closing_ms > WS_CLOSING_S * 1000)
				break;
			if (!v->closing_ms && now - v->last_ping_ms > WS_PING_S * 1000) {
				struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};

				wslay_event_queue_msg(v->ctx, &ping);
				v->last_ping_ms = now;
			}
		}
		ret = ws_output(v);
		if (ret == -EPIPE)
			ws_close(v, WSLAY_CODE_NORMAL_CLOSURE, "The VM was deleted.");
		else if (ret == -ECONNRESET && v->host[0])
			/* The page opens it again (its host is looked up anew) unless the
			 * display is gone with the VM. */
			ws_close(v, v->disp >= 0 ? WSLAY_CODE_NORMAL_CLOSURE : WSLAY_CODE_GOING_AWAY,
				 v->disp >= 0 ? "The VM's host ended its display: the VM stopped "
						"or moved."
					      : "The VM's host ended its console stream.");
		else if (ret == -ECONNRESET)
			ws_close(v, WSLAY_CODE_NORMAL_CLOSURE,
				 "The VM stopped: its display is gone.");
		else if (ret)
			ws_close(v, WSLAY_CODE_INTERNAL_SERVER_ERROR,
				 v->disp >= 0 ? "plinthd could not read the display."
					      : "plinthd could not read the console log.");
		ws_type(v);
		if (v->extra_off < v->extra_len && wslay_event_recv(v->ctx))
			break;
		if (!wslay_event_want_read(v->ctx) && !wslay_event_want_write(v->ctx))
			break; /* both closes went, or the peer is gone */
		if (wslay_event_want_read(v->ctx) && v->in_len <= WS_IN_HIGH)
			p[0].events |= POLLIN;
		if (wslay_event_want_write(v->ctx))
			p[0].events |= POLLOUT;
		if (!v->closing_ms && wslay_event_get_queued_msg_length(v->ctx) < WS_OUT_MAX)
			p[1].events = POLLIN;
		if (poll(p, 2, v->in_len ? 20 : WS_TICK_MS) < 0 && errno != EINTR)
			break;
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && wslay_event_recv(v->ctx))
			break;
		if ((p[0].revents & POLLOUT) && wslay_event_send(v->ctx))
			break;
		if ((p[0].revents & POLLNVAL) ||
		    ((p[0].revents & (POLLHUP | POLLERR)) && !(p[0].revents & POLLIN)))
			break; /* the connection is gone, nothing left to read */
	}
}

/*
 * Read and drop what the peer still sends until it closes, for at most WS_CLOSING_S:
 * closing a connection with unread bytes in it resets it, and the peer would lose our
 * close frame (and its reason) with it. wslay stops reading early on a protocol error
 * (a message over WS_MSG_MAX, say) while the peer may still be sending. Not after the
 * peer's own close frame: then it waits for us to close first (RFC 6455, 7.1.1).
 */
static void ws_linger(struct ws_viewer *v)
{
	int64_t end = pd_mono_ms() + WS_CLOSING_S * 1000, now;
	char buf[4096];

	while ((now = pd_mono_ms()) < end) {
		struct pollfd p = {.fd = v->sock, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, (int)(end - now)) <= 0)
			return;
		n = recv(v->sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return;
	}
}

/* The console attachment or display connection of v. */
static void ws_backend_close(struct ws_viewer *v)
{
	if (v->disp >= 0)
		close(v->disp);
	else
		pd_console_close(v->c);
}

static void *ws_thread(void *arg)
{
	struct ws_viewer *v = arg;
	struct web_consoles *cs = v->cs;
	struct wslay_event_callbacks cb = {
		.recv_callback = ws_recv,
		.send_callback = ws_send,
		.on_msg_recv_callback = ws_on_msg,
	};

	if (wslay_event_context_server_init(&v->ctx, &cb, v) == 0) {
		wslay_event_config_set_max_recv_msg_length(v->ctx, WS_MSG_MAX);
		ws_run(v);
		if (!wslay_event_get_close_received(v->ctx))
			ws_linger(v); /* the peer's close came: it sends no more */
		wslay_event_context_free(v->ctx);
	} else {
		log_error("web console of %s: out of memory", v->vm);
	}
	log_debug("web: %s closed the %s of %s", v->user, v->disp >= 0 ? "display" : "console",
		  v->vm);
	ws_backend_close(v);
	MHD_upgrade_action(v->urh, MHD_UPGRADE_ACTION_CLOSE);
	free(v->extra);
	free(v);
	pthread_mutex_lock(&cs->lock);
	cs->viewers--;
	pthread_cond_broadcast(&cs->gone);
	pthread_mutex_unlock(&cs->lock);
	return NULL;
}

/* libmicrohttpd sent the 101: the connection is this viewer's (a thread of its own). */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
		       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct ws_viewer *v = cls;
	struct web_consoles *cs = v->cs;
	pthread_attr_t attr;
	pthread_t t;
	int fl;

	(void)conn;
	(void)con_cls;
	v->sock = sock;
	v->urh = urh;
	fl = fcntl(sock, F_GETFL);
	if (fl >= 0)
		fcntl(sock, F_SETFL, fl | O_NONBLOCK);
	if (extra_in_size) {
		v->extra = malloc(extra_in_size);
		if (!v->extra)
			goto out_close;
		memcpy(v->extra, extra_in, extra_in_size);
		v->extra_len = extra_in_size;
	}
	pthread_mutex_lock(&cs->lock);
	if (cs->quit) {
		pthread_mutex_unlock(&cs->lock);
		goto out_close;
	}
	cs->viewers++;
	pthread_mutex_unlock(&cs->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, ws_thread, v)) {
		pthread_attr_destroy(&attr);
		log_error("web console of %s: no thread for it", v->vm);
		pthread_mutex_lock(&cs->lock);
		cs->viewers--;
		pthread_cond_broadcast(&cs->gone);
		pthread_mutex_unlock(&cs->lock);
		goto out_close;
	}
	pthread_attr_destroy(&attr);
	return;

out_close:
	ws_backend_close(v);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	free(v->extra);
	free(v);
}

/* --- the request ---------------------------------------------------------------------- */

/*
 * A VM of another host (v->host): its stream relayed from there (pd_stream_remote, the
 * owner records the event with "user U via THIS HOST" as the actor), or, when the VM's
 * host cannot be reached (addr NULL: r says why already) or refuses, v->fail: the
 * WebSocket is accepted and closed at once with the sentence, which a page can show
 * (a refused upgrade reaches it without one). Without pd->lock.
 */
static void ws_remote_open(struct ws_viewer *v, const char *addr, bool display,
			   struct pd_reply *r)
{
	char client[STORE_NAME_MAX];
	const char *why;
	int fd = -1;

	snprintf(client, sizeof(client), "user %.56s", v->user);
	if (addr)
		fd = pd_stream_remote(v->cs->pd, v->host, addr, v->vm, display, client, r);
	if (fd >= 0 && display)
		v->disp = fd;
	else if (fd >= 0)
		v->c = pd_console_of_stream(fd);
	if (v->c || v->disp >= 0)
		return;
	why = json_string_value(json_object_get(r->body, "error"));
	log_info("web: the %s of %s on host %s: %s", display ? "display" : "console", v->vm,
		 v->host, why ? why : "no reason given");
	v->fail_code = WSLAY_CODE_GOING_AWAY; /* the page tries again */
	switch (r->status) {
	case 404:
		v->fail_code = WSLAY_CODE_NORMAL_CLOSURE;
		v->fail = "There is no such VM.";
		break;
	case 409: /* no --cluster-key here, or (the owner's) no display or not running */
		v->fail_code = WSLAY_CODE_NORMAL_CLOSURE;
		v->fail = !addr ? "The VM runs on another host, which this plinthd cannot reach "
				  "without --cluster-key."
			  : display ? "The VM has no display, or is not running."
				    : "The VM's host could not open its console.";
		break;
	case 421:
		v->fail = "The VM moved to another host.";
		break;
	case 502:
	case 503:
		v->fail = addr ? "The VM's host did not answer." : "The VM's host is down.";
		break;
	default:
		v->fail_code = WSLAY_CODE_INTERNAL_SERVER_ERROR;
		v->fail = display ? "The VM's display could not be opened."
				  : "The console could not be opened.";
	}
}

enum MHD_Result web_console_upgrade(struct web_consoles *cs, struct MHD_Connection *conn,
				    const char *vm, bool display, const char *sid,
				    const struct web_session *s)
{
	const char *upgrade = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
	const char *connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
	const char *version =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
	const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
	const char *ticket = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "ticket");
	struct pd_reply r = {0};
	struct MHD_Response *resp;
	struct ws_viewer *v;
	char accept[WEB_WS_ACCEPT_LEN], addr[64];
	enum MHD_Result ret;
	int f;

	if (!upgrade || strcasecmp(upgrade, "websocket") ||
	    !web_ws_header_has_token(connection, "upgrade"))
		return web_reply_error(conn, 426,
				       "The console is a WebSocket: open it from the "
				       "console's page.");
	if (!version || strcmp(version, "13"))
		return web_reply_error(conn, 426,
				       "This browser's WebSocket version is not "
				       "supported (13 is).");
	if (web_ws_accept_key(key, accept))
		return web_reply_error(conn, 400, "The WebSocket key is missing or malformed.");
	if (!ticket_take(cs, ticket, sid, vm, display))
		return web_reply_error(conn, 403,
				       display ? "The display's ticket is missing, used or expired; "
						 "open the display again."
					       : "The console's ticket is missing, used or "
						 "expired; open the console again.");
	v = calloc(1, sizeof(*v));
	if (!v)
		return web_reply_error(conn, 500, "The daemon ran out of memory.");
	v->cs = cs;
	v->sock = -1;
	v->disp = -1;
	rfb_filter_init(&v->rfb);
	v->viewer_role = !strcmp(s->role, "viewer");
	snprintf(v->sid, sizeof(v->sid), "%s", sid);
	snprintf(v->user, sizeof(v->user), "%s", s->user);
	snprintf(v->vm, sizeof(v->vm), "%s", vm);
	pthread_mutex_lock(&cs->pd->lock);
	f = pd_vm_target(cs->pd, vm, v->host, addr, sizeof(addr), &r);
	if (!f)
		v->host[0] = '\0';
	if (!f && display)
		v->disp = pd_display_connect(cs->pd, vm, &r);
	else if (!f)
		v->c = pd_console_open(cs->pd, vm, &r);
	if (v->c || v->disp >= 0) {
		snprintf(cs->pd->actor, sizeof(cs->pd->actor), "user %.56s", s->user);
		pd_event(cs->pd, display ? "vm.display" : "vm.console", vm, "ok",
			 "opened the %s in the browser%s", display ? "display" : "console",
			 v->viewer_role ? " (watch only)" : "");
		cs->pd->actor[0] = '\0';
	}
	pthread_mutex_unlock(&cs->pd->lock);
	if (f)
		ws_remote_open(v, f > 0 ? addr : NULL, display, &r);
	if (!v->c && v->disp < 0 && !v->fail) {
		free(v);
		ret = web_reply_error(conn, r.status,
				      r.status == 404 ? "There is no such VM."
				      : r.status == 409 && display
					      ? "The VM has no display, or is not running."
				      : display ? "The VM's display does not answer."
						: "The console could not be opened.");
		json_decref(r.body);
		return ret;
	}
	json_decref(r.body); /* a failure told by the WebSocket's close */
	resp = MHD_create_response_for_upgrade(on_upgrade, v);
	if (!resp) {
		ws_backend_close(v);
		free(v);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
	MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
	ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	if (ret != MHD_YES) { /* on_upgrade will not run */
		ws_backend_close(v);
		free(v);
	}
	return ret;
}

/* --- start and stop ------------------------------------------------------------------- */

struct web_consoles *web_consoles_new(struct plinthd *pd, struct web_users *users)
{
	struct web_consoles *cs = calloc(1, sizeof(*cs));

	if (!cs) {
		log_error("out of memory");
		return NULL;
	}
	if (!MHD_is_feature_supported(MHD_FEATURE_UPGRADE)) {
		log_error("--web: this libmicrohttpd cannot upgrade connections (the consoles' "
			  "WebSockets need it)");
		free(cs);
		return NULL;
	}
	cs->pd = pd;
	cs->users = users;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->gone, NULL);
	return cs;
}

void web_consoles_stop(struct web_consoles *cs)
{
	if (!cs)
		return;
	pthread_mutex_lock(&cs->lock);
	cs->quit = true;
	while (cs->viewers)
		pthread_cond_wait(&cs->gone, &cs->lock);
	pthread_mutex_unlock(&cs->lock);
}

void web_consoles_free(struct web_consoles *cs)
{
	if (!cs)
		return;
	web_consoles_stop(cs);
	pthread_cond_destroy(&cs->gone);
	pthread_mutex_destroy(&cs->lock);
	sodium_memzero(cs->tickets, sizeof(cs->tickets));
	free(cs);
}
