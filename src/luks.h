/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm.h"

/* LUKS2 side of enroll and unlock. Every function reads the header once into private memory,
 * checks it against the allow-list (luks-header.h) and works on that copy; functions return 0 or a
 * negative errno and put a one-line reason into `why` (the caller logs it once):
 *   -ENOKEY       passphrase, key file, PIN or recovery key does not open the volume
 *   -EKEYREJECTED the unsealed key is not the one sealed for this volume (swapped or forged volume)
 *   -EPERM        the TPM refused: a PCR differs from the sealed policy (why names it)
 *   -EREMCHG      the SRK differs from the one recorded at enroll
 *   -EUCLEAN      header or token rejected (allow-list, tampered token)
 *   -ENOENT       no token of ours, or its keyslot is gone
 *   -ENOMEDIUM    a PCR to bind was never extended (all zeros or all ones)
 */

#define LUKS_WHY_LEN 512

typedef struct EnrollParams {
        TpmPcrValues pcrs;        /* bank, mask; value[] of the PCRs in predicted_mask */
        uint32_t predicted_mask;  /* PCRs bound to a given value (--pcr-value), not the current one */
        const char *pin;          /* NULL: no PIN */
        size_t pin_size;
        bool recovery_key;
} EnrollParams;

typedef struct EnrollResult {
        int tpm_keyslot, tpm_token;
        int recovery_keyslot, recovery_token; /* -1 when none */
        char *recovery_key;                   /* secmem, dashed form; NULL when none */
} EnrollResult;

int luks_enroll(const char *device, const char *unlock_secret, size_t unlock_size, TpmContext *tpm,
                const EnrollParams *p, EnrollResult *ret, char *why, size_t why_size);
void enroll_result_done(EnrollResult *r);

/* name NULL: check the key against the keyslot without activating (the only mode without
 * device-mapper); name "": activate as luks-UUID, as systemd names volumes. pin NULL when none was
 * given. */
int luks_unlock_tpm(const char *device, const char *name, TpmContext *tpm, const char *pin, size_t pin_size,
                    char *why, size_t why_size);
int luks_unlock_recovery(const char *device, const char *name, const char *typed_key, size_t typed_size, char *why,
                         size_t why_size);
