/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SEV-SNP report parser and AMD chain verification: every expectation of tests/vectors/README.md
 * on the real vectors, and for what they can't reach, synthetic reports signed by the test
 * hierarchy of tests/fixtures/make-test-chain. The policy is in test-attest-policy.c, the Azure
 * HCL report and vTPM quote in test-hcl.c. */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attest.h"
#include "snp-synth.h"
#include "tap.h"
#include "vectors.h"

static char test_dir[256];

static int parse_vector(const char *rel, SnpReport *r) {
        size_t size = 0;
        uint8_t *data = read_vector(rel, &size);
        int k;

        if (!data)
                return -ENOENT;
        k = snp_report_parse(data, size, r);
        free(data);
        return k;
}

static X509 *load_leaf(const char *path) {
        STACK_OF(X509) *s = NULL;
        X509 *c;

        if (attest_load_certs(path, &s) < 0)
                return NULL;
        c = sk_X509_shift(s);
        sk_X509_pop_free(s, X509_free);
        return c;
}

static STACK_OF(X509) *load_chain(const char *path) {
        STACK_OF(X509) *s = NULL;

        if (!path)
                return sk_X509_new_null();
        return attest_load_certs(path, &s) < 0 ? NULL : s;
}

/* Verifies r with the leaf and chain files; problems collected in p. */
static int verify(SnpReport *r, const char *leaf_path, const char *chain_path, const AttestAnchors *anchors,
                  STACK_OF(X509_CRL) *crls, AttestProblems *p) {
        X509 *leaf = load_leaf(leaf_path);
        STACK_OF(X509) *chain = load_chain(chain_path);
        int k = -ENOENT;

        attest_problems_init(p);
        if (leaf && chain)
                k = attest_verify_report(r, leaf, chain, anchors, crls, NULL, p);
        else
                printf("# cannot load %s or %s\n", leaf_path, strna(chain_path));
        if (k < 0)
                show_problems(p);
        X509_free(leaf);
        sk_X509_pop_free(chain, X509_free);
        return k;
}

/* ---- parser ---- */

static void test_parse_vectors(void) {
        SnpReport r;
        json_object *o = NULL;

        CHECK(parse_vector("reports/gsg-milan-v2-report.bin", &r) == 0, "gsg Milan v2 report parses");
        CHECK(r.version == 2 && r.guest_svn == 0 && r.policy == 0xB0000 && r.vmpl == 0 && r.signature_algo == 1 &&
                      r.signer_info == 0 && r.platform_info == 0x1,
              "gsg: version 2, policy 0xB0000 (DEBUG), vmpl 0, signer_info 0, platform_info 1");
        CHECK(r.reported_tcb == UINT64_C(0x4405000000000002) && r.current_tcb == r.reported_tcb &&
                      r.committed_tcb == r.reported_tcb && r.launch_tcb == r.reported_tcb,
              "gsg: all four TCBs 0x4405000000000002");
        CHECK(r.current_major == 1 && r.current_minor == 49 && r.current_build == 3, "gsg: firmware 1.49.3");
        CHECK(r.measurement[0] == 0xb0 && r.measurement[47] == 0x01 && r.report_data[0] == 1 && r.report_data[4] == 5 &&
                      r.report_data[5] == 0 && r.chip_id[0] == 0x3a && r.chip_id[1] == 0xc3,
              "gsg: measurement b07a..01, report_data 0102030405, chip_id 3ac3..");
        CHECK(r.report_id_ma[0] == 0xFF && r.report_id_ma[31] == 0xFF, "gsg: report_id_ma all FF");
        CHECK(!r.tcb_layout_known && r.product == SNP_PRODUCT_UNKNOWN, "v2: product unknown until the VCEK says");
        CHECK(snp_report_to_json(&r, &o) == 0 && o, "report converts to JSON");
        if (o) {
                json_object *v;
                CHECK(json_object_object_get_ex(o, "measurement", &v) &&
                              strcmp(json_object_get_string(v),
                                     "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01") == 0,
                      "JSON measurement is hex");
                CHECK(json_object_object_get_ex(o, "reported_tcb", &v) && json_object_object_get_ex(v, "microcode", &v) &&
                              json_object_get_int(v) == 0x44,
                      "JSON TCB decoded (microcode 68)");
                json_object_put(o);
        }

        CHECK(parse_vector("reports/virtee-milan-v2-report.bin", &r) == 0 && r.policy == 0x30000 &&
                      r.reported_tcb == UINT64_C(0x7308000000000003) && r.current_major == 1 && r.current_minor == 52 &&
                      r.current_build == 4,
              "virtee Milan v2: policy 0x30000, TCB 0x7308000000000003, fw 1.52.4");

        CHECK(parse_vector("reports/trustee-milan-v3-vlek-report.bin", &r) == 0, "trustee VLEK v3 report parses");
        CHECK(r.version == 3 && r.vmpl == 1 && r.signer_info == 0x4 && snp_report_signing_key(&r) == SNP_SIGNING_KEY_VLEK &&
                      r.platform_info == 0x27,
              "VLEK: version 3, vmpl 1, SIGNING_KEY VLEK, platform_info 0x27");
        CHECK(r.cpuid_fam_id == 0x19 && r.cpuid_mod_id == 0x01 && r.cpuid_step == 1 && r.product == SNP_PRODUCT_MILAN &&
                      r.tcb_layout_known,
              "VLEK: CPUID 19h/01h/1 is Milan");
        CHECK(r.reported_tcb == UINT64_C(0xd918000000000004) && r.launch_tcb == UINT64_C(0xdb18000000000004),
              "VLEK: reported TCB 0xd918..04, launch 0xdb18..04");
        {
                uint8_t zero[64] = {};
                CHECK(memcmp(r.chip_id, zero, 64) == 0, "VLEK: chip_id all zero");
        }
        CHECK(parse_vector("negative/DERIVED-gsg-milan-v2-report.measurement-bitflip.bin", &r) == 0 &&
                      r.measurement[0] == 0xb1,
              "DERIVED bit-flip report still parses");
        CHECK(parse_vector("negative/DERIVED-virtee-milan-v2-report.policy-debug-set.bin", &r) == 0 && r.policy == 0xB0000,
              "DERIVED debug report parses with policy 0xB0000");
}

typedef struct Mutation {
        const char *what;
        unsigned version;
        size_t offset;
        uint8_t value;
} Mutation;

static void test_parse_strict(void) {
        static const Mutation bad[] = {
                { "version 1", 2, 0x000, 1 },
                { "version 6", 2, 0x000, 6 },
                { "policy bit 17 clear", 2, 0x00A, 0x01 },
                { "VMPL 4", 2, 0x030, 4 },
                { "signature_algo 2", 2, 0x034, 2 },
                { "signer_info bit 5", 2, 0x048, 0x20 },
                { "SIGNING_KEY 2 (reserved)", 2, 0x048, 0x08 },
                { "reserved 0x04C", 2, 0x04C, 1 },
                { "v2 reserved 0x188 (CPUID slot)", 2, 0x188, 0x19 },
                { "v3 reserved 0x18B", 3, 0x18B, 1 },
                { "v3 reserved 0x19F", 3, 0x19F, 1 },
                { "reserved 0x1EB", 2, 0x1EB, 1 },
                { "reserved 0x1EF", 2, 0x1EF, 1 },
                { "v3 reserved 0x1F8 (mitigation vector slot)", 3, 0x1F8, 1 },
                { "v5 reserved 0x208", 5, 0x208, 1 },
                { "v5 reserved 0x29F", 5, 0x29F, 1 },
                { "signature R padding", 2, 0x2A0 + 48, 1 },
                { "signature S padding", 2, 0x2E8 + 71, 1 },
                { "reserved 0x330", 2, 0x330, 1 },
                { "reserved 0x49F", 2, 0x49F, 1 },
                { "v3 Milan TCB reserved byte", 3, 0x180 + 3, 1 },
        };
        uint8_t b[SNP_REPORT_SIZE + 1];
        SnpReport r;

        synth(b, 2);
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0, "synthetic v2 report parses");
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE - 1, &r) == -EBADMSG, "1183 bytes rejected");
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE + 1, &r) == -EBADMSG, "1185 bytes rejected");
        CHECK(snp_report_parse(b, 0, &r) == -EBADMSG, "empty input rejected");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                synth(b, bad[i].version);
                b[bad[i].offset] = bad[i].value;
                CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == -EBADMSG, "malformed: %s", bad[i].what);
        }
        synth(b, 5);
        put64(b, 0x1F8, 0x11);
        put64(b, 0x200, 0x22);
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 && r.launch_mit_vector == 0x11 && r.current_mit_vector == 0x22,
              "v5 mitigation vectors parsed");
        synth(b, 4);
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 && r.product == SNP_PRODUCT_MILAN, "v4 parses like v3");
        synth(b, 3);
        b[0x048] = 0x1C; /* SIGNING_KEY 7 = none */
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 && snp_report_signing_key(&r) == SNP_SIGNING_KEY_NONE,
              "SIGNING_KEY none parses (verification refuses it)");
}

static void test_tcb(void) {
        uint8_t b[SNP_REPORT_SIZE];
        SnpReport r;
        SnpTcb t;

        snp_tcb_decode(UINT64_C(0x7308000000000003), SNP_TCB_LAYOUT_MILAN_GENOA, &t);
        CHECK(t.bootloader == 3 && t.tee == 0 && t.snp == 8 && t.microcode == 0x73 && t.fmc == 0,
              "Milan layout: 0x7308000000000003 = bl 3, tee 0, snp 8, ucode 0x73");
        snp_tcb_decode(TEST_TCB_TURIN, SNP_TCB_LAYOUT_TURIN, &t);
        CHECK(t.fmc == 1 && t.bootloader == 2 && t.tee == 3 && t.snp == 4 && t.microcode == 5,
              "Turin layout: fmc, bl, tee, snp in bytes 0..3, ucode in byte 7");
        CHECK(snp_tcb_reserved_bits(TEST_TCB_TURIN, SNP_TCB_LAYOUT_MILAN_GENOA) != 0 &&
                      snp_tcb_reserved_bits(TEST_TCB_TURIN, SNP_TCB_LAYOUT_TURIN) == 0,
              "reserved TCB bytes depend on the layout");

        synth(b, 3);
        b[0x189] = 0x11;
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 && r.product == SNP_PRODUCT_GENOA &&
                      r.tcb_layout == SNP_TCB_LAYOUT_MILAN_GENOA,
              "CPUID 19h/11h is Genoa, Milan/Genoa layout");
        b[0x189] = 0xA1;
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 && r.product == SNP_PRODUCT_GENOA, "CPUID 19h/A1h is Genoa");
        synth_turin(b, 3);
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 && r.product == SNP_PRODUCT_TURIN &&
                      r.tcb_layout == SNP_TCB_LAYOUT_TURIN && r.tcb_layout_known,
              "CPUID 1Ah/02h is Turin, Turin layout (byte 3 = snp is not reserved there)");
        b[0x189] = 0x50;
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 && r.product == SNP_PRODUCT_UNKNOWN &&
                      r.tcb_layout == SNP_TCB_LAYOUT_TURIN && r.tcb_layout_known,
              "an unknown family 1Ah model still uses the Turin layout");
        synth_turin(b, 2);
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 && !r.tcb_layout_known && r.tcb_layout == SNP_TCB_LAYOUT_TURIN,
              "v2 with an 8-byte chip id: Turin layout guessed, not known");
        CHECK(snp_report_set_product(&r, SNP_PRODUCT_MILAN) == -EBADMSG,
              "fixing a Turin-layout TCB as Milan fails on its reserved bytes");
        CHECK(snp_report_set_product(&r, SNP_PRODUCT_TURIN) == 0 && r.tcb_layout_known, "fixing it as Turin works");

        CHECK(snp_product_from_name("Milan-B0") == SNP_PRODUCT_MILAN && snp_product_from_name("Milan") == SNP_PRODUCT_MILAN &&
                      snp_product_from_name("Genoa") == SNP_PRODUCT_GENOA && snp_product_from_name("Turin") == SNP_PRODUCT_TURIN &&
                      snp_product_from_name("Mil") == SNP_PRODUCT_UNKNOWN && snp_product_from_name("") == SNP_PRODUCT_UNKNOWN,
              "product names: up to the first '-'");
        CHECK(snp_policy_bit_from_name("debug") == 19 && snp_policy_bit_from_name("smt") == 16 &&
                      snp_policy_bit_from_name("nope") == -EINVAL && strcmp(snp_policy_bit_name(18), "migrate-ma") == 0,
              "policy bit names");
}

/* ---- real chains ---- */

static AttestAnchors *load_anchors(const char *dir) {
        AttestAnchors *a = NULL;
        int k = attest_anchors_load(dir, &a);

        if (k < 0)
                printf("# cannot load anchors %s: %d\n", dir, k);
        return a;
}

static void test_shipped_anchors(void) {
        static const struct {
                const char *file, *cn, *sha256;
        } table[] = {
                { "ark-milan.pem", "ARK-Milan", "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd" },
                { "ark-genoa.pem", "ARK-Genoa", "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1" },
                { "ark-turin.pem", "ARK-Turin", "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a" },
                { "ask-milan.pem", "SEV-Milan", "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b" },
                { "ask-genoa.pem", "SEV-Genoa", "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521" },
                { "ask-turin.pem", "SEV-Turin", "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185" },
                { "asvk-milan.pem", "SEV-VLEK-Milan", "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5" },
                { "asvk-genoa.pem", "SEV-VLEK-Genoa", "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372" },
        };
        AttestAnchors *a = load_anchors(src_path("../../anchors"));

        CHECK(a && sk_X509_num(a->certs) == (int) ELEMENTSOF(table), "anchors/ holds the %zu AMD certificates",
              ELEMENTSOF(table));
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char rel[64], hex[65], cn[64] = "";
                uint8_t md[32];
                unsigned len = 0;
                X509 *c;

                (void) snprintf(rel, sizeof(rel), "../../anchors/%s", table[i].file);
                c = load_leaf(src_path(rel));
                if (c) {
                        X509_digest(c, EVP_sha256(), md, &len);
                        for (size_t j = 0; j < 32; j++)
                                sprintf(hex + 2 * j, "%02x", md[j]);
                        X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn, sizeof(cn));
                }
                CHECK(c && len == 32 && strcmp(hex, table[i].sha256) == 0 && strcmp(cn, table[i].cn) == 0,
                      "anchors/%s is %s with SHA-256 %.16s...", table[i].file, table[i].cn, table[i].sha256);
                X509_free(c);
        }
        attest_anchors_free(a);
}

static void test_real_chains(void) {
        AttestAnchors *a = load_anchors(src_path("../../anchors"));
        AttestProblems p;
        AttestChainInfo info;
        AttestPolicy pol;
        SnpReport r;
        char why[200];
        int k;

        if (!a) {
                CHECK(false, "anchors load");
                return;
        }
        attest_policy_init(&pol);

        /* virtee Milan v2: VALID end to end. */
        (void) parse_vector("reports/virtee-milan-v2-report.bin", &r);
        CHECK(verify(&r, vector_path("reports/virtee-milan-v2-report.vcek.der"), vector_path("chains/ask_ark_milan.pem"), a, NULL,
                     &p) == 0,
              "virtee Milan v2 verifies: signature, VCEK <- ASK <- pinned ARK-Milan, TCB, hwID");
        CHECK(r.product == SNP_PRODUCT_MILAN && r.tcb_layout_known, "v2 report: product fixed from the VCEK (Milan)");
        attest_problems_init(&p);
        CHECK(attest_policy_check(&pol, &r, NULL, &p) == 0, "virtee report passes the default policy");
        (void) parse_vector("reports/virtee-milan-v2-report.bin", &r);
        CHECK(verify(&r, vector_path("reports/virtee-milan-v2-report.vcek.der"), NULL, a, NULL, &p) == 0,
              "without a chain the shipped ASK stands in");

        /* gsg Milan v2: valid, but DEBUG. */
        (void) parse_vector("reports/gsg-milan-v2-report.bin", &r);
        {
                X509 *leaf = load_leaf(vector_path("reports/gsg-milan-v2-report.vcek.der"));
                STACK_OF(X509) *chain = load_chain(vector_path("chains/ask_ark_milan.pem"));
                attest_problems_init(&p);
                k = attest_verify_report(&r, leaf, chain, a, NULL, &info, &p);
                show_problems(&p);
                CHECK(k == 0, "gsg Milan v2 verifies (VCEK with serial 0)");
                CHECK(info.product == SNP_PRODUCT_MILAN && strcmp(info.product_name, "Milan-B0") == 0 &&
                              info.key == SNP_SIGNING_KEY_VCEK && strcmp(info.ark_name, "ARK-Milan") == 0 &&
                              strcmp(info.intermediate_name, "SEV-Milan") == 0 && info.cert_tcb.microcode == 0x44 &&
                              info.cert_tcb.snp == 5 && info.cert_tcb.bootloader == 2 && info.ark_sha256[0] == 0x69,
                      "chain info: Milan-B0 VCEK, SEV-Milan <- ARK-Milan (69d0...), TCB ucode 0x44");
                X509_free(leaf);
                sk_X509_pop_free(chain, X509_free);
        }
        attest_problems_init(&p);
        CHECK(attest_policy_check(&pol, &r, NULL, &p) == -EBADE && p.n == 1 && attest_problems_has(&p, "debug"),
              "gsg report is rejected by the default (debug-forbidding) policy, and only for that");
        CHECK(attest_policy_parse("{\"debug\": true}", strlen("{\"debug\": true}"), &pol, why, sizeof(why)) == 0, "policy allowing debug parses");
        attest_problems_init(&p);
        CHECK(attest_policy_check(&pol, &r, NULL, &p) == 0, "gsg report passes a policy that allows debug");
        attest_policy_init(&pol);

        /* trustee VLEK. */
        (void) parse_vector("reports/trustee-milan-v3-vlek-report.bin", &r);
        CHECK(verify(&r, vector_path("reports/trustee-milan-v3-vlek-report.vlek.der"),
                     vector_path("chains/asvk_ark_milan_vlek.pem"), a, NULL, &p) == 0,
              "trustee VLEK report verifies: VLEK <- ASVK (SEV-VLEK-Milan) <- ARK-Milan, no hwID (VLEK)");
        attest_problems_init(&p);
        CHECK(attest_policy_check(&pol, &r, NULL, &p) == 0, "VLEK report passes the default policy");
        CHECK(verify(&r, vector_path("reports/trustee-milan-v3-vlek-report.vlek.der"), NULL, a, NULL, &p) == 0,
              "VLEK verifies with the shipped ASVK when no chain is given");
        (void) parse_vector("reports/trustee-milan-v3-vlek-report.bin", &r);
        CHECK(verify(&r, vector_path("reports/trustee-milan-v3-vlek-report.vlek.der"),
                     vector_path("chains/asvk_ark_genoa_vlek.pem"), a, NULL, &p) == -EBADE &&
                      attest_problems_has(&p, "chain") && attest_problems_has(&p, "product") &&
                      !attest_problems_has(&p, "report-signature"),
              "VLEK against the Genoa ASVK chain: chain INVALID (wrong product), report signature still fine");

        /* DERIVED negatives: signature INVALID, chain still valid. */
        (void) parse_vector("negative/DERIVED-gsg-milan-v2-report.measurement-bitflip.bin", &r);
        CHECK(verify(&r, vector_path("reports/gsg-milan-v2-report.vcek.der"), vector_path("chains/ask_ark_milan.pem"), a, NULL,
                     &p) == -EBADE &&
                      p.n == 1 && attest_problems_has(&p, "report-signature"),
              "measurement bit-flip: report signature INVALID, nothing else");
        (void) parse_vector("negative/DERIVED-virtee-milan-v2-report.policy-debug-set.bin", &r);
        CHECK(verify(&r, vector_path("reports/virtee-milan-v2-report.vcek.der"), vector_path("chains/ask_ark_milan.pem"), a,
                     NULL, &p) == -EBADE &&
                      p.n == 1 && has_reason(&p, "report-signature", "report signature invalid"),
              "debug bit set after signing: report signature INVALID");
        attest_problems_init(&p);
        CHECK(attest_policy_check(&pol, &r, NULL, &p) == -EBADE && attest_problems_has(&p, "debug"),
              "... and the DEBUG policy rule rejects it too");

        /* Wrong product chain. */
        (void) parse_vector("reports/gsg-milan-v2-report.bin", &r);
        CHECK(verify(&r, vector_path("reports/gsg-milan-v2-report.vcek.der"), vector_path("chains/ask_ark_genoa.pem"), a, NULL,
                     &p) == -EBADE &&
                      has_reason(&p, "chain", "VCEK does not chain to ARK-Genoa") &&
                      has_reason(&p, "product", "Milan-B0") && !attest_problems_has(&p, "ark-pinned"),
              "gsg Milan VCEK against the Genoa chain: INVALID, 'VCEK does not chain to ARK-Genoa'");

        /* Turin: chain only. */
        {
                uint8_t b[SNP_REPORT_SIZE];
                synth_turin(b, 3);
                (void) snp_report_parse(b, SNP_REPORT_SIZE, &r);
                CHECK(verify(&r, vector_path("reports/virtee-turin-vcek-only.der"), vector_path("chains/ask_ark_turin.pem"), a,
                             NULL, &p) == -EBADE &&
                              !attest_problems_has(&p, "chain") && !attest_problems_has(&p, "ark-pinned") &&
                              !attest_problems_has(&p, "leaf-extensions") && attest_problems_has(&p, "report-signature"),
                      "Turin VCEK chains to ARK-Turin (8-byte hwID and FMC extension parse; no real report exists)");
                CHECK(has_reason(&p, "tcb", "fmc 0x00 != reported TCB 0x01"), "Turin TCB compares FMC too");
        }

        /* A pinned ARK is required. */
        {
                char dir[300];
                AttestAnchors *other;

                (void) snprintf(dir, sizeof(dir), "%s/anchors", test_dir[0] ? test_dir : "/nonexistent");
                other = load_anchors(dir);
                if (other) {
                        (void) parse_vector("reports/virtee-milan-v2-report.bin", &r);
                        CHECK(verify(&r, vector_path("reports/virtee-milan-v2-report.vcek.der"),
                                     vector_path("chains/ask_ark_milan.pem"), other, NULL, &p) == -EBADE &&
                                      has_reason(&p, "ark-pinned", "ARK-Milan in the chain is not one of the trusted ARKs"),
                              "the real ARK-Milan is refused when the anchors hold another ARK-Milan");
                        attest_anchors_free(other);
                } else
                        CHECK(false, "test anchors for the pinning test");
        }
        attest_anchors_free(a);
}

static void test_negative_vceks(void) {
        AttestAnchors *a = load_anchors(src_path("../../anchors"));
        uint8_t b[SNP_REPORT_SIZE];
        AttestProblems p;
        SnpReport r;
        const char *files[] = { "negative/trustee-vcek-badsig-hwid-raw.der", "negative/trustee-vcek-badsig-hwid-octetstring.der" };

        if (!a)
                return;
        /* A report whose chip id is the 00..3f of these edited VCEKs: the hwID check passes only if
         * the extension was decoded, in either encoding. */
        for (size_t f = 0; f < ELEMENTSOF(files); f++) {
                size_t size = 0;
                uint8_t *data = read_vector("reports/virtee-milan-v2-report.bin", &size);

                if (!data || size != SNP_REPORT_SIZE) {
                        CHECK(false, "read virtee report");
                        free(data);
                        continue;
                }
                memcpy(b, data, SNP_REPORT_SIZE);
                free(data);
                for (size_t i = 0; i < 64; i++)
                        b[0x1A0 + i] = (uint8_t) i;
                (void) snp_report_parse(b, SNP_REPORT_SIZE, &r);
                CHECK(verify(&r, vector_path(files[f]), vector_path("chains/ask_ark_milan.pem"), a, NULL, &p) == -EBADE &&
                              has_reason(&p, "chain", "signature does not verify") && !attest_problems_has(&p, "hwid") &&
                              !attest_problems_has(&p, "leaf-extensions"),
                      "%s: parses, hwID 00..3f decoded, VCEK <- ASK signature INVALID", files[f]);
        }

        /* kinvolk: the published VCEK belongs to another chip. */
        {
                size_t size = 0;
                uint8_t *hcl = read_vector("azure-hcl/kinvolk-milan-v2-hcl-report.bin", &size);

                CHECK(hcl && size == 2048 && snp_report_parse(hcl + 0x20, SNP_REPORT_SIZE, &r) == 0, "kinvolk HCL: SNP report parses");
                CHECK(verify(&r, vector_path("negative/kinvolk-wrongchip-vcek-chain.pem"),
                             vector_path("negative/kinvolk-wrongchip-vcek-chain.pem"), a, NULL, &p) == -EBADE &&
                              has_reason(&p, "hwid", "VCEK hwID da8a5695") && attest_problems_has(&p, "report-signature") &&
                              !attest_problems_has(&p, "chain") && !attest_problems_has(&p, "ark-pinned"),
                      "kinvolk report with the wrong-chip VCEK: chain valid, hwID != chip_id, signature INVALID");
                free(hcl);
        }
        attest_anchors_free(a);
}

/* ---- the test hierarchy ---- */

static int make_test_chain(void) {
        char tmpl[] = "/tmp/cvmcrypt-test-chain.XXXXXX";
        const char *script = src_path("../fixtures/make-test-chain");
        pid_t pid;
        int status;

        if (!mkdtemp(tmpl))
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execl("/bin/sh", "sh", script, tmpl, (char *) NULL);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EIO;
        (void) snprintf(test_dir, sizeof(test_dir), "%s", tmpl);
        return 0;
}

static const char *tpath(const char *name) {
        static char buf[4][512];
        static unsigned i;
        char *p = buf[i++ % 4];

        (void) snprintf(p, sizeof(buf[0]), "%s/%s", test_dir, name);
        return p;
}

static EVP_PKEY *load_key(const char *name) {
        FILE *f = fopen(tpath(name), "re");
        EVP_PKEY *k;

        if (!f)
                return NULL;
        k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        return k;
}

/* Signs bytes 0..0x29F like the firmware: ECDSA P-384/SHA-384, r and s little-endian. */
static int sign_report(uint8_t *b, const char *key_name) {
        EVP_PKEY *key = load_key(key_name);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t der[256];
        size_t len = sizeof(der);
        const uint8_t *p = der;
        ECDSA_SIG *sig = NULL;
        int k = -EIO;

        if (key && ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, key) == 1 &&
            EVP_DigestSign(ctx, der, &len, b, SNP_REPORT_SIGNED_SIZE) == 1 && (sig = d2i_ECDSA_SIG(NULL, &p, (long) len))) {
                memset(b + 0x2A0, 0, 144);
                if (BN_bn2lebinpad(ECDSA_SIG_get0_r(sig), b + 0x2A0, 48) == 48 &&
                    BN_bn2lebinpad(ECDSA_SIG_get0_s(sig), b + 0x2E8, 48) == 48)
                        k = 0;
        }
        ECDSA_SIG_free(sig);
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(key);
        return k;
}

/* Signs b with key, parses it and verifies it against the test anchors. */
static int synth_verify(uint8_t *b, const char *key, const char *leaf, const char *chain, const char *crl,
                        AttestProblems *p) {
        AttestAnchors *a = load_anchors(tpath("anchors"));
        STACK_OF(X509_CRL) *crls = NULL;
        SnpReport r;
        int k;

        attest_problems_init(p);
        if (!a || sign_report(b, key) < 0 || snp_report_parse(b, SNP_REPORT_SIZE, &r) < 0) {
                attest_anchors_free(a);
                printf("# cannot sign or parse the synthetic report\n");
                return -EIO;
        }
        if (crl) {
                X509_CRL *c = NULL;
                crls = sk_X509_CRL_new_null();
                if (attest_load_crl(tpath(crl), &c) < 0 || !sk_X509_CRL_push(crls, c))
                        printf("# cannot load %s\n", crl);
        }
        k = verify(&r, tpath(leaf), chain ? tpath(chain) : NULL, a, crls, p);
        sk_X509_CRL_pop_free(crls, X509_CRL_free);
        attest_anchors_free(a);
        return k;
}

static void test_synthetic_chain(void) {
        uint8_t b[SNP_REPORT_SIZE];
        AttestProblems p;

        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == 0,
              "synthetic Milan v3 report signed by the test VCEK verifies against the test ARK");
        synth(b, 2);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == 0,
              "synthetic Milan v2 report verifies (layout from the VCEK)");
        synth(b, 5);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == 0,
              "synthetic Milan v5 report verifies");
        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan-wrapped.pem", "chain-milan.pem", NULL, &p) == 0,
              "VCEK with the hwID wrapped in an OCTET STRING verifies");

        synth(b, 3);
        put64(b, 0x180, UINT64_C(0x7408000000000003));
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == -EBADE &&
                      has_reason(&p, "tcb", "VCEK TCB microcode 0x73 != reported TCB 0x74") && p.n == 1,
              "reported TCB microcode differs from the VCEK's: 'VCEK TCB microcode 0x73 != reported TCB 0x74'");
        synth(b, 3);
        put64(b, 0x180, UINT64_C(0x7309000000000003));
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == -EBADE &&
                      has_reason(&p, "tcb", "snp 0x08 != reported TCB 0x09"),
              "SNP SPL mismatch named");
        synth(b, 3);
        put64(b, 0x038, UINT64_C(0xce08000000000003)); /* current TCB newer than reported: fine */
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == 0,
              "the VCEK is compared with REPORTED_TCB, not CURRENT_TCB");

        synth(b, 3);
        b[0x1A0 + 5] ^= 1;
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == -EBADE &&
                      attest_problems_has(&p, "hwid") && p.n == 1,
              "chip_id differs from the VCEK hwID: rejected");
        synth(b, 3);
        memset(b + 0x1A0, 0, 64);
        b[0x048] = 0x02; /* MASK_CHIP_KEY */
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == 0,
              "masked chip id: no hwID comparison");

        synth(b, 3);
        memset(b + 0x1A0, 0, 64);
        b[0x048] = 0x04; /* SIGNING_KEY = VLEK */
        CHECK(synth_verify(b, "vlek-milan.key", "vlek-milan.pem", "chain-vlek-milan.pem", NULL, &p) == 0,
              "VLEK-signed report verifies against SEV-VLEK-Milan");
        synth(b, 3);
        memset(b + 0x1A0, 0, 64);
        CHECK(synth_verify(b, "vlek-milan.key", "vlek-milan.pem", "chain-vlek-milan.pem", NULL, &p) == -EBADE &&
                      has_reason(&p, "signer", "signed by a VCEK, but the certificate is a VLEK"),
              "signer_info says VCEK but a VLEK signed: rejected");
        synth(b, 3);
        b[0x048] = 0x04;
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == -EBADE &&
                      attest_problems_has(&p, "signer"),
              "signer_info says VLEK but a VCEK is given: rejected");
        synth(b, 3);
        b[0x048] = 0x1C;
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == -EBADE &&
                      has_reason(&p, "signer", "not signed"),
              "SIGNING_KEY none: rejected");
        synth(b, 3);
        CHECK(synth_verify(b, "vlek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == -EBADE &&
                      attest_problems_has(&p, "report-signature") && p.n == 1,
              "report signed by another key: report signature invalid");

        synth_turin(b, 3);
        CHECK(synth_verify(b, "vcek-turin.key", "vcek-turin.pem", "chain-turin.pem", NULL, &p) == 0,
              "synthetic Turin v3 report (8-byte chip id, FMC) verifies");
        synth_turin(b, 2);
        CHECK(synth_verify(b, "vcek-turin.key", "vcek-turin.pem", "chain-turin.pem", NULL, &p) == 0,
              "synthetic Turin v2 report verifies (Turin layout from the VCEK product name)");
        synth_turin(b, 3);
        b[0x180] = 2; /* FMC */
        CHECK(synth_verify(b, "vcek-turin.key", "vcek-turin.pem", "chain-turin.pem", NULL, &p) == -EBADE &&
                      has_reason(&p, "tcb", "VCEK TCB fmc 0x01 != reported TCB 0x02"),
              "Turin FMC mismatch: rejected");
        synth_turin(b, 3);
        b[0x1A0 + 8] = 1;
        CHECK(synth_verify(b, "vcek-turin.key", "vcek-turin.pem", "chain-turin.pem", NULL, &p) == -EBADE &&
                      attest_problems_has(&p, "hwid"),
              "Turin: chip_id bytes after the 8-byte hwID must be zero");

        synth(b, 3);
        b[0x189] = 0x11; /* Genoa CPUID */
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", NULL, &p) == -EBADE &&
                      has_reason(&p, "product", "is Genoa, but the VCEK is for Milan"),
              "report CPUID says Genoa, VCEK says Milan: rejected");
        synth(b, 3);
        b[0x188] = 0x1A; /* Turin CPUID, Milan-layout TCB */
        b[0x189] = 0x02;
        CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &(SnpReport){}) == -EBADMSG,
              "Turin CPUID with a Milan-layout TCB (reserved bytes set): malformed");

        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan-badsalt.pem", "chain-milan.pem", NULL, &p) == -EBADE &&
                      has_reason(&p, "chain", "salt 48"),
              "VCEK signed with PSS salt 32: refused (parameters are checked, not just the math)");
        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-rogue.pem", NULL, &p) == -EBADE &&
                      has_reason(&p, "ark-pinned", "not one of the trusted ARKs") && attest_problems_has(&p, "chain"),
              "chain with a look-alike ARK-Milan: not pinned, and the VCEK does not chain");
        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-rogue.pem", "chain-rogue-ask.pem", NULL, &p) == -EBADE && p.n == 1 &&
                      has_reason(&p, "chain", "SEV-Milan does not chain to ARK-Milan: signature does not verify"),
              "an ASK named SEV-Milan but not signed by the pinned ARK-Milan: rejected");
        {
                /* The pinned ARK's own signature is checked too (a damaged anchor file). */
                AttestAnchors *bad = load_anchors(tpath("anchors-badsig"));
                SnpReport r;

                synth(b, 3);
                CHECK(bad && sign_report(b, "vcek-milan.key") == 0 && snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 &&
                              verify(&r, tpath("vcek-milan.pem"), tpath("chain-badsig.pem"), bad, NULL, &p) == -EBADE &&
                              p.n == 1 && has_reason(&p, "ark-signature", "ARK-Milan self-signature: signature does not verify"),
                      "an ARK whose self-signature does not verify is refused, even when pinned");
                attest_anchors_free(bad);
        }
        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", NULL, NULL, &p) == -EBADE &&
                      has_reason(&p, "chain", "no certificate for the VCEK issuer SEV-Milan"),
              "no chain and no ASK among the anchors: rejected");

        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", "crl-ark-empty.pem", &p) == 0,
              "a valid empty CRL of the ARK: accepted");
        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", "crl-ark-revokes-ask.pem", &p) == -EBADE &&
                      has_reason(&p, "crl", "SEV-Milan is revoked by the CRL of ARK-Milan"),
              "CRL of the ARK revoking the ASK: rejected");
        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", "crl-ask-revokes-vcek.pem", &p) == -EBADE &&
                      has_reason(&p, "crl", "VCEK is revoked by the CRL of SEV-Milan"),
              "CRL of the ASK revoking the VCEK: rejected");
        synth(b, 3);
        CHECK(synth_verify(b, "vcek-milan.key", "vcek-milan.pem", "chain-milan.pem", "crl-rogue.pem", &p) == -EBADE &&
                      has_reason(&p, "crl", "signature does not verify"),
              "CRL claiming ARK-Milan but signed by another key: rejected");
        synth_turin(b, 3);
        CHECK(synth_verify(b, "vcek-turin.key", "vcek-turin.pem", "chain-turin.pem", "crl-ark-empty.pem", &p) == -EBADE &&
                      has_reason(&p, "crl", "issued by ARK-Milan"),
              "an explicitly given CRL of another ARK: rejected");

        /* A CRL in the anchors directory applies too. */
        {
                char cmd[1200];
                AttestAnchors *a;
                SnpReport r;

                (void) snprintf(cmd, sizeof(cmd), "cp %s %s", tpath("crl-ark-revokes-ask.pem"), tpath("anchors/milan.crl"));
                CHECK(system(cmd) == 0, "CRL copied into the anchors");
                a = load_anchors(tpath("anchors"));
                synth(b, 3);
                CHECK(a && sk_X509_CRL_num(a->crls) == 1 && sign_report(b, "vcek-milan.key") == 0 &&
                              snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 &&
                              verify(&r, tpath("vcek-milan.pem"), tpath("chain-milan.pem"), a, NULL, &p) == -EBADE &&
                              attest_problems_has(&p, "crl"),
                      "a revoking CRL among the anchors (*.crl) rejects the chain");
                synth_turin(b, 3);
                CHECK(a && sign_report(b, "vcek-turin.key") == 0 && snp_report_parse(b, SNP_REPORT_SIZE, &r) == 0 &&
                              verify(&r, tpath("vcek-turin.pem"), tpath("chain-turin.pem"), a, NULL, &p) == 0,
                      "the anchors' Milan CRL does not concern a Turin chain");
                attest_anchors_free(a);
                (void) unlink(tpath("anchors/milan.crl"));
        }
}

static void test_anchors_loading(void) {
        AttestAnchors *a = NULL;
        char dir[] = "/tmp/cvmcrypt-test-anchors.XXXXXX";

        CHECK(attest_anchors_load("/nonexistent/anchors", &a) == -ENOENT, "missing anchors directory: -ENOENT");
        CHECK(mkdtemp(dir) != NULL, "temporary directory");
        CHECK(attest_anchors_load(dir, &a) == -ENOENT && !a, "empty anchors directory: refused, not 'trust nothing'");
        {
                char path[256];
                FILE *f;
                (void) snprintf(path, sizeof(path), "%s/junk.pem", dir);
                f = fopen(path, "we");
                if (f) {
                        fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
                        fclose(f);
                }
                CHECK(attest_anchors_load(dir, &a) == -EBADMSG, "an anchor file that is not a certificate: refused");
                (void) unlink(path);
                (void) snprintf(path, sizeof(path), "%s/README.md", dir);
                f = fopen(path, "we");
                if (f)
                        fclose(f);
                CHECK(attest_anchors_load(dir, &a) == -ENOENT, "other files are ignored");
                (void) unlink(path);
        }
        (void) rmdir(dir);
}

static void test_cert_parsing(void) {
        STACK_OF(X509) *s = NULL;
        size_t size = 0;
        uint8_t *der = read_vector("reports/gsg-milan-v2-report.vcek.der", &size);

        CHECK(der && attest_parse_certs(der, size, &s) == 0 && sk_X509_num(s) == 1, "DER certificate parses");
        sk_X509_pop_free(s, X509_free);
        s = NULL;
        CHECK(der && attest_parse_certs(der, size - 1, &s) == -EBADMSG, "truncated DER refused");
        if (der) {
                uint8_t *longer = malloc(size + 1);
                memcpy(longer, der, size);
                longer[size] = 0;
                CHECK(attest_parse_certs(longer, size + 1, &s) == -EBADMSG, "DER with trailing data refused");
                free(longer);
        }
        free(der);
        CHECK(attest_load_certs(vector_path("negative/kinvolk-wrongchip-vcek-chain.pem"), &s) == 0 && sk_X509_num(s) == 3,
              "PEM with three certificates");
        sk_X509_pop_free(s, X509_free);
        s = NULL;
        CHECK(attest_parse_certs((const uint8_t *) "", 0, &s) == -EBADMSG, "empty input refused");
}

int main(void) {
        int k = make_test_chain();

        CHECK(k == 0, "tests/fixtures/make-test-chain builds the test hierarchy in %s", test_dir);
        test_parse_vectors();
        test_parse_strict();
        test_tcb();
        test_cert_parsing();
        test_anchors_loading();
        test_shipped_anchors();
        test_real_chains();
        test_negative_vceks();
        if (k == 0)
                test_synthetic_chain();
        if (test_dir[0]) {
                char cmd[300];
                (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
                if (system(cmd) != 0)
                        printf("# could not remove %s\n", test_dir);
        }
        return tap_done();
}
