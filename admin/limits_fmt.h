/*
 * limits_fmt.h — parsing and printing rate limits for relay-admin (cmd_limit.c; also used
 * by cmd_usage.c). "N/PERIOD" for counts, "SIZE/PERIOD" for bytes (e.g. 100/1h, 50M/1d).
 * Pure functions; `why` receives a short reason on failure.
 */
#ifndef RELAY_ADM_LIMITS_FMT_H
#define RELAY_ADM_LIMITS_FMT_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

bool adm_limit_parse(const char *spec, enum rdb_metric m, struct rdb_limit *out, char *why,
                     size_t whylen);
void adm_limit_format(const struct rdb_limit *l, char *out, size_t outlen);

#endif
