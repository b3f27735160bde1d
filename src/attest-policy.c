/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Attestation policy: a small JSON file, parsed strictly, checked rule by rule, and reduced to a
 * canonical text whose SHA-256 is measured (so the gate PCR says which policy passed). */
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "encoding.h"
#include "json-strict.h"
#include "log.h"

#define POLICY_DEPTH_MAX 4
#define SIGNING_KEYS_DEFAULT ((1u << SNP_SIGNING_KEY_VCEK) | (1u << SNP_SIGNING_KEY_VLEK))

static inline void fclose_memp(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

void attest_policy_init(AttestPolicy *p) {
        memset(p, 0, sizeof(*p));
        p->signing_keys = SIGNING_KEYS_DEFAULT;
}

static _printf_(3, 4) int bad(char *why, size_t n, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(why, n, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* Exactly 2*size hex digits. */
static int parse_hex(json_object *v, const char *what, uint8_t *out, size_t size, char *why, size_t n) {
        const char *s;

        if (!json_object_is_type(v, json_type_string))
                return bad(why, n, "%s: expected a string of %zu hex digits", what, 2 * size);
        s = json_object_get_string(v);
        if ((size_t) json_object_get_string_len(v) != 2 * size)
                return bad(why, n, "%s: expected %zu hex digits, got %d characters", what, 2 * size,
                           json_object_get_string_len(v));
        if (hex_decode_exact(s, 2 * size, out, size) < 0)
                return bad(why, n, "%s: '%.*s' is not hex", what, (int) (2 * size > 100 ? 100 : 2 * size), s);
        return 0;
}

static int parse_bool(json_object *v, const char *what, bool *ret, char *why, size_t n) {
        if (!json_object_is_type(v, json_type_boolean))
                return bad(why, n, "%s: expected true or false", what);
        *ret = json_object_get_boolean(v);
        return 0;
}

static int parse_int(json_object *v, const char *what, int64_t min, int64_t max, int64_t *ret, char *why, size_t n) {
        int64_t x;

        /* json-c clamps huge integers to INT64_MAX/MIN, which the range check then refuses. */
        if (!json_object_is_type(v, json_type_int))
                return bad(why, n, "%s: expected an integer", what);
        x = json_object_get_int64(v);
        if (x < min || x > max)
                return bad(why, n, "%s: %lld is not between %lld and %lld", what, (long long) x, (long long) min,
                           (long long) max);
        *ret = x;
        return 0;
}

static int expect_list(json_object *v, const char *what, size_t max, size_t *ret_len, char *why, size_t n) {
        size_t len;

        if (!json_object_is_type(v, json_type_array))
                return bad(why, n, "%s: expected a list", what);
        len = json_object_array_length(v);
        /* An empty allow-list would refuse everything: almost certainly a mistake, so say so. */
        if (len == 0)
                return bad(why, n, "%s: empty list", what);
        if (len > max)
                return bad(why, n, "%s: more than %zu entries", what, max);
        *ret_len = len;
        return 0;
}

static int parse_digest_list(json_object *v, const char *what, uint8_t (*out)[48], size_t max, size_t *ret_n, char *why,
                             size_t n) {
        size_t len;
        int k;

        k = expect_list(v, what, max, &len, why, n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < len; i++) {
                k = parse_hex(json_object_array_get_idx(v, i), what, out[i], 48, why, n);
                if (k < 0)
                        return k;
                for (size_t j = 0; j < i; j++)
                        if (memcmp(out[i], out[j], 48) == 0)
                                return bad(why, n, "%s: entry %zu repeats entry %zu", what, i + 1, j + 1);
        }
        *ret_n = len;
        return 0;
}

static int parse_min_tcb(json_object *v, AttestPolicy *p, char *why, size_t n) {
        static const char *const names[] = { "bootloader", "tee", "snp", "microcode", "fmc" };
        uint8_t *fields[] = { &p->min_tcb.bootloader, &p->min_tcb.tee, &p->min_tcb.snp, &p->min_tcb.microcode,
                              &p->min_tcb.fmc };

        if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) == 0)
                return bad(why, n, "min-tcb: expected an object with bootloader, tee, snp, microcode and/or fmc");
        json_object_object_foreach(v, key, val) {
                size_t i;
                int64_t x;
                char what[40];
                int k;

                for (i = 0; i < ELEMENTSOF(names); i++)
                        if (strcmp(key, names[i]) == 0)
                                break;
                if (i == ELEMENTSOF(names))
                        return bad(why, n, "min-tcb: unknown key '%.40s'", key);
                (void) snprintf(what, sizeof(what), "min-tcb.%s", names[i]);
                k = parse_int(val, what, 0, 255, &x, why, n);
                if (k < 0)
                        return k;
                *fields[i] = (uint8_t) x;
        }
        p->has_min_tcb = true;
        return 0;
}

static int parse_vmpl(json_object *v, AttestPolicy *p, char *why, size_t n) {
        size_t len;
        int k;

        k = expect_list(v, "vmpl", 4, &len, why, n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < len; i++) {
                int64_t x;

                k = parse_int(json_object_array_get_idx(v, i), "vmpl", 0, 3, &x, why, n);
                if (k < 0)
                        return k;
                if (p->vmpl_mask & (1u << x))
                        return bad(why, n, "vmpl: %lld is listed twice", (long long) x);
                p->vmpl_mask |= (uint8_t) (1u << x);
        }
        return 0;
}

static int parse_policy_bits(json_object *v, const char *what, uint64_t *ret, char *why, size_t n) {
        size_t len;
        int k;

        k = expect_list(v, what, 48, &len, why, n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < len; i++) {
                json_object *e = json_object_array_get_idx(v, i);
                int64_t bit;

                if (json_object_is_type(e, json_type_string)) {
                        bit = snp_policy_bit_from_name(json_object_get_string(e));
                        if (bit < 0)
                                return bad(why, n, "%s: unknown policy bit '%.40s'", what, json_object_get_string(e));
                } else {
                        /* Bits 0..15 are the ABI version, not flags. */
                        k = parse_int(e, what, 16, 63, &bit, why, n);
                        if (k < 0)
                                return k;
                }
                if (*ret & (UINT64_C(1) << bit))
                        return bad(why, n, "%s: bit %lld is listed twice", what, (long long) bit);
                *ret |= UINT64_C(1) << bit;
        }
        return 0;
}

static int parse_min_abi(json_object *v, AttestPolicy *p, char *why, size_t n) {
        const char *s;
        unsigned part[2] = {}, idx = 0, digits = 0;

        if (!json_object_is_type(v, json_type_string))
                return bad(why, n, "min-abi: expected a string MAJOR.MINOR, e.g. \"1.51\"");
        s = json_object_get_string(v);
        for (const char *c = s;; c++) {
                if (*c >= '0' && *c <= '9') {
                        /* no leading zeros, at most 3 digits, at most 255 */
                        if ((digits == 1 && part[idx] == 0) || digits == 3)
                                goto fail;
                        part[idx] = part[idx] * 10 + (unsigned) (*c - '0');
                        digits++;
                } else if ((*c == '.' && idx == 0) || (*c == 0 && idx == 1)) {
                        if (digits == 0 || part[idx] > 255)
                                goto fail;
                        if (*c == 0)
                                break;
                        idx++;
                        digits = 0;
                } else
                        goto fail;
        }
        p->has_min_abi = true;
        p->min_abi_major = (uint8_t) part[0];
        p->min_abi_minor = (uint8_t) part[1];
        return 0;
fail:
        return bad(why, n, "min-abi: '%.40s' is not MAJOR.MINOR (each 0..255)", s);
}

static int parse_allow(json_object *v, const char *what, AttestAllow *ret, char *why, size_t n) {
        const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";

        if (strcmp(s, "allowed") == 0)
                *ret = ATTEST_ALLOWED;
        else if (strcmp(s, "forbidden") == 0)
                *ret = ATTEST_FORBIDDEN;
        else
                return bad(why, n, "%s: expected \"allowed\" or \"forbidden\"", what);
        return 0;
}

static int parse_signing_keys(json_object *v, AttestPolicy *p, char *why, size_t n) {
        size_t len;
        int k;

        k = expect_list(v, "signing-key", 2, &len, why, n);
        if (k < 0)
                return k;
        p->signing_keys = 0;
        for (size_t i = 0; i < len; i++) {
                json_object *e = json_object_array_get_idx(v, i);
                const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";
                unsigned bit;

                if (strcmp(s, "vcek") == 0)
                        bit = 1u << SNP_SIGNING_KEY_VCEK;
                else if (strcmp(s, "vlek") == 0)
                        bit = 1u << SNP_SIGNING_KEY_VLEK;
                else
                        return bad(why, n, "signing-key: expected \"vcek\" or \"vlek\"");
                if (p->signing_keys & bit)
                        return bad(why, n, "signing-key: '%s' is listed twice", s);
                p->signing_keys |= bit;
        }
        return 0;
}

static int parse_vm_config(json_object *v, AttestPolicy *p, char *why, size_t n) {
        AttestVmConfig *c = &p->vm_config;

        if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) == 0)
                return bad(why, n, "vm-configuration: expected an object with secure-boot, tpm-enabled and/or console-enabled");
        json_object_object_foreach(v, key, val) {
                bool *has, *value;
                char what[48];
                int k;

                if (strcmp(key, "secure-boot") == 0)
                        has = &c->has_secure_boot, value = &c->secure_boot;
                else if (strcmp(key, "tpm-enabled") == 0)
                        has = &c->has_tpm_enabled, value = &c->tpm_enabled;
                else if (strcmp(key, "console-enabled") == 0)
                        has = &c->has_console_enabled, value = &c->console_enabled;
                else
                        return bad(why, n, "vm-configuration: unknown key '%.40s'", key);
                (void) snprintf(what, sizeof(what), "vm-configuration.%s", key);
                k = parse_bool(val, what, value, why, n);
                if (k < 0)
                        return k;
                *has = true;
        }
        p->has_vm_config = true;
        return 0;
}

static int parse_key(const char *key, json_object *v, AttestPolicy *p, char *why, size_t n) {
        if (strcmp(key, "debug") == 0)
                return parse_bool(v, key, &p->debug, why, n);
        if (strcmp(key, "min-tcb") == 0)
                return parse_min_tcb(v, p, why, n);
        if (strcmp(key, "vmpl") == 0)
                return parse_vmpl(v, p, why, n);
        if (strcmp(key, "measurements") == 0)
                return parse_digest_list(v, key, p->measurements, ATTEST_POLICY_MEASUREMENTS_MAX, &p->n_measurements, why, n);
        if (strcmp(key, "host-data") == 0) {
                p->has_host_data = true;
                return parse_hex(v, key, p->host_data, sizeof(p->host_data), why, n);
        }
        if (strcmp(key, "id-key-digest") == 0)
                return parse_digest_list(v, key, p->id_key_digests, ATTEST_POLICY_KEY_DIGESTS_MAX, &p->n_id_key_digests, why, n);
        if (strcmp(key, "author-key-digest") == 0)
                return parse_digest_list(v, key, p->author_key_digests, ATTEST_POLICY_KEY_DIGESTS_MAX,
                                         &p->n_author_key_digests, why, n);
        if (strcmp(key, "family-id") == 0) {
                p->has_family_id = true;
                return parse_hex(v, key, p->family_id, sizeof(p->family_id), why, n);
        }
        if (strcmp(key, "image-id") == 0) {
                p->has_image_id = true;
                return parse_hex(v, key, p->image_id, sizeof(p->image_id), why, n);
        }
        if (strcmp(key, "require-policy-bits") == 0)
                return parse_policy_bits(v, key, &p->require_bits, why, n);
        if (strcmp(key, "forbid-policy-bits") == 0)
                return parse_policy_bits(v, key, &p->forbid_bits, why, n);
        if (strcmp(key, "min-abi") == 0)
                return parse_min_abi(v, p, why, n);
        if (strcmp(key, "smt") == 0)
                return parse_allow(v, key, &p->smt, why, n);
        if (strcmp(key, "migration-agent") == 0)
                return parse_allow(v, key, &p->migration_agent, why, n);
        if (strcmp(key, "signing-key") == 0)
                return parse_signing_keys(v, p, why, n);
        if (strcmp(key, "vm-configuration") == 0)
                return parse_vm_config(v, p, why, n);
        return bad(why, n, "unknown key '%.40s'", key);
}

int attest_policy_parse(const char *text, size_t size, AttestPolicy *ret, char *why, size_t why_size) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        AttestPolicy *p;
        int k;

        if (size > ATTEST_POLICY_FILE_MAX)
                return bad(why, why_size, "larger than %u bytes", ATTEST_POLICY_FILE_MAX);
        k = json_parse_strict(text, size, POLICY_DEPTH_MAX, &root, why, why_size);
        if (k < 0)
                return k;
        if (!json_object_is_type(root, json_type_object))
                return bad(why, why_size, "expected a JSON object");
        /* The policy is large (allow-lists); build it on the heap, hand it out only when valid. */
        p = malloc(sizeof(*p));
        if (!p)
                return -ENOMEM;
        attest_policy_init(p);
        json_object_object_foreach(root, key, val) {
                k = parse_key(key, val, p, why, why_size);
                if (k < 0)
                        goto out;
        }
        /* Contradictions that would refuse every report are mistakes, not policies. */
        if (p->require_bits & p->forbid_bits) {
                k = bad(why, why_size, "a policy bit is both required and forbidden");
                goto out;
        }
        if (p->forbid_bits & SNP_POLICY_RESERVED_1) {
                k = bad(why, why_size, "forbid-policy-bits: bit 17 is always set");
                goto out;
        }
        if ((p->require_bits & SNP_POLICY_DEBUG) && !p->debug) {
                k = bad(why, why_size, "require-policy-bits: 'debug' needs \"debug\": true");
                goto out;
        }
        *ret = *p;
        k = 0;
out:
        free(p);
        return k;
}

int attest_policy_load(const char *path, AttestPolicy *ret, char *why, size_t why_size) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int k;

        k = attest_read_file(path, ATTEST_POLICY_FILE_MAX, &data, &size);
        if (k < 0) {
                (void) snprintf(why, why_size, "cannot read: %s", strerror(-k));
                return k;
        }
        return attest_policy_parse((const char *) data, size, ret, why, why_size);
}

/* ---- canonical form and digest ---- */

static void put_hex(FILE *f, const uint8_t *p, size_t n) {
        fputc('"', f);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%02x", p[i]);
        fputc('"', f);
}

static int cmp48(const void *a, const void *b) {
        return memcmp(a, b, 48);
}

static void put_digest_list(FILE *f, const uint8_t (*list)[48], size_t n) {
        uint8_t sorted[ATTEST_POLICY_MEASUREMENTS_MAX][48];

        if (n == 0) {
                fputs("null", f);
                return;
        }
        memcpy(sorted, list, n * 48);
        qsort(sorted, n, 48, cmp48);
        fputc('[', f);
        for (size_t i = 0; i < n; i++) {
                if (i)
                        fputc(',', f);
                put_hex(f, sorted[i], 48);
        }
        fputc(']', f);
}

static void put_bits(FILE *f, uint64_t bits) {
        bool first = true;

        fputc('[', f);
        for (unsigned b = 16; b < 64; b++)
                if (bits & (UINT64_C(1) << b)) {
                        fprintf(f, "%s%u", first ? "" : ",", b);
                        first = false;
                }
        fputc(']', f);
}

static void put_opt_bool(FILE *f, bool has, bool v) {
        fputs(!has ? "null" : v ? "true" : "false", f);
}

int attest_policy_canonical(const AttestPolicy *p, char **ret) {
        _cleanup_(fclose_memp) FILE *f = NULL;
        char *buf = NULL;
        size_t size = 0;
        /* Spellings that mean the same collapse: a zero minimum is no minimum, all four VMPLs is
         * any VMPL, "allowed" is no check, requiring the always-set bit 17 requires nothing. */
        bool min_tcb = p->has_min_tcb && (p->min_tcb.bootloader | p->min_tcb.tee | p->min_tcb.snp | p->min_tcb.microcode |
                                          p->min_tcb.fmc) != 0;
        uint8_t vmpl = p->vmpl_mask == 0xF ? 0 : p->vmpl_mask;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fputs("{\"version\":1", f);
        fprintf(f, ",\"debug\":%s", p->debug ? "true" : "false");
        fputs(",\"min-tcb\":", f);
        if (min_tcb)
                fprintf(f, "{\"bootloader\":%u,\"tee\":%u,\"snp\":%u,\"microcode\":%u,\"fmc\":%u}", p->min_tcb.bootloader,
                        p->min_tcb.tee, p->min_tcb.snp, p->min_tcb.microcode, p->min_tcb.fmc);
        else
                fputs("null", f);
        fputs(",\"vmpl\":", f);
        if (vmpl) {
                bool first = true;
                fputc('[', f);
                for (unsigned i = 0; i < 4; i++)
                        if (vmpl & (1u << i)) {
                                fprintf(f, "%s%u", first ? "" : ",", i);
                                first = false;
                        }
                fputc(']', f);
        } else
                fputs("null", f);
        fputs(",\"measurements\":", f);
        put_digest_list(f, (const uint8_t(*)[48]) p->measurements, p->n_measurements);
        fputs(",\"host-data\":", f);
        if (p->has_host_data)
                put_hex(f, p->host_data, sizeof(p->host_data));
        else
                fputs("null", f);
        fputs(",\"id-key-digest\":", f);
        put_digest_list(f, (const uint8_t(*)[48]) p->id_key_digests, p->n_id_key_digests);
        fputs(",\"author-key-digest\":", f);
        put_digest_list(f, (const uint8_t(*)[48]) p->author_key_digests, p->n_author_key_digests);
        fputs(",\"family-id\":", f);
        if (p->has_family_id)
                put_hex(f, p->family_id, sizeof(p->family_id));
        else
                fputs("null", f);
        fputs(",\"image-id\":", f);
        if (p->has_image_id)
                put_hex(f, p->image_id, sizeof(p->image_id));
        else
                fputs("null", f);
        fputs(",\"require-policy-bits\":", f);
        put_bits(f, p->require_bits & ~SNP_POLICY_RESERVED_1);
        fputs(",\"forbid-policy-bits\":", f);
        put_bits(f, p->forbid_bits);
        fputs(",\"min-abi\":", f);
        if (p->has_min_abi && (p->min_abi_major | p->min_abi_minor))
                fprintf(f, "\"%u.%u\"", p->min_abi_major, p->min_abi_minor);
        else
                fputs("null", f);
        fprintf(f, ",\"smt\":\"%s\"", p->smt == ATTEST_FORBIDDEN ? "forbidden" : "allowed");
        fprintf(f, ",\"migration-agent\":\"%s\"", p->migration_agent == ATTEST_FORBIDDEN ? "forbidden" : "allowed");
        fputs(",\"signing-key\":[", f);
        if (p->signing_keys & (1u << SNP_SIGNING_KEY_VCEK))
                fputs("\"vcek\"", f);
        if (p->signing_keys & (1u << SNP_SIGNING_KEY_VLEK))
                fputs((p->signing_keys & (1u << SNP_SIGNING_KEY_VCEK)) ? ",\"vlek\"" : "\"vlek\"", f);
        fputc(']', f);
        fputs(",\"vm-configuration\":", f);
        if (p->has_vm_config) {
                fputs("{\"secure-boot\":", f);
                put_opt_bool(f, p->vm_config.has_secure_boot, p->vm_config.secure_boot);
                fputs(",\"tpm-enabled\":", f);
                put_opt_bool(f, p->vm_config.has_tpm_enabled, p->vm_config.tpm_enabled);
                fputs(",\"console-enabled\":", f);
                put_opt_bool(f, p->vm_config.has_console_enabled, p->vm_config.console_enabled);
                fputc('}', f);
        } else
                fputs("null", f);
        fputc('}', f);
        if (ferror(f) || fclose(f) != 0) {
                f = NULL;
                free(buf);
                return -ENOMEM;
        }
        f = NULL;
        *ret = buf;
        return 0;
}

int attest_policy_digest(const AttestPolicy *p, uint8_t ret[32]) {
        _cleanup_free_ char *text = NULL;
        unsigned len = 0;
        int k;

        k = attest_policy_canonical(p, &text);
        if (k < 0)
                return k;
        if (EVP_Digest(text, strlen(text), ret, &len, EVP_sha256(), NULL) != 1 || len != 32)
                return -EIO;
        return 0;
}

/* ---- evaluation ---- */

static bool in_list(const uint8_t (*list)[48], size_t n, const uint8_t *v) {
        for (size_t i = 0; i < n; i++)
                if (memcmp(list[i], v, 48) == 0)
                        return true;
        return false;
}

static void hex_short(const uint8_t *p, size_t n, char *out, size_t out_size) {
        size_t j = 0;

        for (size_t i = 0; i < n && j + 3 < out_size; i++)
                j += (size_t) snprintf(out + j, out_size - j, "%02x", p[i]);
}

static void check_min_tcb(const AttestPolicy *p, const SnpReport *r, const char *which, uint64_t raw,
                          AttestProblems *problems) {
        const SnpTcb *m = &p->min_tcb;
        char detail[160] = "";
        size_t j = 0;
        SnpTcb t;

        snp_tcb_decode(raw, r->tcb_layout, &t);
#define BELOW(field)                                                                                              \
        if (t.field < m->field)                                                                                   \
                j += (size_t) snprintf(detail + j, j < sizeof(detail) ? sizeof(detail) - j : 0, "%s" #field " %u < %u", \
                                       j ? ", " : "", t.field, m->field)
        /* FMC exists only in the Turin layout; a Milan or Genoa report has nothing to compare. */
        if (r->tcb_layout == SNP_TCB_LAYOUT_TURIN)
                BELOW(fmc);
        BELOW(bootloader);
        BELOW(tee);
        BELOW(snp);
        BELOW(microcode);
#undef BELOW
        if (j)
                attest_problem_add(problems, "min-tcb", "%s TCB below the minimum: %s", which, detail);
}

static void check_rollback(const SnpReport *r, AttestProblems *problems) {
        SnpTcb cur, com;

        snp_tcb_decode(r->current_tcb, r->tcb_layout, &cur);
        snp_tcb_decode(r->committed_tcb, r->tcb_layout, &com);
        if (cur.fmc < com.fmc || cur.bootloader < com.bootloader || cur.tee < com.tee || cur.snp < com.snp ||
            cur.microcode < com.microcode)
                attest_problem_add(problems, "tcb-rollback", "current TCB 0x%016llx is below the committed TCB 0x%016llx",
                                   (unsigned long long) r->current_tcb, (unsigned long long) r->committed_tcb);
}

static void check_bits(const SnpReport *r, uint64_t bits, bool want_set, const char *check, AttestProblems *problems) {
        for (unsigned b = 16; b < 64; b++) {
                const char *name = snp_policy_bit_name(b);

                if (!(bits & (UINT64_C(1) << b)) || !!(r->policy & (UINT64_C(1) << b)) == want_set)
                        continue;
                attest_problem_add(problems, check, "guest policy bit %u%s%s%s is %s", b, name ? " (" : "", name ? name : "",
                                   name ? ")" : "", want_set ? "not set" : "set");
        }
}

static void check_vm_config(const AttestPolicy *p, const AttestVmConfig *c, AttestProblems *problems) {
        const struct {
                const char *name;
                bool want_has, want, has, value;
        } items[] = {
                { "secure-boot", p->vm_config.has_secure_boot, p->vm_config.secure_boot, c && c->has_secure_boot,
                  c && c->secure_boot },
                { "tpm-enabled", p->vm_config.has_tpm_enabled, p->vm_config.tpm_enabled, c && c->has_tpm_enabled,
                  c && c->tpm_enabled },
                { "console-enabled", p->vm_config.has_console_enabled, p->vm_config.console_enabled,
                  c && c->has_console_enabled, c && c->console_enabled },
        };

        if (!c) {
                attest_problem_add(problems, "vm-configuration", "the policy demands Azure vm-configuration values, but there is no HCL runtime data");
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(items); i++) {
                if (!items[i].want_has)
                        continue;
                if (!items[i].has)
                        attest_problem_add(problems, "vm-configuration", "%s is missing from the HCL runtime data", items[i].name);
                else if (items[i].value != items[i].want)
                        attest_problem_add(problems, "vm-configuration", "%s is %s, the policy demands %s", items[i].name,
                                           items[i].value ? "true" : "false", items[i].want ? "true" : "false");
        }
}

int attest_policy_check(const AttestPolicy *p, const SnpReport *r, const AttestVmConfig *vm_config,
                        AttestProblems *problems) {
        size_t before = problems->n;
        char hex[2 * 48 + 1];

        if (!p->debug && (r->policy & SNP_POLICY_DEBUG))
                attest_problem_add(problems, "debug", "the guest policy allows debugging (DEBUG, bit 19): its memory is not confidential");

        if (p->has_min_tcb) {
                check_min_tcb(p, r, "reported", r->reported_tcb, problems);
                check_min_tcb(p, r, "current", r->current_tcb, problems);
                check_min_tcb(p, r, "committed", r->committed_tcb, problems);
                check_min_tcb(p, r, "launch", r->launch_tcb, problems);
        }
        /* Firmware never runs below its committed TCB; a report that says so is not believable. */
        check_rollback(r, problems);

        if (p->vmpl_mask && !(p->vmpl_mask & (1u << r->vmpl)))
                attest_problem_add(problems, "vmpl", "the report was requested from VMPL %u, which the policy does not allow",
                                   r->vmpl);
        if (p->n_measurements && !in_list((const uint8_t(*)[48]) p->measurements, p->n_measurements, r->measurement)) {
                hex_short(r->measurement, 48, hex, sizeof(hex));
                attest_problem_add(problems, "measurements", "measurement %s is not in the allowed list", hex);
        }
        if (p->has_host_data && memcmp(p->host_data, r->host_data, 32) != 0) {
                hex_short(r->host_data, 32, hex, sizeof(hex));
                attest_problem_add(problems, "host-data", "host data %s differs from the policy's", hex);
        }
        if (p->n_id_key_digests &&
            !in_list((const uint8_t(*)[48]) p->id_key_digests, p->n_id_key_digests, r->id_key_digest)) {
                hex_short(r->id_key_digest, 48, hex, sizeof(hex));
                attest_problem_add(problems, "id-key-digest", "ID key digest %s is not in the allowed list", hex);
        }
        if (p->n_author_key_digests) {
                /* The author key digest means something only when the firmware says it was used. */
                if (!(r->signer_info & SNP_SIGNER_AUTHOR_KEY_EN))
                        attest_problem_add(problems, "author-key-digest", "the report has no author key (AUTHOR_KEY_EN is 0)");
                else if (!in_list((const uint8_t(*)[48]) p->author_key_digests, p->n_author_key_digests,
                                  r->author_key_digest)) {
                        hex_short(r->author_key_digest, 48, hex, sizeof(hex));
                        attest_problem_add(problems, "author-key-digest", "author key digest %s is not in the allowed list", hex);
                }
        }
        if (p->has_family_id && memcmp(p->family_id, r->family_id, 16) != 0) {
                hex_short(r->family_id, 16, hex, sizeof(hex));
                attest_problem_add(problems, "family-id", "family id %s differs from the policy's", hex);
        }
        if (p->has_image_id && memcmp(p->image_id, r->image_id, 16) != 0) {
                hex_short(r->image_id, 16, hex, sizeof(hex));
                attest_problem_add(problems, "image-id", "image id %s differs from the policy's", hex);
        }
        check_bits(r, p->require_bits, true, "require-policy-bits", problems);
        check_bits(r, p->forbid_bits, false, "forbid-policy-bits", problems);
        if (p->has_min_abi && (r->current_major < p->min_abi_major ||
                               (r->current_major == p->min_abi_major && r->current_minor < p->min_abi_minor)))
                attest_problem_add(problems, "min-abi", "firmware API version %u.%u is below %u.%u", r->current_major,
                                   r->current_minor, p->min_abi_major, p->min_abi_minor);
        if (p->smt == ATTEST_FORBIDDEN && (r->platform_info & SNP_PLATFORM_SMT_EN))
                attest_problem_add(problems, "smt", "SMT is enabled on the host (platform_info SMT_EN)");
        if (p->migration_agent == ATTEST_FORBIDDEN && (r->policy & SNP_POLICY_MIGRATE_MA))
                attest_problem_add(problems, "migration-agent", "the guest policy allows a migration agent (MIGRATE_MA, bit 18)");
        if (!(p->signing_keys & (1u << snp_report_signing_key(r))))
                attest_problem_add(problems, "signing-key", "the report is signed by a %s, which the policy does not allow",
                                   snp_signing_key_to_string(snp_report_signing_key(r)));
        if (p->has_vm_config)
                check_vm_config(p, vm_config, problems);

        return problems->n > before || problems->truncated ? -EBADE : 0;
}
