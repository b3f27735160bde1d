/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "encoding.h"
#include "macro.h"
#include "tap.h"
#include "token.h"

#define SHA256 0x000B
#define SHA384 0x000C

static Tpm2Token sample(uint16_t bank, bool attest) {
        Tpm2Token t = { .keyslot = 1, .pin = false, .has_attest = attest };
        size_t digest = bank == SHA256 ? 32 : 48;

        /* TPM2B_PUBLIC of 3 bytes, TPM2B_PRIVATE of 4 bytes. */
        memcpy(t.blob, "\x00\x03pub\x00\x04priv", 11);
        t.blob_size = 11;
        t.pcrs.bank = bank;
        t.pcrs.mask = 1u << 0 | 1u << 4 | 1u << 7 | 1u << 15;
        for (unsigned i = 0; i < TPM_PCR_MAX; i++)
                if (t.pcrs.mask & (1u << i))
                        memset(t.pcrs.value[i], (int) (0x10 + i), digest);
        memset(t.policy_hash, 0xab, sizeof(t.policy_hash));
        t.srk_name[0] = 0x00;
        t.srk_name[1] = 0x0B;
        memset(t.srk_name + 2, 0x5a, 32);
        t.srk_name_size = 34;
        if (attest)
                memset(t.attest, 0xcd, sizeof(t.attest));
        return t;
}

static bool same(const Tpm2Token *a, const Tpm2Token *b) {
        size_t digest = a->pcrs.bank == SHA256 ? 32 : 48;

        if (a->keyslot != b->keyslot || a->blob_size != b->blob_size || memcmp(a->blob, b->blob, a->blob_size) != 0 ||
            a->pcrs.bank != b->pcrs.bank || a->pcrs.mask != b->pcrs.mask ||
            memcmp(a->policy_hash, b->policy_hash, 32) != 0 || a->srk_name_size != b->srk_name_size ||
            memcmp(a->srk_name, b->srk_name, a->srk_name_size) != 0 || a->pin != b->pin ||
            a->has_attest != b->has_attest || (a->has_attest && memcmp(a->attest, b->attest, 32) != 0))
                return false;
        for (unsigned i = 0; i < TPM_PCR_MAX; i++)
                if ((a->pcrs.mask & (1u << i)) && memcmp(a->pcrs.value[i], b->pcrs.value[i], digest) != 0)
                        return false;
        return true;
}

static void test_roundtrip(void) {
        static const struct {
                uint16_t bank;
                bool attest, pin;
                size_t srk_name_size;
        } variants[] = {
                { SHA256, false, false, 34 }, { SHA256, true, true, 34 }, { SHA384, true, false, 50 },
                { SHA384, false, true, 66 },
        };

        for (size_t v = 0; v < ELEMENTSOF(variants); v++) {
                Tpm2Token t = sample(variants[v].bank, variants[v].attest), back = {};
                char why[TOKEN_WHY_MAX] = "", *json = NULL, *json2 = NULL;
                int r;

                t.pin = variants[v].pin;
                t.srk_name_size = variants[v].srk_name_size;
                t.srk_name[1] = variants[v].srk_name_size == 34 ? 0x0B : variants[v].srk_name_size == 50 ? 0x0C : 0x0D;
                r = token_tpm2_format(&t, &json);
                CHECK(r == 0 && json, "variant %zu formats (%d)", v, r);
                if (!json)
                        continue;
                r = token_tpm2_parse(json, &back, why, sizeof(why));
                CHECK(r == 0, "variant %zu parses back (%s)", v, why);
                CHECK(same(&t, &back), "variant %zu: parse(format(x)) == x", v);
                CHECK(token_tpm2_format(&back, &json2) == 0 && strcmp(json, json2) == 0,
                      "variant %zu: format is deterministic", v);
                CHECK((strstr(json, "\"attest\"") != NULL) == variants[v].attest, "variant %zu: attest only when set", v);
                CHECK(strstr(json, variants[v].pin ? "\"tpm2-pin\":true" : "\"tpm2-pin\":false") != NULL,
                      "variant %zu: pin flag written", v);
                free(json);
                free(json2);
        }

        {
                Tpm2Token t = sample(SHA256, true);
                char *json = NULL;

                CHECK(token_tpm2_format(&t, &json) == 0 &&
                              strncmp(json, "{\"type\":\"cvmcrypt-tpm2\",\"keyslots\":[\"1\"],\"version\":1,"
                                            "\"tpm2-blob\":\"AANwdWIABHByaXY=\",\"tpm2-pcrs\":[0,4,7,15],"
                                            "\"tpm2-pcr-bank\":\"sha256\",\"tpm2-pcr-values\":{\"0\":\"1010",
                                      150) == 0,
                      "exact layout: %.150s", json ? json : "(null)");
                free(json);
        }
}

static void test_format_refuses(void) {
        static const char *const names[] = { "no PCRs",         "PCR 24",           "unknown bank",
                                             "malformed blob",  "keyslot 32",       "empty SRK name",
                                             "SHA-1 SRK name", "blob over 1024" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                Tpm2Token t = sample(SHA256, false);
                char *json = NULL;
                int r;

                switch (i) {
                case 0:
                        t.pcrs.mask = 0;
                        break;
                case 1:
                        t.pcrs.mask |= 1u << 24;
                        break;
                case 2:
                        t.pcrs.bank = 0x0004;
                        break;
                case 3:
                        t.blob[1] = 9;
                        break;
                case 4:
                        t.keyslot = 32;
                        break;
                case 5:
                        t.srk_name_size = 0;
                        break;
                case 6:
                        t.srk_name[1] = 0x04;
                        t.srk_name_size = 22;
                        break;
                case 7:
                        t.blob_size = TOKEN_BLOB_MAX + 1;
                        break;
                }
                r = token_tpm2_format(&t, &json);
                CHECK(r == -EINVAL && !json, "format refuses a token with %s (%d)", names[i], r);
                free(json);
        }
        {
                Tpm2Token t = sample(SHA256, false);
                char *json = NULL, why[TOKEN_WHY_MAX] = "";
                Tpm2Token back;

                /* The largest blob: TPM2B_PUBLIC of 510 and TPM2B_PRIVATE of 510 bytes. */
                memset(t.blob, 0x77, TOKEN_BLOB_MAX);
                t.blob[0] = 510 >> 8;
                t.blob[1] = 510 & 0xff;
                t.blob[512] = 510 >> 8;
                t.blob[513] = 510 & 0xff;
                t.blob_size = TOKEN_BLOB_MAX;
                CHECK(token_tpm2_format(&t, &json) == 0 && token_tpm2_parse(json, &back, why, sizeof(why)) == 0 &&
                              same(&t, &back),
                      "a %d-byte blob round-trips (%s)", TOKEN_BLOB_MAX, why);
                free(json);
        }
}

/* The sample token's JSON with one top-level field replaced (value = JSON text) or removed. */
static char *tamper(const char *key, const char *value) {
        Tpm2Token t = sample(SHA256, true);
        char *json = NULL, *out;
        json_object *root, *v;

        if (token_tpm2_format(&t, &json) < 0)
                return NULL;
        root = json_tokener_parse(json);
        free(json);
        if (!root)
                return NULL;
        if (value) {
                v = json_tokener_parse(value);
                json_object_object_add(root, key, v);
        } else
                json_object_object_del(root, key);
        out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
        return out;
}

typedef struct Case {
        const char *key, *value; /* value NULL: field removed */
        int error;
        const char *expect; /* NULL: accepted */
} Case;

#define HEX64(c) "\"" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c "\""

static const Case cases[] = {
        { "type", "\"systemd-tpm2\"", -EINVAL, "token type 'systemd-tpm2' is not cvmcrypt-tpm2" },
        { "type", "\"cvmcrypt-recovery\"", -EINVAL, "token type 'cvmcrypt-recovery' is not cvmcrypt-tpm2" },
        { "type", "5", -EINVAL, "token field 'type' is not a string" },
        { "type", NULL, -EINVAL, "token field 'type' is missing" },
        { "version", "2", -EOPNOTSUPP, "token version 2 is not supported" },
        { "version", "0", -EOPNOTSUPP, "token version 0 is not supported" },
        { "version", "-1", -EOPNOTSUPP, "token version -1 is not supported" },
        { "version", "\"1\"", -EINVAL, "token field 'version' is not an integer" },
        { "version", "1.0", -EINVAL, "token field 'version' is not an integer" },
        { "version", NULL, -EINVAL, "token field 'version' is missing" },
        { "keyslots", "[]", -ENOENT, "its keyslot is gone (token field 'keyslots' is empty)" },
        { "keyslots", "[\"1\",\"2\"]", -EINVAL, "token field 'keyslots' does not list exactly one keyslot" },
        { "keyslots", "[1]", -EINVAL, "token field 'keyslots' does not hold a keyslot number 0..31" },
        { "keyslots", "[\"32\"]", -EINVAL, "token field 'keyslots' does not hold a keyslot number 0..31" },
        { "keyslots", "[\"01\"]", -EINVAL, "token field 'keyslots' does not hold a keyslot number 0..31" },
        { "keyslots", "[\"-1\"]", -EINVAL, "token field 'keyslots' does not hold a keyslot number 0..31" },
        { "keyslots", "[\"\"]", -EINVAL, "token field 'keyslots' does not hold a keyslot number 0..31" },
        { "keyslots", "[\"31\"]", 0, NULL },
        { "keyslots", "\"1\"", -EINVAL, "token field 'keyslots' is not an array" },
        { "keyslots", NULL, -EINVAL, "token field 'keyslots' is missing" },
        { "tpm2-extra", "1", -EINVAL, "token field 'tpm2-extra' is not known" },
        { "Type", "\"x\"", -EINVAL, "token field 'Type' is not known" },
        { "tpm2-blob", NULL, -EINVAL, "token field 'tpm2-blob' is missing" },
        { "tpm2-blob", "7", -EINVAL, "token field 'tpm2-blob' is not a string" },
        { "tpm2-blob", "\"AAA\"", -EINVAL, "token field 'tpm2-blob' is not base64" },
        { "tpm2-blob", "\" AANwdWIABHByaXY=\"", -EINVAL, "token field 'tpm2-blob' is not base64" },
        { "tpm2-blob", "\"AANwdWIABHByaXY=\\n\"", -EINVAL, "token field 'tpm2-blob' is not base64" },
        { "tpm2-blob", "\"AANwdWIABHByaXZ=\"", -EINVAL, "token field 'tpm2-blob' is not base64" }, /* stray bits */
        { "tpm2-blob", "\"AANwdWIABHByaXY\"", -EINVAL, "token field 'tpm2-blob' is not base64" },
        { "tpm2-blob", "\"AA==AANwdWIABHByaXY=\"", -EINVAL, "token field 'tpm2-blob' is not base64" },
        { "tpm2-blob", "\"AANwdWIABHByaXY-\"", -EINVAL, "token field 'tpm2-blob' is not base64" },
        { "tpm2-blob", "\"\"", -EINVAL, "token field 'tpm2-blob' is not a TPM2B_PUBLIC followed by a TPM2B_PRIVATE" },
        { "tpm2-blob", "\"AAEC\"", -EINVAL, "token field 'tpm2-blob' is not a TPM2B_PUBLIC followed by a TPM2B_PRIVATE" },
        { "tpm2-blob", "\"AANwdWIABHByaXYA\"", -EINVAL, "is not a TPM2B_PUBLIC followed by a TPM2B_PRIVATE" },
        { "tpm2-pcrs", "[]", -EINVAL, "token field 'tpm2-pcrs' is empty" },
        { "tpm2-pcrs", "[0,7,4,15]", -EINVAL, "token field 'tpm2-pcrs' is not sorted and unique" },
        { "tpm2-pcrs", "[0,4,4,7,15]", -EINVAL, "token field 'tpm2-pcrs' is not sorted and unique" },
        { "tpm2-pcrs", "[0,4,7,24]", -EINVAL, "token field 'tpm2-pcrs' entry 3 is not a PCR 0..23" },
        { "tpm2-pcrs", "[-1,0,4,7]", -EINVAL, "token field 'tpm2-pcrs' entry 0 is not a PCR 0..23" },
        { "tpm2-pcrs", "[0,4,\"7\",15]", -EINVAL, "token field 'tpm2-pcrs' entry 2 is not an integer" },
        { "tpm2-pcrs", "[0,4,7.0,15]", -EINVAL, "token field 'tpm2-pcrs' entry 2 is not an integer" },
        { "tpm2-pcrs", "\"0,4,7\"", -EINVAL, "token field 'tpm2-pcrs' is not an array" },
        { "tpm2-pcrs", "[0,4,7]", -EINVAL, "token field 'tpm2-pcr-values' has PCR 15, which is not in 'tpm2-pcrs'" },
        { "tpm2-pcrs", "[0,4,7,15,16]", -EINVAL, "token field 'tpm2-pcr-values' has no value for PCR 16" },
        { "tpm2-pcrs", NULL, -EINVAL, "token field 'tpm2-pcrs' is missing" },
        { "tpm2-pcr-bank", "\"sha1\"", -EINVAL, "token field 'tpm2-pcr-bank' is 'sha1', not sha256 or sha384" },
        { "tpm2-pcr-bank", "\"SHA256\"", -EINVAL, "token field 'tpm2-pcr-bank' is 'SHA256', not sha256 or sha384" },
        { "tpm2-pcr-bank", "\"sha384\"", -EINVAL, "token field 'tpm2-pcr-values' PCR 0 is not 96 hex digits" },
        { "tpm2-pcr-bank", "\"sha256\\u0000\"", -EINVAL, "token field 'tpm2-pcr-bank' contains a NUL character" },
        { "tpm2-pcr-bank", NULL, -EINVAL, "token field 'tpm2-pcr-bank' is missing" },
        { "tpm2-pcr-values", "{}", -EINVAL, "token field 'tpm2-pcr-values' has no value for PCR 0" },
        { "tpm2-pcr-values", "[]", -EINVAL, "token field 'tpm2-pcr-values' is not an object" },
        { "tpm2-pcr-values", "{\"00\":\"x\"}", -EINVAL, "token field 'tpm2-pcr-values' key '00' is not a PCR 0..23" },
        { "tpm2-pcr-values", "{\"0\":" HEX64("a") ",\"4\":" HEX64("a") ",\"7\":" HEX64("a") ",\"15\":\"abc\"}", -EINVAL,
          "token field 'tpm2-pcr-values' PCR 15 is not 64 hex digits" },
        { "tpm2-pcr-values", "{\"0\":" HEX64("a") ",\"4\":" HEX64("a") ",\"7\":" HEX64("a") ",\"15\":15}", -EINVAL,
          "token field 'tpm2-pcr-values' PCR 15 is not 64 hex digits" },
        { "tpm2-pcr-values", "{\"0\":" HEX64("a") ",\"4\":" HEX64("a") ",\"7\":" HEX64("a") "}", -EINVAL,
          "token field 'tpm2-pcr-values' has no value for PCR 15" },
        { "tpm2-pcr-values", "{\"0\":" HEX64("a") ",\"4\":" HEX64("a") ",\"7\":" HEX64("a") ",\"15\":" HEX64("B") "}", 0,
          NULL },
        { "tpm2-pcr-values", NULL, -EINVAL, "token field 'tpm2-pcr-values' is missing" },
        { "tpm2-policy-hash", "\"abab\"", -EINVAL, "token field 'tpm2-policy-hash' is not 64 hex digits" },
        { "tpm2-policy-hash", HEX64("g"), -EINVAL, "token field 'tpm2-policy-hash' is not 64 hex digits" },
        { "tpm2-policy-hash", HEX64("A"), 0, NULL },
        { "tpm2-policy-hash", "[]", -EINVAL, "token field 'tpm2-policy-hash' is not a string" },
        { "tpm2-policy-hash", NULL, -EINVAL, "token field 'tpm2-policy-hash' is missing" },
        { "tpm2-srk-name", "\"000b\"", -EINVAL, "token field 'tpm2-srk-name' is not a TPM name" },
        { "tpm2-srk-name", "\"0004aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", -EINVAL, "token field 'tpm2-srk-name' is not a TPM name" },
        { "tpm2-srk-name", "\"000c" "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\"", -EINVAL,
          "token field 'tpm2-srk-name' is not a TPM name" },
        { "tpm2-srk-name", "\"000b" "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5\"", -EINVAL,
          "token field 'tpm2-srk-name' is not a TPM name" },
        { "tpm2-srk-name", "\"000B" "5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A\"", 0, NULL },
        { "tpm2-srk-name", "\"\"", -EINVAL, "token field 'tpm2-srk-name' is not a TPM name" },
        { "tpm2-srk-name", NULL, -EINVAL, "token field 'tpm2-srk-name' is missing" },
        { "tpm2-pin", "\"false\"", -EINVAL, "token field 'tpm2-pin' is not a boolean" },
        { "tpm2-pin", "0", -EINVAL, "token field 'tpm2-pin' is not a boolean" },
        { "tpm2-pin", "true", 0, NULL },
        { "tpm2-pin", NULL, -EINVAL, "token field 'tpm2-pin' is missing" },
        { "attest", "\"abc\"", -EINVAL, "token field 'attest' is not 64 hex digits" },
        { "attest", "null", -EINVAL, "token field 'attest' is not a string" },
        { "attest", NULL, 0, NULL },
};

static void test_tamper(void) {
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const Case *c = &cases[i];
                char why[TOKEN_WHY_MAX] = "", *json = tamper(c->key, c->value);
                Tpm2Token t = { .keyslot = 99 };
                int r;

                if (!json) {
                        CHECK(false, "tamper %s applied", c->key);
                        continue;
                }
                r = token_tpm2_parse(json, &t, why, sizeof(why));
                if (!c->expect)
                        CHECK(r == 0, "%s = %s accepted (%s)", c->key, c->value ? c->value : "(removed)", why);
                else
                        CHECK(r == c->error && strstr(why, c->expect) && t.keyslot == 99,
                              "%s = %.40s refused: '%s' (r=%d)", c->key, c->value ? c->value : "(removed)", why, r);
                free(json);
        }
}

static void test_text(void) {
        static const struct {
                const char *json;
                int error;
                const char *expect;
        } texts[] = {
                { "", -EINVAL, "token is not valid JSON" },
                { "{", -EINVAL, "token is not valid JSON" },
                { "[]", -EINVAL, "token is not a JSON object" },
                { "\"cvmcrypt-tpm2\"", -EINVAL, "token is not a JSON object" },
                { "{\"type\":\"cvmcrypt-tpm2\"} {}", -EINVAL, "token is not valid JSON" },
                { "{\"type\":\"cvmcrypt-tpm2\",}", -EINVAL, "token is not valid JSON" },
                { "{'type':'cvmcrypt-tpm2'}", -EINVAL, "token is not valid JSON" },
                { "{\"type\":\"cvmcrypt-tpm2\",\"version\":1,\"keyslots\":[\"1\"],\"tpm2-pcr-values\":{\"7\":{\"a\":[1]}}}",
                  -EINVAL, "token is not valid JSON: offset 76: nested deeper than 2" },
                { "{\"type\":\"cvmcrypt-\xff\"}", -EINVAL, "token is not valid JSON: offset 18: invalid utf-8" },
                /* json-c would keep the last "version"; another reader might keep the first. */
                { "{\"type\":\"cvmcrypt-tpm2\",\"version\":1,\"version\":2}", -EINVAL,
                  "token is not valid JSON: offset 45: key 'version' appears twice in one object" },
                { "{\"type\":\"cvmcrypt-tpm2\",\"version\":1,\"keyslots\":[\"0\"],\"tpm2-pcr-values\":{\"7\":\"aa\",\"7\":\"bb\"}}",
                  -EINVAL, "key '7' appears twice in one object" },
                { "{\"type\":\"cvmcrypt-tpm2\",\"version\":2,\"tpm3-blob\":\"x\"}", -EOPNOTSUPP, "token version 2 is not supported" },
                { "{\"type\":\"cvmcrypt-tpm2\",\"version\":99999999999999999999}", -EOPNOTSUPP, "is not supported" },
                { "{\"type\":\"cvmcrypt-tpm2\",\"version\":1,\"keyslots\":[\"0\"]}", -EINVAL,
                  "token field 'tpm2-blob' is missing" },
                { "{\"type\":\"\x1b[31mred\",\"version\":1}", -EINVAL, "control character 0x1b in a string" },
                { "{\"type\":\"\\u001b[31mred\",\"version\":1}", -EINVAL, "token type '\\x1b[31mred' is not cvmcrypt-tpm2" },
        };
        char why[TOKEN_WHY_MAX];
        Tpm2Token t;

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                int r = token_tpm2_parse(texts[i].json, &t, why, sizeof(why));

                CHECK(r == texts[i].error && strstr(why, texts[i].expect), "text %zu refused: '%s' (r=%d)", i, why, r);
        }

        {
                size_t n = TOKEN_JSON_MAX + 10;
                char *big = malloc(n + 1);
                int r;

                memset(big, ' ', n);
                big[0] = '{';
                big[n - 1] = '}';
                big[n] = '\0';
                r = token_tpm2_parse(big, &t, why, sizeof(why));
                CHECK(r == -E2BIG && strstr(why, "token JSON is larger than 16384 bytes"), "oversized token: %s", why);
                free(big);
        }
        {
                /* 1025 decoded bytes: over the bound, refused before the structure check. */
                uint8_t raw[TOKEN_BLOB_MAX + 1] = {};
                char b64[1400], *json;
                size_t len;
                int r;

                base64_encode(raw, sizeof(raw), b64);
                len = strlen(b64) + 16;
                json = malloc(len);
                (void) snprintf(json, len, "\"%s\"", b64);
                {
                        char *tampered = tamper("tpm2-blob", json);

                        r = token_tpm2_parse(tampered, &t, why, sizeof(why));
                        CHECK(r == -E2BIG && strstr(why, "token field 'tpm2-blob' is larger than 1024 bytes"),
                              "1025-byte blob refused: %s", why);
                        free(tampered);
                }
                free(json);
        }
        CHECK(token_tpm2_parse("[]", &t, NULL, 0) == -EINVAL, "no why buffer");
}

static void test_recovery(void) {
        RecoveryToken t = { .keyslot = 3 }, back = { .keyslot = 99 };
        char *json = NULL, why[TOKEN_WHY_MAX] = "";
        Tpm2Token tpm;
        int r;

        r = token_recovery_format(&t, &json);
        CHECK(r == 0 && json && strcmp(json, "{\"type\":\"cvmcrypt-recovery\",\"keyslots\":[\"3\"],\"version\":1}") == 0,
              "recovery token format: %s", json ? json : "(null)");
        r = json ? token_recovery_parse(json, &back, why, sizeof(why)) : -1;
        CHECK(r == 0 && back.keyslot == 3, "recovery token parses back (%s)", why);
        r = json ? token_tpm2_parse(json, &tpm, why, sizeof(why)) : -1;
        CHECK(r == -EINVAL && strstr(why, "token type 'cvmcrypt-recovery' is not cvmcrypt-tpm2"),
              "a recovery token is not a TPM token: %s", why);
        free(json);

        t.keyslot = 32;
        json = NULL;
        CHECK(token_recovery_format(&t, &json) == -EINVAL && !json, "recovery format refuses keyslot 32");

        {
                static const struct {
                        const char *json;
                        int error;
                        const char *expect;
                } texts[] = {
                        { "{\"type\":\"cvmcrypt-recovery\",\"keyslots\":[\"0\"],\"version\":1,\"x\":1}", -EINVAL,
                          "token field 'x' is not known" },
                        { "{\"type\":\"cvmcrypt-recovery\",\"keyslots\":[\"0\"],\"version\":3}", -EOPNOTSUPP,
                          "token version 3 is not supported" },
                        { "{\"type\":\"cvmcrypt-recovery\",\"keyslots\":[\"0\",\"1\"],\"version\":1}", -EINVAL,
                          "token field 'keyslots' does not list exactly one keyslot" },
                        { "{\"type\":\"cvmcrypt-recovery\",\"keyslots\":[\"0\"]}", -EINVAL,
                          "token field 'version' is missing" },
                        { "{\"type\":\"cvmcrypt-tpm2\",\"keyslots\":[\"0\"],\"version\":1}", -EINVAL,
                          "token type 'cvmcrypt-tpm2' is not cvmcrypt-recovery" },
                        { "{\"keyslots\":[\"0\"],\"version\":1}", -EINVAL, "token field 'type' is missing" },
                        { "{\"type\":\"cvmcrypt-recovery\",\"keyslots\":[\"0\"],\"version\":1,\"tpm2-pin\":false}", -EINVAL,
                          "token field 'tpm2-pin' is not known" },
                        { "{\"type\":\"cvmcrypt-recovery\",\"keyslots\":[\"31\"],\"version\":1}", 0, NULL },
                };

                for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                        back.keyslot = 99;
                        r = token_recovery_parse(texts[i].json, &back, why, sizeof(why));
                        if (!texts[i].expect)
                                CHECK(r == 0 && back.keyslot == 31, "recovery text %zu accepted (%s)", i, why);
                        else
                                CHECK(r == texts[i].error && strstr(why, texts[i].expect) && back.keyslot == 99,
                                      "recovery text %zu refused: '%s' (r=%d)", i, why, r);
                }
        }
}

#define PROV_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define PROV_HEAD "{\"type\":\"cvmcrypt-provision\",\"keyslots\":[\"0\"],\"version\":1,"

static void test_provision(void) {
        ProvisionToken t = { .keyslot = 2, .bank = 0x000B, .pcr_mask = (1u << 7) | (1u << 9) }, back;
        char *json = NULL, why[TOKEN_WHY_MAX] = "";
        RecoveryToken rec;
        int r;

        for (size_t i = 0; i < sizeof(t.key); i++)
                t.key[i] = (uint8_t) i;
        r = token_provision_format(&t, &json);
        CHECK(r == 0 && json && strcmp(json, "{\"type\":\"cvmcrypt-provision\",\"keyslots\":[\"2\"],\"version\":1,\"key\":\""
                                             PROV_KEY "\",\"tpm2-pcrs\":[7,9],\"tpm2-pcr-bank\":\"sha256\"}") == 0,
              "provision token format: %s", json ? json : "(null)");
        r = json ? token_provision_parse(json, &back, why, sizeof(why)) : -1;
        CHECK(r == 0 && memcmp(&back, &t, sizeof(t)) == 0, "provision token parses back (%s)", why);
        r = json ? token_recovery_parse(json, &rec, why, sizeof(why)) : -1;
        CHECK(r == -EINVAL && strstr(why, "is not cvmcrypt-recovery"), "a provision token is no recovery token: %s", why);
        free(json);
        json = NULL;
        /* The state after the re-key dropped the build-time slot. */
        t.keyslot_gone = true;
        t.keyslot = 0;
        r = token_provision_format(&t, &json);
        CHECK(r == 0 && json && strstr(json, "\"keyslots\":[],"), "provision token without keyslot: %s",
              json ? json : "(null)");
        r = json ? token_provision_parse(json, &back, why, sizeof(why)) : -1;
        CHECK(r == 0 && memcmp(&back, &t, sizeof(t)) == 0, "it parses back (%s)", why);
        free(json);
        json = NULL;
        t.bank = 0x0004;
        CHECK(token_provision_format(&t, &json) == -EINVAL && !json, "provision format refuses sha1");

        {
                static const struct {
                        const char *json;
                        int error;
                        const char *expect;
                } texts[] = {
                        { PROV_HEAD "\"key\":\"" PROV_KEY "\",\"tpm2-pcrs\":[],\"tpm2-pcr-bank\":\"sha384\"}", 0, NULL },
                        { PROV_HEAD "\"key\":\"" PROV_KEY "\",\"tpm2-pcrs\":[],\"tpm2-pcr-bank\":\"sha256\",\"volume-key\":\"AAEC\"}",
                          -EINVAL, "token field 'volume-key' is not known" },
                        { PROV_HEAD "\"key\":\"AAEC\",\"tpm2-pcrs\":[],\"tpm2-pcr-bank\":\"sha256\"}", -EINVAL,
                          "token field 'key' is not 32 bytes of base64" },
                        { PROV_HEAD "\"key\":\"" PROV_KEY "\",\"tpm2-pcrs\":[7,7],\"tpm2-pcr-bank\":\"sha256\"}", -EINVAL,
                          "'tpm2-pcrs' is not sorted and unique" },
                        { PROV_HEAD "\"key\":\"" PROV_KEY "\",\"tpm2-pcrs\":[24],\"tpm2-pcr-bank\":\"sha256\"}", -EINVAL,
                          "entry 0 is not a PCR 0..23" },
                        { PROV_HEAD "\"key\":\"" PROV_KEY "\",\"tpm2-pcrs\":[],\"tpm2-pcr-bank\":\"sha1\"}", -EINVAL,
                          "'tpm2-pcr-bank' is 'sha1'" },
                        { PROV_HEAD "\"key\":\"" PROV_KEY "\",\"tpm2-pcrs\":[]}", -EINVAL,
                          "token field 'tpm2-pcr-bank' is missing" },
                        { PROV_HEAD "\"key\":\"" PROV_KEY "\",\"tpm2-pcrs\":[],\"tpm2-pcr-bank\":\"sha256\",\"x\":1}", -EINVAL,
                          "token field 'x' is not known" },
                        { PROV_HEAD "\"key\":1,\"tpm2-pcrs\":[],\"tpm2-pcr-bank\":\"sha256\"}", -EINVAL,
                          "token field 'key' is not" },
                };

                for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                        r = token_provision_parse(texts[i].json, &back, why, sizeof(why));
                        if (!texts[i].expect)
                                CHECK(r == 0 && back.keyslot == 0 && back.pcr_mask == 0 && back.bank == 0x000C,
                                      "provision text %zu accepted (%s)", i, why);
                        else
                                CHECK(r == texts[i].error && strstr(why, texts[i].expect),
                                      "provision text %zu refused: '%s' (r=%d)", i, why, r);
                }
        }
}

static void test_encoding(void) {
        static const struct {
                const char *text;
                const char *decoded; /* NULL: must be refused */
        } b64[] = {
                { "", "" },          { "Zg==", "f" },     { "Zm8=", "fo" },    { "Zm9v", "foo" },
                { "Zm9vYg==", "foob" }, { "Zh==", NULL },    { "Zm9=", NULL },    { "Zg=", NULL },
                { "Zg", NULL },      { "Z===", NULL },    { "====", NULL },    { "Zg==Zg==", NULL },
                { "Zm9v\n", NULL },  { "Zm 9", NULL },    { "Zm9_", NULL },    { "Zm9-", NULL },
        };
        uint8_t out[16];
        char enc[32];
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(b64); i++) {
                int r = base64_decode_strict(b64[i].text, strlen(b64[i].text), out, sizeof(out), &n);

                if (b64[i].decoded)
                        CHECK(r == 0 && n == strlen(b64[i].decoded) && memcmp(out, b64[i].decoded, n) == 0,
                              "base64 '%s' decodes", b64[i].text);
                else
                        CHECK(r == -EINVAL, "base64 '%s' refused (%d)", b64[i].text, r);
        }
        CHECK(base64_decode_strict("Zm9vYmFy", 8, out, 5, &n) == -E2BIG, "base64 bound enforced");
        base64_encode((const uint8_t *) "foobar", 6, enc);
        CHECK(strcmp(enc, "Zm9vYmFy") == 0, "base64 encode");
        base64_encode((const uint8_t *) "fooba", 5, enc);
        CHECK(strcmp(enc, "Zm9vYmE=") == 0 && base64_encoded_len(5) == 8, "base64 encode with padding");
        CHECK(hex_decode_exact("00fFaB", 6, out, 3) == 0 && out[0] == 0 && out[1] == 0xff && out[2] == 0xab, "hex decode");
        CHECK(hex_decode_exact("00f", 3, out, 2) == -EINVAL, "hex of the wrong length refused");
        CHECK(hex_decode_exact("0g", 2, out, 1) == -EINVAL, "non-hex refused");
        hex_encode((const uint8_t *) "\x01\xab", 2, enc);
        CHECK(strcmp(enc, "01ab") == 0, "hex encode");
}

int main(void) {
        test_encoding();
        test_roundtrip();
        test_format_refuses();
        test_tamper();
        test_text();
        test_recovery();
        test_provision();
        return tap_done();
}
