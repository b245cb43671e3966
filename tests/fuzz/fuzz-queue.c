/*
 * fuzz-queue.c — libFuzzer target for admin/queue_json.c: one line of `postqueue -j` as
 * relay-admin held reads it before choosing what postsuper is asked to do. Any input must
 * parse or be refused without a crash, a leak or a read past the string; a message read
 * has a valid queue id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct adm_qmsg m = { 0 };
	char err[256];

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	if (adm_queue_parse_line(line, &m, err, sizeof err) == 1) {
		if (!adm_queue_id_valid(m.queue_id) || m.sender == NULL)
			abort();
		for (size_t k = 0; k < m.nrcpt; k++)
			if (m.rcpt[k] == NULL)
				abort();
	}
	adm_qmsg_clear(&m);
	free(line);
	return 0;
}
