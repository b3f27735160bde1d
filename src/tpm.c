/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_sys.h>
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

/* ---- unseal ----
 *
 * The unseal path speaks SAPI and does the session cryptography itself. ESAPI (tpm2-tss 3.x) creates
 * a new OpenSSL library context for every hash, HMAC and random number it needs, about a dozen per
 * unseal, and on OpenSSL 3.0 each one costs as much as everything else the unseal computes: here
 * they share the default context. The TPM sees the same commands: a policy session salted to the
 * SRK, whose name is checked first, and an Unseal whose response is encrypted (AES-128-CFB) and
 * whose response HMAC is verified before the secret is used. */

#define SESSION_HASH TPM2_ALG_SHA256
#define SESSION_AES_BYTES 16

/* Our side of one policy session; in secmem since salt, key and value are secrets. */
typedef struct Session {
        TPM2_HANDLE handle;
        TPM2B_NONCE nonce_caller, nonce_tpm;
        uint8_t salt[TPM_DIGEST_MAX];
        uint8_t value[TPM_DIGEST_MAX + sizeof(TPMU_HA)]; /* sessionKey || authValue of the object */
        size_t value_size;
        uint8_t z[TPM2_MAX_ECC_KEY_BYTES];             /* ECDH shared secret */
        uint8_t sym[2 * SESSION_AES_BYTES];             /* response key || IV */
} Session;

/* TPM_RC_RETRY, _YIELDED and _TESTING: the TPM did not run the command and wants it again. ESAPI
 * resubmits by itself (a wrong PIN on swtpm answers RETRY first while the DA counter is written). */
#define SYS_TRIES 5

static bool rc_retry(TSS2_RC rc) {
        return rc == TPM2_RC_RETRY || rc == TPM2_RC_YIELDED || rc == TPM2_RC_TESTING;
}

#define SYS_RUN(call)                                                   \
        ({                                                              \
                TSS2_RC _rc;                                            \
                unsigned _n = 0;                                        \
                do                                                      \
                        _rc = (call);                                   \
                while (rc_retry(_rc) && ++_n < SYS_TRIES);              \
                _rc;                                                    \
        })

/* A handle on the SAPI context: flushed on cleanup unless 0 (nothing loaded, a persistent object,
 * or a session the TPM flushed itself). */
typedef struct SysHandle {
        TSS2_SYS_CONTEXT *sys;
        TPM2_HANDLE handle;
} SysHandle;

static void sys_handle_done(SysHandle *h) {
        if (h->handle != 0)
                (void) SYS_RUN(Tss2_Sys_FlushContext(h->sys, h->handle));
        h->handle = 0;
}

static void sys_freep(TSS2_SYS_CONTEXT **p) {
        if (*p)
                Tss2_Sys_Finalize(*p);
        free(*p);
}

/* A SAPI context on the ESAPI context's TCTI: ESAPI is idle while it is used. */
static int sys_new(TpmContext *t, TSS2_SYS_CONTEXT **ret) {
        size_t size = Tss2_Sys_GetContextSize(0);
        TSS2_ABI_VERSION abi = TSS2_ABI_VERSION_CURRENT;
        TSS2_SYS_CONTEXT *sys = calloc(1, size);
        TSS2_RC rc;

        if (!sys)
                return -ENOMEM;
        rc = Tss2_Sys_Initialize(sys, size, t->tcti, &abi);
        if (rc != TSS2_RC_SUCCESS) {
                free(sys);
                return rc_to_errno(rc, "Sys_Initialize", false);
        }
        *ret = sys;
        return 0;
}

static int random_nonce(TPM2B_NONCE *n) {
        n->size = tpm_bank_digest_size(SESSION_HASH);
        return getrandom(n->buffer, n->size, 0) == (ssize_t) n->size ? 0 : -EIO;
}

/* Name of a public area as the TPM computes it: nameAlg || H(TPMT_PUBLIC). */
static int public_name(const TPM2B_PUBLIC *pub, TPM2B_NAME *ret) {
        const BankInfo *b = bank_info(pub->publicArea.nameAlg);
        uint8_t area[sizeof(TPMT_PUBLIC)];
        size_t off = 0;
        int r;

        if (!b || 2 + b->size > sizeof(ret->name))
                return -EBADMSG;
        if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, area, sizeof(area), &off) != TSS2_RC_SUCCESS)
                return -EBADMSG;
        ret->name[0] = (uint8_t) (b->alg >> 8);
        ret->name[1] = (uint8_t) b->alg;
        r = digest(b->evp, area, off, ret->name + 2, b->size);
        if (r < 0)
                return r;
        ret->size = (UINT16) (2 + b->size);
        return 0;
}

/* The TPM's claim about an object's name is only believed where it agrees with its public area. */
static int check_name(const TPM2B_PUBLIC *pub, const TPM2B_NAME *claimed, TPM2B_NAME *ret) {
        int r;

        r = public_name(pub, ret);
        if (r < 0)
                return r;
        if (claimed->size != ret->size || memcmp(claimed->name, ret->name, ret->size) != 0) {
                log_debug("The TPM's name for an object does not match its public area.");
                return -EBADMSG;
        }
        return 0;
}

/* The SRK to unseal under: the persistent key if there is one, else a transient primary from the
 * standard template. Its name must be the one recorded at enroll: only then is the salt of the
 * session encrypted to a key that lives in this TPM. */
static int sys_srk(TSS2_SYS_CONTEXT *sys, const TpmSealed *sealed, SysHandle *transient, TPM2_HANDLE *ret,
                   TPM2B_PUBLIC *pub) {
        const TSS2L_SYS_AUTH_COMMAND owner = { .count = 1, .auths[0].sessionHandle = TPM2_RS_PW };
        const TPM2B_SENSITIVE_CREATE sensitive = {};
        const TPM2B_DATA outside = {};
        const TPML_PCR_SELECTION creation = {};
        TPM2B_NAME claimed = {}, name;
        TPM2_HANDLE h = TPM_SRK_HANDLE;
        TSS2_RC rc;
        int r;

        *pub = (TPM2B_PUBLIC){};
        rc = SYS_RUN(Tss2_Sys_ReadPublic(sys, TPM_SRK_HANDLE, NULL, pub, &claimed, NULL, NULL));
        if (rc_is_tpm(rc) && tpm_rc_base(rc) == TPM2_RC_HANDLE) {
                log_debug("No persistent SRK at 0x%08x.", TPM_SRK_HANDLE);
                *pub = (TPM2B_PUBLIC){};
                rc = SYS_RUN(Tss2_Sys_CreatePrimary(sys, TPM2_RH_OWNER, &owner, &sensitive, &srk_template, &outside,
                                                    &creation, &h, pub, NULL, NULL, NULL, &claimed, NULL));
                if (rc != TSS2_RC_SUCCESS)
                        return rc_to_errno(rc, "CreatePrimary(SRK)", false);
                transient->handle = h;
        } else if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "ReadPublic(SRK)", false);
        r = check_name(pub, &claimed, &name);
        if (r < 0)
                return r;
        if (name.size != sealed->srk_name_size || CRYPTO_memcmp(name.name, sealed->srk_name, name.size) != 0) {
                log_debug("The SRK's name differs from the one recorded at enroll.");
                return -EREMCHG;
        }
        *ret = h;
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_CIPHER *, EVP_CIPHER_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free);

static int hmac(const BankInfo *h, const uint8_t *key, size_t key_size, const uint8_t *msg, size_t msg_size,
                uint8_t *out) {
        size_t len = 0;

        if (!EVP_Q_mac(NULL, "HMAC", NULL, h->evp, NULL, key, key_size, msg, msg_size, out, h->size, &len) ||
            len != h->size)
                return -EIO;
        return 0;
}

/* KDFa (Part 1, 11.4.10.2) for output of at most one digest, all this file needs: HMAC(key,
 * [1] || label || 0 || u || v || [bits]). */
static int kdfa(const BankInfo *h, const uint8_t *key, size_t key_size, const char *label, const TPM2B_NONCE *u,
                const TPM2B_NONCE *v, uint8_t *out, size_t bytes) {
        uint8_t msg[4 + 8 + 2 * sizeof(u->buffer) + 4], block[TPM_DIGEST_MAX];
        size_t label_size = strlen(label) + 1, n = 0;
        int r;

        if (bytes > h->size || label_size > 8)
                return -EINVAL;
        put_be32(msg, 1);
        n = 4;
        memcpy(msg + n, label, label_size);
        n += label_size;
        memcpy(msg + n, u->buffer, u->size);
        n += u->size;
        memcpy(msg + n, v->buffer, v->size);
        n += v->size;
        put_be32(msg + n, (uint32_t) bytes * 8);
        n += 4;
        r = hmac(h, key, key_size, msg, n, block);
        if (r >= 0)
                memcpy(out, block, bytes);
        secmem_wipe(block, sizeof(block));
        return r;
}

/* KDFe (Part 1, 11.4.10.3) for output of at most one digest: H([1] || Z || "SECRET" || 0 || u || v). */
static int kdfe(const BankInfo *h, const uint8_t *z, size_t z_size, const TPM2B_ECC_PARAMETER *u,
                const TPM2B_ECC_PARAMETER *v, uint8_t *out, size_t bytes) {
        _cleanup_(EVP_MD_freep) EVP_MD *md = EVP_MD_fetch(NULL, h->evp, NULL);
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t counter[4], block[TPM_DIGEST_MAX];
        unsigned len = 0;
        int r = -EIO;

        if (!md || !ctx)
                return -ENOMEM;
        if (bytes > h->size)
                return -EINVAL;
        put_be32(counter, 1);
        if (EVP_DigestInit_ex2(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, counter, sizeof(counter)) == 1 &&
            EVP_DigestUpdate(ctx, z, z_size) == 1 && EVP_DigestUpdate(ctx, "SECRET", sizeof("SECRET")) == 1 &&
            EVP_DigestUpdate(ctx, u->buffer, u->size) == 1 && EVP_DigestUpdate(ctx, v->buffer, v->size) == 1 &&
            EVP_DigestFinal_ex(ctx, block, &len) == 1 && len == h->size) {
                memcpy(out, block, bytes);
                r = 0;
        }
        secmem_wipe(block, sizeof(block));
        return r;
}

static int ecc_curve(TPMI_ECC_CURVE curve, const char **ret_name, size_t *ret_size) {
        switch (curve) {
        case TPM2_ECC_NIST_P256:
                *ret_name = "P-256";
                *ret_size = 32;
                return 0;
        case TPM2_ECC_NIST_P384:
                *ret_name = "P-384";
                *ret_size = 48;
                return 0;
        default:
                return -EOPNOTSUPP;
        }
}

/* ECC salt (Part 1, C.6.1): ECDH of an ephemeral key with the SRK, salt = KDFe(Z, "SECRET", Qe.x,
 * Qs.x); the ephemeral public point is the encrypted salt. */
static int salt_ecc(const TPMT_PUBLIC *srk, const BankInfo *h, Session *s, TPM2B_ENCRYPTED_SECRET *ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *peer = NULL, *eph = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *pctx = NULL, *dctx = NULL;
        const TPMS_ECC_POINT *q = &srk->unique.ecc;
        uint8_t point[1 + 2 * TPM2_MAX_ECC_KEY_BYTES];
        TPMS_ECC_POINT e = {};
        const char *curve;
        size_t size, len, zlen, off = 0;
        OSSL_PARAM params[3];
        int r;

        r = ecc_curve(srk->parameters.eccDetail.curveID, &curve, &size);
        if (r < 0)
                return r;
        if (q->x.size > size || q->y.size > size)
                return -EBADMSG;
        point[0] = 0x04; /* uncompressed: 04 || x || y, each padded to the field size */
        memset(point + 1, 0, 2 * size);
        memcpy(point + 1 + size - q->x.size, q->x.buffer, q->x.size);
        memcpy(point + 1 + 2 * size - q->y.size, q->y.buffer, q->y.size);
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *) curve, 0);
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size);
        params[2] = OSSL_PARAM_construct_end();
        pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!pctx || EVP_PKEY_fromdata_init(pctx) != 1 ||
            EVP_PKEY_fromdata(pctx, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1)
                return -EBADMSG;
        eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
        if (!eph)
                return -EIO;
        dctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
        zlen = size;
        if (!dctx || EVP_PKEY_derive_init(dctx) != 1 || EVP_PKEY_derive_set_peer(dctx, peer) != 1 ||
            EVP_PKEY_derive(dctx, s->z, &zlen) != 1 || zlen != size)
                return -EIO;
        if (EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point), &len) != 1 ||
            len != 1 + 2 * size || point[0] != 0x04)
                return -EIO;
        e.x.size = e.y.size = (UINT16) size;
        memcpy(e.x.buffer, point + 1, size);
        memcpy(e.y.buffer, point + 1 + size, size);
        if (Tss2_MU_TPMS_ECC_POINT_Marshal(&e, ret->secret, sizeof(ret->secret), &off) != TSS2_RC_SUCCESS)
                return -EIO;
        ret->size = (UINT16) off;
        return kdfe(h, s->z, size, &e.x, &q->x, s->salt, h->size);
}

/* RSA salt (Part 1, B.10.3): a random salt under RSA-OAEP with the SRK's name algorithm and the
 * label "SECRET". */
static int salt_rsa(const TPMT_PUBLIC *srk, const BankInfo *h, Session *s, TPM2B_ENCRYPTED_SECRET *ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        _cleanup_(BN_freep) BIGNUM *n = BN_bin2bn(srk->unique.rsa.buffer, srk->unique.rsa.size, NULL);
        _cleanup_(BN_freep) BIGNUM *e = BN_new();
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *pctx = NULL, *ectx = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        uint32_t exponent = srk->parameters.rsaDetail.exponent ?: 65537;
        unsigned char *label;
        size_t len = sizeof(ret->secret);

        if (!bld || !n || !e || BN_set_word(e, exponent) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 || !(params = OSSL_PARAM_BLD_to_param(bld)))
                return -ENOMEM;
        pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        if (!pctx || EVP_PKEY_fromdata_init(pctx) != 1 ||
            EVP_PKEY_fromdata(pctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
                return -EBADMSG;
        if (getrandom(s->salt, h->size, 0) != (ssize_t) h->size)
                return -EIO;
        ectx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        if (!ectx || EVP_PKEY_encrypt_init(ectx) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(ectx, RSA_PKCS1_OAEP_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_oaep_md_name(ectx, h->evp, NULL) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md_name(ectx, h->evp, NULL) != 1)
                return -EIO;
        label = OPENSSL_memdup("SECRET", sizeof("SECRET"));
        if (!label)
                return -ENOMEM;
        if (EVP_PKEY_CTX_set0_rsa_oaep_label(ectx, label, sizeof("SECRET")) != 1) {
                OPENSSL_free(label);
                return -EIO;
        }
        if (EVP_PKEY_encrypt(ectx, ret->secret, &len, s->salt, h->size) != 1)
                return -EIO;
        ret->size = (UINT16) len;
        return 0;
}

/* StartAuthSession: a policy session salted to the SRK, its session key = KDFa(salt, "ATH",
 * nonceTPM, nonceCaller). */
static int sys_session_start(TSS2_SYS_CONTEXT *sys, TPM2_HANDLE srk, const TPM2B_PUBLIC *srk_pub, Session *s,
                             SysHandle *ret) {
        static const TPMT_SYM_DEF aes_cfb = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB };
        const BankInfo *salt_hash = bank_info(srk_pub->publicArea.nameAlg), *h = bank_info(SESSION_HASH);
        TPM2B_ENCRYPTED_SECRET encrypted = {};
        TPM2_HANDLE handle = 0;
        TSS2_RC rc;
        int r;

        if (!salt_hash)
                return -EOPNOTSUPP;
        r = random_nonce(&s->nonce_caller);
        if (r < 0)
                return r;
        if (srk_pub->publicArea.type == TPM2_ALG_ECC)
                r = salt_ecc(&srk_pub->publicArea, salt_hash, s, &encrypted);
        else if (srk_pub->publicArea.type == TPM2_ALG_RSA)
                r = salt_rsa(&srk_pub->publicArea, salt_hash, s, &encrypted);
        else
                r = -EMEDIUMTYPE;
        if (r < 0)
                return r;
        s->nonce_tpm = (TPM2B_NONCE){};
        rc = SYS_RUN(Tss2_Sys_StartAuthSession(sys, srk, TPM2_RH_NULL, NULL, &s->nonce_caller, &encrypted,
                                               TPM2_SE_POLICY, &aes_cfb, SESSION_HASH, &handle, &s->nonce_tpm, NULL));
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "StartAuthSession", false);
        ret->handle = s->handle = handle;
        if (s->nonce_tpm.size < 16)
                return -EBADMSG;
        s->value_size = h->size;
        return kdfa(h, s->salt, salt_hash->size, "ATH", &s->nonce_tpm, &s->nonce_caller, s->value, h->size);
}

/* Prepares TPM2_Unseal with the policy session as its one authorization, continueSession clear
 * (the TPM flushes the session) and the response parameter encrypted: HMAC(sessionValue, cpHash ||
 * nonceCaller || nonceTPM || sessionAttributes), cpHash = H(commandCode || name of the object). */
static int unseal_command(TSS2_SYS_CONTEXT *sys, Session *s, TPM2_HANDLE obj, const TPM2B_NAME *obj_name,
                          uint8_t cc[4]) {
        const BankInfo *h = bank_info(SESSION_HASH);
        TSS2L_SYS_AUTH_COMMAND cmd = { .count = 1 };
        TPMS_AUTH_COMMAND *a = &cmd.auths[0];
        uint8_t msg[TPM_DIGEST_MAX + 2 * sizeof(TPMU_HA) + 1], cp_hash[TPM_DIGEST_MAX];
        const uint8_t *cp;
        size_t cp_size, n;
        TSS2_RC rc;
        int r;

        rc = Tss2_Sys_Unseal_Prepare(sys, obj);
        if (rc == TSS2_RC_SUCCESS)
                rc = Tss2_Sys_GetCommandCode(sys, cc);
        if (rc == TSS2_RC_SUCCESS)
                rc = Tss2_Sys_GetCpBuffer(sys, &cp_size, &cp);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "Unseal_Prepare", false);
        if (cp_size != 0) /* Unseal has no command parameters */
                return -EBADMSG;
        memcpy(msg, cc, 4);
        memcpy(msg + 4, obj_name->name, obj_name->size);
        r = digest(h->evp, msg, 4 + obj_name->size, cp_hash, h->size);
        if (r < 0)
                return r;
        r = random_nonce(&s->nonce_caller);
        if (r < 0)
                return r;
        *a = (TPMS_AUTH_COMMAND){ .sessionHandle = s->handle, .nonce = s->nonce_caller,
                                  .sessionAttributes = TPMA_SESSION_ENCRYPT, .hmac.size = (UINT16) h->size };
        memcpy(msg, cp_hash, h->size);
        n = h->size;
        memcpy(msg + n, s->nonce_caller.buffer, s->nonce_caller.size);
        n += s->nonce_caller.size;
        memcpy(msg + n, s->nonce_tpm.buffer, s->nonce_tpm.size);
        n += s->nonce_tpm.size;
        msg[n++] = a->sessionAttributes;
        r = hmac(h, s->value, s->value_size, msg, n, a->hmac.buffer);
        if (r < 0)
                return r;
        rc = Tss2_Sys_SetCmdAuths(sys, &cmd);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "Unseal_Prepare", false);
        return 0;
}

/* Unseal; the response HMAC is checked before the response is decrypted into secmem. -EAGAIN when
 * a PCR changed since PolicyPCR. */
static int sys_unseal(TSS2_SYS_CONTEXT *sys, Session *s, SysHandle *session, TPM2_HANDLE obj,
                      const TPM2B_NAME *obj_name, uint8_t **ret, size_t *ret_size) {
        const BankInfo *h = bank_info(SESSION_HASH);
        _cleanup_(EVP_CIPHER_freep) EVP_CIPHER *aes = NULL;
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
        _cleanup_secmem_ uint8_t *out = NULL;
        TSS2L_SYS_AUTH_RESPONSE rsp = {};
        uint8_t cc[4], rp_msg[8 + sizeof(TPM2B_SENSITIVE_DATA)], hash[TPM_DIGEST_MAX], mac[TPM_DIGEST_MAX];
        uint8_t msg[TPM_DIGEST_MAX + 2 * sizeof(TPMU_HA) + 1];
        const uint8_t *rp;
        size_t rp_size, n, size;
        int len = 0, fin = 0, r;
        TSS2_RC rc;

        for (unsigned i = 0;; i++) {
                r = unseal_command(sys, s, obj, obj_name, cc);
                if (r < 0)
                        return r;
                rc = Tss2_Sys_Execute(sys);
                if (!rc_retry(rc) || i + 1 >= SYS_TRIES)
                        break;
        }
        if (rc_is_tpm(rc) && tpm_rc_base(rc) == TPM2_RC_PCR_CHANGED) {
                log_debug("A PCR changed during the policy session.");
                return -EAGAIN;
        }
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "Unseal", true);
        session->handle = 0; /* continueSession was clear */
        rc = Tss2_Sys_GetRspAuths(sys, &rsp);
        if (rc == TSS2_RC_SUCCESS)
                rc = Tss2_Sys_GetRpBuffer(sys, &rp_size, &rp);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "Unseal response", false);
        if (rsp.count != 1 || rsp.auths[0].nonce.size < 16 || rsp.auths[0].hmac.size != h->size || rp_size < 2 ||
            rp_size > sizeof(TPM2B_SENSITIVE_DATA))
                return -EBADMSG;
        s->nonce_tpm = rsp.auths[0].nonce;
        /* rpHash = H(responseCode || commandCode || parameters); HMAC(sessionValue, rpHash ||
         * nonceTPM || nonceCaller || sessionAttributes) must be the TPM's. */
        memset(rp_msg, 0, 4);
        memcpy(rp_msg + 4, cc, 4);
        memcpy(rp_msg + 8, rp, rp_size);
        r = digest(h->evp, rp_msg, 8 + rp_size, hash, h->size);
        if (r < 0)
                return r;
        memcpy(msg, hash, h->size);
        n = h->size;
        memcpy(msg + n, s->nonce_tpm.buffer, s->nonce_tpm.size);
        n += s->nonce_tpm.size;
        memcpy(msg + n, s->nonce_caller.buffer, s->nonce_caller.size);
        n += s->nonce_caller.size;
        msg[n++] = rsp.auths[0].sessionAttributes;
        r = hmac(h, s->value, s->value_size, msg, n, mac);
        if (r < 0)
                return r;
        if (CRYPTO_memcmp(mac, rsp.auths[0].hmac.buffer, h->size) != 0) {
                log_debug("The TPM's response HMAC for Unseal does not verify.");
                return -EBADMSG;
        }
        /* outData is a TPM2B, encrypted with KDFa(sessionValue, "CFB", nonceTPM, nonceCaller). */
        size = (size_t) rp[0] << 8 | rp[1];
        if (size == 0 || size != rp_size - 2)
                return -EBADMSG;
        r = kdfa(h, s->value, s->value_size, "CFB", &s->nonce_tpm, &s->nonce_caller, s->sym, sizeof(s->sym));
        if (r < 0)
                return r;
        out = secmem_alloc(size);
        if (!out)
                return negative_errno();
        aes = EVP_CIPHER_fetch(NULL, "AES-128-CFB", NULL);
        ctx = EVP_CIPHER_CTX_new();
        if (!aes || !ctx || EVP_DecryptInit_ex2(ctx, aes, s->sym, s->sym + SESSION_AES_BYTES, NULL) != 1 ||
            EVP_DecryptUpdate(ctx, out, &len, rp + 2, (int) size) != 1 ||
            EVP_DecryptFinal_ex(ctx, out + len, &fin) != 1 || (size_t) (len + fin) != size)
                return -EIO;
        *ret = TAKE_PTR(out);
        *ret_size = size;
        return 0;
}

/* One policy session: PolicyPCR [+ PolicyAuthValue] + Unseal. */
static int unseal_once(TSS2_SYS_CONTEXT *sys, TPM2_HANDLE srk, const TPM2B_PUBLIC *srk_pub, TPM2_HANDLE obj,
                       const TPM2B_NAME *obj_name, const TPML_PCR_SELECTION *sel, const TPM2B_AUTH *auth,
                       uint8_t **ret, size_t *ret_size) {
        _cleanup_(sys_handle_done) SysHandle session = { .sys = sys };
        _cleanup_secmem_ Session *s = secmem_alloc(sizeof(Session));
        const TPM2B_DIGEST any = {}; /* empty: the TPM hashes the current PCR values itself */
        TSS2_RC rc;
        int r;

        if (!s)
                return negative_errno();
        r = sys_session_start(sys, srk, srk_pub, s, &session);
        if (r < 0)
                return r;
        rc = SYS_RUN(Tss2_Sys_PolicyPCR(sys, s->handle, NULL, &any, sel, NULL));
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "PolicyPCR", true);
        if (auth) {
                rc = SYS_RUN(Tss2_Sys_PolicyAuthValue(sys, s->handle, NULL, NULL));
                if (rc != TSS2_RC_SUCCESS)
                        return rc_to_errno(rc, "PolicyAuthValue", true);
                /* With PolicyAuthValue the object's authValue joins the HMAC and encryption keys. */
                memcpy(s->value + s->value_size, auth->buffer, auth->size);
                s->value_size += auth->size;
        }
        return sys_unseal(sys, s, &session, obj, obj_name, ret, ret_size);
}

int tpm_unseal(TpmContext *t, const TpmSealed *sealed, uint16_t bank, uint32_t mask, const char *pin, size_t pin_size,
               uint8_t **ret, size_t *ret_size) {
        _cleanup_(sys_freep) TSS2_SYS_CONTEXT *sys = NULL;
        _cleanup_(sys_handle_done) SysHandle transient = {}, obj = {};
        _cleanup_secmem_ TPM2B_AUTH *auth = NULL;
        const TSS2L_SYS_AUTH_COMMAND pw = { .count = 1, .auths[0].sessionHandle = TPM2_RS_PW };
        TPM2B_PUBLIC pub, srk_pub;
        TPM2B_PRIVATE priv;
        TPM2B_NAME name, claimed = {};
        TPML_PCR_SELECTION sel;
        TPM2_HANDLE srk = 0;
        TSS2_RC rc;
        int r;

        if (!t || !sealed || !ret || !ret_size || !mask_valid(mask) || (pin && pin_size == 0))
                return -EINVAL;
        if (!policy_bank(bank))
                return -EOPNOTSUPP;
        r = sys_new(t, &sys);
        if (r < 0)
                return r;
        transient.sys = obj.sys = sys;
        r = sys_srk(sys, sealed, &transient, &srk, &srk_pub);
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
        rc = SYS_RUN(Tss2_Sys_Load(sys, srk, &pw, &priv, &pub, &obj.handle, &claimed, NULL));
        if (rc != TSS2_RC_SUCCESS) {
                obj.handle = 0;
                return rc_to_errno(rc, "Load", false);
        }
        if (claimed.size != name.size || memcmp(claimed.name, name.name, name.size) != 0)
                return -EBADMSG;
        if (pin) {
                auth = secmem_alloc(sizeof(*auth));
                if (!auth)
                        return negative_errno();
                r = pin_auth(pin, pin_size, auth);
                if (r < 0)
                        return r;
        }
        pcr_selection(bank, mask, &sel);
        /* A fresh session for the retry: the old one is bound to the stale PCR state (systemd #31881). */
        r = unseal_once(sys, srk, &srk_pub, obj.handle, &name, &sel, auth, ret, ret_size);
        if (r == -EAGAIN)
                r = unseal_once(sys, srk, &srk_pub, obj.handle, &name, &sel, auth, ret, ret_size);
        return r == -EAGAIN ? -EREMOTEIO : r;
}

int tpm_pcr_extend_banks(TpmContext *t, unsigned pcr, const uint16_t *banks, const uint8_t (*digests)[TPM_DIGEST_MAX],
                         size_t n) {
        TPML_DIGEST_VALUES d = {};

        if (!t || pcr >= TPM_PCR_MAX || !banks || !digests || n == 0 || n > ELEMENTSOF(d.digests))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                const BankInfo *b = bank_info(banks[i]);

                if (!b)
                        return -EOPNOTSUPP;
                d.digests[i].hashAlg = b->alg;
                memcpy(&d.digests[i].digest, digests[i], b->size);
        }
        d.count = (uint32_t) n;
        return pcr_extend(t, pcr, &d);
}

/* ---- NV indices, keys and quotes (attestation sources) ---- */

#define NV_WRITE_MAX 64

/* Errors NV commands return that the caller can act on; the rest as rc_to_errno(). */
static int nv_rc_to_errno(TSS2_RC rc, const char *what) {
        if (rc_is_tpm(rc))
                switch (tpm_rc_base(rc)) {
                case TPM2_RC_HANDLE:
                        log_debug("TPM %s failed: the NV index is not defined.", what);
                        return -ENOENT;
                case TPM2_RC_NV_UNINITIALIZED:
                        log_debug("TPM %s failed: the NV index was never written.", what);
                        return -ENODATA;
                case TPM2_RC_NV_RANGE:
                        log_debug("TPM %s failed: the NV index is smaller than the data.", what);
                        return -EMSGSIZE;
                case TPM2_RC_NV_LOCKED:
                case TPM2_RC_NV_AUTHORIZATION:
                        log_debug("TPM %s failed: access to the NV index refused (%s).", what, Tss2_RC_Decode(rc));
                        return -EACCES;
                }
        return rc_to_errno(rc, what, false);
}

/* An ESYS_TR for a defined NV index (TPM2_NV_ReadPublic); metadata only, never flushed. */
static int nv_open(TpmContext *t, uint32_t index, TpmHandle *ret) {
        TSS2_RC rc;

        *ret = TPM_HANDLE_INIT(t);
        rc = Esys_TR_FromTPMPublic(t->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &ret->tr);
        if (rc != TSS2_RC_SUCCESS) {
                ret->tr = ESYS_TR_NONE;
                return nv_rc_to_errno(rc, "NV_ReadPublic");
        }
        return 0;
}

static int nv_public(TpmContext *t, const TpmHandle *nv, TPMS_NV_PUBLIC *ret) {
        _cleanup_esys_ TPM2B_NV_PUBLIC *pub = NULL;
        TSS2_RC rc;

        rc = Esys_NV_ReadPublic(t->esys, nv->tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return nv_rc_to_errno(rc, "NV_ReadPublic");
        *ret = pub->nvPublic;
        return 0;
}

int tpm_nv_size(TpmContext *t, uint32_t index, size_t *ret) {
        _cleanup_(tpm_handle_done) TpmHandle nv = TPM_HANDLE_INIT(t);
        TPMS_NV_PUBLIC pub;
        int r;

        if (!t || !ret)
                return -EINVAL;
        r = nv_open(t, index, &nv);
        if (r < 0)
                return r;
        r = nv_public(t, &nv, &pub);
        if (r < 0)
                return r;
        *ret = pub.dataSize;
        return 0;
}

/* The most one TPM2_NV_Read may return (TPM_PT_NV_BUFFER_MAX), capped by what ESYS can hold. */
static int nv_buffer_max(TpmContext *t, size_t *ret) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more = TPM2_NO;
        TSS2_RC rc;
        uint32_t v;

        rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "GetCapability(NV_BUFFER_MAX)", false);
        if (cap->capability != TPM2_CAP_TPM_PROPERTIES || cap->data.tpmProperties.count != 1 ||
            cap->data.tpmProperties.tpmProperty[0].property != TPM2_PT_NV_BUFFER_MAX)
                return -EBADMSG;
        v = cap->data.tpmProperties.tpmProperty[0].value;
        if (v == 0)
                return -EBADMSG;
        *ret = v < TPM2_MAX_NV_BUFFER_SIZE ? v : TPM2_MAX_NV_BUFFER_SIZE;
        return 0;
}

int tpm_nv_read(TpmContext *t, uint32_t index, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_(tpm_handle_done) TpmHandle nv = TPM_HANDLE_INIT(t);
        _cleanup_free_ uint8_t *buf = NULL;
        TPMS_NV_PUBLIC pub;
        ESYS_TR auth;
        size_t chunk = 0, off = 0;
        int r;

        if (!t || !ret || !ret_size || max == 0 || max > UINT16_MAX)
                return -EINVAL;
        r = nv_open(t, index, &nv);
        if (r < 0)
                return r;
        r = nv_public(t, &nv, &pub);
        if (r < 0)
                return r;
        if ((pub.attributes & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT != TPM2_NT_ORDINARY) {
                log_debug("NV index 0x%08" PRIx32 " is not an ordinary index (attributes 0x%08" PRIx32 ").", index,
                          pub.attributes);
                return -EMEDIUMTYPE;
        }
        /* Bounded before anything is allocated or read: the size comes from the TPM. */
        if (pub.dataSize == 0 || pub.dataSize > max) {
                log_debug("NV index 0x%08" PRIx32 " holds %u bytes, expected 1..%zu.", index, pub.dataSize, max);
                return -EFBIG;
        }
        if (!(pub.attributes & TPMA_NV_WRITTEN))
                return log_debug_errno(-ENODATA, "NV index 0x%08" PRIx32 " was never written.", index);
        if (pub.attributes & TPMA_NV_READLOCKED)
                return log_debug_errno(-EACCES, "NV index 0x%08" PRIx32 " is read-locked.", index);
        if (pub.attributes & TPMA_NV_OWNERREAD)
                auth = ESYS_TR_RH_OWNER;
        else if (pub.attributes & TPMA_NV_AUTHREAD)
                auth = nv.tr;
        else
                return log_debug_errno(-EACCES, "NV index 0x%08" PRIx32 " is readable by neither owner nor index auth.",
                                       index);
        r = nv_buffer_max(t, &chunk);
        if (r < 0)
                return r;
        buf = malloc(pub.dataSize);
        if (!buf)
                return -ENOMEM;
        while (off < pub.dataSize) {
                _cleanup_esys_ TPM2B_MAX_NV_BUFFER *data = NULL;
                UINT16 n = (UINT16) (pub.dataSize - off < chunk ? pub.dataSize - off : chunk);
                TSS2_RC rc;

                rc = Esys_NV_Read(t->esys, auth, nv.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, (UINT16) off,
                                  &data);
                if (rc != TSS2_RC_SUCCESS)
                        return nv_rc_to_errno(rc, "NV_Read");
                if (data->size != n)
                        return -EBADMSG;
                memcpy(buf + off, data->buffer, n);
                off += n;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = off;
        return 0;
}

static int nv_define(TpmContext *t, uint32_t index, size_t size, TpmHandle *ret) {
        const TPM2B_AUTH auth = {};
        const TPM2B_NV_PUBLIC info = {
                .nvPublic = {
                        .nvIndex = index,
                        .nameAlg = TPM2_ALG_SHA256,
                        .attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_PPREAD,
                        .dataSize = (UINT16) size,
                },
        };
        TSS2_RC rc;

        *ret = TPM_HANDLE_INIT(t);
        rc = Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &auth, &info,
                                 &ret->tr);
        if (rc != TSS2_RC_SUCCESS) {
                ret->tr = ESYS_TR_NONE;
                return nv_rc_to_errno(rc, "NV_DefineSpace");
        }
        log_debug("Defined NV index 0x%08" PRIx32 " (%zu bytes).", index, size);
        return 0;
}

int tpm_nv_write(TpmContext *t, uint32_t index, const void *data, size_t size, bool define) {
        _cleanup_(tpm_handle_done) TpmHandle nv = TPM_HANDLE_INIT(t);
        TPM2B_MAX_NV_BUFFER buf = { .size = (UINT16) size };
        TSS2_RC rc;
        int r;

        if (!t || !data || size == 0 || size > NV_WRITE_MAX)
                return -EINVAL;
        /* The size and auth checks are the TPM's (NV_RANGE, NV_AUTHORIZATION): no NV_ReadPublic. */
        r = nv_open(t, index, &nv);
        if (r == -ENOENT && define)
                r = nv_define(t, index, size, &nv);
        if (r < 0)
                return r;
        memcpy(buf.buffer, data, size);
        rc = Esys_NV_Write(t->esys, ESYS_TR_RH_OWNER, nv.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &buf, 0);
        if (rc != TSS2_RC_SUCCESS)
                return nv_rc_to_errno(rc, "NV_Write");
        return 0;
}

void tpm_quote_done(TpmQuote *q) {
        if (!q)
                return;
        free(q->attest);
        free(q->signature);
        *q = (TpmQuote){};
}

static int rsa_public(const TPMT_PUBLIC *p, TpmRsaPublic *ret) {
        const TPMS_RSA_PARMS *rsa = &p->parameters.rsaDetail;

        if (p->type != TPM2_ALG_RSA || p->unique.rsa.size == 0 || p->unique.rsa.size > TPM_RSA_MODULUS_MAX)
                return -EMEDIUMTYPE;
        *ret = (TpmRsaPublic){
                .attributes = p->objectAttributes,
                .restricted_signing = (p->objectAttributes & (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
                                                              TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_DECRYPT)) ==
                                      (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM),
                .scheme = rsa->scheme.scheme,
                .scheme_hash = rsa->scheme.scheme == TPM2_ALG_NULL ? TPM2_ALG_NULL : rsa->scheme.details.anySig.hashAlg,
                .exponent = rsa->exponent,
                .modulus_size = p->unique.rsa.size,
        };
        memcpy(ret->modulus, p->unique.rsa.buffer, p->unique.rsa.size);
        return 0;
}

int tpm_quote(TpmContext *t, uint32_t handle, uint16_t bank, uint32_t mask, const uint8_t *nonce, size_t nonce_size,
              TpmRsaPublic *ret_key, TpmQuote *ret) {
        _cleanup_(tpm_handle_done) TpmHandle key = TPM_HANDLE_INIT(t);
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        _cleanup_esys_ TPM2B_ATTEST *attest = NULL;
        _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
        _cleanup_(tpm_quote_done) TpmQuote q = {};
        const TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
        TPM2B_DATA extra = { .size = (UINT16) nonce_size };
        TPML_PCR_SELECTION sel;
        TpmRsaPublic k;
        size_t off = 0;
        TSS2_RC rc;
        int r;

        if (!t || !ret_key || !ret || !nonce || nonce_size == 0 || nonce_size > 32 || !mask_valid(mask))
                return -EINVAL;
        if (tpm_bank_digest_size(bank) == 0)
                return -EOPNOTSUPP;
        rc = Esys_TR_FromTPMPublic(t->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &key.tr);
        if (rc_is_tpm(rc) && tpm_rc_base(rc) == TPM2_RC_HANDLE) {
                key.tr = ESYS_TR_NONE;
                return log_debug_errno(-ENOENT, "No key at persistent handle 0x%08" PRIx32 ".", handle);
        }
        if (rc != TSS2_RC_SUCCESS) {
                key.tr = ESYS_TR_NONE;
                return rc_to_errno(rc, "ReadPublic", false);
        }
        rc = Esys_ReadPublic(t->esys, key.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "ReadPublic", false);
        r = rsa_public(&pub->publicArea, &k);
        if (r < 0)
                return log_debug_errno(r, "The key at 0x%08" PRIx32 " is not an RSA key (type 0x%04x).", handle,
                                       pub->publicArea.type);
        memcpy(extra.buffer, nonce, nonce_size);
        pcr_selection(bank, mask, &sel);
        rc = Esys_Quote(t->esys, key.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &extra, &scheme, &sel, &attest, &sig);
        if (rc != TSS2_RC_SUCCESS)
                return rc_to_errno(rc, "Quote", false);
        if (attest->size == 0)
                return -EBADMSG;
        q.attest = malloc(attest->size);
        q.signature = malloc(sizeof(*sig));
        if (!q.attest || !q.signature)
                return -ENOMEM;
        memcpy(q.attest, attest->attestationData, attest->size);
        q.attest_size = attest->size;
        if (Tss2_MU_TPMT_SIGNATURE_Marshal(sig, q.signature, sizeof(*sig), &off) != TSS2_RC_SUCCESS)
                return -EBADMSG;
        q.signature_size = off;
        *ret_key = k;
        *ret = q;
        q = (TpmQuote){};
        return 0;
}
