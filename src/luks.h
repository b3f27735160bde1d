/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "luks-header.h"
#include "token.h"
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
 *   -ENOTUNIQ     several cvmcrypt-tpm2 tokens and none chosen
 *   -ENOTEMPTY    removing a token would leave no way in that survives a PCR change
 */

#define LUKS_WHY_LEN 512

typedef struct EnrollParams {
        TpmPcrValues pcrs;        /* bank, mask; value[] of the PCRs in predicted_mask */
        uint32_t predicted_mask;  /* PCRs bound to a given value (--pcr-value), not the current one */
        const char *pin;          /* NULL: no PIN */
        size_t pin_size;
        bool recovery_key;
        bool has_attest;          /* the token demands attestation against the policy with this digest */
        uint8_t attest[32];
} EnrollParams;

typedef struct EnrollResult {
        int tpm_keyslot, tpm_token;
        int recovery_keyslot, recovery_token; /* -1 when none */
        char *recovery_key;                   /* secmem, dashed form; NULL when none */
} EnrollResult;

int luks_enroll(const char *device, const char *unlock_secret, size_t unlock_size, TpmContext *tpm,
                const EnrollParams *p, EnrollResult *ret, char *why, size_t why_size);
void enroll_result_done(EnrollResult *r);

/* What unlock asks its caller for, each optional (NULL).
 * attest: before a token that demands attestation (Tpm2Token.has_attest) is unsealed; brings the
 *   gate PCR to its attested value or fails (why set). The unseal is tried either way, so that a
 *   failed attestation ends in the TPM's own refusal; unlock then returns attest's error.
 * unlocked: after the key was verified (and the volume activated), with the volume key (in secure
 *   memory, only for the duration of the call) and the volume's UUID. */
typedef struct LuksUnlockHooks {
        int (*attest)(void *userdata, const Tpm2Token *t, int token_id, char *why, size_t why_size);
        int (*unlocked)(void *userdata, const char *uuid, const uint8_t *vk, size_t vk_size);
        void *userdata;
} LuksUnlockHooks;

/* name NULL: check the key against the keyslot without activating (the only mode without
 * device-mapper); name "": activate as luks-UUID, as systemd names volumes. pin NULL when none was
 * given. */
int luks_unlock_tpm(const char *device, const char *name, TpmContext *tpm, const char *pin, size_t pin_size,
                    const LuksUnlockHooks *hooks, char *why, size_t why_size);
int luks_unlock_recovery(const char *device, const char *name, const char *typed_key, size_t typed_size, char *why,
                         size_t why_size);

/* Sends libcryptsetup's messages to our log at debug level (it prints to stderr otherwise). */
void luks_log_setup(void);

/* status: what the header holds and whether each TPM token would unlock now, judged without
 * unsealing anything (the token's consistency, the SRK's name and the PCRs' current values). */
typedef enum LuksVerdict {
        LUKS_VERDICT_YES,
        LUKS_VERDICT_NO,
        LUKS_VERDICT_UNKNOWN, /* the TPM could not be asked */
} LuksVerdict;

typedef struct LuksTokenStatus {
        int id;
        char type[64];
        uint32_t keyslots;         /* keyslots the token is assigned to */
        bool tpm2, recovery;       /* one of ours */
        bool parsed;               /* tpm2 or recovery, and it parses */
        Tpm2Token tpm2_token;      /* when tpm2 && parsed */
        bool srk_read, srk_matches;
        bool pcrs_read;
        TpmPcrValues now;          /* current values of the token's PCRs, when pcrs_read */
        uint32_t differs;          /* PCRs whose current value differs from the sealed one */
        LuksVerdict verdict;       /* tpm2 tokens only */
        char why[LUKS_WHY_LEN];    /* parse error, or why it would not unlock */
} LuksTokenStatus;

typedef struct LuksStatus {
        char uuid[37], label[48], cipher[32];
        uint32_t sector_size, volume_key_size;
        uint32_t keyslots;
        size_t n_tokens;
        LuksTokenStatus tokens[LUKS_SLOTS_MAX];
} LuksStatus;

/* tpm NULL: verdicts are LUKS_VERDICT_UNKNOWN. */
int luks_status(const char *device, TpmContext *tpm, LuksStatus *ret, char *why, size_t why_size);

/* reseal and recover: a new TPM slot first, proven to unseal, and only then the old one goes. */
typedef struct ResealParams {
        int token;               /* the cvmcrypt-tpm2 token to replace; -1: the only one (or none) */
        bool binding_given;      /* false: bank and PCRs of the old token (sha256 PCR 7 without one) */
        EnrollParams binding;    /* pcrs, predicted_mask, pin (the PIN also unseals the old token) */
        const char *secret;      /* passphrase or recovery key; NULL: unseal the old token */
        size_t secret_size;
        bool recovery_only;      /* recover: secret must open a cvmcrypt-recovery keyslot */
} ResealParams;

typedef struct ResealResult {
        int tpm_keyslot, tpm_token;
        TpmPcrValues pcrs;       /* the new binding (bank, mask, values) */
        bool pin;
        bool proven;             /* the new token unsealed the volume key */
        uint32_t removed;        /* old tokens removed */
        uint32_t kept;           /* old tokens kept: bound to predicted values, nothing is proven */
} ResealResult;

int luks_reseal(const char *device, TpmContext *tpm, const ResealParams *p, ResealResult *ret, char *why,
                size_t why_size);

/* Removes a token and the keyslots no other token uses; refuses (-ENOTEMPTY) when no keyslot would
 * be left outside TPM-bound tokens, since a PCR change would then lock the volume. */
int luks_remove_token(const char *device, int token, uint32_t *ret_keyslots, char *why, size_t why_size);

/* ---- First-boot provisioning (provision.c) ---- */

struct crypt_device;

/* PBKDF2 with 1000 iterations for the keyslots of random secrets (TPM, recovery and build-time
 * keys): a slow KDF adds nothing to them but boot time. */
int luks_use_fast_kdf(struct crypt_device *cd);

/* A TPM slot, and the recovery slot when p->recovery_key, for vk on a writable context; key_flags as
 * for crypt_keyslot_add_by_key() (provisioning adds slots for a new key that is not yet the
 * volume's), 0 for the volume key. ret->recovery_key receives the recovery key. */
int luks_add_sealed_slots(struct crypt_device *cd, TpmContext *tpm, const EnrollParams *p, const uint8_t *vk,
                          size_t vk_size, uint32_t key_flags, EnrollResult *ret, char *why, size_t why_size);

/* The volume key from a cvmcrypt-tpm2 token of a volume whose provisioning re-key is pending (the
 * header checked with LUKS_SNAPSHOT_PROVISION); vk holds VK_MAX (64) bytes. */
int luks_unseal_provisioning(const char *device, TpmContext *tpm, uint8_t *vk, size_t *vk_size, char *why,
                             size_t why_size);
