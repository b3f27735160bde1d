/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The events that attestation and the boot sequence will record through measure.h, for
 * tests/bats/measure.bats until they do:
 *   measure-event TCTI LOG PCR attested POLICY        measure_attested() with POLICY's digest
 *   measure-event TCTI LOG PCR volume NAME UUID KEY   measure_volume() keyed with the bytes of file KEY
 * Exit 0, 1 on failure, 3 when a cap event was extended but not logged. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "macro.h"
#include "measure.h"
#include "secmem.h"
#include "tpm.h"

static int attested(TpmContext *t, const char *log, unsigned pcr, const char *path, char *why, size_t n) {
        AttestPolicy policy;
        uint8_t digest[32];
        int r;

        r = attest_policy_load(path, &policy, why, n);
        if (r >= 0)
                r = attest_policy_digest(&policy, digest);
        if (r < 0)
                return r;
        return measure_attested(t, log, pcr, digest, why, n);
}

static int volume(TpmContext *t, const char *log, unsigned pcr, char **argv, char *why, size_t n) {
        _cleanup_secmem_ uint8_t *key = secmem_alloc(512);
        _cleanup_fclose_ FILE *f = fopen(argv[2], "re");
        size_t size;

        if (!key || !f)
                return -errno;
        size = fread(key, 1, 512, f);
        if (size == 0)
                return -EINVAL;
        return measure_volume(t, log, pcr, argv[0], argv[1], key, size, why, n);
}

int main(int argc, char **argv) {
        _cleanup_(tpm_closep) TpmContext *t = NULL;
        char why[MEASURE_WHY_MAX] = "";
        unsigned pcr;
        int r;

        if (argc < 6 || !((strcmp(argv[4], "attested") == 0 && argc == 6) || (strcmp(argv[4], "volume") == 0 && argc == 8))) {
                fprintf(stderr, "usage: %s TCTI LOG PCR attested POLICY | volume NAME UUID KEYFILE\n", argv[0]);
                return 2;
        }
        pcr = (unsigned) atoi(argv[3]);
        r = tpm_open(argv[1], &t);
        if (r >= 0)
                r = strcmp(argv[4], "attested") == 0 ? attested(t, argv[2], pcr, argv[5], why, sizeof(why))
                                                     : volume(t, argv[2], pcr, argv + 5, why, sizeof(why));
        if (r < 0) {
                fprintf(stderr, "%s: %s (%s)\n", argv[4], why, strerror(-r));
                return 1;
        }
        if (r > 0) {
                fprintf(stderr, "%s: %s\n", argv[4], why);
                return 3;
        }
        return 0;
}
