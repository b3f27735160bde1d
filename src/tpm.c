/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "log.h"
#include "macro.h"
#include "secmem.h"
#include "tpm.h"

#define SEAL_NAME_ALG TPM2_ALG_SHA256
#define POLICY_SIZE 32
#define PCR_SELECT_SIZE (TPM_PCR_MAX / 8)

struct TpmContext {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
};

/* An ESYS_TR we hold. flush: a transient object or session we created; otherwise (a persistent SRK)
 * we only drop ESYS's metadata and leave the TPM object alone. */
typedef struct TpmHandle {
        ESYS_CONTEXT *esys;
        ESYS_TR tr;
        bool flush;
} TpmHandle;

#define TPM_HANDLE_INIT(t) ((TpmHandle){ .esys = (t)->esys, .tr = ESYS_TR_NONE })

static void tpm_handle_done(TpmHandle *h) {
        if (h->tr == ESYS_TR_NONE)
                return;
        /* A failed flush (e.g. the TPM already dropped a session) must still release the metadata. */
        if (!h->flush || Esys_FlushContext(h->esys, h->tr) != TSS2_RC_SUCCESS)
                (void) Esys_TR_Close(h->esys, &h->tr);
        h->tr = ESYS_TR_NONE;
}

/* The TPM flushed it itself (continueSession clear): forget it without a FlushContext. */
static void tpm_handle_forget(TpmHandle *h) {
        h->flush = false;
        tpm_handle_done(h);
}

static inline void esys_freep(void *p) {
        Esys_Free(*(void **) p);
}
#define _cleanup_esys_ _cleanup_(esys_freep)

static inline void sensitive_data_freep(TPM2B_SENSITIVE_DATA **p) {
        if (*p) {
                secmem_wipe(*p, sizeof(**p));
                Esys_Free(*p);
        }
}

static inline void auth_wipe(TPM2B_AUTH *a) {
        secmem_wipe(a, sizeof(*a));
}

static inline void sensitive_create_wipe(TPM2B_SENSITIVE_CREATE *s) {
        secmem_wipe(s, sizeof(*s));
}

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD *, EVP_MD_free);

/* ---- banks ---- */

typedef struct BankInfo {
        uint16_t alg;
        const char *name;
        const char *evp;
        size_t size;
} BankInfo;

static const BankInfo bank_table[] = {
        { TPM2_ALG_SHA1, "sha1", "SHA1", 20 },
        { TPM2_ALG_SHA256, "sha256", "SHA256", 32 },
        { TPM2_ALG_SHA384, "sha384", "SHA384", 48 },
        { TPM2_ALG_SHA512, "sha512", "SHA512", 64 },
        { TPM2_ALG_SM3_256, "sm3_256", "SM3", 32 },
};

static const BankInfo *bank_info(uint16_t bank) {
        for (size_t i = 0; i < ELEMENTSOF(bank_table); i++)
                if (bank_table[i].alg == bank)
                        return &bank_table[i];
        return NULL;
}

size_t tpm_bank_digest_size(uint16_t bank) {
        const BankInfo *b = bank_info(bank);

        return b ? b->size : 0;
}

const char *tpm_bank_name(uint16_t bank) {
        const BankInfo *b = bank_info(bank);

        return b ? b->name : NULL;
}

int tpm_bank_from_name(const char *name, uint16_t *ret) {
        if (!name || !ret)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(bank_table); i++)
                if (strcmp(bank_table[i].name, name) == 0) {
                        *ret = bank_table[i].alg;
                        return 0;
                }
        return -EINVAL;
}

/* Sealing policies use the banks the header promises; extend/read work on every bank above. */
static bool policy_bank(uint16_t bank) {
        return bank == TPM2_ALG_SHA256 || bank == TPM2_ALG_SHA384;
}

static bool mask_valid(uint32_t mask) {
        return mask != 0 && (mask >> TPM_PCR_MAX) == 0;
}

static int digest(const char *alg, const void *data, size_t size, uint8_t *out, size_t out_size) {
        _cleanup_(EVP_MD_freep) EVP_MD *md = EVP_MD_fetch(NULL, alg, NULL);
        unsigned len = 0;

        if (!md)
                return -EOPNOTSUPP;
        if ((size_t) EVP_MD_get_size(md) != out_size)
                return -EINVAL;
        if (EVP_Digest(data, size, out, &len, md, NULL) != 1 || len != out_size)
                return -EIO;
        return 0;
}

/* ---- response codes ---- */

/* Format-one codes carry the number of the handle, session or parameter they refer to: drop it. */
static TSS2_RC tpm_rc_base(TSS2_RC rc) {
        rc &= ~TSS2_RC_LAYER_MASK;
        return (rc & TPM2_RC_FMT1) ? rc & (TPM2_RC_FMT1 | 0x3f) : rc;
}

static bool rc_is_tpm(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

        return layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER;
}

static int tss_rc_to_errno(TSS2_RC rc) {
        switch (rc & ~TSS2_RC_LAYER_MASK) {
        case TSS2_BASE_RC_IO_ERROR:
        case TSS2_BASE_RC_NO_CONNECTION:
        case TSS2_BASE_RC_TRY_AGAIN:
                return -ECOMM;
        case TSS2_BASE_RC_MALFORMED_RESPONSE:
        case TSS2_BASE_RC_INSUFFICIENT_RESPONSE:
        case TSS2_BASE_RC_INSUFFICIENT_BUFFER:
        case TSS2_BASE_RC_BAD_SIZE:
        case TSS2_BASE_RC_RSP_AUTH_FAILED: /* response HMAC did not verify: bus tampering */
                return -EBADMSG;
        case TSS2_BASE_RC_MEMORY:
                return -ENOMEM;
        default:
                return -EREMOTEIO;
        }
}

/* Turns an RC into the errno of tpm.h. policy: the command evaluated our policy (PolicyPCR, Unseal),
 * so a refused value means the PCRs differ. */
static int rc_to_errno(TSS2_RC rc, const char *what, bool policy) {
        TSS2_RC base;

        log_debug("TPM %s failed: %s (0x%08" PRIx32 ")", what, Tss2_RC_Decode(rc), rc);
        if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER)
                return -ECOMM;
        if ((rc & TSS2_RC_LAYER_MASK) == TSS2_MU_RC_LAYER)
                return -EBADMSG;
        if (!rc_is_tpm(rc))
                return tss_rc_to_errno(rc);
        base = tpm_rc_base(rc);
        switch (base) {
        case TPM2_RC_POLICY_FAIL:
                return -EPERM;
        case TPM2_RC_VALUE:
                return policy ? -EPERM : -EREMOTEIO;
        case TPM2_RC_AUTH_FAIL:
        case TPM2_RC_BAD_AUTH:
                return -ENOKEY;
        case TPM2_RC_LOCKOUT:
                return -ENOLCK;
        case TPM2_RC_INTEGRITY:
        case TPM2_RC_INSUFFICIENT:
                return -EBADMSG;
        default:
                return -EREMOTEIO;
        }
}

/* ---- context ---- */

int tpm_open(const char *tcti, TpmContext **ret) {
        _cleanup_(tpm_closep) TpmContext *t = NULL;
        char esc[256];
        TSS2_RC rc;

        if (!tcti || !ret)
                return -EINVAL;
        /* tpm2-tss prints its own errors to stderr (e.g. for the expected "no persistent SRK"); we
         * log through log_debug only. An explicit TSS2_LOG from the user still wins. */
        (void) setenv("TSS2_LOG", "all+NONE", 0);
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
        if (rc != TSS2_RC_SUCCESS) {
                log_debug("Loading TCTI '%s' failed: %s", log_escape(esc, sizeof(esc), tcti), Tss2_RC_Decode(rc));
                return -ECOMM;
        }
        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                log_debug("Esys_Initialize failed: %s", Tss2_RC_Decode(rc));
                return -ECOMM;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

TpmContext *tpm_close(TpmContext *t) {
        if (!t)
                return NULL;
        /* Every function flushes what it created before returning, so nothing is left to flush. */
        if (t->esys)
                Esys_Finalize(&t->esys);
        if (t->tcti)
                Tss2_TctiLdr_Finalize(&t->tcti);
        free(t);
        return NULL;
}

/* ---- PCRs ---- */

static void pcr_selection(uint16_t bank, uint32_t mask, TPML_PCR_SELECTION *ret) {
        *ret = (TPML_PCR_SELECTION){
                .count = 1,
                .pcrSelections[0] = {
                        .hash = bank,
                        .sizeofSelect = PCR_SELECT_SIZE,
                        .pcrSelect = { mask & 0xff, (mask >> 8) & 0xff, (mask >> 16) & 0xff },
                },
        };
}

static uint32_t selection_mask(const TPMS_PCR_SELECTION *s) {
        uint32_t mask = 0;

        for (unsigned i = 0; i < s->sizeofSelect && i < sizeof(s->pcrSelect); i++)
                mask |= (uint32_t) s->pcrSelect[i] << (8 * i);
        return mask;
}

/* One TPM2_PCR_Read: the TPM returns at most 8 digests and says which PCRs they belong to. */
static int pcr_read_once(TpmContext *t, size_t size, uint32_t *left, TpmPcrValues *v) {
        _cleanup_esys_ TPML_PCR_SELECTION *out = NULL;
        _cleanup_esys_ TPML_DIGEST *values = NULL;
        TPML_PCR_SELECTION in;
        uint32_t got;
        unsigned k = 0;
        TSS2_RC rc;

        pcr_selection(v->bank, *left, &in);
        rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in, NULL, &out, &values);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "PCR_Read", false);
        if (out->count == 0 || (out->count == 1 && selection_mask(&out->pcrSelections[0]) == 0)) {
                log_debug("Bank %s is not active.", strna(tpm_bank_name(v->bank)));
                return -EOPNOTSUPP;
        }
        if (out->count != 1 || out->pcrSelections[0].hash != v->bank)
                return -EBADMSG;
        got = selection_mask(&out->pcrSelections[0]);
        if (got & ~*left)
                return -EBADMSG;
        for (unsigned i = 0; i < TPM_PCR_MAX; i++) {
                if (!(got & (1u << i)))
                        continue;
                if (k >= values->count || values->digests[k].size != size)
                        return -EBADMSG;
                memcpy(v->value[i], values->digests[k++].buffer, size);
        }
        if (k != values->count)
                return -EBADMSG;
        *left &= ~got;
        return 0;
}

int tpm_pcr_read(TpmContext *t, uint16_t bank, uint32_t mask, TpmPcrValues *ret) {
        size_t size = tpm_bank_digest_size(bank);
        TpmPcrValues v = { .bank = bank, .mask = mask };
        uint32_t left = mask;
        int r;

        if (!t || !ret || !mask_valid(mask))
                return -EINVAL;
        if (size == 0)
                return -EOPNOTSUPP;
        while (left) {
                r = pcr_read_once(t, size, &left, &v);
                if (r < 0)
                        return r;
        }
        *ret = v;
        return 0;
}

int tpm_active_banks(TpmContext *t, uint16_t *banks, size_t max, size_t *ret_n) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more = TPM2_NO;
        size_t n = 0;
        TSS2_RC rc;

        if (!t || (!banks && max > 0) || !ret_n)
                return -EINVAL;
        rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCRS, 0, 1, &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "GetCapability(PCRS)", false);
        if (cap->capability != TPM2_CAP_PCRS)
                return -EBADMSG;
        for (uint32_t i = 0; i < cap->data.assignedPCR.count; i++) {
                const TPMS_PCR_SELECTION *s = &cap->data.assignedPCR.pcrSelections[i];

                if (selection_mask(s) == 0)
                        continue;
                if (n >= max)
                        return -ENOBUFS;
                banks[n++] = s->hash;
        }
        *ret_n = n;
        return 0;
}

static int pcr_extend(TpmContext *t, unsigned pcr, const TPML_DIGEST_VALUES *d) {
        TSS2_RC rc;

        rc = Esys_PCR_Extend(t->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, d);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "PCR_Extend", false);
        return 0;
}

int tpm_pcr_extend_data(TpmContext *t, unsigned pcr, const void *data, size_t size) {
        uint16_t banks[TPM2_NUM_PCR_BANKS];
        TPML_DIGEST_VALUES d = {};
        size_t n;
        int r;

        if (!t || pcr >= TPM_PCR_MAX || (!data && size > 0))
                return -EINVAL;
        r = tpm_active_banks(t, banks, ELEMENTSOF(banks), &n);
        if (r < 0)
                return r;
        /* All banks or none: a bank left unextended could be extended later by someone else to the
         * value a policy expects. */
        for (size_t i = 0; i < n; i++) {
                const BankInfo *b = bank_info(banks[i]);

                if (!b) {
                        log_debug("Active PCR bank 0x%04x is not supported.", banks[i]);
                        return -EOPNOTSUPP;
                }
                d.digests[i].hashAlg = b->alg;
                r = digest(b->evp, data, size, (uint8_t *) &d.digests[i].digest, b->size);
                if (r < 0)
                        return r;
        }
        d.count = (uint32_t) n;
        return pcr_extend(t, pcr, &d);
}

int tpm_pcr_extend_digest(TpmContext *t, unsigned pcr, uint16_t bank, const uint8_t *dig) {
        const BankInfo *b = bank_info(bank);
        TPML_DIGEST_VALUES d = { .count = 1 };

        if (!t || pcr >= TPM_PCR_MAX || !dig)
                return -EINVAL;
        if (!b)
                return -EOPNOTSUPP;
        d.digests[0].hashAlg = bank;
        memcpy(&d.digests[0].digest, dig, b->size);
        return pcr_extend(t, pcr, &d);
}

/* ---- policy ---- */

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

/* policyDigest' = H(policyDigest || TPM_CC || extra). */
static int policy_update(uint8_t policy[POLICY_SIZE], uint32_t cc, const void *extra, size_t extra_size) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t code[4];
        unsigned len = 0;

        if (!ctx)
                return -ENOMEM;
        put_be32(code, cc);
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(ctx, policy, POLICY_SIZE) != 1 ||
            EVP_DigestUpdate(ctx, code, sizeof(code)) != 1 ||
            (extra_size > 0 && EVP_DigestUpdate(ctx, extra, extra_size) != 1) ||
            EVP_DigestFinal_ex(ctx, policy, &len) != 1 || len != POLICY_SIZE)
                return -EIO;
        return 0;
}

/* TPM2_PolicyPCR (Part 3, 23.7): policyDigest' = H(policyDigest || TPM_CC_PolicyPCR || pcrs || pcrDigest),
 * pcrs the marshalled TPML_PCR_SELECTION and pcrDigest = H(selected PCR values in selection order),
 * H the session's hash (SHA-256) whatever the bank. */
int tpm_policy_digest(const TpmPcrValues *pcrs, bool pin, uint8_t ret[32]) {
        uint8_t values[TPM_PCR_MAX * TPM_DIGEST_MAX], extra[sizeof(TPML_PCR_SELECTION) + POLICY_SIZE];
        uint8_t policy[POLICY_SIZE] = {};
        size_t size, n = 0, off = 0;
        TPML_PCR_SELECTION sel;
        int r;

        if (!pcrs || !ret || !mask_valid(pcrs->mask))
                return -EINVAL;
        if (!policy_bank(pcrs->bank))
                return -EOPNOTSUPP;
        size = tpm_bank_digest_size(pcrs->bank);
        for (unsigned i = 0; i < TPM_PCR_MAX; i++)
                if (pcrs->mask & (1u << i)) {
                        memcpy(values + n, pcrs->value[i], size);
                        n += size;
                }
        pcr_selection(pcrs->bank, pcrs->mask, &sel);
        if (Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, extra, sizeof(extra) - POLICY_SIZE, &off) != TSS2_RC_SUCCESS)
                return -EIO;
        r = digest("SHA256", values, n, extra + off, POLICY_SIZE);
        if (r < 0)
                return r;
        r = policy_update(policy, TPM2_CC_PolicyPCR, extra, off + POLICY_SIZE);
        if (r < 0)
                return r;
        if (pin) {
                r = policy_update(policy, TPM2_CC_PolicyAuthValue, NULL, 0);
                if (r < 0)
                        return r;
        }
        memcpy(ret, policy, POLICY_SIZE);
        return 0;
}

/* ---- SRK ---- */

/* TCG "Provisioning Guidance" ECC SRK template (EK Credential Profile L-2 with userWithAuth, noDA and
 * without adminWithPolicy), empty unique: the same primary systemd and tpm2-tools create. */
static const TPM2B_PUBLIC srk_template = {
        .publicArea = {
                .type = TPM2_ALG_ECC,
                .nameAlg = TPM2_ALG_SHA256,
                .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
                                    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                .parameters.eccDetail = {
                        .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                        .scheme.scheme = TPM2_ALG_NULL,
                        .curveID = TPM2_ECC_NIST_P256,
                        .kdf.scheme = TPM2_ALG_NULL,
                },
        },
};

/* A storage parent we can salt sessions to: restricted, decrypt, not signing, RSA or ECC. */
static int srk_check(TpmContext *t, ESYS_TR tr) {
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        TPMA_OBJECT a;
        TSS2_RC rc;

        rc = Esys_ReadPublic(t->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "ReadPublic(SRK)", false);
        a = pub->publicArea.objectAttributes;
        if (!(a & TPMA_OBJECT_RESTRICTED) || !(a & TPMA_OBJECT_DECRYPT) || (a & TPMA_OBJECT_SIGN_ENCRYPT) ||
            (pub->publicArea.type != TPM2_ALG_ECC && pub->publicArea.type != TPM2_ALG_RSA)) {
                log_debug("The key at 0x%08x is not a restricted decryption key (type 0x%04x, attributes 0x%08" PRIx32 ").",
                          TPM_SRK_HANDLE, pub->publicArea.type, a);
                return -EMEDIUMTYPE;
        }
        return 0;
}

/* 1 and the handle if a persistent SRK exists, 0 if not. */
static int srk_persistent(TpmContext *t, bool check, TpmHandle *ret) {
        _cleanup_(tpm_handle_done) TpmHandle h = TPM_HANDLE_INIT(t);
        TSS2_RC rc;
        int r;

        rc = Esys_TR_FromTPMPublic(t->esys, TPM_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h.tr);
        if (rc_is_tpm(rc) && tpm_rc_base(rc) == TPM2_RC_HANDLE) {
                log_debug("No persistent SRK at 0x%08x.", TPM_SRK_HANDLE);
                return 0;
        }
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "ReadPublic(SRK)", false);
        if (check) {
                r = srk_check(t, h.tr);
                if (r < 0)
                        return r;
        }
        *ret = h;
        h.tr = ESYS_TR_NONE;
        return 1;
}

static int srk_create(TpmContext *t, TpmHandle *ret) {
        const TPM2B_SENSITIVE_CREATE sensitive = {};
        const TPM2B_DATA outside = {};
        const TPML_PCR_SELECTION creation = {};
        TSS2_RC rc;

        *ret = TPM_HANDLE_INIT(t);
        rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                &srk_template, &outside, &creation, &ret->tr, NULL, NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                ret->tr = ESYS_TR_NONE;
                return rc_to_errno(rc, "CreatePrimary(SRK)", false);
        }
        ret->flush = true;
        return 0;
}

static int srk_get(TpmContext *t, bool check, TpmHandle *ret) {
        int r;

        r = srk_persistent(t, check, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        return srk_create(t, ret);
}

static int handle_name(TpmContext *t, ESYS_TR tr, TPM2B_NAME *ret) {
        _cleanup_esys_ TPM2B_NAME *name = NULL;
        TSS2_RC rc;

        rc = Esys_TR_GetName(t->esys, tr, &name);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "TR_GetName", false);
        if (name->size == 0 || name->size > TPM_NAME_MAX)
                return -EBADMSG;
        *ret = *name;
        return 0;
}

int tpm_srk_name(TpmContext *t, uint8_t name[TPM_NAME_MAX], size_t *ret_size) {
        _cleanup_(tpm_handle_done) TpmHandle srk = TPM_HANDLE_INIT(t);
        TPM2B_NAME n;
        int r;

        if (!t || !name || !ret_size)
                return -EINVAL;
        r = srk_get(t, true, &srk);
        if (r < 0)
                return r;
        r = handle_name(t, srk.tr, &n);
        if (r < 0)
                return r;
        memcpy(name, n.name, n.size);
        *ret_size = n.size;
        return 0;
}

/* ---- sessions, blobs ---- */

/* A session salted to the SRK: its key comes from a secret only the SRK can decrypt, so parameter
 * encryption protects against whoever sits on the bus. */
static int session_start(TpmContext *t, ESYS_TR salt_key, TPM2_SE type, TpmHandle *ret) {
        static const TPMT_SYM_DEF aes_cfb = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB };
        TSS2_RC rc;

        *ret = TPM_HANDLE_INIT(t);
        rc = Esys_StartAuthSession(t->esys, salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, type,
                                   &aes_cfb, TPM2_ALG_SHA256, &ret->tr);
        if (rc != TSS2_RC_SUCCESS) {
                ret->tr = ESYS_TR_NONE;
                return rc_to_errno(rc, "StartAuthSession", false);
        }
        ret->flush = true;
        return 0;
}

/* Session used for exactly one command: with continueSession clear the TPM flushes it itself. */
static int session_one_shot(TpmContext *t, const TpmHandle *s, TPMA_SESSION crypt) {
        TSS2_RC rc;

        rc = Esys_TRSess_SetAttributes(t->esys, s->tr, crypt, 0xff);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "TRSess_SetAttributes", false);
        return 0;
}

/* authValue = SHA-256(PIN). Trailing zero bytes are dropped because the TPM drops them before using
 * an authValue (Part 1, 19.6.5); doing it here keeps ESYS's HMAC key equal to the TPM's. */
static int pin_auth(const char *pin, size_t pin_size, TPM2B_AUTH *ret) {
        int r;

        r = digest("SHA256", pin, pin_size, ret->buffer, 32);
        if (r < 0)
                return r;
        ret->size = 32;
        while (ret->size > 0 && ret->buffer[ret->size - 1] == 0)
                ret->size--;
        return 0;
}

static void sealed_template(const uint8_t policy[POLICY_SIZE], bool pin, TPM2B_PUBLIC *ret) {
        /* No userWithAuth: only the policy authorizes. DA protection only matters with a PIN. */
        *ret = (TPM2B_PUBLIC){
                .publicArea = {
                        .type = TPM2_ALG_KEYEDHASH,
                        .nameAlg = SEAL_NAME_ALG,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            (pin ? 0 : TPMA_OBJECT_NODA),
                        .authPolicy.size = POLICY_SIZE,
                        .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
                },
        };
        memcpy(ret->publicArea.authPolicy.buffer, policy, POLICY_SIZE);
}

static int blob_marshal(const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv, uint8_t **ret, size_t *ret_size) {
        size_t max = sizeof(*pub) + sizeof(*priv), off = 0;
        _cleanup_free_ uint8_t *buf = malloc(max);

        if (!buf)
                return -ENOMEM;
        if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, max, &off) != TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_PRIVATE_Marshal(priv, buf, max, &off) != TSS2_RC_SUCCESS)
                return -EIO;
        *ret = TAKE_PTR(buf);
        *ret_size = off;
        return 0;
}

/* Strict: the public area must be canonically encoded (we hash those bytes for its name) and nothing
 * may follow the private part. ret_name is the name the TPM will give the loaded object. */
static int blob_parse(const uint8_t *blob, size_t size, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv, TPM2B_NAME *ret_name) {
        uint8_t area[sizeof(TPMT_PUBLIC)];
        size_t off = 0, area_size = 0;
        int r;

        *pub = (TPM2B_PUBLIC){};
        *priv = (TPM2B_PRIVATE){};
        if (!blob || Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, size, &off, pub) != TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, size, &off, priv) != TSS2_RC_SUCCESS || off != size) {
                log_debug("Sealed blob does not unmarshal (%zu bytes).", size);
                return -EBADMSG;
        }
        if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, area, sizeof(area), &area_size) != TSS2_RC_SUCCESS ||
            area_size != pub->size || memcmp(area, blob + 2, area_size) != 0)
                return -EBADMSG;
        if (pub->publicArea.type != TPM2_ALG_KEYEDHASH || pub->publicArea.nameAlg != SEAL_NAME_ALG ||
            (pub->publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH)) {
                log_debug("Sealed blob is not a policy-only SHA-256 sealed data object.");
                return -EBADMSG;
        }
        ret_name->size = 2 + 32;
        ret_name->name[0] = SEAL_NAME_ALG >> 8;
        ret_name->name[1] = SEAL_NAME_ALG & 0xff;
        r = digest("SHA256", area, area_size, ret_name->name + 2, 32);
        return r < 0 ? r : 0;
}

void tpm_sealed_done(TpmSealed *s) {
        if (!s)
                return;
        free(s->blob);
        *s = (TpmSealed){};
}

/* ---- seal ---- */

static int seal_create(TpmContext *t, const TpmHandle *srk, const TPM2B_PUBLIC *tmpl, const char *pin, size_t pin_size,
                       const void *data, size_t size, TPM2B_PUBLIC **ret_pub, TPM2B_PRIVATE **ret_priv) {
        _cleanup_(tpm_handle_done) TpmHandle session = TPM_HANDLE_INIT(t);
        _cleanup_(sensitive_create_wipe) TPM2B_SENSITIVE_CREATE sensitive = {};
        const TPM2B_DATA outside = {};
        const TPML_PCR_SELECTION creation = {};
        TSS2_RC rc;
        int r;

        sensitive.sensitive.data.size = (UINT16) size;
        memcpy(sensitive.sensitive.data.buffer, data, size);
        if (pin) {
                r = pin_auth(pin, pin_size, &sensitive.sensitive.userAuth);
                if (r < 0)
                        return r;
        }
        /* The secret and the PIN hash travel as the first parameter: encrypt it (TPMA_SESSION_DECRYPT). */
        r = session_start(t, srk->tr, TPM2_SE_HMAC, &session);
        if (r < 0)
                return r;
        r = session_one_shot(t, &session, TPMA_SESSION_DECRYPT);
        if (r < 0)
                return r;
        rc = Esys_Create(t->esys, srk->tr, session.tr, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, tmpl, &outside,
                         &creation, ret_priv, ret_pub, NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "Create", false);
        tpm_handle_forget(&session);
        return 0;
}

int tpm_seal(TpmContext *t, const TpmPcrValues *pcrs, const char *pin, size_t pin_size, const void *data, size_t size,
             TpmSealed *ret) {
        _cleanup_(tpm_handle_done) TpmHandle srk = TPM_HANDLE_INIT(t);
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        _cleanup_esys_ TPM2B_PRIVATE *priv = NULL;
        TpmSealed s = {};
        TPM2B_PUBLIC tmpl;
        TPM2B_NAME name;
        int r;

        if (!t || !pcrs || !ret || !data || size == 0 || size > TPM_SEAL_MAX || (pin && pin_size == 0))
                return -EINVAL;
        r = tpm_policy_digest(pcrs, pin != NULL, s.policy);
        if (r < 0)
                return r;
        sealed_template(s.policy, pin != NULL, &tmpl);
        r = srk_get(t, true, &srk);
        if (r < 0)
                return r;
        r = handle_name(t, srk.tr, &name);
        if (r < 0)
                return r;
        r = seal_create(t, &srk, &tmpl, pin, pin_size, data, size, &pub, &priv);
        if (r < 0)
                return r;
        /* The TPM copies the template; anything else would only surface as -EUCLEAN at boot. */
        if (pub->publicArea.objectAttributes != tmpl.publicArea.objectAttributes ||
            pub->publicArea.authPolicy.size != POLICY_SIZE ||
            memcmp(pub->publicArea.authPolicy.buffer, s.policy, POLICY_SIZE) != 0)
                return -EBADMSG;
        r = blob_marshal(pub, priv, &s.blob, &s.blob_size);
        if (r < 0)
                return r;
        memcpy(s.srk_name, name.name, name.size);
        s.srk_name_size = name.size;
        *ret = s;
        return 0;
}

/* ---- unseal ---- */

static int srk_verify(TpmContext *t, const TpmHandle *srk, const TpmSealed *sealed) {
        TPM2B_NAME name;
        int r;

        r = handle_name(t, srk->tr, &name);
        if (r < 0)
                return r;
        if (name.size != sealed->srk_name_size || CRYPTO_memcmp(name.name, sealed->srk_name, name.size) != 0) {
                log_debug("The SRK's name differs from the one recorded at enroll.");
                return -EREMCHG;
        }
        return 0;
}

static int object_load(TpmContext *t, const TpmHandle *srk, const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv,
                       const TPM2B_NAME *expected, TpmHandle *ret) {
        TPM2B_NAME name;
        TSS2_RC rc;
        int r;

        *ret = TPM_HANDLE_INIT(t);
        rc = Esys_Load(t->esys, srk->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &ret->tr);
        if (rc != TSS2_RC_SUCCESS) {
                ret->tr = ESYS_TR_NONE;
                return rc_to_errno(rc, "Load", false);
        }
        ret->flush = true;
        r = handle_name(t, ret->tr, &name);
        if (r < 0)
                return r;
        if (name.size != expected->size || memcmp(name.name, expected->name, name.size) != 0)
                return -EBADMSG;
        return 0;
}

static int copy_secret(const TPM2B_SENSITIVE_DATA *out, uint8_t **ret, size_t *ret_size) {
        uint8_t *p;

        if (out->size == 0 || out->size > sizeof(out->buffer))
                return -EBADMSG;
        p = secmem_alloc(out->size);
        if (!p)
                return negative_errno();
        memcpy(p, out->buffer, out->size);
        *ret = p;
        *ret_size = out->size;
        return 0;
}

/* One policy session: PolicyPCR [+ PolicyAuthValue] + Unseal with response encryption. -EAGAIN when
 * a PCR changed between PolicyPCR and Unseal. */
static int unseal_once(TpmContext *t, const TpmHandle *srk, const TpmHandle *obj, const TPML_PCR_SELECTION *sel,
                       bool pin, uint8_t **ret, size_t *ret_size) {
        _cleanup_(tpm_handle_done) TpmHandle session = TPM_HANDLE_INIT(t);
        _cleanup_(sensitive_data_freep) TPM2B_SENSITIVE_DATA *out = NULL;
        const TPM2B_DIGEST any = {}; /* empty: the TPM hashes the current PCR values itself */
        TSS2_RC rc;
        int r;

        r = session_start(t, srk->tr, TPM2_SE_POLICY, &session);
        if (r < 0)
                return r;
        rc = Esys_PolicyPCR(t->esys, session.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &any, sel);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "PolicyPCR", true);
        if (pin) {
                rc = Esys_PolicyAuthValue(t->esys, session.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
                if (rc != TSS2_RC_SUCCESS)
                        return rc_to_errno(rc, "PolicyAuthValue", true);
        }
        r = session_one_shot(t, &session, TPMA_SESSION_ENCRYPT);
        if (r < 0)
                return r;
        rc = Esys_Unseal(t->esys, obj->tr, session.tr, ESYS_TR_NONE, ESYS_TR_NONE, &out);
        if (rc_is_tpm(rc) && tpm_rc_base(rc) == TPM2_RC_PCR_CHANGED) {
                log_debug("A PCR changed during the policy session.");
                return -EAGAIN;
        }
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "Unseal", true);
        tpm_handle_forget(&session);
        return copy_secret(out, ret, ret_size);
}

int tpm_unseal(TpmContext *t, const TpmSealed *sealed, uint16_t bank, uint32_t mask, const char *pin, size_t pin_size,
               uint8_t **ret, size_t *ret_size) {
        _cleanup_(tpm_handle_done) TpmHandle srk = TPM_HANDLE_INIT(t), obj = TPM_HANDLE_INIT(t);
        _cleanup_(auth_wipe) TPM2B_AUTH auth = {};
        TPM2B_PUBLIC pub;
        TPM2B_PRIVATE priv;
        TPM2B_NAME name;
        TPML_PCR_SELECTION sel;
        int r;

        if (!t || !sealed || !ret || !ret_size || !mask_valid(mask) || (pin && pin_size == 0))
                return -EINVAL;
        if (!policy_bank(bank))
                return -EOPNOTSUPP;
        r = srk_get(t, false, &srk);
        if (r < 0)
                return r;
        r = srk_verify(t, &srk, sealed);
        if (r < 0)
                return r;
        r = blob_parse(sealed->blob, sealed->blob_size, &pub, &priv, &name);
        if (r < 0)
                return r;
        /* Before Load: an object whose policy is not the enrolled one is never used. */
        if (pub.publicArea.authPolicy.size != POLICY_SIZE ||
            CRYPTO_memcmp(pub.publicArea.authPolicy.buffer, sealed->policy, POLICY_SIZE) != 0) {
                log_debug("The sealed object's authPolicy differs from the expected policy.");
                return -EUCLEAN;
        }
        r = object_load(t, &srk, &pub, &priv, &name, &obj);
        if (r < 0)
                return r;
        if (pin) {
                r = pin_auth(pin, pin_size, &auth);
                if (r < 0)
                        return r;
                if (Esys_TR_SetAuth(t->esys, obj.tr, &auth) != TSS2_RC_SUCCESS)
                        return -EREMOTEIO;
        }
        pcr_selection(bank, mask, &sel);
        /* A fresh session for the retry: the old one is bound to the stale PCR state (systemd #31881). */
        r = unseal_once(t, &srk, &obj, &sel, pin != NULL, ret, ret_size);
        if (r == -EAGAIN)
                r = unseal_once(t, &srk, &obj, &sel, pin != NULL, ret, ret_size);
        if (pin) /* ESYS frees its copy of the auth value without wiping it: overwrite it first */
                (void) Esys_TR_SetAuth(t->esys, obj.tr, &(const TPM2B_AUTH){});
        return r == -EAGAIN ? -EREMOTEIO : r;
}
