/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TPM access through ESAPI; tpm_unseal() through SAPI (see tpm.c). Every function returns 0 or a
 * negative errno and logs only at debug level. Errors the caller must tell apart:
 *   -ECOMM        TPM unreachable (TCTI could not be loaded or the transport failed)
 *   -EREMCHG      the SRK's name differs from the expected one (TPM reset, other VM)
 *   -EUCLEAN      the sealed object's authPolicy differs from the expected policy digest
 *   -EPERM        the TPM refused the policy (a PCR differs from the sealed value)
 *   -ENOKEY       wrong PIN
 *   -ENOLCK       dictionary-attack lockout
 *   -EBADMSG      a blob that does not unmarshal (or a TPM response that does not make sense)
 *   -EMEDIUMTYPE  the persistent key at TPM_SRK_HANDLE is not a restricted decryption key
 *   -EOPNOTSUPP   a bank the function cannot use (unknown, not active, or not a policy bank)
 *   -EREMOTEIO    any other TPM error (the TPM RC is logged at debug level)
 * Bad arguments (empty PCR mask, PCR >= TPM_PCR_MAX, empty PIN, data size) give -EINVAL. */

#define TPM_PCR_MAX 24
#define TPM_SRK_HANDLE 0x81000001u
#define TPM_NAME_MAX 68            /* nameAlg (2) + SHA-512 at most */
#define TPM_SEAL_MAX 128           /* MAX_SYM_DATA: the most a sealed object can hold */
#define TPM_DIGEST_MAX 64

typedef struct TpmContext TpmContext;

/* Bank: TPM2_ALG_SHA256 (0x000B) or TPM2_ALG_SHA384 (0x000C). */
typedef struct TpmPcrValues {
        uint16_t bank;
        uint32_t mask;                                 /* bit i = PCR i */
        uint8_t value[TPM_PCR_MAX][TPM_DIGEST_MAX];    /* only the bits in mask are meaningful */
} TpmPcrValues;

typedef struct TpmSealed {
        uint8_t *blob;             /* marshalled TPM2B_PUBLIC || TPM2B_PRIVATE (malloc'ed) */
        size_t blob_size;
        uint8_t policy[32];        /* SHA-256 policy digest = the object's authPolicy */
        uint8_t srk_name[TPM_NAME_MAX];
        size_t srk_name_size;
} TpmSealed;

/* tcti as in config: "device:/dev/tpmrm0", "swtpm:path=/run/x", "pcap:swtpm:path=...". */
int tpm_open(const char *tcti, TpmContext **ret);
TpmContext *tpm_close(TpmContext *t);
static inline void tpm_closep(TpmContext **t) {
        if (*t)
                (void) tpm_close(*t);
}

/* Known banks: sha1, sha256, sha384, sha512, sm3_256 (read, extend). Policies (tpm_policy_digest,
 * tpm_seal, tpm_unseal) take only sha256 and sha384. */
size_t tpm_bank_digest_size(uint16_t bank); /* 0 if the bank is not supported */
const char *tpm_bank_name(uint16_t bank);   /* "sha256", ...; NULL if unknown */
int tpm_bank_from_name(const char *name, uint16_t *ret);

/* Reads the PCRs in mask from bank (one or more TPM2_PCR_Read as needed). */
int tpm_pcr_read(TpmContext *t, uint16_t bank, uint32_t mask, TpmPcrValues *ret);

/* Banks the TPM has active (TPM2_GetCapability PCRS with at least one PCR allocated). */
int tpm_active_banks(TpmContext *t, uint16_t *banks, size_t max, size_t *ret_n);

/* Extends pcr in every active bank with the hash (in that bank's algorithm) of data. */
int tpm_pcr_extend_data(TpmContext *t, unsigned pcr, const void *data, size_t size);
/* Extends one bank with a digest computed by the caller. */
int tpm_pcr_extend_digest(TpmContext *t, unsigned pcr, uint16_t bank, const uint8_t *digest);

/* SHA-256 policy digest of PolicyPCR(bank, mask, values) [+ PolicyAuthValue if pin], computed in
 * software exactly as the TPM computes it. */
int tpm_policy_digest(const TpmPcrValues *pcrs, bool pin, uint8_t ret[32]);

/* Name of the SRK this TPM uses: the persistent key at TPM_SRK_HANDLE if present (it must be a
 * restricted decryption key), else the transient primary made from the standard SRK template
 * (ECC P-256, AES-128-CFB) in the owner hierarchy. */
int tpm_srk_name(TpmContext *t, uint8_t name[TPM_NAME_MAX], size_t *ret_size);

/* Seals data (1..TPM_SEAL_MAX bytes) under the SRK with PolicyPCR over pcrs (+ PolicyAuthValue when
 * pin != NULL; the auth value is SHA-256 of the PIN). Fills ret; free with tpm_sealed_done(). */
int tpm_seal(TpmContext *t, const TpmPcrValues *pcrs, const char *pin, size_t pin_size, const void *data,
             size_t size, TpmSealed *ret);

/* Unseals: checks the SRK name (-EREMCHG) and the loaded object's authPolicy (-EUCLEAN) against
 * sealed before anything secret moves, then runs PolicyPCR (+AuthValue) in a policy session salted
 * to the SRK with AES-128-CFB response encryption and unseals. On success *ret is a secmem buffer
 * (free with secmem_free) and *ret_size its length. Flushes everything it loaded. */
int tpm_unseal(TpmContext *t, const TpmSealed *sealed, uint16_t bank, uint32_t mask, const char *pin,
               size_t pin_size, uint8_t **ret, size_t *ret_size);

void tpm_sealed_done(TpmSealed *s);

/* Extends pcr in n banks with one TPM2_PCR_Extend, so all of them or none: digests[i] (the size
 * of banks[i]'s hash) in banks[i]. */
int tpm_pcr_extend_banks(TpmContext *t, unsigned pcr, const uint16_t *banks, const uint8_t (*digests)[TPM_DIGEST_MAX],
                         size_t n);

/* ---- NV indices, keys and quotes (attestation sources) ---- */

/* Size of a defined NV index; -ENOENT if it is not defined. */
int tpm_nv_size(TpmContext *t, uint32_t index, size_t *ret);

/* Reads a whole ordinary NV index of at most max bytes, in chunks of the TPM's TPM_PT_NV_BUFFER_MAX,
 * with owner authorization if the index allows it, else its own (empty) authorization. -ENOENT: not
 * defined; -EFBIG: larger than max; -ENODATA: never written; -EMEDIUMTYPE: not an ordinary index;
 * -EACCES: neither owner nor index authorization may read it, or it is read-locked. *ret is
 * malloc'ed. */
int tpm_nv_read(TpmContext *t, uint32_t index, size_t max, uint8_t **ret, size_t *ret_size);

/* Writes data (1..64 bytes) at offset 0 with owner authorization. The index must be an ordinary one
 * of at least size bytes (-EMSGSIZE). If it is not defined: -ENOENT, unless define is set, then it
 * is first defined with owner read/write (and platform read) and exactly size bytes. */
int tpm_nv_write(TpmContext *t, uint32_t index, const void *data, size_t size, bool define);

#define TPM_RSA_MODULUS_MAX 512

/* Public part of an RSA key, as the TPM reports it. exponent 0 means 65537 (TPM convention). */
typedef struct TpmRsaPublic {
        uint32_t attributes; /* TPMA_OBJECT */
        bool restricted_signing; /* restricted, sign, fixedTPM and not decrypt: an attestation key */
        uint16_t scheme;     /* TPM2_ALG_RSASSA, TPM2_ALG_RSAPSS or TPM2_ALG_NULL */
        uint16_t scheme_hash;
        uint32_t exponent;
        uint8_t modulus[TPM_RSA_MODULUS_MAX];
        size_t modulus_size;
} TpmRsaPublic;

typedef struct TpmQuote {
        uint8_t *attest;      /* marshalled TPMS_ATTEST, exactly as signed */
        size_t attest_size;
        uint8_t *signature;   /* marshalled TPMT_SIGNATURE */
        size_t signature_size;
} TpmQuote;

/* TPM2_ReadPublic and TPM2_Quote by the RSA key at a persistent handle (empty authorization, the
 * key's own signing scheme) over the PCRs in mask of bank, with nonce (1..32 bytes) as extraData.
 * The key is read first: -ENOENT if the handle is empty, -EMEDIUMTYPE if it is not an RSA key.
 * Nothing here is trusted: the caller verifies the quote with a key it got elsewhere. Free with
 * tpm_quote_done(). */
int tpm_quote(TpmContext *t, uint32_t handle, uint16_t bank, uint32_t mask, const uint8_t *nonce, size_t nonce_size,
              TpmRsaPublic *ret_key, TpmQuote *ret);
void tpm_quote_done(TpmQuote *q);
