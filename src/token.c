/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "encoding.h"
#include "json-strict.h"
#include "log.h"
#include "macro.h"
#include "token.h"

#define TPM2_ALG_SHA256 0x000Bu
#define TPM2_ALG_SHA384 0x000Cu
#define TPM2_ALG_SHA512 0x000Du

/* The root object, then tpm2-pcr-values / tpm2-pcrs / keyslots: nothing nests deeper. */
#define TOKEN_JSON_DEPTH 2

/* Host-controlled text in a message: short, control bytes escaped. */
static const char *shown(const char *s, char buf[static 40]) {
        return log_escape(buf, 40, s);
}

static size_t bank_digest_size(uint16_t bank) {
        return bank == TPM2_ALG_SHA256 ? 32 : bank == TPM2_ALG_SHA384 ? 48 : 0;
}

static const char *bank_name(uint16_t bank) {
        return bank == TPM2_ALG_SHA256 ? "sha256" : bank == TPM2_ALG_SHA384 ? "sha384" : NULL;
}

/* Plain decimal, no leading zeros, at most max. */
static bool parse_small(const char *s, unsigned max, unsigned *ret) {
        unsigned v = 0;

        if (!*s || (s[0] == '0' && s[1]) || strlen(s) > 3)
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                v = v * 10 + (unsigned) (*s - '0');
        }
        if (v > max)
                return false;
        *ret = v;
        return true;
}

/* Parses the whole string as one JSON object: strict syntax (no duplicate keys: another reader
 * might take the first where json-c takes the last), bounded size and depth, nothing after. */
static int parse_object(const char *json, json_object **ret, char *why, size_t n) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        size_t len = strnlen(json, TOKEN_JSON_MAX + 1);
        char parse_why[TOKEN_WHY_MAX] = "";
        int r;

        if (len > TOKEN_JSON_MAX)
                return format_reason(why, n, -E2BIG, "token JSON is larger than %d bytes", TOKEN_JSON_MAX);
        r = json_parse_strict(json, len, TOKEN_JSON_DEPTH, &root, parse_why, sizeof(parse_why));
        if (r == -ENOMEM)
                return format_reason(why, n, r, "out of memory");
        if (r < 0)
                return format_reason(why, n, -EINVAL, "token is not valid JSON: %s", parse_why);
        if (!json_object_is_type(root, json_type_object))
                return format_reason(why, n, -EINVAL, "token is not a JSON object");
        *ret = TAKE_PTR(root);
        return 0;
}

/* A required field of the given type; a string must not hide a NUL. */
static int field(json_object *root, const char *key, json_type type, json_object **ret, char *why, size_t n) {
        json_object *v;

        if (!json_object_object_get_ex(root, key, &v))
                return format_reason(why, n, -EINVAL, "token field '%s' is missing", key);
        if (!json_object_is_type(v, type))
                return format_reason(why, n, -EINVAL, "token field '%s' is not %s", key, json_type_phrase(type));
        if (type == json_type_string && strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
                return format_reason(why, n, -EINVAL, "token field '%s' contains a NUL character", key);
        *ret = v;
        return 0;
}

static int check_fields(json_object *root, const char *const *allowed, size_t count, char *why, size_t n) {
        json_object_object_foreach(root, key, val) {
                bool known = false;
                char buf[40];

                (void) val;
                for (size_t i = 0; i < count && !known; i++)
                        known = strcmp(key, allowed[i]) == 0;
                if (!known)
                        return format_reason(why, n, -EINVAL, "token field '%s' is not known", shown(key, buf));
        }
        return 0;
}

/* type, version and keyslots: common to both token kinds. The version is checked before the other
 * fields so a newer token says "version 2" rather than "field 'x' is not known". */
static int parse_common(json_object *root, const char *type, unsigned *ret_keyslot, char *why, size_t n) {
        json_object *v, *e;
        char buf[40];
        int64_t version;
        int r;

        r = field(root, "type", json_type_string, &v, why, n);
        if (r < 0)
                return r;
        if (strcmp(json_object_get_string(v), type) != 0)
                return format_reason(why, n, -EINVAL, "token type '%s' is not %s", shown(json_object_get_string(v), buf), type);
        r = field(root, "version", json_type_int, &v, why, n);
        if (r < 0)
                return r;
        version = json_object_get_int64(v);
        if (version != TOKEN_VERSION)
                return format_reason(why, n, -EOPNOTSUPP, "token version %lld is not supported", (long long) version);
        r = field(root, "keyslots", json_type_array, &v, why, n);
        if (r < 0)
                return r;
        /* libcryptsetup empties the list when the keyslot is destroyed: say so plainly. */
        if (json_object_array_length(v) == 0)
                return format_reason(why, n, -ENOENT, "its keyslot is gone (token field 'keyslots' is empty)");
        if (json_object_array_length(v) != 1)
                return format_reason(why, n, -EINVAL, "token field 'keyslots' does not list exactly one keyslot");
        e = json_object_array_get_idx(v, 0);
        if (!json_object_is_type(e, json_type_string) ||
            !parse_small(json_object_get_string(e), TOKEN_KEYSLOT_MAX, ret_keyslot))
                return format_reason(why, n, -EINVAL, "token field 'keyslots' does not hold a keyslot number 0..%d",
                            TOKEN_KEYSLOT_MAX);
        return 0;
}

static int parse_hex_field(json_object *root, const char *key, uint8_t *out, size_t size, char *why, size_t n) {
        json_object *v;
        int r = field(root, key, json_type_string, &v, why, n);

        if (r < 0)
                return r;
        if (hex_decode_exact(json_object_get_string(v), (size_t) json_object_get_string_len(v), out, size) < 0)
                return format_reason(why, n, -EINVAL, "token field '%s' is not %zu hex digits", key, 2 * size);
        return 0;
}

/* The marshalled pair tpm_unseal() loads: TPM2B_PUBLIC then TPM2B_PRIVATE, each a big-endian
 * 16-bit size and that many bytes, nothing after. */
static bool blob_well_formed(const uint8_t *p, size_t size) {
        size_t pub, priv;

        if (size < 2)
                return false;
        pub = (size_t) p[0] << 8 | p[1];
        if (pub == 0 || size < 2 + pub + 2)
                return false;
        priv = (size_t) p[2 + pub] << 8 | p[2 + pub + 1];
        return priv > 0 && 2 + pub + 2 + priv == size;
}

static bool srk_name_well_formed(const uint8_t *p, size_t size) {
        uint16_t alg;

        if (size < 2)
                return false;
        alg = (uint16_t) (p[0] << 8 | p[1]);
        return (alg == TPM2_ALG_SHA256 && size == 2 + 32) || (alg == TPM2_ALG_SHA384 && size == 2 + 48) ||
               (alg == TPM2_ALG_SHA512 && size == 2 + 64);
}

static int parse_bank(json_object *root, uint16_t *ret, char *why, size_t n) {
        json_object *v;
        const char *bank;
        char buf[40];
        int r;

        r = field(root, "tpm2-pcr-bank", json_type_string, &v, why, n);
        if (r < 0)
                return r;
        bank = json_object_get_string(v);
        if (strcmp(bank, "sha256") == 0)
                *ret = TPM2_ALG_SHA256;
        else if (strcmp(bank, "sha384") == 0)
                *ret = TPM2_ALG_SHA384;
        else
                return format_reason(why, n, -EINVAL, "token field 'tpm2-pcr-bank' is '%s', not sha256 or sha384",
                            shown(bank, buf));
        return 0;
}

/* tpm2-pcrs: sorted, unique PCR numbers. */
static int parse_pcr_array(json_object *root, bool allow_empty, uint32_t *ret, char *why, size_t n) {
        json_object *v;
        uint32_t mask = 0;
        int last = -1, r;

        r = field(root, "tpm2-pcrs", json_type_array, &v, why, n);
        if (r < 0)
                return r;
        if (json_object_array_length(v) == 0 && !allow_empty)
                return format_reason(why, n, -EINVAL, "token field 'tpm2-pcrs' is empty");
        for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *e = json_object_array_get_idx(v, i);
                int64_t pcr;

                if (!json_object_is_type(e, json_type_int))
                        return format_reason(why, n, -EINVAL, "token field 'tpm2-pcrs' entry %zu is not an integer", i);
                pcr = json_object_get_int64(e);
                if (pcr < 0 || pcr >= TPM_PCR_MAX)
                        return format_reason(why, n, -EINVAL, "token field 'tpm2-pcrs' entry %zu is not a PCR 0..%d", i,
                                    TPM_PCR_MAX - 1);
                /* Sorted and unique: one spelling per PCR set. */
                if (pcr <= last)
                        return format_reason(why, n, -EINVAL, "token field 'tpm2-pcrs' is not sorted and unique");
                last = (int) pcr;
                mask |= UINT32_C(1) << pcr;
        }
        *ret = mask;
        return 0;
}

static int parse_pcrs(json_object *root, Tpm2Token *t, char *why, size_t n) {
        json_object *v;
        size_t digest_size, count = 0;
        int r;

        r = parse_bank(root, &t->pcrs.bank, why, n);
        if (r < 0)
                return r;
        digest_size = bank_digest_size(t->pcrs.bank);
        r = parse_pcr_array(root, false, &t->pcrs.mask, why, n);
        if (r < 0)
                return r;

        r = field(root, "tpm2-pcr-values", json_type_object, &v, why, n);
        if (r < 0)
                return r;
        json_object_object_foreach(v, key, val) {
                unsigned pcr;
                char buf[40];

                if (!parse_small(key, TPM_PCR_MAX - 1, &pcr))
                        return format_reason(why, n, -EINVAL, "token field 'tpm2-pcr-values' key '%s' is not a PCR 0..%d",
                                    shown(key, buf), TPM_PCR_MAX - 1);
                if (!(t->pcrs.mask & (UINT32_C(1) << pcr)))
                        return format_reason(why, n, -EINVAL, "token field 'tpm2-pcr-values' has PCR %u, which is not in 'tpm2-pcrs'",
                                    pcr);
                if (!json_object_is_type(val, json_type_string) ||
                    hex_decode_exact(json_object_get_string(val), (size_t) json_object_get_string_len(val),
                                     t->pcrs.value[pcr], digest_size) < 0)
                        return format_reason(why, n, -EINVAL, "token field 'tpm2-pcr-values' PCR %u is not %zu hex digits", pcr,
                                    2 * digest_size);
                count++;
        }
        /* Keys are unique and all in the mask, so equal counts mean the same set. */
        if (count == (size_t) __builtin_popcount(t->pcrs.mask))
                return 0;
        for (unsigned i = 0; i < TPM_PCR_MAX; i++) {
                char name[4];

                (void) snprintf(name, sizeof(name), "%u", i);
                if ((t->pcrs.mask & (UINT32_C(1) << i)) && !json_object_object_get_ex(v, name, NULL))
                        return format_reason(why, n, -EINVAL, "token field 'tpm2-pcr-values' has no value for PCR %u", i);
        }
        return format_reason(why, n, -EINVAL, "token field 'tpm2-pcr-values' does not cover exactly 'tpm2-pcrs'");
}

int token_tpm2_parse(const char *json, Tpm2Token *ret, char *why, size_t why_size) {
        static const char *const fields[] = { "type", "keyslots", "version", "tpm2-blob", "tpm2-pcrs", "tpm2-pcr-bank",
                                              "tpm2-pcr-values", "tpm2-policy-hash", "tpm2-srk-name", "tpm2-pin",
                                              "attest" };
        _cleanup_(json_object_putp) json_object *root = NULL;
        Tpm2Token tok = {}, *t = &tok;
        json_object *v;
        const char *s;
        size_t len;
        int r;

        if (why_size > 0)
                why[0] = '\0';
        r = parse_object(json, &root, why, why_size);
        if (r < 0)
                return r;
        r = parse_common(root, TOKEN_TPM2_TYPE, &t->keyslot, why, why_size);
        if (r < 0)
                return r;
        r = check_fields(root, fields, ELEMENTSOF(fields), why, why_size);
        if (r < 0)
                return r;

        r = field(root, "tpm2-blob", json_type_string, &v, why, why_size);
        if (r < 0)
                return r;
        s = json_object_get_string(v);
        len = (size_t) json_object_get_string_len(v);
        r = base64_decode_strict(s, len, t->blob, sizeof(t->blob), &t->blob_size);
        if (r == -E2BIG)
                return format_reason(why, why_size, -E2BIG, "token field 'tpm2-blob' is larger than %d bytes", TOKEN_BLOB_MAX);
        if (r < 0)
                return format_reason(why, why_size, -EINVAL, "token field 'tpm2-blob' is not base64");
        if (!blob_well_formed(t->blob, t->blob_size))
                return format_reason(why, why_size, -EINVAL, "token field 'tpm2-blob' is not a TPM2B_PUBLIC followed by a TPM2B_PRIVATE");

        r = parse_pcrs(root, t, why, why_size);
        if (r < 0)
                return r;
        r = parse_hex_field(root, "tpm2-policy-hash", t->policy_hash, sizeof(t->policy_hash), why, why_size);
        if (r < 0)
                return r;

        r = field(root, "tpm2-srk-name", json_type_string, &v, why, why_size);
        if (r < 0)
                return r;
        len = (size_t) json_object_get_string_len(v);
        if (len % 2 != 0 || len / 2 > sizeof(t->srk_name) ||
            hex_decode_exact(json_object_get_string(v), len, t->srk_name, len / 2) < 0 ||
            !srk_name_well_formed(t->srk_name, len / 2))
                return format_reason(why, why_size, -EINVAL,
                            "token field 'tpm2-srk-name' is not a TPM name (2-byte hash algorithm and its digest, in hex)");
        t->srk_name_size = len / 2;

        r = field(root, "tpm2-pin", json_type_boolean, &v, why, why_size);
        if (r < 0)
                return r;
        t->pin = json_object_get_boolean(v);

        if (json_object_object_get_ex(root, "attest", NULL)) {
                r = parse_hex_field(root, "attest", t->attest, sizeof(t->attest), why, why_size);
                if (r < 0)
                        return r;
                t->has_attest = true;
        }
        *ret = tok;
        return 0;
}

/* Writes the common head: {"type":...,"keyslots":["N"],"version":1 */
static void format_head(FILE *f, const char *type, unsigned keyslot) {
        fprintf(f, "{\"type\":\"%s\",\"keyslots\":[\"%u\"],\"version\":%d", type, keyslot, TOKEN_VERSION);
}

static int finish(FILE *f, char **buf) {
        bool failed = ferror(f);

        /* open_memstream's buffer is only valid after fclose. */
        if (fclose(f) != 0 || failed) {
                free(*buf);
                *buf = NULL;
                return -ENOMEM;
        }
        return 0;
}

int token_tpm2_format(const Tpm2Token *t, char **ret) {
        _cleanup_free_ char *buf = NULL, *b64 = NULL;
        char hex[2 * TPM_NAME_MAX + 1], why[TOKEN_WHY_MAX];
        size_t digest_size = bank_digest_size(t->pcrs.bank), size = 0;
        Tpm2Token *check;
        const char *sep = "";
        FILE *f;
        int r;

        /* What the encoder itself relies on; parsing the result back checks everything else. */
        if (t->blob_size > TOKEN_BLOB_MAX || t->srk_name_size > TPM_NAME_MAX || digest_size == 0 ||
            t->pcrs.mask >> TPM_PCR_MAX != 0)
                return -EINVAL;
        b64 = malloc(base64_encoded_len(t->blob_size) + 1);
        if (!b64)
                return -ENOMEM;
        base64_encode(t->blob, t->blob_size, b64);

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        format_head(f, TOKEN_TPM2_TYPE, t->keyslot);
        fprintf(f, ",\"tpm2-blob\":\"%s\",\"tpm2-pcrs\":[", b64);
        for (unsigned i = 0; i < TPM_PCR_MAX; i++)
                if (t->pcrs.mask & (UINT32_C(1) << i)) {
                        fprintf(f, "%s%u", sep, i);
                        sep = ",";
                }
        fprintf(f, "],\"tpm2-pcr-bank\":\"%s\",\"tpm2-pcr-values\":{", bank_name(t->pcrs.bank));
        sep = "";
        for (unsigned i = 0; i < TPM_PCR_MAX; i++)
                if (t->pcrs.mask & (UINT32_C(1) << i)) {
                        hex_encode(t->pcrs.value[i], digest_size, hex);
                        fprintf(f, "%s\"%u\":\"%s\"", sep, i, hex);
                        sep = ",";
                }
        hex_encode(t->policy_hash, sizeof(t->policy_hash), hex);
        fprintf(f, "},\"tpm2-policy-hash\":\"%s\"", hex);
        hex_encode(t->srk_name, t->srk_name_size, hex);
        fprintf(f, ",\"tpm2-srk-name\":\"%s\",\"tpm2-pin\":%s", hex, t->pin ? "true" : "false");
        if (t->has_attest) {
                hex_encode(t->attest, sizeof(t->attest), hex);
                fprintf(f, ",\"attest\":\"%s\"", hex);
        }
        fputc('}', f);
        r = finish(f, &buf);
        if (r < 0)
                return r;

        check = malloc(sizeof(*check));
        if (!check)
                return -ENOMEM;
        r = token_tpm2_parse(buf, check, why, sizeof(why));
        free(check);
        if (r < 0)
                return r == -ENOMEM ? r : -EINVAL;
        *ret = TAKE_PTR(buf);
        return 0;
}

int token_recovery_parse(const char *json, RecoveryToken *ret, char *why, size_t why_size) {
        static const char *const fields[] = { "type", "keyslots", "version" };
        _cleanup_(json_object_putp) json_object *root = NULL;
        unsigned keyslot;
        int r;

        if (why_size > 0)
                why[0] = '\0';
        r = parse_object(json, &root, why, why_size);
        if (r < 0)
                return r;
        r = parse_common(root, TOKEN_RECOVERY_TYPE, &keyslot, why, why_size);
        if (r < 0)
                return r;
        r = check_fields(root, fields, ELEMENTSOF(fields), why, why_size);
        if (r < 0)
                return r;
        *ret = (RecoveryToken){ .keyslot = keyslot };
        return 0;
}

int token_recovery_format(const RecoveryToken *t, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        if (t->keyslot > TOKEN_KEYSLOT_MAX)
                return -EINVAL;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        format_head(f, TOKEN_RECOVERY_TYPE, t->keyslot);
        fputc('}', f);
        r = finish(f, &buf);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        return 0;
}

int token_provision_parse(const char *json, ProvisionToken *ret, char *why, size_t why_size) {
        static const char *const fields[] = { "type", "keyslots", "version", "key", "tpm2-pcrs", "tpm2-pcr-bank" };
        _cleanup_(json_object_putp) json_object *root = NULL;
        ProvisionToken t = {};
        json_object *v;
        size_t size;
        int r;

        if (why_size > 0)
                why[0] = '\0';
        r = parse_object(json, &root, why, why_size);
        if (r < 0)
                return r;
        /* An empty keyslot list is a state of provisioning, not damage (parse_common checks it last). */
        r = parse_common(root, TOKEN_PROVISION_TYPE, &t.keyslot, why, why_size);
        t.keyslot_gone = r == -ENOENT;
        if (r < 0 && !t.keyslot_gone)
                return r;
        if (t.keyslot_gone && why_size > 0)
                why[0] = '\0';
        r = check_fields(root, fields, ELEMENTSOF(fields), why, why_size);
        if (r < 0)
                return r;
        r = field(root, "key", json_type_string, &v, why, why_size);
        if (r < 0)
                return r;
        if (base64_decode_strict(json_object_get_string(v), (size_t) json_object_get_string_len(v), t.key,
                                 sizeof(t.key), &size) < 0 || size != sizeof(t.key))
                return format_reason(why, why_size, -EINVAL, "token field 'key' is not %d bytes of base64",
                                     TOKEN_PROVISION_KEY_SIZE);
        r = parse_bank(root, &t.bank, why, why_size);
        if (r < 0)
                return r;
        r = parse_pcr_array(root, true, &t.pcr_mask, why, why_size);
        if (r < 0)
                return r;
        *ret = t;
        return 0;
}

int token_provision_format(const ProvisionToken *t, char **ret) {
        _cleanup_free_ char *buf = NULL;
        char b64[48], why[TOKEN_WHY_MAX]; /* 44 base64 characters for 32 bytes */
        const char *sep = "";
        ProvisionToken check;
        size_t size = 0;
        FILE *f;
        int r;

        if (t->keyslot > TOKEN_KEYSLOT_MAX || !bank_name(t->bank) || t->pcr_mask >> TPM_PCR_MAX != 0)
                return -EINVAL;
        base64_encode(t->key, sizeof(t->key), b64);
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        if (t->keyslot_gone)
                fprintf(f, "{\"type\":\"%s\",\"keyslots\":[],\"version\":%d", TOKEN_PROVISION_TYPE, TOKEN_VERSION);
        else
                format_head(f, TOKEN_PROVISION_TYPE, t->keyslot);
        fprintf(f, ",\"key\":\"%s\",\"tpm2-pcrs\":[", b64);
        for (unsigned i = 0; i < TPM_PCR_MAX; i++)
                if (t->pcr_mask & (UINT32_C(1) << i)) {
                        fprintf(f, "%s%u", sep, i);
                        sep = ",";
                }
        fprintf(f, "],\"tpm2-pcr-bank\":\"%s\"}", bank_name(t->bank));
        r = finish(f, &buf);
        if (r < 0)
                return r;
        r = token_provision_parse(buf, &check, why, sizeof(why));
        if (r < 0)
                return r == -ENOMEM ? r : -EINVAL;
        *ret = TAKE_PTR(buf);
        return 0;
}
