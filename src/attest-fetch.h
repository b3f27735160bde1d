/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Live report sources: the Azure HCL report in vTPM NV (hcl.h), configfs-tsm and /dev/sev-guest,
 * and the certificate table that comes with an extended report. Each source is asked with a fresh
 * nonce and must give it back: REPORT_DATA for SEV-SNP, the runtime data's user-data for HCL.
 * Functions return 0 or a negative errno and log only at debug level:
 *   -ENODEV     the source does not exist here (no configfs-tsm provider, no device, no HCL index)
 *   -EBADE      the report does not carry our nonce: stale or replayed
 *   -EBUSY      configfs-tsm: another writer kept changing our report entry
 *   -ETIME      no report within the time allowed
 *   -EOPNOTSUPP a report of another kind (TDX)
 *   -EIO        the firmware refused the request
 *   -EBADMSG    malformed data
 * and the TPM errors of tpm.h for the HCL source. */

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm.h"

#define ATTEST_NONCE_SIZE 64 /* REPORT_DATA, configfs-tsm inblob, HCL user-data */
#define ATTEST_TSM_DIR_DEFAULT "/sys/kernel/config/tsm/report"
#define ATTEST_SEV_GUEST_DEFAULT "/dev/sev-guest"

typedef enum AttestSource {
        ATTEST_SOURCE_HCL_NV,    /* Azure: HCL report in vTPM NV 0x01400001 */
        ATTEST_SOURCE_TSM,       /* configfs-tsm report entry */
        ATTEST_SOURCE_SEV_GUEST, /* SNP_GET_EXT_REPORT / SNP_GET_REPORT on the SEV guest device */
} AttestSource;

/* "hcl-nv", "tsm[:DIR]" or "sev-guest[:DEVICE]" (DIR and DEVICE absolute). *ret_path points into
 * spec, or is the default. */
int attest_source_parse(const char *spec, AttestSource *ret, const char **ret_path);
const char *attest_source_to_string(AttestSource s);

/* ---- Certificate table (GHCB spec, SNP extended guest request): entries {GUID, u32 offset,
 * u32 length} with offsets from the start of the table, ended by an all-zero entry. ---- */

#define SNP_CERT_TABLE_MAX (16u * 1024u) /* the kernel's SEV_FW_BLOB_MAX_SIZE */
#define SNP_CERT_ENTRIES_MAX 16u
#define SNP_CERT_ENTRY_SIZE 24u

typedef enum SnpCertKind {
        SNP_CERT_OTHER, /* a GUID we do not know: kept, never used */
        SNP_CERT_VCEK,
        SNP_CERT_VLEK,
        SNP_CERT_ASK, /* the intermediate: ASK, or ASVK next to a VLEK */
        SNP_CERT_ARK,
        SNP_CERT_CRL,
} SnpCertKind;

typedef struct SnpCertEntry {
        SnpCertKind kind;
        uint8_t guid[16]; /* bytes as stored: the GUID's text order */
        uint32_t offset;
        uint32_t size;
} SnpCertEntry;

typedef struct SnpCertTable {
        SnpCertEntry entry[SNP_CERT_ENTRIES_MAX];
        size_t n;
} SnpCertTable;

/* Strict: at most SNP_CERT_TABLE_MAX bytes and SNP_CERT_ENTRIES_MAX entries, a terminator inside the
 * data, no entry with a zero GUID before it, each certificate non-empty, after the table, inside the
 * data and overlapping no other, no GUID twice. Bytes after the last certificate (the page padding)
 * are not looked at. -EBADMSG otherwise. */
int snp_cert_table_parse(const uint8_t *data, size_t size, SnpCertTable *ret);
/* The entry of a kind, or NULL. */
const SnpCertEntry *snp_cert_table_find(const SnpCertTable *t, SnpCertKind kind);
/* "vcek", "vlek", "ask", "ark", "crl", "other". */
const char *snp_cert_kind_to_string(SnpCertKind k);
/* The certificate of an entry: exactly one DER certificate filling the entry. */
int snp_cert_table_x509(const uint8_t *data, const SnpCertEntry *e, X509 **ret);

/* ---- Sources ---- */

typedef struct AttestEvidence {
        uint8_t *report; /* the SNP report (SNP_REPORT_SIZE bytes), or the HCL blob */
        size_t report_size;
        uint8_t *certs; /* certificate table as the source gave it, NULL if none */
        size_t certs_size;
} AttestEvidence;

void attest_evidence_done(AttestEvidence *e);

/* Fills p with n bytes from getrandom(). */
int attest_random(void *p, size_t n);

/* configfs-tsm: makes a fresh entry under dir, writes nonce to inblob, reads outblob (waiting up to
 * timeout_ms for it to appear: configfs creates it with the entry, a provider emulated in user space
 * only when the report is ready), auxblob (the certificate table, optional) and provider (must be
 * "sev_guest"), and checks that generation counts exactly our one write, then removes the entry.
 * A changed generation means another writer touched the entry: up to 3 fresh entries are tried
 * (-EBUSY). REPORT_DATA must equal the nonce (-EBADE). */
int attest_fetch_tsm(const char *dir, const uint8_t nonce[ATTEST_NONCE_SIZE], unsigned timeout_ms, AttestEvidence *ret);

/* The SEV guest device: SNP_GET_EXT_REPORT with room for SNP_CERT_TABLE_MAX bytes of certificates;
 * if that fails (old kernel, no host support), SNP_GET_REPORT. VMPL 0. REPORT_DATA must equal the
 * nonce (-EBADE). */
int attest_fetch_sev_guest(const char *device, const uint8_t nonce[ATTEST_NONCE_SIZE], AttestEvidence *ret);

/* The MSG_REPORT_RSP the device returns: status 0, report size SNP_REPORT_SIZE, reserved bytes
 * zero. *ret_report points into data. -EIO for a firmware error status. */
int snp_report_response_parse(const uint8_t *data, size_t size, const uint8_t **ret_report);

/* configfs-tsm "generation": decimal digits without leading zeros, optionally one '\n'. */
int attest_tsm_generation_parse(const char *text, size_t size, uint64_t *ret);

/* Azure: writes nonce to NV 0x01400002 (defining it, owner read/write, if the vTPM has an HCL report
 * but not that index, as Azure's own tools do), then reads NV 0x01400001 until its runtime data's
 * user-data is the nonce: the paravisor rewrites the report when the index is written. -ENODEV if
 * NV 0x01400001 is not defined (not an Azure CVM vTPM); -EBADE if the report is still not fresh
 * after timeout_ms. */
int attest_fetch_hcl_nv(TpmContext *t, const uint8_t nonce[ATTEST_NONCE_SIZE], unsigned timeout_ms, AttestEvidence *ret);
