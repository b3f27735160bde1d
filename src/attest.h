/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* AMD SEV-SNP attestation: report parser (attest.c), certificate chain and signature verification
 * (attest-cert.c), policy (attest-policy.c). Layouts: docs/attestation-formats.md.
 *
 * Every function returns 0 or a negative errno and logs only at debug level. Verification results:
 *   -EBADE    the evidence does not verify or violates the policy; each failed check is listed in
 *             the AttestProblems the caller passed
 *   -EBADMSG  malformed input (report, certificate, policy file)
 *   -EOPNOTSUPP well-formed input we do not support (e.g. an unknown signature algorithm) */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define SNP_REPORT_SIZE 0x4A0u        /* 1184 bytes, every version */
#define SNP_REPORT_SIGNED_SIZE 0x2A0u /* the signature covers bytes 0x000..0x29F */
#define SNP_REPORT_VERSION_MIN 2u
#define SNP_REPORT_VERSION_MAX 5u

/* Guest policy bits (u64 at 0x08); bits 0..7 ABI minor, 8..15 ABI major. */
#define SNP_POLICY_SMT (UINT64_C(1) << 16)
#define SNP_POLICY_RESERVED_1 (UINT64_C(1) << 17) /* must be 1 */
#define SNP_POLICY_MIGRATE_MA (UINT64_C(1) << 18)
#define SNP_POLICY_DEBUG (UINT64_C(1) << 19)
#define SNP_POLICY_SINGLE_SOCKET (UINT64_C(1) << 20)

/* platform_info bits */
#define SNP_PLATFORM_SMT_EN (UINT64_C(1) << 0)

/* signer_info */
#define SNP_SIGNER_AUTHOR_KEY_EN (UINT32_C(1) << 0)
#define SNP_SIGNER_MASK_CHIP_KEY (UINT32_C(1) << 1)

typedef enum SnpSigningKey {
        SNP_SIGNING_KEY_VCEK = 0,
        SNP_SIGNING_KEY_VLEK = 1,
        SNP_SIGNING_KEY_NONE = 7,
} SnpSigningKey;

typedef enum SnpProduct {
        SNP_PRODUCT_UNKNOWN,
        SNP_PRODUCT_MILAN,
        SNP_PRODUCT_GENOA,
        SNP_PRODUCT_TURIN,
} SnpProduct;

/* How the 8 bytes of a TCB_VERSION are laid out. */
typedef enum SnpTcbLayout {
        SNP_TCB_LAYOUT_MILAN_GENOA, /* bl, tee, 4 reserved, snp, microcode */
        SNP_TCB_LAYOUT_TURIN,       /* fmc, bl, tee, snp, 3 reserved, microcode (Turin and later) */
} SnpTcbLayout;

typedef struct SnpTcb {
        uint8_t fmc; /* Turin layout only; 0 otherwise */
        uint8_t bootloader;
        uint8_t tee;
        uint8_t snp;
        uint8_t microcode;
} SnpTcb;

/* Every field of the report, in report order. Integers are host order; byte arrays as stored. */
typedef struct SnpReport {
        uint32_t version;
        uint32_t guest_svn;
        uint64_t policy;
        uint8_t family_id[16];
        uint8_t image_id[16];
        uint32_t vmpl;
        uint32_t signature_algo;
        uint64_t current_tcb;
        uint64_t platform_info;
        uint32_t signer_info;
        uint8_t report_data[64];
        uint8_t measurement[48];
        uint8_t host_data[32];
        uint8_t id_key_digest[48];
        uint8_t author_key_digest[48];
        uint8_t report_id[32];
        uint8_t report_id_ma[32];
        uint64_t reported_tcb;
        uint8_t cpuid_fam_id; /* v3+; 0 in v2 */
        uint8_t cpuid_mod_id;
        uint8_t cpuid_step;
        uint8_t chip_id[64];
        uint64_t committed_tcb;
        uint8_t current_build, current_minor, current_major;
        uint8_t committed_build, committed_minor, committed_major;
        uint64_t launch_tcb;
        uint64_t launch_mit_vector;  /* v5+; 0 before */
        uint64_t current_mit_vector; /* v5+ */
        uint8_t signature_r[72];     /* little-endian, as stored */
        uint8_t signature_s[72];

        /* Derived. For v3+ the product comes from the CPUID fields; a v2 report does not say, so
         * product is UNKNOWN and tcb_layout a guess (tcb_layout_known = false) until
         * snp_report_set_product() is called with the product of the VCEK that signed it. */
        SnpProduct product;
        SnpTcbLayout tcb_layout;
        bool tcb_layout_known;

        uint8_t raw[SNP_REPORT_SIZE]; /* the exact bytes, for the signature check */
} SnpReport;

static inline SnpSigningKey snp_report_signing_key(const SnpReport *r) {
        return (SnpSigningKey) ((r->signer_info >> 2) & 7);
}
static inline unsigned snp_policy_abi_major(uint64_t policy) {
        return (unsigned) ((policy >> 8) & 0xff);
}
static inline unsigned snp_policy_abi_minor(uint64_t policy) {
        return (unsigned) (policy & 0xff);
}

/* Parses exactly SNP_REPORT_SIZE bytes: versions 2..5, signature_algo 1, policy bit 17 set, VMPL
 * 0..3, every reserved field and reserved signer_info bit zero, signature components zero-padded. */
int snp_report_parse(const void *data, size_t size, SnpReport *ret);

/* Fixes the product (and with it the TCB layout). Fails with -EBADMSG if a TCB has non-zero bytes
 * where that layout has reserved ones. */
int snp_report_set_product(SnpReport *r, SnpProduct product);

void snp_tcb_decode(uint64_t raw, SnpTcbLayout layout, SnpTcb *ret);
/* Non-zero reserved bytes of raw under layout (0 if none). */
uint64_t snp_tcb_reserved_bits(uint64_t raw, SnpTcbLayout layout);

const char *snp_product_to_string(SnpProduct p); /* "Milan", ...; "unknown" */
/* "Milan-B0" and "Milan" -> MILAN: the name up to the first '-'. UNKNOWN if not recognized. */
SnpProduct snp_product_from_name(const char *name);
const char *snp_signing_key_to_string(SnpSigningKey k); /* "vcek", "vlek", "none", "reserved" */
const char *snp_tcb_layout_to_string(SnpTcbLayout l);

/* Name of guest policy bit (16..63), e.g. "debug"; NULL for bits without a name. */
const char *snp_policy_bit_name(unsigned bit);
/* Bit number for a name from snp_policy_bit_name(); -EINVAL if unknown. */
int snp_policy_bit_from_name(const char *name);

/* Every field by name (byte arrays as hex, TCBs raw and decoded) as a json-c object. */
struct json_object;
int snp_report_to_json(const SnpReport *r, struct json_object **ret);

/* Reads a whole regular file of at most max bytes (O_CLOEXEC, no symlink games needed: callers pass
 * paths from root-owned configuration or the command line). */
int attest_read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_size);

/* ---- Problems: every failed check, each with the check's name and a reason. ---- */

#define ATTEST_PROBLEMS_MAX 48
#define ATTEST_CHECK_MAX 32
#define ATTEST_REASON_MAX 224

typedef struct AttestProblem {
        char check[ATTEST_CHECK_MAX];   /* e.g. "report-signature", "min-tcb", "debug" */
        char reason[ATTEST_REASON_MAX]; /* human-readable, names the objects involved */
} AttestProblem;

typedef struct AttestProblems {
        AttestProblem item[ATTEST_PROBLEMS_MAX];
        size_t n;
        bool truncated; /* more failed than fit */
} AttestProblems;

void attest_problems_init(AttestProblems *p);
void attest_problem_add(AttestProblems *p, const char *check, const char *format, ...) _printf_(3, 4);
bool attest_problems_has(const AttestProblems *p, const char *check);

/* ---- Certificates (attest-cert.c) ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_CRL *, X509_CRL_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
static inline void sk_X509_pop_freep(STACK_OF(X509) **s) {
        if (*s)
                sk_X509_pop_free(*s, X509_free);
}
static inline void sk_X509_CRL_pop_freep(STACK_OF(X509_CRL) **s) {
        if (*s)
                sk_X509_CRL_pop_free(*s, X509_CRL_free);
}

#define ATTEST_CERT_FILE_MAX (64u * 1024u)
#define ATTEST_CERTS_PER_FILE_MAX 8u
#define ATTEST_ANCHOR_FILES_MAX 64u

/* Certificates from a file: one DER certificate, or PEM with 1..ATTEST_CERTS_PER_FILE_MAX. */
int attest_load_certs(const char *path, STACK_OF(X509) **ret);
int attest_parse_certs(const uint8_t *data, size_t size, STACK_OF(X509) **ret);
/* One CRL, PEM or DER. */
int attest_load_crl(const char *path, X509_CRL **ret);

/* The trust anchors: every certificate in *.pem / *.der files of a directory (ARKs, and ASKs that
 * may stand in for a missing --chain), and every CRL in *.crl files. */
typedef struct AttestAnchors {
        STACK_OF(X509) *certs;
        STACK_OF(X509_CRL) *crls;
} AttestAnchors;

int attest_anchors_load(const char *dir, AttestAnchors **ret);
AttestAnchors *attest_anchors_free(AttestAnchors *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(AttestAnchors *, attest_anchors_free);

/* What the chain said, for display and for the caller's next steps. */
typedef struct AttestChainInfo {
        SnpProduct product;            /* from the leaf's product-name extension */
        char product_name[32];         /* as in the certificate, e.g. "Milan-B0" */
        SnpSigningKey key;             /* kind of the leaf: VCEK or VLEK */
        SnpTcb cert_tcb;               /* the leaf's TCB extensions */
        uint8_t ark_sha256[32];        /* fingerprint of the pinned ARK */
        char ark_name[64], intermediate_name[64];
        char csp_id[128];              /* VLEK only: 1.3.6.1.4.1.3704.1.5; empty otherwise */
} AttestChainInfo;

/* Verifies r against the leaf (VCEK or VLEK) and its chain:
 *   - the ARK is pinned: byte-identical to a self-signed certificate of the anchors (if the chain
 *     has no ARK, the anchor with the right name is used) and its self-signature holds;
 *   - ASK/ASVK <- ARK and leaf <- ASK/ASVK are RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48 signatures,
 *     checked explicitly on the to-be-signed bytes (not with X509 chain building);
 *   - names and products agree: leaf product "Milan-B0" -> ASK "SEV-Milan" (VLEK: "SEV-VLEK-Milan")
 *     -> ARK "ARK-Milan"; the report's CPUID product (v3+) is the same;
 *   - the leaf kind matches signer_info; leaf TCB extensions == REPORTED_TCB (FMC on Turin);
 *     hwID == CHIP_ID unless the chip id is masked or the key is a VLEK;
 *   - CRLs (anchors' plus crls) issued by the ARK or ASK are signed by it and do not list the ASK
 *     or the leaf; a CRL in crls issued by anyone else is an error;
 *   - the report's ECDSA P-384/SHA-384 signature over bytes 0x000..0x29F verifies with the leaf.
 * chain: ASK/ASVK and ARK in any order; certificates equal to the leaf are ignored; if it holds no
 * intermediate, the anchors' one with the right name is used. Certificate validity dates are not
 * checked (nor CRL update times): the initramfs clock cannot be trusted and VLEKs are short-lived;
 * TCB minimums in the policy and CRLs are what retire old keys.
 * May set r's product (v2 reports) from the leaf. Returns 0, or -EBADE with problems filled. */
int attest_verify_report(SnpReport *r, X509 *leaf, STACK_OF(X509) *chain, const AttestAnchors *anchors,
                         STACK_OF(X509_CRL) *crls, AttestChainInfo *ret_info, AttestProblems *problems);

/* ---- Policy (attest-policy.c) ---- */

#define ATTEST_POLICY_FILE_MAX (64u * 1024u)
#define ATTEST_POLICY_MEASUREMENTS_MAX 128u
#define ATTEST_POLICY_KEY_DIGESTS_MAX 16u

typedef enum AttestAllow {
        ATTEST_ALLOW_UNSET, /* not in the policy: no check */
        ATTEST_ALLOWED,
        ATTEST_FORBIDDEN,
} AttestAllow;

/* Azure vm-configuration (from the HCL runtime JSON), each value optional. */
typedef struct AttestVmConfig {
        bool has_secure_boot, secure_boot;
        bool has_tpm_enabled, tpm_enabled;
        bool has_console_enabled, console_enabled;
} AttestVmConfig;

typedef struct AttestPolicy {
        bool debug; /* true: DEBUG may be set; default false */
        bool has_min_tcb;
        SnpTcb min_tcb; /* components the file omits are 0 */
        uint8_t vmpl_mask; /* bit i: VMPL i allowed; 0 = any */
        uint8_t measurements[ATTEST_POLICY_MEASUREMENTS_MAX][48];
        size_t n_measurements; /* 0 = any */
        bool has_host_data;
        uint8_t host_data[32];
        uint8_t id_key_digests[ATTEST_POLICY_KEY_DIGESTS_MAX][48];
        size_t n_id_key_digests;
        uint8_t author_key_digests[ATTEST_POLICY_KEY_DIGESTS_MAX][48];
        size_t n_author_key_digests;
        bool has_family_id, has_image_id;
        uint8_t family_id[16], image_id[16];
        uint64_t require_bits, forbid_bits; /* guest policy bits 16..63 */
        bool has_min_abi;
        uint8_t min_abi_major, min_abi_minor; /* firmware API version, CURRENT_MAJOR.CURRENT_MINOR */
        AttestAllow smt;             /* forbidden: platform_info SMT_EN must be 0 */
        AttestAllow migration_agent; /* forbidden: guest policy MIGRATE_MA must be 0 */
        unsigned signing_keys;       /* bit (1 << SnpSigningKey); default VCEK and VLEK */
        bool has_vm_config;
        AttestVmConfig vm_config; /* required values */
} AttestPolicy;

/* The default policy: what an empty file "{}" means (debug forbidden, no other limits). */
void attest_policy_init(AttestPolicy *p);
/* Strict JSON: unknown keys, duplicate keys, wrong types, empty or duplicate list entries and
 * out-of-range values are errors (-EBADMSG); why says what and where. */
int attest_policy_parse(const char *text, size_t size, AttestPolicy *ret, char *why, size_t why_size);
int attest_policy_load(const char *path, AttestPolicy *ret, char *why, size_t why_size);
/* Canonical text: every key in a fixed order, defaults explicit, lists sorted, hex lowercase.
 * Two files that mean the same policy have the same canonical text. Caller frees. */
int attest_policy_canonical(const AttestPolicy *p, char **ret);
/* SHA-256 of the canonical text: what gets measured. */
int attest_policy_digest(const AttestPolicy *p, uint8_t ret[32]);

/* Checks r (already verified, product fixed) against p. vm_config: the Azure runtime data, NULL
 * when there is none. Collects every violated rule (check = the policy key, or "tcb-rollback").
 * Returns 0 or -EBADE. */
int attest_policy_check(const AttestPolicy *p, const SnpReport *r, const AttestVmConfig *vm_config,
                        AttestProblems *problems);
