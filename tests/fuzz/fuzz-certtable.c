/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the live report sources parse from the kernel and the host: the extended report's
 * certificate table (and each certificate in it), the SEV guest device's MSG_REPORT_RSP, the
 * configfs-tsm generation counter, and --source specifications. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest-fetch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *report;
        const char *path;
        AttestSource source;
        SnpCertTable t;
        uint64_t generation;
        char *text;

        if (snp_cert_table_parse(data, size, &t) == 0)
                for (size_t i = 0; i < t.n; i++) {
                        X509 *c = NULL;

                        if (snp_cert_table_x509(data, &t.entry[i], &c) == 0)
                                X509_free(c);
                }
        (void) snp_report_response_parse(data, size, &report);
        (void) attest_tsm_generation_parse((const char *) data, size, &generation);
        text = malloc(size + 1);
        if (text) {
                memcpy(text, data, size);
                text[size] = 0;
                (void) attest_source_parse(text, &source, &path);
                free(text);
        }
        return 0;
}
