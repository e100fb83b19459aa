// SPDX-License-Identifier: MIT
/* libFuzzer target: the API request parser. Input: "METHOD PATH\n" then the body;
 * the first line is split at the first space (no space: all of it is the path). */
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t head = nl ? (size_t)(nl - data) : size;
	char *line = malloc(head + 1), *path;
	struct api_request_error err;
	struct api_cmd cmd;
	const char *body = nl ? (const char *)nl + 1 : NULL;
	size_t body_len = nl ? size - head - 1 : 0;

	if (!line)
		return 0;
	memcpy(line, data, head);
	line[head] = '\0';
	path = strchr(line, ' ');
	if (path)
		*path++ = '\0';
	if (!api_parse_request(path ? line : "POST", path ? path : line, body, body_len, &cmd, &err))
		api_cmd_free(&cmd);
	free(line);
	return 0;
}
