/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The attestation policy: strict parsing, the canonical form and digest that get measured, and
 * each rule with a report that passes it and one that does not (synthetic reports, since the
 * real vectors only cover a few rules). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "snp-synth.h"
#include "tap.h"

typedef struct PolicyCase {
        const char *json;
        const char *expect; /* substring of why; NULL = must parse */
} PolicyCase;

static void test_policy_parse(void) {
        static const PolicyCase cases[] = {
                { "{}", NULL },
                { " {\n} \n", NULL },
                { "{\"debug\":false,\"min-tcb\":{\"bootloader\":3,\"tee\":0,\"snp\":8,\"microcode\":115,\"fmc\":0},"
                  "\"vmpl\":[0,1],\"host-data\":\"" "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF" "\","
                  "\"family-id\":\"00112233445566778899aabbccddeeff\",\"image-id\":\"00112233445566778899aabbccddeeff\","
                  "\"require-policy-bits\":[\"smt\",17],\"forbid-policy-bits\":[\"migrate-ma\",20],\"min-abi\":\"1.51\","
                  "\"smt\":\"allowed\",\"migration-agent\":\"forbidden\",\"signing-key\":[\"vcek\"],"
                  "\"vm-configuration\":{\"secure-boot\":true,\"tpm-enabled\":true,\"console-enabled\":false}}", NULL },
                { "{\"colour\":1}", "unknown key 'colour'" },
                { "{\"debug\":false,\"debug\":true}", "appears twice" },
                { "{\"debug\":1}", "debug: expected true or false" },
                { "{\"debug\":\"false\"}", "debug: expected true or false" },
                { "{'debug':false}", "expected a key in double quotes" },
                { "{\"debug\":false,}", "expected a key" },
                { "{\"debug\":false} x", "trailing data" },
                { "{\"debug\":false}{}", "trailing data" },
                { "[]", "expected a JSON object" },
                { "", "unexpected end" },
                { "null", "the value is null" },
                { "{\"min-tcb\":{}}", "min-tcb: expected an object" },
                { "{\"min-tcb\":{\"microcode\":256}}", "min-tcb.microcode: 256 is not between 0 and 255" },
                { "{\"min-tcb\":{\"microcode\":-1}}", "is not between 0 and 255" },
                { "{\"min-tcb\":{\"microcode\":1.5}}", "expected an integer" },
                { "{\"min-tcb\":{\"microcode\":99999999999999999999}}", "is not between" },
                { "{\"min-tcb\":{\"ucode\":1}}", "min-tcb: unknown key 'ucode'" },
                { "{\"vmpl\":[]}", "vmpl: empty list" },
                { "{\"vmpl\":[4]}", "vmpl: 4 is not between 0 and 3" },
                { "{\"vmpl\":[0,0]}", "listed twice" },
                { "{\"measurements\":[\"00\"]}", "measurements: expected 96 hex digits" },
                { "{\"measurements\":[]}", "measurements: empty list" },
                { "{\"measurements\":\"" "00" "\"}", "measurements: expected a list" },
                { "{\"host-data\":\"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}", "is not hex" },
                { "{\"family-id\":\"0011\"}", "family-id: expected 32 hex digits" },
                { "{\"require-policy-bits\":[\"frobnicate\"]}", "unknown policy bit 'frobnicate'" },
                { "{\"require-policy-bits\":[3]}", "is not between 16 and 63" },
                { "{\"require-policy-bits\":[\"debug\"]}", "needs \"debug\": true" },
                { "{\"require-policy-bits\":[\"smt\"],\"forbid-policy-bits\":[16]}", "both required and forbidden" },
                { "{\"forbid-policy-bits\":[17]}", "bit 17 is always set" },
                { "{\"forbid-policy-bits\":[19,\"debug\"]}", "listed twice" },
                { "{\"min-abi\":\"1\"}", "is not MAJOR.MINOR" },
                { "{\"min-abi\":\"1.051\"}", "is not MAJOR.MINOR" },
                { "{\"min-abi\":\"1.256\"}", "is not MAJOR.MINOR" },
                { "{\"min-abi\":\"1.5.1\"}", "is not MAJOR.MINOR" },
                { "{\"min-abi\":1.51}", "expected a string" },
                { "{\"smt\":\"maybe\"}", "smt: expected \"allowed\" or \"forbidden\"" },
                { "{\"migration-agent\":true}", "expected \"allowed\" or \"forbidden\"" },
                { "{\"signing-key\":[\"ask\"]}", "expected \"vcek\" or \"vlek\"" },
                { "{\"signing-key\":[\"vcek\",\"vcek\"]}", "listed twice" },
                { "{\"vm-configuration\":{\"secure-boot\":1}}", "vm-configuration.secure-boot: expected true or false" },
                { "{\"vm-configuration\":{\"tpm\":true}}", "vm-configuration: unknown key 'tpm'" },
                { "{\"debug\":NaN}", "malformed number" },
                { "{\"debug\":false /* c */}", "expected ',' or '}'" },
                { "{\"de\\u0062ug\":false}", "escape sequence in an object key" },
                { "{\"min-tcb\":{\"snp\":[[[1]]]}}", "nested deeper than 4" },
                { "{\"debug\":\"\x01\"}", "control character" },
                { "{\"debug\":\"\xff\"}", "invalid utf-8" },
        };
        AttestPolicy p;
        char why[256];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int k;

                why[0] = 0;
                k = attest_policy_parse(cases[i].json, strlen(cases[i].json), &p, why, sizeof(why));
                if (!cases[i].expect)
                        CHECK(k == 0, "policy %zu parses (%s)", i, why);
                else
                        CHECK(k == -EBADMSG && strstr(why, cases[i].expect), "policy %zu refused with '%s' (got %d '%s')", i,
                              cases[i].expect, k, why);
        }
        {
                const char *bad_utf8 = "{\"smt\":\"\xc3\x28\"}";
                CHECK(attest_policy_parse(bad_utf8, strlen(bad_utf8), &p, why, sizeof(why)) == -EBADMSG,
                      "invalid UTF-8 refused: %s", why);
        }
        {
                size_t n = ATTEST_POLICY_FILE_MAX + 1;
                char *big = malloc(n);
                memset(big, ' ', n);
                big[0] = '{';
                big[n - 1] = '}';
                CHECK(attest_policy_parse(big, n, &p, why, sizeof(why)) == -EBADMSG && strstr(why, "larger than"),
                      "policy larger than %u bytes refused", ATTEST_POLICY_FILE_MAX);
                free(big);
        }
        {
                /* 129 measurements: one more than the limit. */
                size_t n = 20 + 129 * 99;
                char *s = malloc(n), *q = s;
                q += sprintf(q, "{\"measurements\":[");
                for (unsigned i = 0; i < 129; i++)
                        q += sprintf(q, "%s\"%096x\"", i ? "," : "", i);
                sprintf(q, "]}");
                CHECK(attest_policy_parse(s, strlen(s), &p, why, sizeof(why)) == -EBADMSG && strstr(why, "more than 128"),
                      "more than 128 measurements refused");
                free(s);
        }
}

static void test_policy_digest(void) {
        static const char *same[] = {
                "{\"measurements\":[\"" "aa0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001" "\",\"" "bb0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002" "\"],\"debug\":false,\"vmpl\":[1,0]}",
                "{ \"vmpl\" : [0, 1],\n  \"measurements\": [\"" "BB0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002" "\", \"" "AA0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001" "\"]}",
                "{\"vmpl\":[0,1],\"smt\":\"allowed\",\"signing-key\":[\"vlek\",\"vcek\"],\"measurements\":[\"" "aa0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001" "\",\"" "bb0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002" "\"],\"min-tcb\":{\"snp\":0}}",
        };
        uint8_t d0[32], d1[32], dx[32];
        AttestPolicy p;
        char why[256], *text = NULL;

        attest_policy_init(&p);
        CHECK(attest_policy_canonical(&p, &text) == 0 &&
                      strcmp(text, "{\"version\":1,\"debug\":false,\"min-tcb\":null,\"vmpl\":null,\"measurements\":null,"
                                   "\"host-data\":null,\"id-key-digest\":null,\"author-key-digest\":null,\"family-id\":null,"
                                   "\"image-id\":null,\"require-policy-bits\":[],\"forbid-policy-bits\":[],\"min-abi\":null,"
                                   "\"smt\":\"allowed\",\"migration-agent\":\"allowed\",\"signing-key\":[\"vcek\",\"vlek\"],"
                                   "\"vm-configuration\":null}") == 0,
              "canonical text of the default policy: %s", strna(text));
        free(text);
        text = NULL;
        CHECK(attest_policy_parse("{}", strlen("{}"), &p, why, sizeof(why)) == 0 && attest_policy_digest(&p, d0) == 0,
              "digest of {}");
        {
                AttestPolicy q;
                uint8_t dq[32];
                attest_policy_init(&q);
                CHECK(attest_policy_digest(&q, dq) == 0 && memcmp(d0, dq, 32) == 0, "{} means the default policy");
        }
        for (size_t i = 0; i < ELEMENTSOF(same); i++) {
                CHECK(attest_policy_parse(same[i], strlen(same[i]), &p, why, sizeof(why)) == 0 &&
                              attest_policy_digest(&p, i == 0 ? d1 : dx) == 0 && (i == 0 || memcmp(d1, dx, 32) == 0),
                      "spelling %zu of one policy has the same digest (%s)", i, why);
        }
        CHECK(memcmp(d0, d1, 32) != 0, "a different policy has a different digest");
        CHECK(attest_policy_parse("{\"debug\":true}", strlen("{\"debug\":true}"), &p, why, sizeof(why)) == 0 && attest_policy_digest(&p, dx) == 0 &&
                      memcmp(d0, dx, 32) != 0,
              "allowing debug changes the digest");
        CHECK(attest_policy_parse("{\"vmpl\":[0,1,2,3]}", strlen("{\"vmpl\":[0,1,2,3]}"), &p, why, sizeof(why)) == 0 && attest_policy_digest(&p, dx) == 0 &&
                      memcmp(d0, dx, 32) == 0,
              "all four VMPLs means any VMPL: same digest as no rule");
}

/* A report for policy tests: parsed (layout known), not signed. */
static SnpReport policy_report(void (*edit)(uint8_t *)) {
        uint8_t b[SNP_REPORT_SIZE];
        SnpReport r = {};

        synth(b, 3);
        if (edit)
                edit(b);
        if (snp_report_parse(b, SNP_REPORT_SIZE, &r) < 0)
                printf("# policy test report does not parse\n");
        return r;
}

/* Checks that the report passes pass_json and fails fail_json with exactly one problem named check. */
static void rule(const char *check, const SnpReport *r, const char *pass_json, const char *fail_json,
                 const AttestVmConfig *vm) {
        AttestPolicy p;
        AttestProblems probs;
        char why[256];
        int k;

        attest_problems_init(&probs);
        k = attest_policy_parse(pass_json, strlen(pass_json), &p, why, sizeof(why));
        if (k == 0)
                k = attest_policy_check(&p, r, vm, &probs);
        show_problems(&probs);
        CHECK(k == 0, "%s: passes %s %s", check, pass_json, why);
        attest_problems_init(&probs);
        k = attest_policy_parse(fail_json, strlen(fail_json), &p, why, sizeof(why));
        if (k == 0)
                k = attest_policy_check(&p, r, vm, &probs);
        for (size_t i = 0; i < probs.n; i++)
                if (strcmp(probs.item[i].check, check) != 0)
                        k = -EINVAL; /* another rule fired too: the case does not test what it says */
        CHECK(k == -EBADE && probs.n >= 1, "%s: fails %s: %s", check, fail_json, probs.n ? probs.item[0].reason : why);
}

static bool passes(const SnpReport *r, const char *json) {
        AttestPolicy p;
        AttestProblems probs;
        char why[256];

        attest_problems_init(&probs);
        return attest_policy_parse(json, strlen(json), &p, why, sizeof(why)) == 0 && attest_policy_check(&p, r, NULL, &probs) == 0;
}

static void edit_debug(uint8_t *b) {
        b[0x00A] |= 0x08;
}
static void edit_vmpl2(uint8_t *b) {
        b[0x030] = 2;
}
static void edit_ids(uint8_t *b) {
        for (size_t i = 0; i < 16; i++)
                b[0x010 + i] = 0x11, b[0x020 + i] = 0x22;
        for (size_t i = 0; i < 32; i++)
                b[0x0C0 + i] = 0x33;
        for (size_t i = 0; i < 48; i++)
                b[0x0E0 + i] = 0x44, b[0x110 + i] = 0x55;
        b[0x048] = 0x01; /* AUTHOR_KEY_EN */
}
static void edit_ma(uint8_t *b) {
        b[0x00A] |= 0x04; /* MIGRATE_MA */
}
static void edit_rollback(uint8_t *b) {
        put64(b, 0x038, UINT64_C(0x7208000000000003)); /* current ucode 0x72 < committed 0x73 */
}
static void edit_vlek(uint8_t *b) {
        b[0x048] = 0x04;
}
static void edit_no_smt(uint8_t *b) {
        put64(b, 0x040, 0);
}

#define H48(x) x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x
#define H32(x) x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x
#define H16(x) x x x x x x x x x x x x x x x x

static void test_policy_rules(void) {
        SnpReport r = policy_report(NULL), dbg = policy_report(edit_debug), ids = policy_report(edit_ids);
        SnpReport turin;
        AttestVmConfig vm = { .has_secure_boot = true, .secure_boot = true, .has_tpm_enabled = true, .tpm_enabled = true,
                              .has_console_enabled = true, .console_enabled = true };

        {
                uint8_t b[SNP_REPORT_SIZE];
                synth_turin(b, 3);
                CHECK(snp_report_parse(b, SNP_REPORT_SIZE, &turin) == 0, "Turin report for policy tests");
        }
        rule("debug", &dbg, "{\"debug\":true}", "{\"debug\":false}", NULL);
        rule("debug", &dbg, "{\"debug\":true}", "{}", NULL);
        rule("min-tcb", &r, "{\"min-tcb\":{\"bootloader\":3,\"tee\":0,\"snp\":8,\"microcode\":115}}",
             "{\"min-tcb\":{\"microcode\":116}}", NULL);
        rule("min-tcb", &r, "{\"min-tcb\":{\"snp\":8,\"fmc\":9}}", "{\"min-tcb\":{\"snp\":9}}", NULL); /* no FMC on Milan */
        rule("min-tcb", &turin, "{\"min-tcb\":{\"fmc\":1,\"bootloader\":2,\"tee\":3,\"snp\":4,\"microcode\":5}}",
             "{\"min-tcb\":{\"fmc\":2}}", NULL);
        {
                /* Each of the four TCBs is checked: only the launch TCB is old here. */
                SnpReport old = r;
                AttestPolicy p;
                AttestProblems probs;
                char why[128];
                old.launch_tcb = UINT64_C(0x7008000000000003);
                attest_problems_init(&probs);
                CHECK(attest_policy_parse("{\"min-tcb\":{\"microcode\":115}}", strlen("{\"min-tcb\":{\"microcode\":115}}"), &p, why, sizeof(why)) == 0 &&
                              attest_policy_check(&p, &old, NULL, &probs) == -EBADE &&
                              has_reason(&probs, "min-tcb", "launch TCB below the minimum: microcode 112 < 115") && probs.n == 1,
                      "min-tcb: the launch TCB is checked too");
        }
        {
                SnpReport rb = policy_report(edit_rollback);
                AttestPolicy p;
                AttestProblems probs;
                attest_policy_init(&p);
                attest_problems_init(&probs);
                CHECK(attest_policy_check(&p, &rb, NULL, &probs) == -EBADE && attest_problems_has(&probs, "tcb-rollback"),
                      "current TCB below the committed TCB: refused as rollback");
        }
        {
                SnpReport v2 = policy_report(edit_vmpl2);
                rule("vmpl", &v2, "{\"vmpl\":[0,2]}", "{\"vmpl\":[0,1]}", NULL);
        }
        rule("measurements", &r,
             "{\"measurements\":[\"" H48("00") "\",\"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f\"]}",
             "{\"measurements\":[\"" H48("00") "\"]}", NULL);
        rule("host-data", &ids, "{\"host-data\":\"" H32("33") "\"}", "{\"host-data\":\"" H32("34") "\"}", NULL);
        rule("id-key-digest", &ids, "{\"id-key-digest\":[\"" H48("44") "\"]}", "{\"id-key-digest\":[\"" H48("45") "\"]}", NULL);
        rule("author-key-digest", &ids, "{\"author-key-digest\":[\"" H48("55") "\"]}",
             "{\"author-key-digest\":[\"" H48("56") "\"]}", NULL);
        rule("author-key-digest", &r, "{}", "{\"author-key-digest\":[\"" H48("00") "\"]}", NULL); /* AUTHOR_KEY_EN 0 */
        rule("family-id", &ids, "{\"family-id\":\"" H16("11") "\"}", "{\"family-id\":\"" H16("12") "\"}", NULL);
        rule("image-id", &ids, "{\"image-id\":\"" H16("22") "\"}", "{\"image-id\":\"" H16("23") "\"}", NULL);
        rule("require-policy-bits", &r, "{\"require-policy-bits\":[\"smt\",17]}", "{\"require-policy-bits\":[\"single-socket\"]}",
             NULL);
        rule("require-policy-bits", &r, "{\"require-policy-bits\":[16]}", "{\"require-policy-bits\":[40]}", NULL);
        rule("forbid-policy-bits", &r, "{\"forbid-policy-bits\":[\"migrate-ma\",20]}", "{\"forbid-policy-bits\":[\"smt\"]}",
             NULL);
        rule("min-abi", &r, "{\"min-abi\":\"1.55\"}", "{\"min-abi\":\"1.56\"}", NULL);
        rule("min-abi", &r, "{\"min-abi\":\"0.200\"}", "{\"min-abi\":\"2.0\"}", NULL);
        {
                SnpReport nosmt = policy_report(edit_no_smt);
                CHECK(passes(&nosmt, "{\"smt\":\"forbidden\"}"), "smt: forbidden passes on a host with SMT off");
        }
        rule("smt", &r, "{\"smt\":\"allowed\"}", "{\"smt\":\"forbidden\"}", NULL);
        {
                SnpReport ma = policy_report(edit_ma);
                rule("migration-agent", &ma, "{\"migration-agent\":\"allowed\"}", "{\"migration-agent\":\"forbidden\"}", NULL);
        }
        {
                SnpReport vlek = policy_report(edit_vlek);
                rule("signing-key", &vlek, "{\"signing-key\":[\"vlek\"]}", "{\"signing-key\":[\"vcek\"]}", NULL);
                rule("signing-key", &r, "{\"signing-key\":[\"vcek\"]}", "{\"signing-key\":[\"vlek\"]}", NULL);
        }
        rule("vm-configuration", &r, "{\"vm-configuration\":{\"secure-boot\":true,\"tpm-enabled\":true}}",
             "{\"vm-configuration\":{\"console-enabled\":false}}", &vm);
        rule("vm-configuration", &r, "{}", "{\"vm-configuration\":{\"secure-boot\":true}}", NULL);
        {
                AttestVmConfig partial = { .has_secure_boot = true, .secure_boot = true };
                rule("vm-configuration", &r, "{\"vm-configuration\":{\"secure-boot\":true}}",
                     "{\"vm-configuration\":{\"tpm-enabled\":true}}", &partial);
        }

        /* Every violated rule is reported, not just the first. */
        {
                const char *json = "{\"min-tcb\":{\"microcode\":200},\"vmpl\":[3],\"measurements\":[\"" H48("00") "\"],"
                                   "\"host-data\":\"" H32("01") "\",\"min-abi\":\"9.0\",\"smt\":\"forbidden\","
                                   "\"signing-key\":[\"vlek\"],\"require-policy-bits\":[\"single-socket\"]}";
                AttestPolicy p;
                AttestProblems probs;
                char why[256];
                static const char *const expect[] = { "debug", "min-tcb", "vmpl", "measurements", "host-data", "min-abi",
                                                      "smt", "signing-key", "require-policy-bits" };
                bool all = true;

                attest_problems_init(&probs);
                CHECK(attest_policy_parse(json, strlen(json), &p, why, sizeof(why)) == 0 &&
                              attest_policy_check(&p, &dbg, NULL, &probs) == -EBADE,
                      "a report violating nine rules fails");
                for (size_t i = 0; i < ELEMENTSOF(expect); i++)
                        all = all && attest_problems_has(&probs, expect[i]);
                CHECK(all && probs.n == 4 + ELEMENTSOF(expect) - 1,
                      "each violated rule is listed (min-tcb once per TCB: %zu problems)", probs.n);
                show_problems(&probs);
        }
}

int main(void) {
        test_policy_parse();
        test_policy_digest();
        test_policy_rules();
        return tap_done();
}
