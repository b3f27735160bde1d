/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Azure HCL report (vTPM NV index 0x01400001) and the vTPM quote that ties PCRs to it. Layouts:
 * docs/attestation-formats.md sections 3 and 4. Chain of trust: SNP report (attest.h) ->
 * REPORT_DATA = hash of the runtime JSON -> HCLAkPub -> quote signature -> PCR digest + nonce.
 * Returns 0 or a negative errno; -EBADE when something does not verify (problems filled),
 * -EBADMSG for malformed input, -EOPNOTSUPP for well-formed variants we do not handle (TDX). */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest.h"
#include "tpm.h"

#define HCL_NV_INDEX 0x01400001u
#define HCL_USER_DATA_NV_INDEX 0x01400002u
#define HCL_AK_HANDLE 0x81000003u
#define HCL_BLOB_MAX (8u * 1024u)
#define HCL_REPORT_OFFSET 0x20u
#define HCL_RUNTIME_OFFSET 0x4D4u

typedef struct HclReport {
        uint32_t header_version; /* 1 or 2 */
        uint32_t report_size;    /* bytes used: HCL_RUNTIME_OFFSET + runtime_size */
        uint32_t request_type;
        uint32_t status;
        uint32_t data_size;      /* 20 + runtime_size */
        uint32_t data_version;
        uint32_t report_type;    /* 2 = SNP */
        uint32_t hash_type;      /* 1 SHA-256, 2 SHA-384, 3 SHA-512 */
        SnpReport snp;
        char *runtime_json;      /* the exact stored bytes, NUL-terminated copy */
        size_t runtime_size;

        /* From the runtime JSON */
        EVP_PKEY *ak_pub;        /* HCLAkPub, RSA */
        bool has_ek_pub;         /* HCLEkPub present (not used for verification) */
        AttestVmConfig vm_config;
        char vm_unique_id[64];
        bool has_user_data;
        uint8_t user_data[64];
} HclReport;

/* Parses a blob of at most HCL_BLOB_MAX bytes: "HCLA" header (version 1 or 2), the SNP report at
 * 0x20 (snp_report_parse()), runtime-data header and JSON at 0x4D4 with every length consistent,
 * zero padding after the used length. The JSON is parsed strictly; it must hold exactly one RSA
 * key "HCLAkPub" (2048 bits or more). Free with hcl_report_done(). */
int hcl_report_parse(const uint8_t *data, size_t size, HclReport *ret);
void hcl_report_done(HclReport *h);

/* REPORT_DATA[0..n] == hash(runtime JSON as stored), with the hash named by hash_type, and the
 * rest of REPORT_DATA zero. Returns 0 or -EBADE (problem "hcl-binding"). Does not verify the SNP
 * report itself: that is attest_verify_report() on h->snp. */
int hcl_check_binding(const HclReport *h, AttestProblems *problems);

/* TPMS_ATTEST of a TPM2_Quote (big-endian TPM marshalling). */
#define HCL_QUOTE_MAX 1024u
typedef struct HclQuote {
        uint16_t qualified_signer_size;
        uint8_t qualified_signer[68];
        uint16_t extra_data_size;
        uint8_t extra_data[64];
        uint64_t clock;
        uint32_t reset_count, restart_count;
        uint8_t safe;
        uint64_t firmware_version;
        uint16_t bank;        /* hash algorithm of the selection: TPM2_ALG_SHA256 */
        uint32_t pcr_mask;    /* bit i = PCR i */
        uint16_t pcr_digest_size;
        uint8_t pcr_digest[64];
} HclQuote;

/* magic TPM_GENERATED, type TPM_ST_ATTEST_QUOTE, one PCR selection, everything consumed. */
int hcl_quote_parse(const uint8_t *data, size_t size, HclQuote *ret);

/* Verifies a quote: RSASSA-PKCS1-v1_5 SHA-256 signature by ak over the TPMS_ATTEST bytes (sig is
 * the raw signature of the key's size, or a marshalled TPMT_SIGNATURE), extraData == nonce, and
 * pcrDigest == SHA-256 of the selected values of pcrs (SHA-256 bank) in ascending order. Every
 * failed check is a problem ("quote-signature", "quote-nonce", "quote-pcrs"); -EBADE. */
int hcl_quote_verify(const uint8_t *attest, size_t attest_size, const uint8_t *sig, size_t sig_size, EVP_PKEY *ak,
                     const uint8_t *nonce, size_t nonce_size, const TpmPcrValues *pcrs, AttestProblems *problems);

/* "INDEX HEX" lines (SHA-256 values, PCR 0..23, each at most once, '#' comments) into pcrs. */
int hcl_parse_pcr_values(const char *text, size_t size, TpmPcrValues *ret);

/* The live binding on the VM itself: the vTPM key at HCL_AK_HANDLE must be HCLAkPub (same modulus
 * and exponent) and a restricted, fixedTPM signing key, so that its quotes are the TPM's own
 * statements. Returns 0 or -EBADE (problem "hcl-ak"). */
int hcl_check_ak(const HclReport *h, const TpmRsaPublic *key, AttestProblems *problems);

/* What the live check quotes: the boot PCRs 0-7 of the SHA-256 bank. */
#define HCL_QUOTE_PCR_MASK 0xFFu
