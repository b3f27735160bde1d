/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Azure HCL reports and vTPM quotes against the real vectors (tests/vectors/README.md): JSON
 * binding for all three blobs, the SNP report inside the trustee blobs end to end, each quote with
 * its AK, nonce and PCR values; and the malformed variants a host could hand us. */
#include <errno.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "hcl.h"
#include "tap.h"
#include "vectors.h"

typedef struct Blob {
        const char *file;
        uint32_t header_version, report_size, runtime_size;
        bool key_ops_sign, has_user_data;
        const char *vm_unique_id;
} Blob;

static const Blob blobs[] = {
        { "azure-hcl/trustee-milan-v3-hcl-report.bin", 1, 2346, 1110, true, true, "26F8BC30-774E-4290-8E7A-535F3B672AEE" },
        { "azure-hcl/trustee-genoa-v3-hcl-report.bin", 2, 2436, 1200, true, true, "390CBCF5-6C67-4D9B-98EF-C3F1699CC8FC" },
        { "azure-hcl/kinvolk-milan-v2-hcl-report.bin", 1, 1819, 583, false, false, "BAEFD3E1-184B-4C4C-AB88-0BDAD260505F" },
};

static void show_problems(const AttestProblems *p) {
        for (size_t i = 0; i < p->n; i++)
                printf("#   %s: %s\n", p->item[i].check, p->item[i].reason);
}

static int parse_blob(const uint8_t *data, size_t size, HclReport *h) {
        return hcl_report_parse(data, size, h);
}

static void test_blobs(void) {
        for (size_t i = 0; i < ELEMENTSOF(blobs); i++) {
                size_t size = 0;
                uint8_t *data = read_vector(blobs[i].file, &size);
                HclReport h = {};
                AttestProblems p;
                int k;

                k = data ? parse_blob(data, size, &h) : -ENOENT;
                CHECK(k == 0, "%s parses", blobs[i].file);
                if (k < 0) {
                        free(data);
                        continue;
                }
                CHECK(h.header_version == blobs[i].header_version && h.report_size == blobs[i].report_size &&
                              h.runtime_size == blobs[i].runtime_size && h.request_type == 2 && h.report_type == 2 &&
                              h.hash_type == 1 && h.data_size == 20 + h.runtime_size,
                      "%s: header v%u, report_size %u, runtime data %zu bytes", blobs[i].file, h.header_version, h.report_size,
                      h.runtime_size);
                attest_problems_init(&p);
                CHECK(hcl_check_binding(&h, &p) == 0, "%s: SHA-256(runtime JSON) == REPORT_DATA[0..32], rest zero",
                      blobs[i].file);
                CHECK(h.ak_pub && EVP_PKEY_get_bits(h.ak_pub) == 2048, "%s: HCLAkPub is RSA-2048", blobs[i].file);
                CHECK(h.vm_config.has_secure_boot && h.vm_config.secure_boot && h.vm_config.has_tpm_enabled &&
                              h.vm_config.tpm_enabled && h.vm_config.has_console_enabled && h.vm_config.console_enabled,
                      "%s: secure-boot, tpm-enabled, console-enabled all true", blobs[i].file);
                CHECK(strcmp(h.vm_unique_id, blobs[i].vm_unique_id) == 0 && h.has_user_data == blobs[i].has_user_data,
                      "%s: vmUniqueId %s, user-data %s", blobs[i].file, h.vm_unique_id, h.has_user_data ? "present" : "absent");
                CHECK(h.has_ek_pub == blobs[i].key_ops_sign, "%s: HCLEkPub %s", blobs[i].file,
                      blobs[i].key_ops_sign ? "present" : "absent (older blob)");

                /* One changed byte in the JSON (inside vmUniqueId: still valid JSON) breaks the binding. */
                {
                        char *id = strstr((char *) data + HCL_RUNTIME_OFFSET, blobs[i].vm_unique_id);
                        HclReport h2 = {};
                        if (id) {
                                id[0] = id[0] == '0' ? '1' : '0';
                                attest_problems_init(&p);
                                CHECK(parse_blob(data, size, &h2) == 0 && hcl_check_binding(&h2, &p) == -EBADE &&
                                              attest_problems_has(&p, "hcl-binding"),
                                      "%s: edited runtime JSON no longer matches REPORT_DATA", blobs[i].file);
                                id[0] = blobs[i].vm_unique_id[0];
                        }
                        hcl_report_done(&h2);
                }
                {
                        HclReport h2 = {};
                        data[HCL_REPORT_OFFSET + 0x050 + 40] ^= 1;
                        attest_problems_init(&p);
                        CHECK(parse_blob(data, size, &h2) == 0 && hcl_check_binding(&h2, &p) == -EBADE &&
                                      attest_problems_has(&p, "hcl-binding"),
                              "%s: non-zero REPORT_DATA[32..64] refused", blobs[i].file);
                        data[HCL_REPORT_OFFSET + 0x050 + 40] ^= 1;
                        hcl_report_done(&h2);
                }
                hcl_report_done(&h);
                free(data);
        }
}

static void test_snp_inside(void) {
        static const struct {
                const char *blob, *vcek, *chain;
        } cases[] = {
                { "azure-hcl/trustee-milan-v3-hcl-report.bin", "azure-hcl/trustee-milan-v3-hcl-report.vcek.pem", "chains/ask_ark_milan.pem" },
                { "azure-hcl/trustee-genoa-v3-hcl-report.bin", "azure-hcl/trustee-genoa-v3-hcl-report.vcek.pem", "chains/ask_ark_genoa.pem" },
        };
        AttestAnchors *a = NULL;

        CHECK(attest_anchors_load(src_path("../../anchors"), &a) == 0, "shipped anchors load");
        for (size_t i = 0; a && i < ELEMENTSOF(cases); i++) {
                size_t size = 0;
                uint8_t *data = read_vector(cases[i].blob, &size);
                STACK_OF(X509) *leaf = NULL, *chain = NULL;
                HclReport h = {};
                AttestProblems p;
                AttestPolicy pol;
                int k = -EIO;

                attest_problems_init(&p);
                attest_policy_init(&pol);
                if (data && parse_blob(data, size, &h) == 0 && attest_load_certs(vector_path(cases[i].vcek), &leaf) == 0 &&
                    attest_load_certs(vector_path(cases[i].chain), &chain) == 0)
                        k = attest_verify_report(&h.snp, sk_X509_value(leaf, 0), chain, a, NULL, NULL, &p);
                show_problems(&p);
                CHECK(k == 0, "%s: SNP signature, VCEK <- ASK <- ARK, hwID == chip_id all verify", cases[i].blob);
                CHECK(k == 0 && attest_policy_check(&pol, &h.snp, &h.vm_config, &p) == 0,
                      "%s: passes the default policy", cases[i].blob);
                sk_X509_pop_free(leaf, X509_free);
                sk_X509_pop_free(chain, X509_free);
                hcl_report_done(&h);
                free(data);
        }
        attest_anchors_free(a);
}

static int load_pcrs(const char *rel, TpmPcrValues *pcrs) {
        size_t size = 0;
        uint8_t *text = read_vector(rel, &size);
        int k = text ? hcl_parse_pcr_values((const char *) text, size, pcrs) : -ENOENT;

        free(text);
        return k;
}

typedef struct QuoteCase {
        const char *blob, *attest, *sig, *pcrs;
        const char *nonce_hex;
} QuoteCase;

static size_t unhex(const char *s, uint8_t *out) {
        size_t n = strlen(s) / 2;

        for (size_t i = 0; i < n; i++) {
                unsigned v;
                sscanf(s + 2 * i, "%2x", &v);
                out[i] = (uint8_t) v;
        }
        return n;
}

static int verify_quote(const uint8_t *attest, size_t attest_size, const uint8_t *sig, size_t sig_size, EVP_PKEY *ak,
                        const uint8_t *nonce, size_t nonce_size, const TpmPcrValues *pcrs, AttestProblems *p) {
        int k;

        attest_problems_init(p);
        k = hcl_quote_verify(attest, attest_size, sig, sig_size, ak, nonce, nonce_size, pcrs, p);
        if (k < 0)
                show_problems(p);
        return k;
}

static void test_quotes(void) {
        static const QuoteCase cases[] = {
                { "azure-hcl/trustee-milan-v3-hcl-report.bin", "azure-hcl/trustee-milan-v3-tpm-quote.attest.bin",
                  "azure-hcl/trustee-milan-v3-tpm-quote.sig.bin", "azure-hcl/trustee-milan-v3-pcrs-sha256.txt",
                  "6368616c6c656e6765" /* "challenge" */ },
                { "azure-hcl/trustee-genoa-v3-hcl-report.bin", "azure-hcl/trustee-genoa-v3-tpm-quote.attest.bin",
                  "azure-hcl/trustee-genoa-v3-tpm-quote.sig.bin", "azure-hcl/trustee-genoa-v3-pcrs-sha256.txt",
                  "0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f" },
        };
        EVP_PKEY *other_ak = NULL;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                size_t bsize = 0, asize = 0, ssize = 0, nsize;
                uint8_t *blob = read_vector(cases[i].blob, &bsize), *attest = read_vector(cases[i].attest, &asize),
                        *sig = read_vector(cases[i].sig, &ssize), nonce[64], wrapped[512];
                HclReport h = {};
                HclQuote q;
                TpmPcrValues pcrs;
                AttestProblems p;

                nsize = unhex(cases[i].nonce_hex, nonce);
                if (!blob || !attest || !sig || parse_blob(blob, bsize, &h) < 0 || load_pcrs(cases[i].pcrs, &pcrs) < 0) {
                        CHECK(false, "%s: inputs load", cases[i].attest);
                        goto next;
                }
                CHECK(hcl_quote_parse(attest, asize, &q) == 0 && q.bank == 0x000B && q.pcr_mask == 0xFFFFFF &&
                              q.extra_data_size == nsize && q.pcr_digest_size == 32,
                      "%s: TPMS_ATTEST parses: SHA-256 PCRs 0..23, %zu-byte extraData", cases[i].attest, nsize);
                CHECK(verify_quote(attest, asize, sig, ssize, h.ak_pub, nonce, nsize, &pcrs, &p) == 0,
                      "%s: signed by HCLAkPub, nonce and pcrDigest match", cases[i].attest);

                /* The same signature as a marshalled TPMT_SIGNATURE. */
                wrapped[0] = 0x00, wrapped[1] = 0x14, wrapped[2] = 0x00, wrapped[3] = 0x0B;
                wrapped[4] = (uint8_t) (ssize >> 8), wrapped[5] = (uint8_t) ssize;
                memcpy(wrapped + 6, sig, ssize);
                CHECK(verify_quote(attest, asize, wrapped, ssize + 6, h.ak_pub, nonce, nsize, &pcrs, &p) == 0,
                      "%s: TPMT_SIGNATURE form accepted", cases[i].attest);

                nonce[0] ^= 1;
                CHECK(verify_quote(attest, asize, sig, ssize, h.ak_pub, nonce, nsize, &pcrs, &p) == -EBADE && p.n == 1 &&
                              attest_problems_has(&p, "quote-nonce"),
                      "%s: wrong nonce refused", cases[i].attest);
                nonce[0] ^= 1;
                pcrs.value[7][0] ^= 1;
                CHECK(verify_quote(attest, asize, sig, ssize, h.ak_pub, nonce, nsize, &pcrs, &p) == -EBADE && p.n == 1 &&
                              attest_problems_has(&p, "quote-pcrs"),
                      "%s: a different PCR 7 value refused", cases[i].attest);
                pcrs.value[7][0] ^= 1;
                pcrs.mask &= ~(1u << 23);
                CHECK(verify_quote(attest, asize, sig, ssize, h.ak_pub, nonce, nsize, &pcrs, &p) == -EBADE &&
                              attest_problems_has(&p, "quote-pcrs"),
                      "%s: a quoted PCR without a value refused", cases[i].attest);
                pcrs.mask |= 1u << 23;
                sig[10] ^= 1;
                CHECK(verify_quote(attest, asize, sig, ssize, h.ak_pub, nonce, nsize, &pcrs, &p) == -EBADE && p.n == 1 &&
                              attest_problems_has(&p, "quote-signature"),
                      "%s: corrupted signature refused", cases[i].attest);
                sig[10] ^= 1;
                if (other_ak)
                        CHECK(verify_quote(attest, asize, sig, ssize, other_ak, nonce, nsize, &pcrs, &p) == -EBADE &&
                                      attest_problems_has(&p, "quote-signature"),
                              "%s: another VM's AK refused", cases[i].attest);
                else {
                        other_ak = h.ak_pub;
                        h.ak_pub = NULL;
                }
        next:
                hcl_report_done(&h);
                free(blob);
                free(attest);
                free(sig);
        }
        EVP_PKEY_free(other_ak);
}

static void test_kinvolk_quote(void) {
        size_t asize = 0, ssize = 0;
        uint8_t *attest = read_vector("azure-hcl/kinvolk-tpm-quote.attest.bin", &asize),
                *sig = read_vector("azure-hcl/kinvolk-tpm-quote.sig.bin", &ssize);
        const uint8_t nonce[] = { 1, 2, 3 };
        FILE *f = fopen(vector_path("azure-hcl/kinvolk-tpm-quote.akpub.pem"), "re");
        EVP_PKEY *ak = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
        TpmPcrValues pcrs = { .bank = 0x000B };
        AttestProblems p;
        HclQuote q;

        if (f)
                fclose(f);
        /* PCR15 = 0^32, PCR16 = 0^32, PCR22 = FF^32 (tests/vectors/README.md) */
        pcrs.mask = (1u << 15) | (1u << 16) | (1u << 22);
        memset(pcrs.value[22], 0xFF, 32);
        CHECK(attest && sig && ak && hcl_quote_parse(attest, asize, &q) == 0 && q.pcr_mask == pcrs.mask &&
                      q.extra_data_size == 3,
              "kinvolk quote: 116-byte TPMS_ATTEST selecting PCRs 15, 16, 22; extraData 010203");
        CHECK(ak && verify_quote(attest, asize, sig, ssize, ak, nonce, sizeof(nonce), &pcrs, &p) == 0,
              "kinvolk quote verifies with akpub.pem, nonce 010203, pcrDigest of 0,0,FF..");
        memset(pcrs.value[22], 0, 32);
        CHECK(ak && verify_quote(attest, asize, sig, ssize, ak, nonce, sizeof(nonce), &pcrs, &p) == -EBADE &&
                      attest_problems_has(&p, "quote-pcrs"),
              "kinvolk quote: PCR 22 = 0 refused");

        /* Malformed TPMS_ATTEST */
        if (attest && asize == 116) {
                uint8_t b[200];

                memcpy(b, attest, asize);
                b[0] = 0;
                CHECK(hcl_quote_parse(b, asize, &q) == -EBADMSG, "quote: wrong magic refused");
                memcpy(b, attest, asize);
                b[5] = 0x17;
                CHECK(hcl_quote_parse(b, asize, &q) == -EBADMSG, "quote: type other than ATTEST_QUOTE refused");
                memcpy(b, attest, asize);
                CHECK(hcl_quote_parse(b, asize - 1, &q) == -EBADMSG, "quote: truncated refused");
                b[asize] = 0;
                CHECK(hcl_quote_parse(b, asize + 1, &q) == -EBADMSG, "quote: trailing byte refused");
                memcpy(b, attest, asize);
                b[6] = 0x10; /* qualifiedSigner size 0x1022: beyond the buffer */
                CHECK(hcl_quote_parse(b, asize, &q) == -EBADMSG, "quote: oversized TPM2B refused");
        }
        EVP_PKEY_free(ak);
        free(attest);
        free(sig);
}

static void put32(uint8_t *b, size_t off, uint32_t v) {
        for (size_t i = 0; i < 4; i++)
                b[off + i] = (uint8_t) (v >> (8 * i));
}

/* A blob with our own runtime JSON (binding not checked here: parse only). */
static size_t make_blob(uint8_t *out, size_t max, const uint8_t *snp, const char *json) {
        size_t n = strlen(json), total = HCL_RUNTIME_OFFSET + n;

        memset(out, 0, max);
        memcpy(out, "HCLA", 4);
        put32(out, 0x04, 1);
        put32(out, 0x08, (uint32_t) total);
        put32(out, 0x0C, 2);
        memcpy(out + HCL_REPORT_OFFSET, snp, SNP_REPORT_SIZE);
        put32(out, 0x4C0, (uint32_t) (20 + n));
        put32(out, 0x4C4, 1);
        put32(out, 0x4C8, 2);
        put32(out, 0x4CC, 1);
        put32(out, 0x4D0, (uint32_t) n);
        memcpy(out + HCL_RUNTIME_OFFSET, json, n);
        return total + 16; /* some zero padding */
}

static void test_malformed(void) {
        size_t size = 0;
        uint8_t *orig = read_vector("azure-hcl/trustee-milan-v3-hcl-report.bin", &size), b[4096];
        const uint8_t *snp;
        HclReport h = {};
        char ak[600];
        static const struct {
                const char *what, *json;
                int expect;
        } json_cases[] = {
                { "minimal valid JSON", "{\"keys\":[{\"kid\":\"HCLAkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"%s\"}]}", 0 },
                { "no keys", "{\"vm-configuration\":{}}", -EBADMSG },
                { "no HCLAkPub", "{\"keys\":[{\"kid\":\"HCLEkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"%s\"}]}", -EBADMSG },
                { "two HCLAkPub", "{\"keys\":[{\"kid\":\"HCLAkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"%s\"},{\"kid\":\"HCLAkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"%1$s\"}]}", -EBADMSG },
                { "duplicate key", "{\"keys\":[{\"kid\":\"HCLAkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"%s\"}],\"keys\":[]}", -EBADMSG },
                { "kty EC", "{\"keys\":[{\"kid\":\"HCLAkPub\",\"kty\":\"EC\",\"e\":\"AQAB\",\"n\":\"%s\"}]}", -EBADMSG },
                { "padded base64", "{\"keys\":[{\"kid\":\"HCLAkPub\",\"kty\":\"RSA\",\"e\":\"AQAB=\",\"n\":\"%s\"}]}", -EBADMSG },
                { "short modulus", "{\"keys\":[{\"kid\":\"HCLAkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"sXch\"}]}", -EBADMSG },
                { "secure-boot not boolean", "{\"keys\":[{\"kid\":\"HCLAkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"%s\"}],\"vm-configuration\":{\"secure-boot\":\"true\"}}", -EBADMSG },
                { "user-data too short", "{\"keys\":[{\"kid\":\"HCLAkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"%s\"}],\"user-data\":\"00\"}", -EBADMSG },
                { "trailing comma", "{\"keys\":[],}", -EBADMSG },
                { "not JSON", "HCLAkPub", -EBADMSG },
        };

        if (!orig || size != 2600) {
                CHECK(false, "trustee blob for the malformed cases");
                free(orig);
                return;
        }
        snp = orig + HCL_REPORT_OFFSET;
        /* The AK modulus of the real blob, to build valid JWKs. */
        {
                const char *n = strstr((const char *) orig + HCL_RUNTIME_OFFSET, "\"n\":\"");
                size_t len = n ? strcspn(n + 5, "\"") : 0;
                CHECK(n && len < sizeof(ak), "AK modulus found");
                if (!n)
                        goto out;
                memcpy(ak, n + 5, len);
                ak[len] = 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(json_cases); i++) {
                char json[2048];
                size_t n;
                int k;

                (void) snprintf(json, sizeof(json), json_cases[i].json, ak);
                n = make_blob(b, sizeof(b), snp, json);
                k = hcl_report_parse(b, n, &h);
                CHECK(k == json_cases[i].expect, "runtime JSON: %s -> %d", json_cases[i].what, k);
                hcl_report_done(&h);
        }

#define MUTATE(what, off, val, expect)                                                  \
        do {                                                                            \
                memcpy(b, orig, size);                                                  \
                b[off] = (uint8_t) (val);                                               \
                CHECK(hcl_report_parse(b, size, &h) == (expect), "HCL blob: %s", what); \
                hcl_report_done(&h);                                                    \
        } while (0)
        MUTATE("signature not HCLA", 0, 'X', -EBADMSG);
        MUTATE("header version 3", 4, 3, -EBADMSG);
        MUTATE("report_size off by one", 8, 0x2B, -EBADMSG);
        MUTATE("reserved header byte", 0x18, 1, -EBADMSG);
        MUTATE("data_size off by one", 0x4C0, 0x6B, -EBADMSG);
        MUTATE("runtime data version 2", 0x4C4, 2, -EBADMSG);
        MUTATE("report type TDX", 0x4C8, 4, -EOPNOTSUPP);
        MUTATE("report type 3", 0x4C8, 3, -EBADMSG);
        MUTATE("hash type 4", 0x4CC, 4, -EBADMSG);
        MUTATE("runtime size beyond the blob", 0x4D1, 0x40, -EBADMSG);
        MUTATE("non-zero padding", size - 1, 1, -EBADMSG);
        MUTATE("SNP report inside malformed", HCL_REPORT_OFFSET + 0x34, 2, -EBADMSG);
        CHECK(hcl_report_parse(orig, 0x4D3, &h) == -EBADMSG, "HCL blob shorter than the header refused");
        CHECK(hcl_report_parse(orig, 1000, &h) == -EBADMSG, "HCL blob cut inside the SNP report refused");
        CHECK(hcl_report_parse(orig, 2346, &h) == 0, "HCL blob without padding parses");
        hcl_report_done(&h);
        CHECK(hcl_report_parse(orig, 2345, &h) == -EBADMSG, "HCL blob cut inside the JSON refused");
out:
        free(orig);
}

static void test_pcr_text(void) {
        static const struct {
                const char *text;
                int expect;
        } cases[] = {
                { "", 0 },
                { "# comment\n7 " "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 0 },
                { "23 " "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 0 },
                { "24 " "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", -EBADMSG },
                { "07 " "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", -EBADMSG },
                { "7 " "00112233445566778899aabbccddeeff00112233445566778899aabbccddee\n", -EBADMSG },
                { "7 " "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeffaa\n", -EBADMSG },
                { "7 " "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", -EBADMSG },
                { "7\t" "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", -EBADMSG },
                { "7 " "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n7 "
                  "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", -EBADMSG },
        };
        TpmPcrValues v;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CHECK(hcl_parse_pcr_values(cases[i].text, strlen(cases[i].text), &v) == cases[i].expect, "PCR text case %zu", i);
        CHECK(hcl_parse_pcr_values(cases[1].text, strlen(cases[1].text), &v) == 0 && v.mask == (1u << 7) &&
                      v.value[7][0] == 0x00 && v.value[7][1] == 0x11 && v.value[7][31] == 0xff && v.bank == 0x000B,
              "PCR text: value of PCR 7 decoded");
}

int main(void) {
        test_blobs();
        test_snp_inside();
        test_quotes();
        test_kinvolk_quote();
        test_malformed();
        test_pcr_text();
        return tap_done();
}
