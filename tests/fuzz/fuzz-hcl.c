/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Azure HCL blob parser (header, lengths, embedded SNP report, runtime JSON, JWK), the binding
 * check, and the TPM quote parser on the same bytes. */
#include <stddef.h>
#include <stdint.h>

#include "hcl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        AttestProblems problems;
        TpmPcrValues pcrs;
        HclReport h = {};
        HclQuote q;

        if (hcl_report_parse(data, size, &h) == 0) {
                attest_problems_init(&problems);
                (void) hcl_check_binding(&h, &problems);
                hcl_report_done(&h);
        }
        (void) hcl_quote_parse(data, size, &q);
        (void) hcl_parse_pcr_values((const char *) data, size, &pcrs);
        return 0;
}
