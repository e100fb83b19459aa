// SPDX-License-Identifier: MIT
/* libFuzzer target: plinthd's request parser (daemon/request.c), and the stored
 * definition's round trip. Input: "METHOD PATH[?QUERY]\n" then the body; the first
 * line is split at the first space (none: all of it is the path, method POST). A
 * VM definition that parses must survive pd_vm_def_to_json() -> pd_vm_def_parse()
 * unchanged (what the inventory stores is what was accepted). */
#include <stdlib.h>
#include <string.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t head = nl ? (size_t)(nl - data) : size;
	char *line = malloc(head + 1), *path, *query;
	struct pd_request *req = malloc(sizeof(*req));
	struct pd_vm_def *back = malloc(sizeof(*back));
	const char *body = nl ? (const char *)nl + 1 : NULL;
	size_t body_len = nl ? size - head - 1 : 0;
	struct pd_error err;

	if (!line || !req || !back)
		goto out;
	memcpy(line, data, head);
	line[head] = '\0';
	path = strchr(line, ' ');
	if (path)
		*path++ = '\0';
	else
		path = line;
	query = strchr(path, '?');
	if (query)
		*query++ = '\0';
	if (!pd_parse_request(path == line ? "POST" : line, path, query, body, body_len, req,
			      &err) &&
	    req->route == PD_VM_CREATE) {
		json_t *j = pd_vm_def_to_json(&req->u.vm);
		char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

		if (text && (pd_vm_def_parse(text, back, &err) ||
			     memcmp(back, &req->u.vm, sizeof(*back))))
			abort(); /* accepted, stored, then read back differently */
		free(text);
		json_decref(j);
	}
out:
	free(back);
	free(req);
	free(line);
	return 0;
}
