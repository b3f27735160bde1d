/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "hcl.h"
#include "json-strict.h"
#include "log.h"

#define HCL_JSON_DEPTH_MAX 6
#define JWK_MODULUS_MAX 1024 /* bytes: RSA-8192 */
#define JWK_EXPONENT_MAX 8
#define TPM_GENERATED_VALUE 0xFF544347u
#define TPM_ST_ATTEST_QUOTE 0x8018u
#define TPM_ALG_SHA256 0x000Bu
#define TPM_ALG_RSASSA 0x0014u

DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* ---- JWK ---- */

static const char *json_string_of(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        /* An embedded NUL would make the C string shorter than the JSON one. */
        if ((size_t) json_object_get_string_len(v) != strlen(json_object_get_string(v)))
                return NULL;
        return json_object_get_string(v);
}

static int jwk_to_rsa(json_object *jwk, EVP_PKEY **ret) {
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        _cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL;
        uint8_t nbuf[JWK_MODULUS_MAX], ebuf[JWK_EXPONENT_MAX];
        size_t nlen, elen;
        const char *kty = json_string_of(jwk, "kty"), *ns = json_string_of(jwk, "n"), *es = json_string_of(jwk, "e");
        EVP_PKEY *key = NULL;

        if (!bld || !ctx)
                return -ENOMEM;
        if (!kty || strcmp(kty, "RSA") != 0 || !ns || !es)
                return log_debug_errno(-EBADMSG, "HCL runtime data: HCLAkPub is not an RSA JWK with n and e");
        if (base64url_decode_strict(ns, strlen(ns), nbuf, sizeof(nbuf), &nlen) < 0 ||
            base64url_decode_strict(es, strlen(es), ebuf, sizeof(ebuf), &elen) < 0 || nlen == 0 || elen == 0 || nbuf[0] == 0 ||
            ebuf[0] == 0)
                return log_debug_errno(-EBADMSG, "HCL runtime data: HCLAkPub n/e are not minimal base64url integers");
        n = BN_bin2bn(nbuf, (int) nlen, NULL);
        e = BN_bin2bn(ebuf, (int) elen, NULL);
        if (!n || !e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
                return -ENOMEM;
        params = OSSL_PARAM_BLD_to_param(bld);
        if (!params)
                return -ENOMEM;
        if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
                ERR_clear_error();
                return log_debug_errno(-EBADMSG, "HCL runtime data: HCLAkPub is not a usable RSA key");
        }
        if (EVP_PKEY_get_bits(key) < 2048) {
                EVP_PKEY_free(key);
                return log_debug_errno(-EBADMSG, "HCL runtime data: HCLAkPub is shorter than 2048 bits");
        }
        *ret = key;
        return 0;
}

static int parse_keys(HclReport *h, json_object *keys) {
        size_t n;

        if (!json_object_is_type(keys, json_type_array))
                return log_debug_errno(-EBADMSG, "HCL runtime data: 'keys' is not a list");
        n = json_object_array_length(keys);
        for (size_t i = 0; i < n; i++) {
                json_object *k = json_object_array_get_idx(keys, i);
                const char *kid;
                int r;

                if (!json_object_is_type(k, json_type_object))
                        return log_debug_errno(-EBADMSG, "HCL runtime data: key %zu is not an object", i);
                kid = json_string_of(k, "kid");
                if (!kid)
                        return log_debug_errno(-EBADMSG, "HCL runtime data: key %zu has no kid", i);
                if (strcmp(kid, "HCLEkPub") == 0) {
                        if (h->has_ek_pub)
                                return log_debug_errno(-EBADMSG, "HCL runtime data: HCLEkPub appears twice");
                        h->has_ek_pub = true;
                } else if (strcmp(kid, "HCLAkPub") == 0) {
                        /* Two AKs would leave it open which one the quote must match. */
                        if (h->ak_pub)
                                return log_debug_errno(-EBADMSG, "HCL runtime data: HCLAkPub appears twice");
                        r = jwk_to_rsa(k, &h->ak_pub);
                        if (r < 0)
                                return r;
                }
        }
        if (!h->ak_pub)
                return log_debug_errno(-EBADMSG, "HCL runtime data: no HCLAkPub key");
        return 0;
}

static int parse_vm_config(HclReport *h, json_object *cfg) {
        static const char *const names[] = { "secure-boot", "tpm-enabled", "console-enabled" };
        bool *has[] = { &h->vm_config.has_secure_boot, &h->vm_config.has_tpm_enabled, &h->vm_config.has_console_enabled };
        bool *value[] = { &h->vm_config.secure_boot, &h->vm_config.tpm_enabled, &h->vm_config.console_enabled };
        const char *id;

        if (!json_object_is_type(cfg, json_type_object))
                return log_debug_errno(-EBADMSG, "HCL runtime data: 'vm-configuration' is not an object");
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                json_object *v;

                if (!json_object_object_get_ex(cfg, names[i], &v))
                        continue;
                if (!json_object_is_type(v, json_type_boolean))
                        return log_debug_errno(-EBADMSG, "HCL runtime data: '%s' is not a boolean", names[i]);
                *has[i] = true;
                *value[i] = json_object_get_boolean(v);
        }
        id = json_string_of(cfg, "vmUniqueId");
        if (id) {
                if (strlen(id) >= sizeof(h->vm_unique_id))
                        return log_debug_errno(-EBADMSG, "HCL runtime data: vmUniqueId too long");
                for (const char *c = id; *c; c++)
                        if (*c < 0x20 || *c >= 0x7F)
                                return log_debug_errno(-EBADMSG, "HCL runtime data: vmUniqueId is not printable");
                strcpy(h->vm_unique_id, id);
        }
        return 0;
}

static int parse_user_data(HclReport *h, json_object *v) {
        const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;

        if (!s || strlen(s) != 2 * sizeof(h->user_data))
                return log_debug_errno(-EBADMSG, "HCL runtime data: 'user-data' is not 128 hex digits");
        for (size_t i = 0; i < sizeof(h->user_data); i++) {
                unsigned x;
                char pair[3] = { s[2 * i], s[2 * i + 1], 0 };
                char *end;

                if (!strchr("0123456789abcdefABCDEF", pair[0]) || !strchr("0123456789abcdefABCDEF", pair[1]) || !pair[0] ||
                    !pair[1])
                        return log_debug_errno(-EBADMSG, "HCL runtime data: 'user-data' is not hex");
                x = (unsigned) strtoul(pair, &end, 16);
                h->user_data[i] = (uint8_t) x;
        }
        h->has_user_data = true;
        return 0;
}

static int parse_runtime_json(HclReport *h) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        json_object *v;
        char why[200];
        int k;

        k = json_parse_strict(h->runtime_json, h->runtime_size, HCL_JSON_DEPTH_MAX, &root, why, sizeof(why));
        if (k < 0)
                return log_debug_errno(k, "HCL runtime data: %s", why);
        if (!json_object_is_type(root, json_type_object))
                return log_debug_errno(-EBADMSG, "HCL runtime data: not a JSON object");
        /* Unknown keys are allowed here: Azure adds claims over time, and the whole text is bound by
         * its hash anyway. The keys we use must have the right types. */
        if (!json_object_object_get_ex(root, "keys", &v))
                return log_debug_errno(-EBADMSG, "HCL runtime data: no 'keys'");
        k = parse_keys(h, v);
        if (k < 0)
                return k;
        if (json_object_object_get_ex(root, "vm-configuration", &v)) {
                k = parse_vm_config(h, v);
                if (k < 0)
                        return k;
        }
        if (json_object_object_get_ex(root, "user-data", &v)) {
                k = parse_user_data(h, v);
                if (k < 0)
                        return k;
        }
        return 0;
}

void hcl_report_done(HclReport *h) {
        if (!h)
                return;
        free(h->runtime_json);
        EVP_PKEY_free(h->ak_pub);
        *h = (HclReport){};
}

int hcl_report_parse(const uint8_t *data, size_t size, HclReport *ret) {
        HclReport h = {};
        int k;

        if (size < HCL_RUNTIME_OFFSET || size > HCL_BLOB_MAX)
                return log_debug_errno(-EBADMSG, "HCL report: %zu bytes, expected %u..%u", size, HCL_RUNTIME_OFFSET,
                                       HCL_BLOB_MAX);
        if (memcmp(data, "HCLA", 4) != 0)
                return log_debug_errno(-EBADMSG, "HCL report: no HCLA signature");
        h.header_version = le32(data + 0x04);
        h.report_size = le32(data + 0x08);
        h.request_type = le32(data + 0x0C);
        h.status = le32(data + 0x10);
        if (h.header_version < 1 || h.header_version > 2)
                return log_debug_errno(-EBADMSG, "HCL report: unknown header version %u", h.header_version);
        for (size_t i = 0x14; i < HCL_REPORT_OFFSET; i++)
                if (data[i] != 0)
                        return log_debug_errno(-EBADMSG, "HCL report: reserved header bytes are not zero");

        h.data_size = le32(data + 0x4C0);
        h.data_version = le32(data + 0x4C4);
        h.report_type = le32(data + 0x4C8);
        h.hash_type = le32(data + 0x4CC);
        h.runtime_size = le32(data + 0x4D0);
        if (h.report_type == 4)
                return log_debug_errno(-EOPNOTSUPP, "HCL report: TDX reports are not supported");
        if (h.report_type != 2)
                return log_debug_errno(-EBADMSG, "HCL report: unknown report type %u", h.report_type);
        if (h.data_version != 1)
                return log_debug_errno(-EBADMSG, "HCL report: unknown runtime data version %u", h.data_version);
        if (h.hash_type < 1 || h.hash_type > 3)
                return log_debug_errno(-EBADMSG, "HCL report: unknown report data hash type %u", h.hash_type);
        /* All three lengths must agree and fit: nothing is read past what the header admits. */
        if (h.runtime_size == 0 || h.runtime_size > size - HCL_RUNTIME_OFFSET ||
            h.data_size != 20 + h.runtime_size || h.report_size != HCL_RUNTIME_OFFSET + h.runtime_size)
                return log_debug_errno(-EBADMSG, "HCL report: inconsistent sizes (report %u, data %u, runtime %zu, blob %zu)",
                                       h.report_size, h.data_size, h.runtime_size, size);
        for (size_t i = h.report_size; i < size; i++)
                if (data[i] != 0)
                        return log_debug_errno(-EBADMSG, "HCL report: padding after byte %u is not zero", h.report_size);

        k = snp_report_parse(data + HCL_REPORT_OFFSET, SNP_REPORT_SIZE, &h.snp);
        if (k < 0)
                return k;
        h.runtime_json = malloc(h.runtime_size + 1);
        if (!h.runtime_json)
                return -ENOMEM;
        memcpy(h.runtime_json, data + HCL_RUNTIME_OFFSET, h.runtime_size);
        h.runtime_json[h.runtime_size] = 0;
        k = parse_runtime_json(&h);
        if (k < 0) {
                hcl_report_done(&h);
                return k;
        }
        *ret = h;
        return 0;
}

int hcl_check_binding(const HclReport *h, AttestProblems *problems) {
        static const struct {
                const char *name;
                size_t size;
        } hashes[] = { [1] = { "SHA256", 32 }, [2] = { "SHA384", 48 }, [3] = { "SHA512", 64 } };
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        size_t n;
        uint8_t tail = 0;

        if (h->hash_type < 1 || h->hash_type > 3)
                return -EINVAL;
        n = hashes[h->hash_type].size;
        if (EVP_Digest(h->runtime_json, h->runtime_size, md, &len, EVP_get_digestbyname(hashes[h->hash_type].name), NULL) != 1 ||
            len != n)
                return -EIO;
        for (size_t i = n; i < sizeof(h->snp.report_data); i++)
                tail |= h->snp.report_data[i];
        if (CRYPTO_memcmp(md, h->snp.report_data, n) != 0) {
                attest_problem_add(problems, "hcl-binding", "REPORT_DATA does not hold the %s of the HCL runtime data",
                                   hashes[h->hash_type].name);
                return -EBADE;
        }
        if (tail != 0) {
                attest_problem_add(problems, "hcl-binding", "REPORT_DATA has non-zero bytes after the runtime data hash");
                return -EBADE;
        }
        return 0;
}

/* ---- TPM quote ---- */

typedef struct Reader {
        const uint8_t *p;
        size_t left;
        bool bad;
} Reader;

static const uint8_t *take(Reader *r, size_t n) {
        const uint8_t *p = r->p;

        if (r->bad || r->left < n) {
                r->bad = true;
                return NULL;
        }
        r->p += n;
        r->left -= n;
        return p;
}

static uint64_t be(Reader *r, size_t n) {
        const uint8_t *p = take(r, n);
        uint64_t v = 0;

        for (size_t i = 0; p && i < n; i++)
                v = v << 8 | p[i];
        return v;
}

/* TPM2B: 16-bit size, then at most max bytes. */
static void tpm2b(Reader *r, uint8_t *out, size_t max, uint16_t *ret_size) {
        uint16_t n = (uint16_t) be(r, 2);
        const uint8_t *p;

        if (n > max) {
                r->bad = true;
                return;
        }
        p = take(r, n);
        if (p)
                memcpy(out, p, n);
        *ret_size = n;
}

int hcl_quote_parse(const uint8_t *data, size_t size, HclQuote *ret) {
        Reader r = { .p = data, .left = size };
        HclQuote q = {};
        uint32_t count;
        uint8_t select_size;
        const uint8_t *select;

        if (size > HCL_QUOTE_MAX)
                return -EBADMSG;
        if (be(&r, 4) != TPM_GENERATED_VALUE || r.bad)
                return log_debug_errno(-EBADMSG, "quote: magic is not TPM_GENERATED");
        if (be(&r, 2) != TPM_ST_ATTEST_QUOTE || r.bad)
                return log_debug_errno(-EBADMSG, "quote: type is not TPM_ST_ATTEST_QUOTE");
        tpm2b(&r, q.qualified_signer, sizeof(q.qualified_signer), &q.qualified_signer_size);
        tpm2b(&r, q.extra_data, sizeof(q.extra_data), &q.extra_data_size);
        q.clock = be(&r, 8);
        q.reset_count = (uint32_t) be(&r, 4);
        q.restart_count = (uint32_t) be(&r, 4);
        q.safe = (uint8_t) be(&r, 1);
        q.firmware_version = be(&r, 8);
        count = (uint32_t) be(&r, 4);
        /* One selection: the PCR digest is then over one bank, which is all we can recompute. */
        if (r.bad || count != 1)
                return log_debug_errno(r.bad ? -EBADMSG : -EOPNOTSUPP, "quote: %u PCR selections, expected 1", count);
        q.bank = (uint16_t) be(&r, 2);
        select_size = (uint8_t) be(&r, 1);
        if (r.bad || select_size < 1 || select_size > 4)
                return log_debug_errno(-EBADMSG, "quote: PCR select size %u", select_size);
        select = take(&r, select_size);
        for (size_t i = 0; select && i < select_size; i++)
                q.pcr_mask |= (uint32_t) select[i] << (8 * i);
        if (q.pcr_mask >> TPM_PCR_MAX)
                return log_debug_errno(-EBADMSG, "quote: selects PCRs above %d", TPM_PCR_MAX - 1);
        tpm2b(&r, q.pcr_digest, sizeof(q.pcr_digest), &q.pcr_digest_size);
        if (r.bad || r.left != 0 || q.safe > 1)
                return log_debug_errno(-EBADMSG, "quote: truncated, trailing bytes or bad fields");
        *ret = q;
        return 0;
}

/* The raw signature, or the one inside a TPMT_SIGNATURE {RSASSA, SHA256, TPM2B}. */
static int quote_signature_bytes(const uint8_t *sig, size_t sig_size, size_t key_size, const uint8_t **ret,
                                 size_t *ret_size) {
        Reader r = { .p = sig, .left = sig_size };
        uint16_t alg, hash, n;

        if (sig_size == key_size) {
                *ret = sig;
                *ret_size = sig_size;
                return 0;
        }
        alg = (uint16_t) be(&r, 2);
        hash = (uint16_t) be(&r, 2);
        n = (uint16_t) be(&r, 2);
        if (r.bad || alg != TPM_ALG_RSASSA || hash != TPM_ALG_SHA256 || n != key_size || r.left != n)
                return -EBADMSG;
        *ret = r.p;
        *ret_size = n;
        return 0;
}

int hcl_quote_verify(const uint8_t *attest, size_t attest_size, const uint8_t *sig, size_t sig_size, EVP_PKEY *ak,
                     const uint8_t *nonce, size_t nonce_size, const TpmPcrValues *pcrs, AttestProblems *problems) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        size_t before = problems->n, raw_size;
        const uint8_t *raw;
        HclQuote q;
        int k;

        if (!ctx)
                return -ENOMEM;
        k = hcl_quote_parse(attest, attest_size, &q);
        if (k < 0)
                return k;
        if (EVP_PKEY_get_base_id(ak) != EVP_PKEY_RSA)
                return -EOPNOTSUPP;
        k = quote_signature_bytes(sig, sig_size, (size_t) EVP_PKEY_get_size(ak), &raw, &raw_size);
        if (k < 0)
                attest_problem_add(problems, "quote-signature", "the quote signature is neither %d raw bytes nor an RSASSA-SHA256 TPMT_SIGNATURE",
                                   EVP_PKEY_get_size(ak));
        else if (EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, ak) != 1 ||
                 EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
                 EVP_DigestVerify(ctx, raw, raw_size, attest, attest_size) != 1)
                attest_problem_add(problems, "quote-signature", "the quote is not signed by the attestation key");
        ERR_clear_error();

        if (q.extra_data_size != nonce_size || CRYPTO_memcmp(q.extra_data, nonce, nonce_size) != 0)
                attest_problem_add(problems, "quote-nonce", "the quote's extraData (%u bytes) is not the expected nonce (%zu bytes)",
                                   q.extra_data_size, nonce_size);

        if (q.bank != TPM_ALG_SHA256 || q.pcr_digest_size != 32)
                attest_problem_add(problems, "quote-pcrs", "the quote selects hash algorithm 0x%04x, only SHA-256 is supported",
                                   q.bank);
        else if (!pcrs || pcrs->bank != TPM_ALG_SHA256 || (q.pcr_mask & ~pcrs->mask) != 0)
                attest_problem_add(problems, "quote-pcrs", "no SHA-256 values for every quoted PCR (quoted mask 0x%06x)",
                                   q.pcr_mask);
        else {
                _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
                uint8_t digest[32];
                unsigned len = 0;

                if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                        return -ENOMEM;
                for (unsigned i = 0; i < TPM_PCR_MAX; i++)
                        if ((q.pcr_mask & (1u << i)) && EVP_DigestUpdate(md, pcrs->value[i], 32) != 1)
                                return -EIO;
                if (EVP_DigestFinal_ex(md, digest, &len) != 1 || len != 32)
                        return -EIO;
                if (CRYPTO_memcmp(digest, q.pcr_digest, 32) != 0)
                        attest_problem_add(problems, "quote-pcrs", "the quote's PCR digest does not match the PCR values (mask 0x%06x)",
                                           q.pcr_mask);
        }
        return problems->n > before || problems->truncated ? -EBADE : 0;
}

int hcl_parse_pcr_values(const char *text, size_t size, TpmPcrValues *ret) {
        TpmPcrValues v = { .bank = TPM_ALG_SHA256 };
        size_t i = 0;

        if (size > 64 * 1024)
                return -EBADMSG;
        while (i < size) {
                size_t end = i, j;
                unsigned idx = 0;

                while (end < size && text[end] != '\n')
                        end++;
                j = i;
                if (j < end && text[j] != '#') {
                        size_t digits = 0;

                        while (j < end && text[j] >= '0' && text[j] <= '9' && digits < 2) {
                                idx = idx * 10 + (unsigned) (text[j++] - '0');
                                digits++;
                        }
                        if (digits == 0 || (digits == 2 && text[i] == '0') || idx >= TPM_PCR_MAX || j >= end || text[j] != ' ')
                                return log_debug_errno(-EBADMSG, "PCR values: malformed line at offset %zu", i);
                        j++;
                        if (end - j != 64 || (v.mask & (1u << idx)))
                                return log_debug_errno(-EBADMSG, "PCR values: PCR %u: need 64 hex digits, once", idx);
                        for (size_t b = 0; b < 32; b++) {
                                char pair[3] = { text[j + 2 * b], text[j + 2 * b + 1], 0 };
                                if (!pair[0] || !pair[1] || !strchr("0123456789abcdefABCDEF", pair[0]) ||
                                    !strchr("0123456789abcdefABCDEF", pair[1]))
                                        return log_debug_errno(-EBADMSG, "PCR values: PCR %u is not hex", idx);
                                v.value[idx][b] = (uint8_t) strtoul(pair, NULL, 16);
                        }
                        v.mask |= 1u << idx;
                }
                i = end + 1;
        }
        *ret = v;
        return 0;
}

int hcl_check_ak(const HclReport *h, const TpmRsaPublic *key, AttestProblems *problems) {
        _cleanup_(BN_freep) BIGNUM *hn = NULL, *he = NULL, *kn = NULL, *ke = NULL;

        if (!h || !h->ak_pub || !key || !problems)
                return -EINVAL;
        if (EVP_PKEY_get_bn_param(h->ak_pub, OSSL_PKEY_PARAM_RSA_N, &hn) != 1 ||
            EVP_PKEY_get_bn_param(h->ak_pub, OSSL_PKEY_PARAM_RSA_E, &he) != 1)
                return -ENOMEM;
        kn = BN_bin2bn(key->modulus, (int) key->modulus_size, NULL);
        ke = BN_new();
        if (!kn || !ke || BN_set_word(ke, key->exponent ? key->exponent : 65537) != 1)
                return -ENOMEM;
        if (BN_cmp(hn, kn) != 0 || BN_cmp(he, ke) != 0) {
                attest_problem_add(problems, "hcl-ak", "the vTPM key at 0x%08x is not HCLAkPub of the HCL report (%zu-bit key, "
                                   "HCLAkPub %d bits)", HCL_AK_HANDLE, key->modulus_size * 8, EVP_PKEY_get_bits(h->ak_pub));
                return -EBADE;
        }
        /* A key that is not restricted signs any digest, including one of a forged TPMS_ATTEST. */
        if (!key->restricted_signing) {
                attest_problem_add(problems, "hcl-ak", "the vTPM key at 0x%08x is not a restricted fixedTPM signing key "
                                   "(attributes 0x%08x)", HCL_AK_HANDLE, key->attributes);
                return -EBADE;
        }
        return 0;
}
