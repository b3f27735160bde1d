/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SEV-SNP report parser and what runs on a parsed report without a certificate: the JSON
 * rendering, fixing the product, and the default policy. Each input is tried as given (size
 * checks) and cut or zero-padded to 1184 bytes, so most inputs reach the field checks. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size) {
        AttestProblems problems;
        AttestPolicy policy;
        json_object *o = NULL;
        SnpReport r;

        if (snp_report_parse(data, size, &r) < 0)
                return;
        if (snp_report_to_json(&r, &o) == 0)
                json_object_put(o);
        if (!r.tcb_layout_known)
                (void) snp_report_set_product(&r, data[size - 1] & 1 ? SNP_PRODUCT_TURIN : SNP_PRODUCT_MILAN);
        attest_policy_init(&policy);
        attest_problems_init(&problems);
        (void) attest_policy_check(&policy, &r, NULL, &problems);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t b[SNP_REPORT_SIZE] = {};

        one(data, size);
        memcpy(b, data, size < sizeof(b) ? size : sizeof(b));
        one(b, sizeof(b));
        return 0;
}
