// SPDX-License-Identifier: MIT
/* libFuzzer target: the web console's log-in body (daemon/web_users.c,
 * web_parse_login). Input: the body. What it accepts is a valid user name and a
 * password of at most WEB_PASSWORD_MAX bytes with no NUL, both NUL-terminated. */
#include <stdlib.h>
#include <string.h>

#include "web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char user[STORE_NAME_MAX], password[WEB_PASSWORD_MAX + 1];

	if (web_parse_login((const char *)data, size, user, password) == 0 &&
	    (!pd_name_valid(user) || strlen(password) > WEB_PASSWORD_MAX))
		abort();
	return 0;
}
