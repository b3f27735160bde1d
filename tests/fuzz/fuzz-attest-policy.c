/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The attestation policy parser (strict JSON), its canonical form (which must be strict JSON too),
 * and its check against a fixed well-formed report. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "json-strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void report(SnpReport *r) {
        uint8_t b[SNP_REPORT_SIZE] = {};

        b[0] = 3;         /* version */
        b[0x0A] = 0x0B;   /* policy: SMT, bit 17, DEBUG */
        b[0x34] = 1;      /* signature algorithm */
        b[0x188] = 0x19;  /* Milan */
        b[0x1EA] = 1;
        (void) snp_report_parse(b, sizeof(b), r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static SnpReport r;
        static int ready;
        AttestVmConfig vm = { .has_secure_boot = true, .secure_boot = true };
        AttestProblems problems;
        AttestPolicy *p = malloc(sizeof(*p));
        uint8_t digest[32];
        char why[256], *text = NULL;

        if (!p)
                return 0;
        if (!ready) {
                report(&r);
                ready = 1;
        }
        if (attest_policy_parse((const char *) data, size, p, why, sizeof(why)) == 0) {
                if (attest_policy_canonical(p, &text) == 0) {
                        /* The canonical text is what gets hashed and may be shown: it must be
                         * strict JSON itself. */
                        json_object *o = NULL;
                        if (json_parse_strict(text, strlen(text), 4, &o, why, sizeof(why)) != 0)
                                abort();
                        json_object_put(o);
                        free(text);
                }
                (void) attest_policy_digest(p, digest);
                attest_problems_init(&problems);
                (void) attest_policy_check(p, &r, &vm, &problems);
        }
        free(p);
        return 0;
}
