/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Synthetic SEV-SNP reports for the unit tests: well-formed, unsigned, with the TCBs and chip ids
 * of the test hierarchy that tests/fixtures/make-test-chain builds. */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "attest.h"

/* Constants of tests/fixtures/make-test-chain. */
#define TEST_TCB_MILAN UINT64_C(0x7308000000000003) /* bl 3, tee 0, snp 8, ucode 115 */
#define TEST_TCB_TURIN UINT64_C(0x0500000004030201) /* fmc 1, bl 2, tee 3, snp 4, ucode 5 */

static inline void put32(uint8_t *b, size_t off, uint32_t v) {
        for (size_t i = 0; i < 4; i++)
                b[off + i] = (uint8_t) (v >> (8 * i));
}

static inline void put64(uint8_t *b, size_t off, uint64_t v) {
        for (size_t i = 0; i < 8; i++)
                b[off + i] = (uint8_t) (v >> (8 * i));
}

/* A well-formed unsigned report like the ones the test VCEK signs. */
static inline void synth(uint8_t *b, unsigned version) {
        memset(b, 0, SNP_REPORT_SIZE);
        put32(b, 0x000, version);
        put64(b, 0x008, 0x30000); /* SMT + reserved bit 17 */
        put32(b, 0x034, 1);
        put64(b, 0x038, TEST_TCB_MILAN);
        put64(b, 0x040, 0x1);
        for (size_t i = 0; i < 48; i++)
                b[0x090 + i] = (uint8_t) (0x40 + i); /* measurement */
        memset(b + 0x160, 0xFF, 32);                  /* report_id_ma: no migration agent */
        put64(b, 0x180, TEST_TCB_MILAN);
        if (version >= 3) {
                b[0x188] = 0x19;
                b[0x189] = 0x01;
                b[0x18A] = 0x01;
        }
        for (size_t i = 0; i < 64; i++)
                b[0x1A0 + i] = (uint8_t) (0xA0 + i); /* chip_id = HWID_MILAN */
        put64(b, 0x1E0, TEST_TCB_MILAN);
        b[0x1E8] = 10, b[0x1E9] = 55, b[0x1EA] = 1;  /* firmware 1.55.10 */
        b[0x1EC] = 10, b[0x1ED] = 55, b[0x1EE] = 1;
        put64(b, 0x1F0, TEST_TCB_MILAN);
}

static inline void synth_turin(uint8_t *b, unsigned version) {
        synth(b, version);
        if (version >= 3) {
                b[0x188] = 0x1A;
                b[0x189] = 0x02;
        }
        put64(b, 0x038, TEST_TCB_TURIN);
        put64(b, 0x180, TEST_TCB_TURIN);
        put64(b, 0x1E0, TEST_TCB_TURIN);
        put64(b, 0x1F0, TEST_TCB_TURIN);
        memset(b + 0x1A0, 0, 64);
        for (size_t i = 0; i < 8; i++)
                b[0x1A0 + i] = (uint8_t) (i + 1); /* HWID_TURIN */
}

static inline void show_problems(const AttestProblems *p) {
        for (size_t i = 0; i < p->n; i++)
                printf("#   %s: %s\n", p->item[i].check, p->item[i].reason);
}

static inline bool has_reason(const AttestProblems *p, const char *check, const char *substring) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->item[i].check, check) == 0 && strstr(p->item[i].reason, substring))
                        return true;
        return false;
}
