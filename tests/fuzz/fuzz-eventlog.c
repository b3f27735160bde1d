/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event log parser (outside data: systemd and anyone with root write the same file), the
 * writer of our records, and the replay: a log whose records are all ours must survive writing
 * and parsing again unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "measure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const MeasureRecord *a, const MeasureRecord *b) {
        if (a->index != b->index || a->pcr != b->pcr || a->event != b->event || a->n_digests != b->n_digests ||
            strcmp(a->string, b->string) != 0 || strcmp(a->path, b->path) != 0 || strcmp(a->name, b->name) != 0 ||
            strcmp(a->uuid, b->uuid) != 0 || strcmp(a->boot_id, b->boot_id) != 0 ||
            a->has_timestamp != b->has_timestamp || (a->has_timestamp && a->timestamp != b->timestamp))
                return false;
        for (size_t i = 0; i < a->n_digests; i++)
                if (a->digests[i].bank != b->digests[i].bank ||
                    memcmp(a->digests[i].value, b->digests[i].value, tpm_bank_digest_size(a->digests[i].bank)) != 0)
                        return false;
        return true;
}

static void roundtrip(const MeasureLog *log) {
        char *text = NULL, why[MEASURE_WHY_MAX];
        size_t size = 0;
        MeasureLog again;

        for (size_t i = 0; i < log->n; i++) {
                char *rec = NULL;
                char *p;

                if (log->records[i].event == MEASURE_FOREIGN) {
                        free(text);
                        return;
                }
                if (measure_record_format(&log->records[i], &rec) < 0)
                        abort();
                p = realloc(text, size + strlen(rec) + 1);
                if (!p)
                        abort();
                text = p;
                memcpy(text + size, rec, strlen(rec) + 1);
                size += strlen(rec);
                free(rec);
        }
        if (measure_log_parse(text ? text : "", size, &again, why, sizeof(why)) < 0 || again.n != log->n)
                abort();
        for (size_t i = 0; i < log->n; i++)
                if (!same(&log->records[i], &again.records[i]))
                        abort();
        measure_log_done(&again);
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        TpmPcrValues actual[2] = { { .bank = 0x000B, .mask = 0xffffff }, { .bank = 0x000C, .mask = 0xffffff } };
        char why[MEASURE_WHY_MAX];
        MeasureVerdict v;
        MeasureLog log;

        if (measure_log_parse((const char *) data, size, &log, why, sizeof(why)) < 0)
                return 0;
        roundtrip(&log);
        measure_compare(&log, 15, actual, 2, &v);
        measure_log_done(&log);
        return 0;
}
