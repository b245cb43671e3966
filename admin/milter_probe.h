/*
 * milter_probe.h — does a milter socket answer? One connect to a Postfix milter spec
 * ("unix:/path", "local:/path" or "inet:HOST:PORT"), closed at once; an inet connect waits
 * at most 3 s. No state: thread safe.
 */
#ifndef RELAY_ADM_MILTER_PROBE_H
#define RELAY_ADM_MILTER_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/* True if something accepts a connection on `spec`; otherwise false with the reason
 * (path or address and the error) in `why`. */
bool adm_milter_answers(const char *spec, char *why, size_t whylen);

#endif
