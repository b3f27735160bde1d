/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm.h"

/* Our LUKS2 tokens. They live in the host-controlled header, so the parsers are strict: every
 * field required and of the right type, unknown fields and unknown versions refused, encodings
 * with exactly one spelling. On failure `why` names the field, e.g.
 * "token field 'tpm2-policy-hash' is not 64 hex digits", and the functions return -EINVAL
 * (malformed), -EOPNOTSUPP (a version we don't know) or -E2BIG (over a size bound).
 *
 *   {"type":"cvmcrypt-tpm2","keyslots":["1"],"version":1,
 *    "tpm2-blob":"<base64 of TPM2B_PUBLIC || TPM2B_PRIVATE>",
 *    "tpm2-pcrs":[0,4,7],"tpm2-pcr-bank":"sha256",
 *    "tpm2-pcr-values":{"0":"<hex>","4":"<hex>","7":"<hex>"},
 *    "tpm2-policy-hash":"<64 hex>","tpm2-srk-name":"<hex>","tpm2-pin":false,
 *    "attest":"<64 hex>"}                       (attest is optional)
 *
 *   {"type":"cvmcrypt-recovery","keyslots":["2"],"version":1}
 *
 *   {"type":"cvmcrypt-provision","keyslots":["0"],"version":1,
 *    "key":"<base64 of the 32-byte build-time passphrase>","tpm2-pcrs":[7],"tpm2-pcr-bank":"sha256"}
 *
 * The provisioning token marks the build-time keyslot as one to replace on the first boot
 * (provision.c). Its key is no secret: every copy of the image has it, which is why the first boot
 * re-keys the volume. tpm2-pcrs (possibly empty) are the PCRs the new key is sealed to,
 * besides the gate PCR.
 */

#define TOKEN_TPM2_TYPE "cvmcrypt-tpm2"
#define TOKEN_RECOVERY_TYPE "cvmcrypt-recovery"
#define TOKEN_PROVISION_TYPE "cvmcrypt-provision"
#define TOKEN_PROVISION_KEY_SIZE 32
#define TOKEN_VERSION 1
#define TOKEN_BLOB_MAX 1024     /* decoded tpm2-blob */
#define TOKEN_JSON_MAX 16384    /* a full token is about 4 KiB */
#define TOKEN_WHY_MAX 256
#define TOKEN_KEYSLOT_MAX 31

typedef struct Tpm2Token {
        unsigned keyslot;
        uint8_t blob[TOKEN_BLOB_MAX];           /* marshalled TPM2B_PUBLIC || TPM2B_PRIVATE */
        size_t blob_size;
        TpmPcrValues pcrs;                      /* bank, mask (tpm2-pcrs), values (tpm2-pcr-values) */
        uint8_t policy_hash[32];                /* SHA-256 policy digest = the object's authPolicy */
        uint8_t srk_name[TPM_NAME_MAX];         /* nameAlg (2 bytes, big-endian) + digest */
        size_t srk_name_size;
        bool pin;
        bool has_attest;
        uint8_t attest[32];                     /* digest of the attestation policy the token demands */
} Tpm2Token;

typedef struct RecoveryToken {
        unsigned keyslot;
} RecoveryToken;

typedef struct ProvisionToken {
        unsigned keyslot;
        bool keyslot_gone;                      /* keyslots []: the re-key has dropped the build-time slot */
        uint8_t key[TOKEN_PROVISION_KEY_SIZE];  /* the build-time passphrase of that keyslot */
        uint16_t bank;                          /* TPM2_ALG_SHA256 or TPM2_ALG_SHA384 */
        uint32_t pcr_mask;                      /* may be 0: the gate PCR alone */
} ProvisionToken;

/* json is a NUL-terminated token as libcryptsetup returns it (crypt_token_json_get). ret is written
 * only on success. */
int token_tpm2_parse(const char *json, Tpm2Token *ret, char *why, size_t why_size);
/* Returns the token as compact JSON (malloc'ed) in *ret; -EINVAL if t would not parse back. */
int token_tpm2_format(const Tpm2Token *t, char **ret);

int token_recovery_parse(const char *json, RecoveryToken *ret, char *why, size_t why_size);
int token_recovery_format(const RecoveryToken *t, char **ret);

int token_provision_parse(const char *json, ProvisionToken *ret, char *why, size_t why_size);
int token_provision_format(const ProvisionToken *t, char **ret);
