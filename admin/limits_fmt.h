/*
 * limits_fmt.h — parsing and printing rate limits for relay-admin (cmd_limit.c; also used
 * by cmd_usage.c). "N/PERIOD" for counts, "SIZE/PERIOD" for bytes (e.g. 100/1h, 50M/1d).
 * Pure functions; `why` receives a short reason on failure. Also the two steps `limit
 * show` and `usage` share: their arguments and opening the limit queries.
 */
#ifndef RELAY_ADM_LIMITS_FMT_H
#define RELAY_ADM_LIMITS_FMT_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

bool adm_limit_parse(const char *spec, enum rdb_metric m, struct rdb_limit *out, char *why,
                     size_t whylen);
void adm_limit_format(const struct rdb_limit *l, char *out, size_t outlen);

struct adm_ctx;

/* Parses `[--json] [NAME]` (sets ctx->json; optind is left on NAME if one is given, not
 * validated). Returns ADM_EXIT_OK or the usage error, printed. */
int adm_json_name_args(struct adm_ctx *ctx, int argc, char **argv);

/* Opens the users database and prepares the limit queries on it. On failure prints why,
 * leaves *db and *pol NULL and returns the exit code; ADM_EXIT_OK otherwise. */
int adm_open_policy(const struct adm_ctx *ctx, enum rdb_mode mode, struct rdb **db,
                    struct rdb_policy **pol);

#endif
