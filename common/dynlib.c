// SPDX-License-Identifier: MIT
#include "dynlib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Lock held. */
static void load_now(struct dynlib *l)
{
	void *h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
	size_t i;

	if (!h) {
		snprintf(l->err, sizeof(l->err), "cannot load %s: %s", l->soname, dlerror());
		l->state = -1;
		return;
	}
	for (i = 0; i < l->n; i++) {
		l->addrs[i] = dlsym(h, l->names[i]);
		if (!l->addrs[i]) {
			snprintf(l->err, sizeof(l->err), "%s has no %s", l->soname, l->names[i]);
			l->state = -1;
			return; /* the handle stays: nothing else may unload what others use */
		}
	}
	l->state = 1;
}

int dynlib_load(struct dynlib *l)
{
	int state;

	pthread_mutex_lock(&l->lock);
	if (!l->state)
		load_now(l);
	state = l->state;
	pthread_mutex_unlock(&l->lock);
	if (state < 0)
		log_error("%s", l->err);
	return state > 0 ? 0 : -1;
}
