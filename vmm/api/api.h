/* SPDX-License-Identifier: MIT */
/*
 * The control API: REST/JSON over a Unix socket (docs/api.yaml is the contract),
 * served by a thread of its own (server.c, http.c), and `plinth ctl`, its
 * command-line client.
 *
 *   client (plinth ctl) --HTTP/1.1 over AF_UNIX--> API thread (server.c, http.c)
 *       -> api_parse_request(): method + path + body -> struct api_cmd (pure)
 *       -> api_dispatch(): struct api_cmd -> one call of struct api_vm_ops
 *       -> status + JSON body ({"error": "..."} on failure)
 *
 * Threads: the server runs ONE thread of its own (a poll loop over its clients).
 * Every op is called on that thread, one at a time (never two ops at once), but
 * concurrently with the VMM's vCPU and I/O threads: an op must be thread-safe
 * against them, and apply its change at a safe point (e.g. ask the vCPUs to stop and
 * wait for them). An op that takes long (a migration) should start the work, set
 * reply->accepted and return; the API keeps answering info while it runs. Until an op
 * returns, other requests wait.
 *
 * Errors: an op returns 0 or -errno, mapped by api_status_for_errno():
 *   -EINVAL -> 400, -ENOENT -> 404, -EBUSY / -EALREADY / -EEXIST -> 409 (illegal in
 *   the current state: resume a running VM, snapshot during a migration),
 *   -ENOTSUP -> 501, anything else -> 500. A NULL op is 501.
 */
#ifndef PLINTH_VMM_API_H
#define PLINTH_VMM_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define API_PATH_MAX		4096 /* bytes in a host path, NUL included */
#define API_UNIX_PATH_MAX	108  /* bytes in a Unix socket path (sun_path), NUL included */
#define API_HOST_MAX		256  /* bytes in a host name or address, NUL included */
#define API_DISK_ID_MAX		32   /* bytes in a disk id, NUL included */
#define API_ERROR_MAX		256  /* bytes in an error message, NUL included */
#define API_BODY_MAX		(64 * 1024) /* request body limit: 413 beyond */
#define API_DOWNTIME_DEFAULT_MS 300u
#define API_DOWNTIME_MAX_MS	60000u

/* POST /v1/vm/snapshot {"to": DIR} */
struct api_snapshot_args {
	char dir[API_PATH_MAX]; /* absolute path of the snapshot directory */
};

enum api_migrate_transport { API_MIGRATE_TCP, API_MIGRATE_UNIX };

/* POST /v1/vm/migrate {"to": "tcp:HOST:PORT" | "unix:PATH", "downtime_ms": N} */
struct api_migrate_args {
	enum api_migrate_transport transport;
	char host[API_HOST_MAX];      /* tcp: name or address, IPv6 brackets removed */
	uint16_t port;		      /* tcp: 1..65535 */
	char path[API_UNIX_PATH_MAX]; /* unix: absolute socket path */
	uint32_t downtime_ms;	      /* 1..API_DOWNTIME_MAX_MS, default API_DOWNTIME_DEFAULT_MS */
};

/* PUT /v1/vm/disks/{id} {"path": FILE, "readonly": BOOL, "format": NAME} */
#define API_FORMAT_MAX 16 /* bytes in an image format's name, NUL included */
struct api_disk_args {
	char id[API_DISK_ID_MAX]; /* 1..31 chars of [A-Za-z0-9_-] */
	char path[API_PATH_MAX];  /* absolute path of the image */
	bool readonly;		  /* default false */
	char format[API_FORMAT_MAX]; /* "" (recognised by its magic) or the VMM checks it */
};

/* PUT /v1/vm/nets/{id} {"tap": IFNAME, "mac": "XX:XX:XX:XX:XX:XX"} */
#define API_TAP_MAX 16 /* bytes in a tap's name (IFNAMSIZ), NUL included */
#define API_MAC_MAX 18 /* bytes in "XX:XX:XX:XX:XX:XX", NUL included */
struct api_net_args {
	char id[API_DISK_ID_MAX]; /* as a disk's */
	char tap[API_TAP_MAX];
	char mac[API_MAC_MAX];    /* "" (derived from the tap) or the VMM checks it */
};

/*
 * POST /v1/vm/start, before boot: no body or {} boots the configured machine;
 * {"from": DIR, "paused": BOOL} restores it from a snapshot (plinth restore);
 * {"listen": "tcp:HOST:PORT" | "unix:PATH"} waits for a migration (plinth receive).
 */
struct api_start_args {
	char from[API_PATH_MAX];   /* "" or the snapshot directory (absolute) */
	char listen[API_PATH_MAX]; /* "" or the address, as given (checked) */
	bool paused;		   /* with from: the restored guest stays paused */
};

/* What an op hands back, beyond its return value. */
struct api_reply {
	json_t *body;		   /* JSON object to return, or NULL for {}; the server takes
				    * the reference (also on failure: it is then dropped) */
	bool accepted;		   /* work goes on after the op returned: 202 instead of 200 */
	char error[API_ERROR_MAX]; /* on failure, an optional one-line reason */
	/* Called (with the ops' vm pointer) on the server's thread once the answer has been
	 * sent or the client went away; NULL: nothing to do. */
	void (*sent)(void *vm);
};

/*
 * The VMM's side, called on the API thread (see the top of this file). vm is the
 * pointer given to api_server_start(). Each returns 0 or -errno. A NULL op is
 * answered 501.
 */
struct api_vm_ops {
	/* GET /v1/vm: reply->body must be set to an object, e.g. {"state": "running",
	 * "config": {...}, "counters": {...}} (docs/api.yaml). */
	int (*info)(void *vm, struct api_reply *reply);
	int (*pause)(void *vm, struct api_reply *reply);    /* -EALREADY if paused */
	int (*resume)(void *vm, struct api_reply *reply);   /* -EALREADY if running */
	int (*shutdown)(void *vm, struct api_reply *reply); /* ACPI power button */
	int (*reset)(void *vm, struct api_reply *reply);
	int (*snapshot)(void *vm, const struct api_snapshot_args *args, struct api_reply *reply);
	int (*migrate)(void *vm, const struct api_migrate_args *args, struct api_reply *reply);
	int (*disk_add)(void *vm, const struct api_disk_args *args, struct api_reply *reply);
	int (*disk_remove)(void *vm, const char *id, struct api_reply *reply);
	int (*net_add)(void *vm, const struct api_net_args *args, struct api_reply *reply);
	int (*net_remove)(void *vm, const char *id, struct api_reply *reply);
	/* PUT /v1/vm/config: the whole machine before boot (a JSON object whose schema the
	 * VMM checks: -EINVAL and one line when bad); -EBUSY once the VM started. */
	int (*configure)(void *vm, const json_t *config, struct api_reply *reply);
	/* POST /v1/vm/start: boot, restore or receive the configured machine; -EBUSY once
	 * it started. */
	int (*start)(void *vm, const struct api_start_args *args, struct api_reply *reply);
};

/* --- Requests (pure: no I/O, no globals; fuzzed) ------------------------------------- */

enum api_cmd_kind {
	API_CMD_INFO,
	API_CMD_PAUSE,
	API_CMD_RESUME,
	API_CMD_SHUTDOWN,
	API_CMD_RESET,
	API_CMD_SNAPSHOT,
	API_CMD_MIGRATE,
	API_CMD_DISK_ADD,
	API_CMD_DISK_REMOVE,
	API_CMD_NET_ADD,
	API_CMD_NET_REMOVE,
	API_CMD_CONFIGURE,
	API_CMD_START,
};

struct api_cmd {
	enum api_cmd_kind kind;
	union {
		struct api_snapshot_args snapshot;
		struct api_migrate_args migrate;
		struct api_disk_args disk; /* DISK_REMOVE uses only disk.id */
		struct api_net_args net;   /* NET_REMOVE uses only net.id */
		json_t *config;            /* CONFIGURE: the body, owned (api_cmd_free) */
		struct api_start_args start;
	} u;
};

/* Free what a parsed command owns (the CONFIGURE body); cmd may be unparsed (zeroed). */
void api_cmd_free(struct api_cmd *cmd);

/* Why a request was refused. */
struct api_request_error {
	int status;		 /* 4xx */
	const char *allow;	 /* for 405: the methods the path accepts (static) */
	char msg[API_ERROR_MAX]; /* one line */
};

/*
 * Parse one request. method and path are NUL-terminated (path without the query
 * string); body is body_len bytes, not NUL-terminated, may be NULL when empty.
 * Returns 0 with *cmd filled, or the HTTP status (400, 404, 405, 413) with err
 * filled. Unknown fields, wrong types, embedded NULs and duplicate keys are 400.
 * The caller frees *cmd with api_cmd_free() after a 0.
 */
int api_parse_request(const char *method, const char *path, const char *body, size_t body_len,
		      struct api_cmd *cmd, struct api_request_error *err);

/*
 * Parse a migration address "tcp:HOST:PORT" or "unix:/PATH" (the same rules as the
 * "to" field), e.g. for the destination's listening address. downtime_ms is set to
 * the default. 0 or -EINVAL with a one-line reason in err (messages say "field 'to'").
 */
int api_parse_migrate_uri(const char *uri, struct api_migrate_args *out, char *err, size_t errlen);

/* True if host (brackets removed) is a numeric IPv4 or IPv6 address, not a name. */
bool api_host_numeric(const char *host);

/*
 * The client's side of "tcp:NAME:PORT": the VMM never resolves names (its seccomp
 * filter forbids what the resolver does: uname, /etc/hosts, DNS sockets), so
 * `plinth ctl migrate` resolves NAME here, in the unfiltered client, and sends
 * "tcp:ADDR:PORT" ("tcp:[ADDR]:PORT" for IPv6). Other URIs are copied unchanged.
 * 0, or -EINVAL/-EHOSTUNREACH with a one-line reason in err.
 */
int api_resolve_migrate_uri(const char *uri, char *out, size_t outlen, char *err, size_t errlen);

/* True for a valid disk id: 1..31 characters of [A-Za-z0-9_-]. */
bool api_disk_id_valid(const char *id);

/* The HTTP status for an op's result (0 -> 200; see the top of this file). */
int api_status_for_errno(int err);

/* One response: status and a JSON body (owned by the response). */
struct api_response {
	int status;
	json_t *body;
	void (*sent)(void *vm); /* the op's api_reply.sent */
};

/*
 * Run cmd against ops and build the response (success: the op's body or {};
 * failure: {"error": reason}). Never fails: *resp->body is always set (or NULL only
 * if out of memory).
 */
void api_dispatch(const struct api_vm_ops *ops, void *vm, const struct api_cmd *cmd,
		  struct api_response *resp);

/* An error response body {"error": msg}; NULL if out of memory. */
json_t *api_error_body(const char *msg);

/* --- Server ---------------------------------------------------------------------- */

struct api_server;

/*
 * Listen on a Unix socket at socket_path (mode 0600) and serve on a new thread:
 * api_listen() then api_server_start_fd(). A stale socket left by a dead process
 * is replaced; a live one or a non-socket file is refused. ops and vm must outlive
 * the server. NULL with the reason logged.
 */
struct api_server *api_server_start(const char *socket_path, const struct api_vm_ops *ops,
				    void *vm);

/*
 * The same in two steps, for a sandboxed VMM (vmm/sandbox/sandbox.h):
 * api_listen() on the set-up thread, before any seccomp filter (it stats, connects
 * to and unlinks a stale socket, chmods, and seeds jansson, which reads
 * /dev/urandom); then, on the API thread after sandbox_seccomp_install(SANDBOX_API),
 * api_server_start_fd(), whose thread inherits that filter.
 * api_listen: a listening fd or -errno, logged.
 * api_server_start_fd: takes listen_fd (closed on failure too); socket_path is
 * unlinked by api_server_stop() if not NULL (pass NULL when the stopping thread may
 * not unlink, and unlink it from the main thread). NULL with the reason logged.
 */
int api_listen(const char *socket_path);
struct api_server *api_server_start_fd(int listen_fd, const char *socket_path,
				       const struct api_vm_ops *ops, void *vm);

/*
 * Stop the thread (waits for the running request), close and unlink the socket.
 * Never call it from an op, nor while holding a lock an op may wait for: it waits
 * for the op to return. The vm pointer given to start must stay valid until then
 * (across guest reboots too, if the VMM rebuilds its struct vm on reset).
 */
void api_server_stop(struct api_server *s);

/*
 * Stop the thread as api_server_stop() does, but keep the listening socket open and
 * listening (not unlinked): its fd, now the caller's, for the next server; or -1,
 * logged. For the pre-boot API handing its socket to the running VM's (vmm/preboot.h).
 */
int api_server_release(struct api_server *s);

/* --- Client ---------------------------------------------------------------------- */

/*
 * `plinth ctl`: argv[0] is "ctl" (main passes argc - 1, argv + 1), then
 *   --api-socket PATH [--timeout S] COMMAND [OPTIONS]
 * COMMAND: info | pause | resume | shutdown | reset | snapshot --to DIR |
 *          migrate --to tcp:HOST:PORT|unix:PATH [--downtime-ms N] |
 *          disk-add --id ID --path FILE [--format FMT] [--readonly] |
 *          disk-remove --id ID | net-add --id ID --tap IFNAME [--mac MAC] |
 *          net-remove --id ID |
 *          config --file FILE|- | start
 * Prints the JSON result on stdout; returns 0 on a 2xx answer, 1 otherwise with one
 * line on stderr.
 */
int ctl_main(int argc, char **argv);

/*
 * One request over the Unix socket at socket_path. body may be NULL. On success
 * (any HTTP status) returns 0 with *status and *resp_body (malloc'd, NUL-terminated,
 * caller frees); -errno otherwise with a one-line reason in err.
 */
int ctl_request(const char *socket_path, const char *method, const char *path, const char *body,
		int timeout_ms, int *status, char **resp_body, char *err, size_t errlen);

/*
 * Parse an HTTP/1.1 response held in buf[0..len) (all of it: the server closes the
 * connection): status, and the body located by Content-Length. 0 or -EBADMSG with a
 * reason in err. Pure; fuzzed.
 */
int ctl_parse_response(const char *buf, size_t len, int *status, const char **body,
		       size_t *body_len, char *err, size_t errlen);

#endif
