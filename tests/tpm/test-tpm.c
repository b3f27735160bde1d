/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* src/tpm.c against a TPM (swtpm in tests/bats/tpm.bats): test-tpm TCTI. The TPM must be private to the
 * test: it extends PCRs, persists an SRK at 0x81000001 and changes the dictionary-attack parameters.
 * A raw swtpm has no resource manager, so leftover objects and sessions stay visible between
 * connections; the test checks after every operation that nothing was left loaded. Exit 77 = skip. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "../unit/tap.h"
#include "macro.h"
#include "secmem.h"
#include "tpm.h"

#define SHA256 0x000B
#define SHA384 0x000C
#define TPM_PORT 2321 /* the pcap TCTI files commands as TCP packets to this port */

static const char *tcti;
static char shim[1024]; /* tests/tpm/libtss2-tcti-cvmtest.so, next to this binary */

/* ---- raw ESAPI, for what the library deliberately does not offer ---- */

typedef struct Raw {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
} Raw;

static int raw_open(Raw *r) {
        *r = (Raw){};
        if (Tss2_TctiLdr_Initialize(tcti, &r->tcti) != TSS2_RC_SUCCESS)
                return -ECOMM;
        if (Esys_Initialize(&r->esys, r->tcti, NULL) != TSS2_RC_SUCCESS) {
                Tss2_TctiLdr_Finalize(&r->tcti);
                return -ECOMM;
        }
        return 0;
}

static void raw_close(Raw *r) {
        if (r->esys)
                Esys_Finalize(&r->esys);
        if (r->tcti)
                Tss2_TctiLdr_Finalize(&r->tcti);
}

/* Handles of the given type currently in the TPM, or -1. */
static int count_handles(ESYS_CONTEXT *e, uint32_t first) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more = TPM2_NO;
        int n = 0;

        if (Esys_GetCapability(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, first, 64, &more, &cap) !=
            TSS2_RC_SUCCESS)
                return -1;
        for (uint32_t i = 0; i < cap->data.handles.count; i++)
                if ((cap->data.handles.handle[i] >> 24) == (first >> 24))
                        n++;
        Esys_Free(cap);
        return n;
}

/* Transient objects plus loaded (HMAC or policy) sessions; -1 on error. */
static int leftovers(void) {
        Raw r;
        int a, b, c;

        if (raw_open(&r) < 0)
                return -1;
        /* Literal handle ranges: the TPM2_HR_* macros shift a signed int into the sign bit. */
        a = count_handles(r.esys, 0x80000000u); /* transient objects */
        b = count_handles(r.esys, 0x02000000u); /* loaded sessions */
        c = count_handles(r.esys, 0x03000000u); /* saved/active policy sessions */
        raw_close(&r);
        if (a < 0 || b < 0 || c < 0)
                return -1;
        if (a + b + c)
                printf("# left over: %d transient objects, %d + %d sessions\n", a, b, c);
        return a + b + c;
}

static void sel_of(uint16_t bank, uint32_t mask, TPML_PCR_SELECTION *s) {
        *s = (TPML_PCR_SELECTION){ .count = 1 };
        s->pcrSelections[0].hash = bank;
        s->pcrSelections[0].sizeofSelect = 3;
        for (unsigned i = 0; i < 3; i++)
                s->pcrSelections[0].pcrSelect[i] = (uint8_t) (mask >> (8 * i));
}

/* The TPM's own policy digest from a trial session over the current PCR values. */
static int trial_digest(uint16_t bank, uint32_t mask, bool pin, uint8_t out[32]) {
        const TPMT_SYM_DEF none = { .algorithm = TPM2_ALG_NULL };
        const TPM2B_DIGEST empty = {};
        TPM2B_DIGEST *d = NULL;
        TPML_PCR_SELECTION sel;
        ESYS_TR s = ESYS_TR_NONE;
        int ret = -EIO;
        Raw r;

        if (raw_open(&r) < 0)
                return -ECOMM;
        sel_of(bank, mask, &sel);
        if (Esys_StartAuthSession(r.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                  TPM2_SE_TRIAL, &none, TPM2_ALG_SHA256, &s) != TSS2_RC_SUCCESS)
                goto out;
        if (Esys_PolicyPCR(r.esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &sel) != TSS2_RC_SUCCESS)
                goto out;
        if (pin && Esys_PolicyAuthValue(r.esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE) != TSS2_RC_SUCCESS)
                goto out;
        if (Esys_PolicyGetDigest(r.esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &d) != TSS2_RC_SUCCESS ||
            d->size != 32)
                goto out;
        memcpy(out, d->buffer, 32);
        ret = 0;
out:
        Esys_Free(d);
        if (s != ESYS_TR_NONE)
                (void) Esys_FlushContext(r.esys, s);
        raw_close(&r);
        return ret;
}

/* The standard SRK template again, written out independently of src/tpm.c. */
static int persist_key(bool srk) {
        TPM2B_PUBLIC tmpl = {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                            TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                                            TPMA_OBJECT_DECRYPT,
                        .parameters.eccDetail = {
                                .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                                .scheme.scheme = TPM2_ALG_NULL,
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                },
        };
        const TPM2B_SENSITIVE_CREATE sens = {};
        const TPM2B_DATA outside = {};
        const TPML_PCR_SELECTION creation = {};
        ESYS_TR h = ESYS_TR_NONE, p = ESYS_TR_NONE;
        int ret = -EIO;
        Raw r;

        if (!srk) { /* a signing key where the SRK belongs */
                tmpl.publicArea.objectAttributes &= ~(TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT);
                tmpl.publicArea.objectAttributes |= TPMA_OBJECT_SIGN_ENCRYPT;
                tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        }
        if (raw_open(&r) < 0)
                return -ECOMM;
        if (Esys_CreatePrimary(r.esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                               &outside, &creation, &h, NULL, NULL, NULL, NULL) != TSS2_RC_SUCCESS)
                goto out;
        if (Esys_EvictControl(r.esys, ESYS_TR_RH_OWNER, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, TPM_SRK_HANDLE,
                              &p) != TSS2_RC_SUCCESS)
                goto out;
        (void) Esys_TR_Close(r.esys, &p);
        ret = 0;
out:
        if (h != ESYS_TR_NONE)
                (void) Esys_FlushContext(r.esys, h);
        raw_close(&r);
        return ret;
}

static int evict_srk(void) {
        ESYS_TR h = ESYS_TR_NONE, out = ESYS_TR_NONE;
        int ret = -EIO;
        Raw r;

        if (raw_open(&r) < 0)
                return -ECOMM;
        if (Esys_TR_FromTPMPublic(r.esys, TPM_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h) == TSS2_RC_SUCCESS &&
            Esys_EvictControl(r.esys, ESYS_TR_RH_OWNER, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, TPM_SRK_HANDLE,
                              &out) == TSS2_RC_SUCCESS)
                ret = 0;
        raw_close(&r);
        return ret;
}

/* maxTries == 0 resets the lockout counter; otherwise sets it (recovery 1000 s, lockout auth anytime). */
static int da_setup(uint32_t max_tries) {
        TSS2_RC rc;
        Raw r;

        if (raw_open(&r) < 0)
                return -ECOMM;
        rc = Esys_DictionaryAttackLockReset(r.esys, ESYS_TR_RH_LOCKOUT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
        if (rc == TSS2_RC_SUCCESS && max_tries > 0)
                rc = Esys_DictionaryAttackParameters(r.esys, ESYS_TR_RH_LOCKOUT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                                     ESYS_TR_NONE, max_tries, 1000, 0);
        raw_close(&r);
        return rc == TSS2_RC_SUCCESS ? 0 : -EIO;
}

/* ---- library wrappers: one connection per operation, like the real callers ---- */

static int seal_with(const char *tc, uint16_t bank, uint32_t mask, const char *pin, const char *data, TpmSealed *ret) {
        TpmContext *t = NULL;
        TpmPcrValues v;
        int r;

        r = tpm_open(tc, &t);
        if (r < 0)
                return r;
        r = tpm_pcr_read(t, bank, mask, &v);
        if (r >= 0)
                r = tpm_seal(t, &v, pin, pin ? strlen(pin) : 0, data, strlen(data), ret);
        tpm_close(t);
        return r;
}

static int seal(uint16_t bank, uint32_t mask, const char *pin, const char *data, TpmSealed *ret) {
        return seal_with(tcti, bank, mask, pin, data, ret);
}

/* Unseals with TCTI string tc; on success compares the secret with expect. */
static int unseal_with(const char *tc, const TpmSealed *s, uint16_t bank, uint32_t mask, const char *pin,
                       const char *expect) {
        TpmContext *t = NULL;
        uint8_t *out = NULL;
        size_t n = 0;
        int r;

        r = tpm_open(tc, &t);
        if (r < 0)
                return r;
        r = tpm_unseal(t, s, bank, mask, pin, pin ? strlen(pin) : 0, &out, &n);
        tpm_close(t);
        if (r < 0)
                return r;
        if (secmem_size(out) < n || n != strlen(expect) || memcmp(out, expect, n) != 0)
                r = -EILSEQ;
        secmem_free(out);
        return r;
}

static int unseal(const TpmSealed *s, uint16_t bank, uint32_t mask, const char *pin, const char *expect) {
        return unseal_with(tcti, s, bank, mask, pin, expect);
}

static int srk_name(uint8_t name[TPM_NAME_MAX], size_t *n) {
        TpmContext *t = NULL;
        int r;

        r = tpm_open(tcti, &t);
        if (r < 0)
                return r;
        r = tpm_srk_name(t, name, n);
        tpm_close(t);
        return r;
}

static int extend(unsigned pcr, const char *data) {
        TpmContext *t = NULL;
        int r;

        r = tpm_open(tcti, &t);
        if (r < 0)
                return r;
        r = tpm_pcr_extend_data(t, pcr, data, strlen(data));
        tpm_close(t);
        return r;
}

/* ---- tests ---- */

static void test_open(void) {
        TpmContext *t = NULL;

        CHECK(tpm_open("swtpm:path=/nonexistent/cvmcrypt-sock", &t) == -ECOMM && !t, "unreachable TPM: -ECOMM");
        CHECK(tpm_open("nosuchtcti:x", &t) == -ECOMM && !t, "unknown TCTI: -ECOMM");
}

static void test_banks_and_extend(void) {
        TpmPcrValues before[8], after[8];
        uint16_t banks[8];
        size_t n = 0;
        bool ok = true, have256 = false, have384 = false;
        TpmContext *t = NULL;
        int r;

        CHECK(tpm_open(tcti, &t) == 0, "open");
        if (!t)
                return;
        CHECK(tpm_active_banks(t, banks, 1, &n) == -ENOBUFS, "too small bank array: -ENOBUFS");
        CHECK(tpm_active_banks(t, banks, ELEMENTSOF(banks), &n) == 0 && n > 0, "active banks (%zu)", n);
        for (size_t i = 0; i < n; i++) {
                have256 |= banks[i] == SHA256;
                have384 |= banks[i] == SHA384;
                r = tpm_pcr_read(t, banks[i], 1u << 16, &before[i]);
                ok = ok && r == 0;
        }
        CHECK(have256 && have384, "sha256 and sha384 banks are active");
        CHECK(ok, "read PCR 16 in every bank");
        CHECK(tpm_pcr_extend_data(t, 16, "cvmcrypt-test", 13) == 0, "extend PCR 16 in all banks");
        for (size_t i = 0; i < n && ok; i++) {
                const char *name = tpm_bank_name(banks[i]);
                size_t size = tpm_bank_digest_size(banks[i]);
                uint8_t buf[2 * 64], expect[64];
                unsigned len = 0;

                /* new = H(old || H(data)) in the bank's own algorithm */
                ok = tpm_pcr_read(t, banks[i], 1u << 16, &after[i]) == 0 && name && size &&
                     EVP_Digest("cvmcrypt-test", 13, buf + size, &len, EVP_get_digestbyname(name), NULL) == 1;
                memcpy(buf, before[i].value[16], size);
                ok = ok && EVP_Digest(buf, 2 * size, expect, &len, EVP_get_digestbyname(name), NULL) == 1 &&
                     memcmp(expect, after[i].value[16], size) == 0;
        }
        CHECK(ok, "every bank holds H(old || H(data)) in its own algorithm");
        CHECK(tpm_pcr_extend_data(t, 24, "x", 1) == -EINVAL, "PCR 24: -EINVAL");
        CHECK(tpm_pcr_extend_digest(t, 23, 0x0001, before[0].value[0]) == -EOPNOTSUPP, "unknown bank: -EOPNOTSUPP");
        tpm_close(t);
}

/* Distinct values in every PCR we may extend at locality 0, so policies over many PCRs are meaningful. */
static void test_pcr_read_many(void) {
        static const uint16_t banks[] = { SHA256, SHA384 };
        TpmContext *t = NULL;
        bool ok = true;

        for (unsigned i = 0; i <= 23; i++) {
                char data[32];
                if (i >= 17 && i <= 22)
                        continue;
                snprintf(data, sizeof(data), "pcr-%u", i);
                ok = ok && extend(i, data) == 0;
        }
        CHECK(ok, "extend PCRs 0-16 and 23");
        CHECK(tpm_open(tcti, &t) == 0, "open");
        if (!t)
                return;
        for (size_t b = 0; b < ELEMENTSOF(banks); b++) {
                size_t size = tpm_bank_digest_size(banks[b]);
                TpmPcrValues all, one;

                ok = tpm_pcr_read(t, banks[b], 0xffffff, &all) == 0 && all.mask == 0xffffff;
                for (unsigned i = 0; i < 24 && ok; i++)
                        ok = tpm_pcr_read(t, banks[b], 1u << i, &one) == 0 && memcmp(one.value[i], all.value[i], size) == 0;
                CHECK(ok, "%s: one read of 24 PCRs equals 24 single reads", tpm_bank_name(banks[b]));
        }
        CHECK(tpm_pcr_read(t, SHA256, 0, &(TpmPcrValues){}) == -EINVAL, "empty mask: -EINVAL");
        tpm_close(t);
}

static void test_policy_vs_trial(void) {
        static const uint16_t banks[] = { SHA256, SHA384 };
        static const uint32_t masks[] = {
                1u << 7,
                (1u << 0) | (1u << 4) | (1u << 7),
                (1u << 0) | (1u << 1) | (1u << 2) | (1u << 5) | (1u << 8) | (1u << 9) | (1u << 11) | (1u << 14) |
                        (1u << 15) | (1u << 16) | (1u << 23),
                0xffffff,
        };

        for (size_t b = 0; b < ELEMENTSOF(banks); b++)
                for (size_t m = 0; m < ELEMENTSOF(masks); m++)
                        for (int pin = 0; pin <= 1; pin++) {
                                uint8_t ours[32] = {}, tpms[32] = { 1 };
                                TpmContext *t = NULL;
                                TpmPcrValues v;
                                int r;

                                r = tpm_open(tcti, &t);
                                if (r == 0)
                                        r = tpm_pcr_read(t, banks[b], masks[m], &v);
                                tpm_close(t);
                                if (r == 0)
                                        r = tpm_policy_digest(&v, pin, ours);
                                if (r == 0)
                                        r = trial_digest(banks[b], masks[m], pin, tpms);
                                CHECK(r == 0 && memcmp(ours, tpms, 32) == 0,
                                      "policy digest = trial session digest: %s, mask 0x%06x, %s",
                                      tpm_bank_name(banks[b]), masks[m], pin ? "PIN" : "no PIN");
                        }
}

static void test_roundtrip(void) {
        static const uint16_t banks[] = { SHA256, SHA384 };
        uint32_t mask = (1u << 0) | (1u << 4) | (1u << 7) | (1u << 16);

        for (size_t b = 0; b < ELEMENTSOF(banks); b++) {
                TpmSealed s = {};

                CHECK(seal(banks[b], mask, NULL, "secret-1", &s) == 0 && s.blob_size > 0 && s.srk_name_size == 34,
                      "%s: seal", tpm_bank_name(banks[b]));
                CHECK(leftovers() == 0, "nothing left loaded after seal");
                CHECK(unseal(&s, banks[b], mask, NULL, "secret-1") == 0, "%s: unseal returns the secret",
                      tpm_bank_name(banks[b]));
                CHECK(leftovers() == 0, "nothing left loaded after unseal");
                CHECK(unseal(&s, banks[b], mask & ~1u, NULL, "secret-1") == -EPERM, "other PCR selection: -EPERM");
                CHECK(leftovers() == 0, "nothing left loaded after a refused unseal");
                tpm_sealed_done(&s);
        }
        {
                TpmSealed s = {};
                char big[TPM_SEAL_MAX + 2];

                memset(big, 'k', TPM_SEAL_MAX);
                big[TPM_SEAL_MAX] = '\0';
                CHECK(seal(SHA256, 1u << 7, NULL, big, &s) == 0 && unseal(&s, SHA256, 1u << 7, NULL, big) == 0,
                      "TPM_SEAL_MAX bytes round trip");
                tpm_sealed_done(&s);
                big[TPM_SEAL_MAX] = 'k';
                big[TPM_SEAL_MAX + 1] = '\0';
                CHECK(seal(SHA256, 1u << 7, NULL, big, &s) == -EINVAL, "TPM_SEAL_MAX + 1 bytes: -EINVAL");
        }
}

static void test_pcr_changed(void) {
        TpmSealed s = {};
        uint32_t mask = (1u << 7) | (1u << 16);

        CHECK(seal(SHA256, mask, NULL, "secret-2", &s) == 0, "seal to PCRs 7,16");
        CHECK(extend(16, "changed") == 0, "extend PCR 16");
        CHECK(unseal(&s, SHA256, mask, NULL, "secret-2") == -EPERM, "unseal after the extend: -EPERM");
        CHECK(leftovers() == 0, "nothing left loaded");
        tpm_sealed_done(&s);
}

/* TPM_RC_PCR_CHANGED between PolicyPCR and Unseal (through the test shim TCTI, which extends PCR 10 right
 * before TPM2_Unseal): one retry with a fresh session, then give up. */
static void test_pcr_changed_retry(void) {
        TpmSealed s = {};
        uint32_t mask = 1u << 7;
        char tc[2048];

        if (access(shim, R_OK) < 0) {
                printf("ok %u - # SKIP no shim TCTI at %s\n", ++tap_n, shim);
                return;
        }
        CHECK(seal(SHA256, mask, NULL, "secret-8", &s) == 0, "seal to PCR 7");
        snprintf(tc, sizeof(tc), "%s:1:%s", shim, tcti);
        CHECK(unseal_with(tc, &s, SHA256, mask, NULL, "secret-8") == 0, "PCR changed once: the retry unseals");
        CHECK(leftovers() == 0, "nothing left loaded");
        snprintf(tc, sizeof(tc), "%s:2:%s", shim, tcti);
        CHECK(unseal_with(tc, &s, SHA256, mask, NULL, "secret-8") == -EREMOTEIO, "PCR changed twice: -EREMOTEIO");
        CHECK(leftovers() == 0, "nothing left loaded");
        tpm_sealed_done(&s);
}

/* The Unseal response is authenticated before it is used (through the shim, which flips a bit of every
 * Unseal response): a bit of the encrypted secret, of the TPM's nonce or of its HMAC. */
static void test_response_tamper(void) {
        static const struct {
                long at;
                const char *what;
        } flips[] = {
                { 16, "the encrypted secret" }, /* header 10, parameterSize 4, outData.size 2 */
                { -40, "the TPM's nonce" },     /* nonce (2 + 32), attributes 1, hmac (2 + 32) from the end */
                { -1, "the response HMAC" },
        };
        TpmSealed s = {};
        uint32_t mask = 1u << 7;
        char tc[2048];

        if (access(shim, R_OK) < 0) {
                printf("ok %u - # SKIP no shim TCTI at %s\n", ++tap_n, shim);
                return;
        }
        CHECK(seal(SHA256, mask, NULL, "secret-9", &s) == 0, "seal to PCR 7");
        for (size_t i = 0; i < ELEMENTSOF(flips); i++) {
                snprintf(tc, sizeof(tc), "%s:x%ld:%s", shim, flips[i].at, tcti);
                CHECK(unseal_with(tc, &s, SHA256, mask, NULL, "secret-9") == -EBADMSG, "flipped bit in %s: -EBADMSG",
                      flips[i].what);
                CHECK(leftovers() == 0, "nothing left loaded");
        }
        CHECK(unseal(&s, SHA256, mask, NULL, "secret-9") == 0, "the untouched response unseals");
        tpm_sealed_done(&s);
}

/* A PIN whose SHA-256 ends in a zero byte: the TPM drops it from the authValue. */
static void zero_tail_pin(char *buf, size_t n) {
        for (unsigned i = 0;; i++) {
                uint8_t d[32];
                unsigned len = 0;

                snprintf(buf, n, "pin-%u", i);
                if (EVP_Digest(buf, strlen(buf), d, &len, EVP_sha256(), NULL) == 1 && d[31] == 0)
                        return;
        }
}

static void test_pin(void) {
        TpmSealed s = {};
        uint32_t mask = 1u << 7;
        char zpin[32];

        CHECK(da_setup(0) == 0, "reset DA counter");
        CHECK(seal(SHA256, mask, "1234", "secret-3", &s) == 0, "seal with PIN");
        CHECK(unseal(&s, SHA256, mask, "1235", "secret-3") == -ENOKEY, "wrong PIN: -ENOKEY");
        CHECK(leftovers() == 0, "nothing left loaded after a wrong PIN");
        CHECK(unseal(&s, SHA256, mask, "1234", "secret-3") == 0, "right PIN unseals");
        CHECK(leftovers() == 0, "nothing left loaded");
        CHECK(unseal(&s, SHA256, mask, NULL, "secret-3") == -EPERM, "no PIN for a PIN object: -EPERM (policy differs)");

        /* Dictionary-attack lockout: two misses with maxTries 2, then even the right PIN is refused. */
        CHECK(da_setup(2) == 0, "maxTries = 2");
        CHECK(unseal(&s, SHA256, mask, "0000", "secret-3") == -ENOKEY, "miss 1: -ENOKEY");
        CHECK(unseal(&s, SHA256, mask, "0001", "secret-3") == -ENOKEY, "miss 2: -ENOKEY");
        CHECK(unseal(&s, SHA256, mask, "1234", "secret-3") == -ENOLCK, "locked out: -ENOLCK");
        CHECK(leftovers() == 0, "nothing left loaded after lockout");
        CHECK(da_setup(32) == 0, "reset lockout");
        CHECK(unseal(&s, SHA256, mask, "1234", "secret-3") == 0, "right PIN after the reset");
        tpm_sealed_done(&s);

        zero_tail_pin(zpin, sizeof(zpin));
        CHECK(seal(SHA384, mask, zpin, "secret-4", &s) == 0 && unseal(&s, SHA384, mask, zpin, "secret-4") == 0,
              "PIN whose hash ends in 0x00 (%s) round trips", zpin);
        tpm_sealed_done(&s);
}

static int unseal_mutated(const TpmSealed *orig, size_t flip, int extra, uint32_t mask) {
        TpmSealed s = *orig;
        uint8_t buf[2048];
        size_t n = orig->blob_size;

        if (n + 1 > sizeof(buf))
                return -E2BIG;
        memcpy(buf, orig->blob, n);
        if (flip < n)
                buf[flip] ^= 0x01;
        if (extra > 0)
                buf[n++] = 0;
        else if (extra < 0)
                n -= (size_t) -extra;
        s.blob = buf;
        s.blob_size = n;
        return unseal(&s, SHA256, mask, NULL, "secret-5");
}

static void test_tampering(void) {
        TpmSealed s = {}, w;
        uint32_t mask = 1u << 7;
        size_t pub_size;
        int r;

        CHECK(seal(SHA256, mask, NULL, "secret-5", &s) == 0, "seal");
        if (!s.blob)
                return;
        pub_size = 2 + ((size_t) s.blob[0] << 8 | s.blob[1]);
        r = unseal_mutated(&s, s.blob_size - 1, 0, mask);
        CHECK(r == -EBADMSG, "flipped bit in the private part: -EBADMSG (%d)", r);
        r = unseal_mutated(&s, pub_size - 1, 0, mask);
        CHECK(r < 0, "flipped bit in the public part: refused (%d)", r);
        r = unseal_mutated(&s, pub_size - 3, 0, mask); /* inside authPolicy's neighbourhood: must never unseal */
        CHECK(r < 0, "another flipped public byte: refused (%d)", r);
        CHECK(unseal_mutated(&s, SIZE_MAX, 1, mask) == -EBADMSG, "trailing byte: -EBADMSG");
        CHECK(unseal_mutated(&s, SIZE_MAX, -1, mask) == -EBADMSG, "truncated: -EBADMSG");
        CHECK(unseal_mutated(&s, 0, 0, mask) == -EBADMSG, "corrupted size field: -EBADMSG");
        CHECK(leftovers() == 0, "nothing left loaded after the tampered blobs");

        w = s;
        w.srk_name[w.srk_name_size - 1] ^= 1;
        CHECK(unseal(&w, SHA256, mask, NULL, "secret-5") == -EREMCHG, "unexpected SRK name: -EREMCHG");
        w = s;
        w.policy[0] ^= 1;
        CHECK(unseal(&w, SHA256, mask, NULL, "secret-5") == -EUCLEAN, "unexpected policy: -EUCLEAN");
        CHECK(unseal(&s, SHA256, mask, NULL, "secret-5") == 0, "the untouched blob still unseals");
        CHECK(leftovers() == 0, "nothing left loaded");
        tpm_sealed_done(&s);
}

/* Commands the pcap TCTI recorded (pcapng, one IPv4/TCP packet per command or response). */
static int pcap_commands(const char *path, char *names, size_t n) {
        FILE *f = fopen(path, "re");
        uint8_t hdr[8], *blk = NULL;
        int count = 0;

        if (!f)
                return -errno;
        names[0] = '\0';
        while (fread(hdr, 1, 8, f) == 8) {
                uint32_t type = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t) hdr[3] << 24;
                uint32_t len = hdr[4] | hdr[5] << 8 | hdr[6] << 16 | (uint32_t) hdr[7] << 24;

                if (len < 12 || len > 1 << 20 || !(blk = realloc(blk, len)) || fread(blk, 1, len - 8, f) != len - 8) {
                        count = -EBADMSG;
                        break;
                }
                if (type == 6 && len >= 28 + 20 + 20) {
                        const uint8_t *ip = blk + 20; /* after iface, timestamp, lengths */
                        size_t ihl = (size_t) (ip[0] & 0x0f) * 4;
                        const uint8_t *tcp = ip + ihl, *tpm = tcp + ((tcp[12] >> 4) * 4);

                        if ((tcp[2] << 8 | tcp[3]) == TPM_PORT) {
                                size_t l = strlen(names);
                                count++;
                                snprintf(names + l, n - l, " 0x%03x", tpm[8] << 8 | tpm[9]);
                        }
                }
        }
        free(blk);
        fclose(f);
        return count;
}

static bool file_contains(const char *path, const void *needle, size_t n) {
        FILE *f = fopen(path, "re");
        uint8_t buf[65536];
        size_t len;
        bool found = false;

        if (!f)
                return false;
        len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        for (size_t i = 0; i + n <= len && !found; i++)
                found = memcmp(buf + i, needle, n) == 0;
        return found;
}

/* What crosses the bus: the secret never in clear (salted sessions with parameter encryption), while
 * the public area the blob starts with does (shows the search works). */
static void test_bus(void) {
        static const char secret[] = "bus-secret-0123456789";
        char pcap[] = "/tmp/cvmcrypt-tpm-pcap.XXXXXX", tc[512];
        TpmSealed s = {};
        int fd;

        fd = mkstemp(pcap);
        if (fd >= 0)
                close(fd);
        snprintf(tc, sizeof(tc), "pcap:%s", tcti);
        setenv("TCTI_PCAP_FILE", pcap, 1);
        CHECK(seal_with(tc, SHA256, 1u << 7, "bus-pin", secret, &s) == 0, "seal through the pcap TCTI");
        CHECK(s.blob && file_contains(pcap, s.blob + 2, 32), "control: the public area is visible in the capture");
        CHECK(!file_contains(pcap, secret, sizeof(secret) - 1), "seal: the secret does not cross the bus in clear");
        CHECK(unseal_with(tc, &s, SHA256, 1u << 7, "bus-pin", secret) == 0, "unseal through the pcap TCTI");
        CHECK(!file_contains(pcap, secret, sizeof(secret) - 1), "unseal: the secret does not cross the bus in clear");
        unsetenv("TCTI_PCAP_FILE");
        (void) unlink(pcap);
        tpm_sealed_done(&s);
}

static void test_persistent_srk(void) {
        uint8_t transient_name[TPM_NAME_MAX], name[TPM_NAME_MAX];
        size_t tn = 0, pn = 0;
        TpmSealed s = {}, s2 = {};
        uint32_t mask = (1u << 7) | (1u << 23);
        char pcap[] = "/tmp/cvmcrypt-tpm-pcap.XXXXXX", tc[512], cmds[256];
        int fd, count;

        CHECK(srk_name(transient_name, &tn) == 0 && tn == 34, "transient SRK name");
        CHECK(leftovers() == 0, "transient SRK flushed");
        CHECK(seal(SHA256, mask, NULL, "secret-6", &s) == 0, "seal under the transient SRK");
        CHECK(persist_key(false) == 0, "persist a signing key at 0x81000001");
        CHECK(srk_name(name, &pn) == -EMEDIUMTYPE, "non-storage key at the SRK handle: -EMEDIUMTYPE");
        CHECK(seal(SHA256, mask, NULL, "x", &s2) == -EMEDIUMTYPE, "seal refuses it too");
        CHECK(unseal(&s, SHA256, mask, NULL, "secret-6") == -EREMCHG, "unseal under a foreign persistent key: -EREMCHG");
        CHECK(evict_srk() == 0, "evict it");

        CHECK(persist_key(true) == 0, "persist the standard SRK at 0x81000001");
        CHECK(srk_name(name, &pn) == 0 && pn == tn && memcmp(name, transient_name, tn) == 0,
              "persistent SRK has the transient SRK's name (same template)");
        CHECK(unseal(&s, SHA256, mask, NULL, "secret-6") == 0, "blob sealed on the transient path unseals on the persistent one");
        CHECK(leftovers() == 0, "nothing left loaded (persistent path)");

        fd = mkstemp(pcap);
        if (fd >= 0)
                close(fd);
        snprintf(tc, sizeof(tc), "pcap:%s", tcti);
        setenv("TCTI_PCAP_FILE", pcap, 1);
        CHECK(unseal_with(tc, &s, SHA256, mask, NULL, "secret-6") == 0, "unseal through the pcap TCTI");
        unsetenv("TCTI_PCAP_FILE");
        count = pcap_commands(pcap, cmds, sizeof(cmds));
        printf("# one unseal on the persistent path: %d TPM commands:%s\n", count, cmds);
        CHECK(count > 0 && count <= 6, "unseal fast path uses at most 6 TPM commands (%d)", count);
        (void) unlink(pcap);

        CHECK(seal(SHA256, mask, "pin", "secret-7", &s2) == 0, "seal under the persistent SRK");
        CHECK(evict_srk() == 0, "evict the SRK");
        CHECK(unseal(&s2, SHA256, mask, "pin", "secret-7") == 0, "unseals again through the transient SRK");
        CHECK(leftovers() == 0, "nothing left loaded");
        tpm_sealed_done(&s);
        tpm_sealed_done(&s2);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s TCTI\n", argv[0]);
                return 2;
        }
        tcti = argv[1];
        {
                char *self = realpath(argv[0], NULL), *slash = self ? strrchr(self, '/') : NULL;

                if (slash) {
                        *slash = '\0';
                        snprintf(shim, sizeof(shim), "%s/libtss2-tcti-cvmtest.so", self);
                }
                free(self);
        }
        /* tpm2-tss would print its own errors for the failures this test provokes. */
        (void) setenv("TSS2_LOG", "all+NONE", 0);
        if (leftovers() != 0) {
                printf("1..0 # SKIP no usable TPM at %s, or it is not empty\n", tcti);
                return 77;
        }
        test_open();
        test_banks_and_extend();
        test_pcr_read_many();
        test_policy_vs_trial();
        test_roundtrip();
        test_pcr_changed();
        test_pcr_changed_retry();
        test_response_tamper();
        test_pin();
        test_tampering();
        test_bus();
        test_persistent_srk();
        CHECK(secmem_live_count() == 0, "every secret buffer was freed");
        return tap_done();
}
