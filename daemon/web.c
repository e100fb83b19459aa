// SPDX-License-Identifier: MIT
/*
 * The web console's listener (web.h, docs/web.md): HTTPS only (libmicrohttpd with
 * GnuTLS, one thread per connection so that a live stream may wait), and
 *
 *   GET  /, /static/...      the browser code (web/, embedded: web_assets.c); no session
 *   POST /web/login          {"user", "password"} -> a session cookie; rate-limited
 *   GET  /web/session        who is logged in, their role and the CSRF token
 *   POST /web/logout
 *   GET  /web/live           server-sent events: "vms", "tasks" (whole lists, when they
 *                            change), "event" (each new audit event), "expired"
 *   POST /web/console/{vm}/ticket, GET /web/console/{vm}?ticket=T (a WebSocket):
 *                            the VM's serial console (web_ws.c)
 *   POST /web/display/{vm}/ticket, GET /web/display/{vm}?ticket=T: its display (RFB,
 *                            for noVNC; web_ws.c)
 *   GET  /web/stats/{vm}     the last hour of the VM's CPU, memory, disk and network use
 *                            (web_stats.c)
 *   *    /v1/...             the control API (docs/plinthd.yaml), as the session's user
 *
 * Trust boundary: every byte of a request is hostile. Everything but the static files
 * and the log-in needs a live session (cookie "__Host-plinth": Secure, HttpOnly,
 * SameSite=Strict); a request that changes anything also needs the session's CSRF token
 * in X-CSRF-Token; a request whose Origin is not this listener's own, or that the
 * browser marks cross-site (Sec-Fetch-Site), is refused; the user's role is checked by
 * pd_role_allows() on every API call, and the audit log names the user.
 *
 * The live hub: while at least one stream is open, one thread takes pd->lock every
 * WEB_LIVE_PERIOD_MS, renders the VM and task lists and reads the events added since,
 * and wakes the streams when something changed. The browser never polls.
 *
 * Locks: pd->lock (the daemon), w->live.lock (the hub's snapshot), the users' own lock;
 * never two at once.
 */
#include "web.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <sodium.h>

#include "log.h"
#include "reqbody.h"
#include "util.h"

#define WEB_LIVE_PERIOD_MS 250
#define WEB_KEEPALIVE_S	   15	/* an idle stream gets a comment this often */
#define WEB_EVENTS_RING	   256	/* new events kept for streams that are behind */
#define WEB_COOKIE	   "__Host-plinth"

struct live_event {
	int64_t id;
	char *json; /* owned */
};

/* The hub's latest snapshot (w->live.lock). */
struct live {
	pthread_mutex_t lock;
	pthread_cond_t changed;	   /* streams wait here (CLOCK_MONOTONIC) */
	pthread_cond_t wanted;	   /* the hub waits here while no stream is open */
	unsigned streams;
	bool quit;
	uint64_t vms_ver, tasks_ver; /* 0: nothing rendered yet */
	char *vms, *tasks;	   /* the lists as JSON text, owned */
	int64_t last_event;	   /* the newest event id read */
	struct live_event ring[WEB_EVENTS_RING]; /* index id % WEB_EVENTS_RING */
	pthread_t thread;
};

struct pd_web {
	struct plinthd *pd;
	struct web_users *users;
	struct MHD_Daemon *mhd;
	char *cert, *key;	   /* PEM, owned */
	struct live live;
	struct web_consoles *consoles;
	struct web_stats *stats;
};

/* One request's body as it arrives. */
struct web_req {
	struct req_body body; /* at most PD_BODY_MAX bytes */
};

/* One live stream. */
struct web_stream {
	struct pd_web *w;
	char sid[WEB_TOKEN_HEX];   /* its session's cookie, checked before each write */
	uint64_t vms_ver, tasks_ver;
	int64_t event;		   /* the newest event sent */
	char *out;		   /* rendered, not yet sent: out[off..len) */
	size_t len, off;
	bool ended;
};

/* --- responses ----------------------------------------------------------------------- */

static void security_headers(struct MHD_Response *resp)
{
	/* style-src-elem allows inline <style> elements: xterm.js sizes and colours its
	 * terminal with ones it makes; no page text is ever parsed as markup. */
	MHD_add_response_header(resp, "Content-Security-Policy",
				"default-src 'none'; script-src 'self'; style-src 'self'; "
				"style-src-elem 'self' 'unsafe-inline'; "
				"img-src 'self' data:; connect-src 'self'; font-src 'self'; "
				"base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
}

/* Queue a JSON reply (body: owned) with an optional Set-Cookie. */
static enum MHD_Result reply(struct MHD_Connection *conn, int status, json_t *body,
			     const char *cookie)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (!text) {
		status = 500;
		text = strdup("{\"error\":\"The daemon ran out of memory.\"}");
		if (!text)
			return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	security_headers(resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (cookie)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result web_reply_error(struct MHD_Connection *conn, int status, const char *msg)
{
	return reply(conn, status, json_pack("{s:s}", "error", msg), NULL);
}

bool web_accepts_gzip(const char *v)
{
	while (v && *v) {
		size_t item, name, q;

		v += strspn(v, " \t");
		item = strcspn(v, ",");
		name = strcspn(v, " \t;,");
		if (name == 4 && !strncasecmp(v, "gzip", 4)) {
			/* "gzip;q=0", "q=0.0"...: refused; any other weight: taken */
			const char *p = v + name;

			p += strspn(p, " \t");
			if (*p != ';')
				return true;
			p++;
			p += strspn(p, " \t");
			if (strncasecmp(p, "q=", 2))
				return true;
			p += 2;
			q = strcspn(p, " \t,");
			return !(q && strspn(p, "0.") == q);
		}
		v += item;
		v += *v == ',';
	}
	return false;
}

static enum MHD_Result reply_asset(struct MHD_Connection *conn, const struct web_asset *a)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	bool gz = a->gz && web_accepts_gzip(MHD_lookup_connection_value(
						      conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));

	resp = MHD_create_response_from_buffer(gz ? a->gz_len : a->len,
					       (void *)(gz ? a->gz : a->data),
					       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	security_headers(resp);
	if (gz)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* --- request checks ------------------------------------------------------------------ */

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/*
 * Did the browser send this from the console's own page? Origin, when present, must
 * be this listener's ("https://" + Host); Sec-Fetch-Site, when present, same-origin
 * (or none: typed into the address bar).
 */
static bool same_origin(struct MHD_Connection *conn)
{
	const char *origin = header(conn, "Origin"), *host = header(conn, "Host");
	const char *site = header(conn, "Sec-Fetch-Site");
	char want[300];

	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return false;
	if (!origin)
		return true;
	if (!host || snprintf(want, sizeof(want), "https://%s", host) >= (int)sizeof(want))
		return false;
	return !strcmp(origin, want);
}

static void client_addr(struct MHD_Connection *conn, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, size, "unknown");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
			  (socklen_t)size);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  buf, (socklen_t)size);
}

static bool method_changes(const char *method)
{
	return strcmp(method, "GET") && strcmp(method, "HEAD");
}

/* The session of this request (touch: it counts as activity). 0 or -EACCES. */
static int request_session(struct pd_web *w, struct MHD_Connection *conn, bool touch,
			   struct web_session *s, char sid[WEB_TOKEN_HEX])
{
	const char *c = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, WEB_COOKIE);

	if (!c || strlen(c) != WEB_TOKEN_HEX - 1)
		return -EACCES;
	snprintf(sid, WEB_TOKEN_HEX, "%s", c);
	return web_session_get(w->users, sid, touch, s) ? -EACCES : 0;
}

/* Rebuild the query string libmicrohttpd took off the URL ("k=v&k=v"). */
struct query {
	char buf[256];
	size_t len;
	bool overflow;
};

static enum MHD_Result query_add(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct query *q = cls;
	size_t room = sizeof(q->buf) - q->len;
	int n = snprintf(q->buf + q->len, room, "%s%s=%s", q->len ? "&" : "", key,
			 value ? value : "");

	if (n < 0 || (size_t)n >= room) {
		q->overflow = true;
		return MHD_NO;
	}
	q->len += (size_t)n;
	return MHD_YES;
}

/* --- handlers ------------------------------------------------------------------------ */

/* An event by user (NULL: "web", the console itself). */
static void audit(struct pd_web *w, const char *user, const char *action, const char *object,
		  const char *result, const char *msg)
{
	struct plinthd *pd = w->pd;

	pthread_mutex_lock(&pd->lock);
	if (user)
		snprintf(pd->actor, sizeof(pd->actor), "user %.56s", user);
	else
		snprintf(pd->actor, sizeof(pd->actor), "web");
	pd_event(pd, action, object, result, "%s", msg);
	pd->actor[0] = '\0';
	pthread_mutex_unlock(&pd->lock);
}

static enum MHD_Result do_login(struct pd_web *w, struct MHD_Connection *conn,
				const struct web_req *rq)
{
	const char *type = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
	char client[64], role[WEB_ROLE_MAX], sid[WEB_TOKEN_HEX], cookie[160], msg[160];
	char user[STORE_NAME_MAX] = "", password[WEB_PASSWORD_MAX + 1];
	struct web_session s;
	unsigned wait_s = 0;
	int ret;

	client_addr(conn, client, sizeof(client));
	if (!same_origin(conn))
		return web_reply_error(conn, 403, "Log-ins from another site are refused.");
	/* JSON only: a cross-site form cannot send it without a preflight we never allow. */
	if (!type || strncmp(type, "application/json", 16))
		return web_reply_error(conn, 415, "The log-in is sent as JSON.");
	if (!web_login_allowed(w->users, client, &wait_s)) {
		snprintf(msg, sizeof(msg),
			 "Too many failed log-ins from this address; try again in %u seconds.",
			 wait_s);
		return web_reply_error(conn, 429, msg);
	}
	ret = web_parse_login(rq->body.data, rq->body.len, user, password);
	if (ret == -EINVAL)
		return web_reply_error(conn, 400, "The log-in needs a user name and a password.");
	if (!ret)
		ret = web_user_verify(w->users, user, password, role);
	sodium_memzero(password, sizeof(password));
	if (ret) {
		web_login_failed(w->users, client);
		snprintf(msg, sizeof(msg), "wrong user name or password from %s", client);
		audit(w, NULL, "web.login", user[0] ? user : "(invalid name)", "failed", msg);
		return web_reply_error(conn, ret == -EIO ? 500 : 401,
				   ret == -EIO ? "The user database failed; see plinthd's log."
					       : "Wrong user name or password.");
	}
	if (web_session_new(w->users, user, sid, &s))
		return web_reply_error(conn, 500, "The session could not be made.");
	snprintf(msg, sizeof(msg), "logged in from %s (%s)", client, role);
	audit(w, s.user, "web.login", s.user, "ok", msg);
	snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Secure; HttpOnly; SameSite=Strict",
		 WEB_COOKIE, sid);
	return reply(conn, 200,
		     json_pack("{s:s, s:s, s:s}", "user", s.user, "role", s.role, "csrf", s.csrf),
		     cookie);
}

static enum MHD_Result do_api(struct pd_web *w, struct MHD_Connection *conn, const char *url,
			      const char *method, const struct web_req *rq,
			      const struct web_session *s)
{
	struct pd_reply r = {0};
	struct pd_request *req;
	struct pd_error err;
	struct query q = {.len = 0};
	char msg[PD_ERROR_MAX + 64];
	int status;

	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_add, &q);
	if (q.overflow)
		return web_reply_error(conn, 400, "The query string is too long.");
	req = malloc(sizeof(*req));
	if (!req)
		return web_reply_error(conn, 500, "The daemon ran out of memory.");
	status = pd_parse_request(method, url, q.buf, rq->body.data, rq->body.len, req, &err);
	if (status) {
		free(req);
		return web_reply_error(conn, status, err.msg);
	}
	if (!pd_role_allows(s->role, req)) {
		free(req);
		snprintf(msg, sizeof(msg), "Your role (%s) may not do that.", s->role);
		return web_reply_error(conn, 403, msg);
	}
	pthread_mutex_lock(&w->pd->lock);
	snprintf(w->pd->actor, sizeof(w->pd->actor), "user %.56s", s->user);
	pd_handle(w->pd, req, &r);
	w->pd->actor[0] = '\0';
	pthread_mutex_unlock(&w->pd->lock);
	free(req);
	log_debug("web %s %s %s: %d", s->user, method, url, r.status);
	return reply(conn, r.status, r.body, NULL);
}

/* --- the live stream ----------------------------------------------------------------- */

/* Append "event: NAME\ndata: DATA\n\n" (or a comment when name is NULL). 0 or -ENOMEM. */
static int stream_add(struct web_stream *st, const char *name, const char *data)
{
	size_t need = strlen(data) + (name ? strlen(name) : 0) + 32;
	char *nb;
	int n;

	if (st->off == st->len)
		st->off = st->len = 0;
	nb = realloc(st->out, st->len + need);
	if (!nb)
		return -ENOMEM;
	st->out = nb;
	n = name ? snprintf(st->out + st->len, need, "event: %s\ndata: %s\n\n", name, data)
		 : snprintf(st->out + st->len, need, ": %s\n\n", data);
	st->len += (size_t)n;
	return 0;
}

/* Render what the stream has not seen yet (under live.lock). True if anything. */
static bool stream_catch_up(struct web_stream *st, struct live *l)
{
	bool any = false;
	int64_t id;

	if (l->vms_ver != st->vms_ver && l->vms) {
		stream_add(st, "vms", l->vms);
		st->vms_ver = l->vms_ver;
		any = true;
	}
	if (l->tasks_ver != st->tasks_ver && l->tasks) {
		stream_add(st, "tasks", l->tasks);
		st->tasks_ver = l->tasks_ver;
		any = true;
	}
	if (l->last_event > st->event && l->last_event - st->event > WEB_EVENTS_RING) {
		stream_add(st, "resync", "{}"); /* too far behind: the page reads the log */
		st->event = l->last_event;
		any = true;
	}
	for (id = st->event + 1; id <= l->last_event; id++) {
		const struct live_event *e = &l->ring[id % WEB_EVENTS_RING];

		if (e->id == id && e->json)
			stream_add(st, "event", e->json);
		any = true;
	}
	st->event = l->last_event;
	return any;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct web_stream *st = cls;
	struct live *l = &st->w->live;
	struct web_session s;
	struct timespec until;
	size_t n;

	while (st->off == st->len) {
		if (st->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (web_session_get(st->w->users, st->sid, false, &s)) {
			stream_add(st, "expired",
				   "{\"error\":\"Your session has ended; log in again.\"}");
			st->ended = true;
			break;
		}
		pthread_mutex_lock(&l->lock);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += WEB_KEEPALIVE_S;
		while (!l->quit && !stream_catch_up(st, l))
			if (pthread_cond_timedwait(&l->changed, &l->lock, &until) == ETIMEDOUT) {
				stream_add(st, NULL, "keep-alive");
				break;
			}
		if (l->quit)
			st->ended = true;
		pthread_mutex_unlock(&l->lock);
	}
	n = st->len - st->off < max ? st->len - st->off : max;
	memcpy(buf, st->out + st->off, n);
	st->off += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct web_stream *st = cls;
	struct live *l = &st->w->live;

	pthread_mutex_lock(&l->lock);
	l->streams--;
	pthread_mutex_unlock(&l->lock);
	free(st->out);
	free(st);
}

static enum MHD_Result do_live(struct pd_web *w, struct MHD_Connection *conn, const char *sid)
{
	struct web_stream *st = calloc(1, sizeof(*st));
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char hello[64];

	if (!st)
		return web_reply_error(conn, 500, "The daemon ran out of memory.");
	st->w = w;
	snprintf(st->sid, sizeof(st->sid), "%s", sid);
	pthread_mutex_lock(&w->live.lock);
	st->event = w->live.last_event; /* history comes from GET /v1/events */
	w->live.streams++;
	pthread_cond_signal(&w->live.wanted);
	pthread_mutex_unlock(&w->live.lock);
	snprintf(hello, sizeof(hello), "{\"last_event\":%lld}", (long long)st->event);
	stream_add(st, "hello", hello);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st,
						 stream_free);
	if (!resp) {
		stream_free(st);
		return MHD_NO;
	}
	security_headers(resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The hub's snapshot of what pd has now; under pd->lock. */
static char *render(struct plinthd *pd, void (*list)(struct plinthd *, struct pd_reply *))
{
	struct pd_reply r = {0};
	char *text = NULL;

	list(pd, &r);
	if (r.status == 200 && r.body)
		text = json_dumps(r.body, JSON_COMPACT);
	json_decref(r.body);
	return text;
}

static void hub_tick(struct pd_web *w)
{
	struct plinthd *pd = w->pd;
	struct live *l = &w->live;
	struct store_event *evs = NULL;
	char *vms, *tasks;
	size_t n = 0, i;
	int64_t after;
	bool changed = false;

	pthread_mutex_lock(&l->lock);
	after = l->last_event;
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_lock(&pd->lock);
	vms = render(pd, pd_vm_list);
	tasks = render(pd, pd_task_list);
	if (pd->ops->event_list(pd->st, after, WEB_EVENTS_RING, &evs, &n))
		n = 0;
	pthread_mutex_unlock(&pd->lock);

	pthread_mutex_lock(&l->lock);
	if (vms && (!l->vms || strcmp(vms, l->vms))) {
		free(l->vms);
		l->vms = vms;
		vms = NULL;
		l->vms_ver++;
		changed = true;
	}
	if (tasks && (!l->tasks || strcmp(tasks, l->tasks))) {
		free(l->tasks);
		l->tasks = tasks;
		tasks = NULL;
		l->tasks_ver++;
		changed = true;
	}
	for (i = 0; i < n; i++) {
		struct live_event *e = &l->ring[evs[i].id % WEB_EVENTS_RING];
		json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "id",
				      (json_int_t)evs[i].id, "time_ms", (json_int_t)evs[i].time_ms,
				      "actor", evs[i].actor, "action", evs[i].action, "object",
				      evs[i].object, "result", evs[i].result, "message",
				      evs[i].message);

		free(e->json);
		e->json = o ? json_dumps(o, JSON_COMPACT) : NULL;
		e->id = evs[i].id;
		json_decref(o);
		if (evs[i].id > l->last_event)
			l->last_event = evs[i].id;
		changed = true;
	}
	if (changed)
		pthread_cond_broadcast(&l->changed);
	pthread_mutex_unlock(&l->lock);
	free(evs);
	free(vms);
	free(tasks);
}

static void *hub_main(void *arg)
{
	struct pd_web *w = arg;
	struct live *l = &w->live;
	struct timespec period = {0, WEB_LIVE_PERIOD_MS * 1000000L};

	for (;;) {
		pthread_mutex_lock(&l->lock);
		while (!l->quit && !l->streams)
			pthread_cond_wait(&l->wanted, &l->lock);
		if (l->quit) {
			pthread_mutex_unlock(&l->lock);
			break;
		}
		pthread_mutex_unlock(&l->lock);
		hub_tick(w);
		nanosleep(&period, NULL);
	}
	return NULL;
}

/* The newest event id, so that streams start from now. Under pd->lock. */
static int64_t newest_event(struct plinthd *pd)
{
	struct store_event *evs;
	int64_t last = 0;
	size_t n;

	for (;;) {
		if (pd->ops->event_list(pd->st, last, PD_EVENTS_LIMIT_MAX, &evs, &n))
			return last;
		if (n)
			last = evs[n - 1].id;
		free(evs);
		if (n < PD_EVENTS_LIMIT_MAX)
			return last;
	}
}

/* --- consoles (web_ws.c) --------------------------------------------------------------- */

/*
 * POST /web/console/{vm}/ticket (a one-time ticket: CSRF-checked like every POST) and
 * GET /web/console/{vm}?ticket=T (the WebSocket: a browser cannot add the CSRF token to
 * it, so it needs an Origin, which browsers always send with a WebSocket, and the
 * ticket, which only the session's own page could ask for). rest: after the prefix.
 */
/* The VM name that starts rest (a URL's hostile path) into vm, the rest after it in
 * *tail. 0, or -EINVAL: not a VM name. */
static int url_vm(const char *rest, char vm[STORE_NAME_MAX], const char **tail)
{
	size_t len = strcspn(rest, "/");

	if (!len || len >= STORE_NAME_MAX)
		return -EINVAL;
	memcpy(vm, rest, len);
	vm[len] = '\0';
	*tail = rest + len;
	return pd_name_valid(vm) ? 0 : -EINVAL;
}

/* Does VM vm exist? 0, or an error reply's status (404, 500). */
static int vm_exists(struct pd_web *w, const char *vm)
{
	struct pd_reply r = {0};

	pthread_mutex_lock(&w->pd->lock);
	pd_vm_get(w->pd, vm, &r);
	pthread_mutex_unlock(&w->pd->lock);
	json_decref(r.body);
	return r.status == 200 ? 0 : r.status;
}

static enum MHD_Result do_console(struct pd_web *w, struct MHD_Connection *conn,
				  const char *rest, bool display, const char *method,
				  const char *sid, const struct web_session *s)
{
	const char *what = display ? "display" : "console";
	char vm[STORE_NAME_MAX], ticket[WEB_TOKEN_HEX], url[STORE_NAME_MAX + 96];
	const char *tail;
	int status;

	if (url_vm(rest, vm, &tail) || (*tail && strcmp(tail, "/ticket")))
		return web_reply_error(conn, 404, "There is no such page.");
	if (!*tail) {
		if (strcmp(method, "GET"))
			return web_reply_error(conn, 405, display ? "A display is opened with GET."
								  : "A console is opened with GET.");
		if (!header(conn, "Origin"))
			return web_reply_error(conn, 403,
					       display ? "A display's WebSocket needs an Origin."
						       : "A console's WebSocket needs an Origin.");
		return web_console_upgrade(w->consoles, conn, vm, display, sid, s);
	}
	if (strcmp(method, "POST"))
		return web_reply_error(conn, 405, display ? "A display ticket is asked for with POST."
							  : "A console ticket is asked for with POST.");
	status = vm_exists(w, vm);
	if (status)
		return web_reply_error(conn, status, status == 404 ? "There is no such VM."
								  : "The VM could not be read.");
	if (web_console_ticket(w->consoles, sid, vm, display, ticket))
		return web_reply_error(conn, 503, "Too many consoles are being opened; try again "
						  "in a few seconds.");
	snprintf(url, sizeof(url), "/web/%s/%s?ticket=%s", what, vm, ticket);
	return reply(conn, 200, json_pack("{s:s, s:s, s:i}", "ticket", ticket, "url", url,
					  "expires_s", WEB_TICKET_S),
		     NULL);
}

/* GET /web/stats/{vm}: the charts' figures (web_stats.c). */
static enum MHD_Result do_stats(struct pd_web *w, struct MHD_Connection *conn, const char *rest,
				const char *method)
{
	char vm[STORE_NAME_MAX];
	const char *tail;
	json_t *o;
	int status;

	if (url_vm(rest, vm, &tail) || *tail)
		return web_reply_error(conn, 404, "There is no such page.");
	if (strcmp(method, "GET"))
		return web_reply_error(conn, 405, "Statistics are read with GET.");
	status = vm_exists(w, vm);
	if (status)
		return web_reply_error(conn, status, status == 404 ? "There is no such VM."
								  : "The VM could not be read.");
	o = web_stats_json(w->stats, vm);
	return o ? reply(conn, 200, o, NULL)
		 : web_reply_error(conn, 500, "The daemon ran out of memory.");
}

/* --- routing ------------------------------------------------------------------------- */

static const struct web_asset *asset_find(const char *url)
{
	size_t i;

	if (!strcmp(url, "/"))
		url = "/index.html";
	for (i = 0; i < web_assets_count; i++)
		if (!strcmp(web_assets[i].path, url))
			return &web_assets[i];
	return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct pd_web *w = cls;
	struct web_req *rq = *con_cls;
	const struct web_asset *a;
	struct web_session s;
	char sid[WEB_TOKEN_HEX], cookie[160];
	const char *csrf;
	bool api = !strncmp(url, "/v1/", 4) || !strcmp(url, "/v1");

	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		return req_body_append(&rq->body, upload_data, n, PD_BODY_MAX) ? MHD_NO : MHD_YES;
	}
	if (rq->body.too_big)
		return web_reply_error(conn, 413, "The request is too large.");

	if (!api && strncmp(url, "/web/", 5)) {
		a = strcmp(method, "GET") ? NULL : asset_find(url);
		return a ? reply_asset(conn, a) : web_reply_error(conn, 404, "There is no such page.");
	}
	if (!strcmp(url, "/web/login")) {
		if (strcmp(method, "POST"))
			return web_reply_error(conn, 405, "Log in with POST.");
		return do_login(w, conn, rq);
	}
	/* Everything else needs a session, from this origin. */
	if (!same_origin(conn))
		return web_reply_error(conn, 403, "Requests from another site are refused.");
	if (request_session(w, conn, strcmp(url, "/web/live") != 0, &s, sid))
		return web_reply_error(conn, 401, "You are not logged in, or your session has ended; "
					      "log in again.");
	csrf = header(conn, "X-CSRF-Token");
	if (method_changes(method) && (!csrf || !web_secret_equal(csrf, s.csrf)))
		return web_reply_error(conn, 403, "This request did not come from the console's page "
					      "(its CSRF token is missing or wrong); reload the "
					      "page.");
	if (api)
		return do_api(w, conn, url, method, rq, &s);
	if (!strcmp(url, "/web/session") && !strcmp(method, "GET"))
		return reply(conn, 200,
			     json_pack("{s:s, s:s, s:s}", "user", s.user, "role", s.role, "csrf",
				       s.csrf),
			     NULL);
	if (!strcmp(url, "/web/logout") && !strcmp(method, "POST")) {
		web_session_end(w->users, sid);
		audit(w, s.user, "web.logout", s.user, "ok", "logged out");
		snprintf(cookie, sizeof(cookie), "%s=; Path=/; Secure; HttpOnly; SameSite=Strict; "
			 "Max-Age=0", WEB_COOKIE);
		return reply(conn, 200, json_pack("{s:b}", "logged_out", 1), cookie);
	}
	if (!strcmp(url, "/web/live") && !strcmp(method, "GET"))
		return do_live(w, conn, sid);
	if (!strncmp(url, "/web/console/", 13))
		return do_console(w, conn, url + 13, false, method, sid, &s);
	if (!strncmp(url, "/web/display/", 13))
		return do_console(w, conn, url + 13, true, method, sid, &s);
	if (!strncmp(url, "/web/stats/", 11))
		return do_stats(w, conn, url + 11, method);
	return web_reply_error(conn, 404, "There is no such page.");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct web_req *rq = *con_cls;

	if (rq) {
		req_body_free(&rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

/* --- start and stop ------------------------------------------------------------------- */

static int parse_listen(const char *addr, struct sockaddr_in *sa, char *ip, size_t iplen)
{
	const char *colon = strrchr(addr, ':');
	uint64_t port;

	if (!colon || (size_t)(colon - addr) >= iplen || parse_uint(colon + 1, 1, 65535, &port)) {
		log_error("--web tcp:ADDR:PORT: bad address '%s'", addr);
		return -EINVAL;
	}
	memcpy(ip, addr, (size_t)(colon - addr));
	ip[colon - addr] = '\0';
	if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1) {
		log_error("--web: '%s' is not an IPv4 address", ip);
		return -EINVAL;
	}
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

struct pd_web *pd_web_start(struct plinthd *pd, const struct web_options *o)
{
	struct sockaddr_in sa = {0};
	pthread_condattr_t ca;
	struct pd_web *w;
	char ip[64];

	if (parse_listen(o->listen, &sa, ip, sizeof(ip)))
		return NULL;
	if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		log_error("--web: this libmicrohttpd has no TLS");
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		log_error("out of memory");
		return NULL;
	}
	w->pd = pd;
	if (web_tls_load(pd->dir, o->cert_path, o->key_path, ip, &w->cert, &w->key))
		goto out_free;
	w->users = web_users_open(pd->dir);
	if (!w->users)
		goto out_free;
	w->consoles = web_consoles_new(pd, w->users);
	if (!w->consoles)
		goto out_users;
	w->stats = web_stats_start(pd);
	if (!w->stats)
		goto out_consoles;
	web_users_set_idle(w->users, o->idle_s ? o->idle_s : WEB_IDLE_DEFAULT_S);
	pthread_mutex_init(&w->live.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->live.changed, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&w->live.wanted, NULL);
	pthread_mutex_lock(&pd->lock);
	w->live.last_event = newest_event(pd);
	pthread_mutex_unlock(&pd->lock);
	if (pthread_create(&w->live.thread, NULL, hub_main, w)) {
		log_error("web: cannot create the live hub's thread");
		goto out_stats;
	}
	w->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
					  MHD_USE_TLS | MHD_ALLOW_UPGRADE,
				  0,
		NULL, NULL, on_request, w, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_HTTPS_MEM_CERT,
		w->cert, MHD_OPTION_HTTPS_MEM_KEY, w->key, MHD_OPTION_HTTPS_PRIORITIES,
		"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 64u,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
		MHD_OPTION_END);
	if (!w->mhd) {
		log_error("--web %s: cannot serve HTTPS there (address in use, or a bad "
			  "certificate or key)", o->listen);
		goto out_hub;
	}
	return w;

out_hub:
	pthread_mutex_lock(&w->live.lock);
	w->live.quit = true;
	pthread_cond_broadcast(&w->live.wanted);
	pthread_mutex_unlock(&w->live.lock);
	pthread_join(w->live.thread, NULL);
out_stats:
	web_stats_stop(w->stats);
out_consoles:
	web_consoles_free(w->consoles);
out_users:
	web_users_close(w->users);
out_free:
	free(w->cert);
	free(w->key);
	free(w);
	return NULL;
}

void pd_web_stop(struct pd_web *w)
{
	size_t i;

	if (!w)
		return;
	pthread_mutex_lock(&w->live.lock);
	w->live.quit = true; /* streams end, the hub stops */
	pthread_cond_broadcast(&w->live.changed);
	pthread_cond_broadcast(&w->live.wanted);
	pthread_mutex_unlock(&w->live.lock);
	web_consoles_stop(w->consoles); /* libmicrohttpd's stop needs upgraded connections closed */
	MHD_stop_daemon(w->mhd);
	pthread_join(w->live.thread, NULL);
	for (i = 0; i < WEB_EVENTS_RING; i++)
		free(w->live.ring[i].json);
	free(w->live.vms);
	free(w->live.tasks);
	pthread_cond_destroy(&w->live.changed);
	pthread_cond_destroy(&w->live.wanted);
	pthread_mutex_destroy(&w->live.lock);
	web_stats_stop(w->stats);
	web_consoles_free(w->consoles);
	web_users_close(w->users);
	free(w->cert);
	free(w->key);
	free(w);
}
