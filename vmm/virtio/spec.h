/* SPDX-License-Identifier: MIT */
/*
 * Device specs from the command line: "key=value,key=value". A comma inside a
 * value is written twice (",,"), as QEMU does. Errors are logged as one line
 * naming the option ("--disk: unknown key 'foo' (expected path, format, readonly)").
 */
#ifndef PLINTH_VMM_VIRTIO_SPEC_H
#define PLINTH_VMM_VIRTIO_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/*
 * Split spec into values for the nkeys names in keys: vals[i] receives a
 * malloc'd copy (owned by the caller, freed with spec_free) or NULL when absent.
 * A bare word (no '=') is accepted only when flag_key names a key that may
 * appear alone (e.g. "--console virtio"), and is then stored under it.
 * 0, or -EINVAL (unknown or repeated key, empty spec, missing '=') / -ENOMEM.
 */
int spec_parse(const char *opt, const char *spec, const char *const *keys, size_t nkeys,
	       const char *flag_key, char **vals);
void spec_free(char **vals, size_t nkeys);

/* "on/off/yes/no/true/false/1/0". 0 or -EINVAL (logged with opt and key). */
int spec_bool(const char *opt, const char *key, const char *val, bool *out);
/* Unsigned decimal in [min, max]. 0 or -EINVAL (logged). */
int spec_uint(const char *opt, const char *key, const char *val, uint64_t min, uint64_t max,
	      uint64_t *out);

/*
 * For the device classes (vmm/devconf.h) beside each device: a key's value copied
 * (NULL stays NULL), a flag (absent: false); 0, or -ENOMEM / -EINVAL logged with opt.
 */
int spec_dup(const char *opt, const char *val, char **out);
int spec_flag(const char *opt, const char *key, const char *val, bool *out);
/*
 * to_json's builders: o with key set (a string only when val is not NULL, a flag only
 * when true); NULL, with o released, when there is no memory. o may be NULL (passed on).
 */
json_t *spec_json_str(json_t *o, const char *key, const char *val);
json_t *spec_json_flag(json_t *o, const char *key, bool val);
json_t *spec_json_uint(json_t *o, const char *key, uint64_t val);

/* A class without options of its own (--rng, --balloon): its parse, to_json, reopens_in_jail. */
int spec_none_parse(const char *opt, char *const *vals, void **conf);
json_t *spec_none_to_json(const void *conf);
bool spec_none_reopens(const void *conf);

#endif
