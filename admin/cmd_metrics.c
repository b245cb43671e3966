/*
 * cmd_metrics.c — `relay-admin metrics`: relay-milter's metrics in the Prometheus text
 * format, from the totals the milter persists in the state database (table counters,
 * state schema 3), for a relay whose node_exporter has no textfile collector: a cron job
 * or an exporter that runs commands scrapes this instead of `metrics_file`.
 *
 * The same names, types and labels as the milter's file (both render through sql/prom.h);
 * the values differ in what they span (see man/relay-admin.8, METRICS):
 *   - here: totals over every run of the milter on this state database, as of its last
 *     commit (state_flush_ms); the milter's file: since that process started;
 *   - the live gauges (writer backlog, start time) exist only in the file;
 *   - a labelled family lists here the labels that ever counted; the file lists every
 *     reason of the milter's table, zeros included.
 * Only names of the catalogue and well-formed labels are printed: the state database
 * belongs to the milter's user and is not trusted to write our output.
 * Output is all or nothing (buffered); --json is refused: the format is Prometheus's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "limit.h"
#include "prom.h"
#include "state.h"

#define ROWS_MAX 4096   /* far above what the catalogue can produce: a bound, not a limit */

struct row {
	enum rdb_prom_id id;
	char label[65];
	uint64_t value;
};

struct rows {
	struct row *r;
	size_t n, cap;
	uint64_t plain[RDB_PROM_COUNT_];   /* families without a label */
};

static int take(const char *name, const char *label, uint64_t value, void *arg)
{
	struct rows *rs = arg;
	enum rdb_prom_id id;
	const struct rdb_prom_family *f;

	if (!rdb_prom_lookup(name, &id) || id >= RDB_PROM_PERSISTED)
		return 0;   /* a name we do not print (a newer milter's, or junk) */
	f = rdb_prom_family(id);
	if (f->label == NULL) {
		if (label[0] == '\0')
			rs->plain[id] = value;
		return 0;
	}
	if (!rdb_prom_label_ok(label) || rs->n >= ROWS_MAX)
		return 0;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 32;
		struct row *r = realloc(rs->r, cap * sizeof *r);

		if (r == NULL)
			return -1;
		rs->r = r;
		rs->cap = cap;
	}
	rs->r[rs->n].id = id;
	snprintf(rs->r[rs->n].label, sizeof rs->r[rs->n].label, "%s", label);
	rs->r[rs->n].value = value;
	rs->n++;
	return 0;
}

static bool has(const struct rows *rs, enum rdb_prom_id id, const char *label)
{
	for (size_t k = 0; k < rs->n; k++)
		if (rs->r[k].id == id && strcmp(rs->r[k].label, label) == 0)
			return true;
	return false;
}

/* The text: every persisted family with its HELP and TYPE; known labels (limit metrics,
 * databases) always, at 0 when nothing counted yet, as in the milter's file. */
static void render(struct rdb_prom_buf *b, const struct rows *rs)
{
	static const char *const dbs[] = { "users", "state" };

	for (int id = 0; id < RDB_PROM_PERSISTED; id++) {
		const struct rdb_prom_family *f = rdb_prom_family((enum rdb_prom_id)id);

		rdb_prom_head(b, (enum rdb_prom_id)id);
		if (f->label == NULL) {
			rdb_prom_sample(b, (enum rdb_prom_id)id, NULL, rs->plain[id]);
			continue;
		}
		if (id == RDB_PROM_LIMIT_HITS)
			for (int m = 0; m < RDB_METRICS; m++)
				if (!has(rs, RDB_PROM_LIMIT_HITS, rdb_metric_name((enum rdb_metric)m)))
					rdb_prom_sample(b, RDB_PROM_LIMIT_HITS,
					                rdb_metric_name((enum rdb_metric)m), 0);
		if (id == RDB_PROM_DB_ERRORS)
			for (size_t d = 0; d < 2; d++)
				if (!has(rs, RDB_PROM_DB_ERRORS, dbs[d]))
					rdb_prom_sample(b, RDB_PROM_DB_ERRORS, dbs[d], 0);
		for (size_t k = 0; k < rs->n; k++)
			if (rs->r[k].id == (enum rdb_prom_id)id)
				rdb_prom_sample(b, (enum rdb_prom_id)id, rs->r[k].label, rs->r[k].value);
	}
}

int adm_cmd_metrics(struct adm_ctx *ctx, int argc, char **argv)
{
	struct rdb_state *st = NULL;
	struct rows rs = { 0 };
	struct rdb_prom_buf b = { 0 };
	enum rdb_result r;
	char err[512];
	int rc = ADM_EXIT_OK;

	if ((rc = adm_operands(ctx, argc, argv, 0, "no arguments")) != ADM_EXIT_OK)
		return rc;
	if (ctx->json)
		return adm_usage(ctx, "--json: metrics are printed in the Prometheus text format only");
	if (rdb_state_open(ctx->state_db_path, RDB_READONLY, &st, err, sizeof err) != RDB_OK) {
		adm_err(ctx, "%s", err);
		return ADM_EXIT_DB;
	}
	r = rdb_state_counter_foreach(st, take, &rs);
	if (r == RDB_NOTFOUND) {
		adm_warn(ctx, "state database %s predates the counters (schema 3): all zero until "
		         "relay-milter has started on it", ctx->state_db_path);
	} else if (r != RDB_OK) {
		adm_err(ctx, "state database: %s", rdb_state_errmsg(st));
		rc = ADM_EXIT_DB;
		goto out;
	}
	render(&b, &rs);
	if (b.failed) {
		adm_err(ctx, "out of memory");
		rc = ADM_EXIT_FAIL;
		goto out;
	}
	fwrite(b.text, 1, b.len, ctx->out);
out:
	rdb_prom_buf_free(&b);
	free(rs.r);
	rdb_state_close(st);
	return rc;
}
