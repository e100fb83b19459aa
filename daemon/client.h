/* SPDX-License-Identifier: MIT */
/*
 * The `plinth vm|image|net|task|events` verbs: plinthd's command-line client (virsh's
 * shape). Talks to plinthd's control socket only.
 */
#ifndef PLINTH_DAEMON_CLIENT_H
#define PLINTH_DAEMON_CLIENT_H

#include <stdbool.h>

/* True if word is one of the client's nouns (vm, image, net, task, events). */
bool pd_client_handles(const char *word);
/* argv[0] is the noun; returns the exit status (0, 1 failure, 2 usage). */
int pd_client_main(int argc, char **argv);

#endif
